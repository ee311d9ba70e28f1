/*
 * report.c - free page reporting: wholly free resident blocks, isolated after
 * report_delay, merged into runs, sent as one device-writable element, and
 * back to the allocator as reported (not resident) on the host's ack.
 */
#include "drivers/balloon/internal.h"

/* If the host acked the report element, its blocks go back to the allocator
 * as reported. Returns the blocks returned. Never logs (OOM path). */
unsigned bal_report_reap(struct balloon *b)
{
	struct virtq *vq = b->s.report_vq;
	if (!vq || !b->rep.in_flight || virtq_is_broken(vq))
		return 0;
	if (!virtq_get_used(vq, NULL))   /* the only token on this queue is &b->rep */
		return 0;
	unsigned n = b->rep.n;
	b->s.mops->report_done(b->s.mctx, b->rep.pfns, n, 1);
	b->rep.in_flight = 0;
	b->rep.n = 0;
	b->rep.blocks += n;
	b->rep.rounds++;
	return n;
}

static void sort_u64(uint64_t *a, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		uint64_t v = a[i];
		unsigned j = i;
		for (; j > 0 && a[j - 1] > v; j--)
			a[j] = a[j - 1];
		a[j] = v;
	}
}

/* A block the allocator isolated must be a whole block of tracked memory
 * that is not the balloon's and not reported twice: else reporting it could
 * let the host discard memory someone uses. NULL if fine, else why. */
static const char *report_block_bad(const struct balloon *b, const uint64_t *pfns, unsigned i)
{
	uint64_t pfn = pfns[i];
	if (pfn % PAGES_PER_BLOCK)
		return "not a block start";
	if (pfn >= b->s.max_pfn || b->s.max_pfn - pfn < PAGES_PER_BLOCK)
		return "beyond the tracked memory";
	if (i > 0 && pfns[i - 1] == pfn)
		return "isolated twice";
	if (b->blk_count[pfn / PAGES_PER_BLOCK])
		return "in the balloon";
	for (unsigned k = 0; k < BALLOON_SLOTS; k++) {
		const struct balloon_elem *e = &b->elems[k];
		for (unsigned r = 0; r < e->nruns; r++)
			if (e->runs[r].pfn < pfn + PAGES_PER_BLOCK && pfn < e->runs[r].pfn + e->runs[r].count)
				return "in flight on the balloon's queues";
	}
	return NULL;
}

/* One round: isolate, merge neighbours into runs, one element of at most
 * `descs` device-writable descriptors. Returns 1 if it went out. */
static int report_round(struct balloon *b, uint64_t now)
{
	struct virtq *vq = b->s.report_vq;
	const struct balloon_mem_ops *m = b->s.mops;
	uint64_t free = m->free_pages(b->s.mctx), minf = b->s.params.min_free_pages;
	uint64_t room = free > minf ? (free - minf) / PAGES_PER_BLOCK : 0;
	unsigned descs = (unsigned)min_u64(BALLOON_REPORT_DESCS, virtq_num_free(vq));
	unsigned max = (unsigned)min_u64(BALLOON_REPORT_BLOCKS, room);
	if (!max || !descs)
		return 0;
	uint64_t *pfns = b->rep.pfns;
	unsigned n = m->report_isolate(b->s.mctx, pfns, max);
	if (n > max) {
		klog("balloon: allocator isolated %u blocks when asked for %u; free page reporting off", n, max);
		b->s.report_vq = NULL;
		return 0;
	}
	sort_u64(pfns, n);
	for (unsigned i = 0; i < n; i++) {
		const char *why = report_block_bad(b, pfns, i);
		if (why) {
			/* Not ours to hand back either: leave that one (and its
			 * duplicates) alone, return every other block unreported,
			 * and stop reporting. */
			klog("balloon: allocator isolated a bad block for reporting (pfn %#llx: %s); "
			     "free page reporting off", (unsigned long long)pfns[i], why);
			m->report_done(b->s.mctx, pfns, i, 0);
			for (unsigned k = i + 1; k < n; k++)
				if (pfns[k] != pfns[i])
					m->report_done(b->s.mctx, &pfns[k], 1, 0);
			b->s.report_vq = NULL;
			return 0;
		}
	}
	struct virtq_buf bufs[BALLOON_REPORT_DESCS];
	unsigned nb = 0, used = 0;
	while (used < n && nb < descs) {
		unsigned len = 1;
		while (used + len < n && len < BALLOON_REPORT_RUN_BLOCKS &&
		       pfns[used + len] == pfns[used] + (uint64_t)len * PAGES_PER_BLOCK)
			len++;
		bufs[nb].addr = pfns[used] << VIRTIO_BALLOON_PFN_SHIFT;
		bufs[nb].len = len * (PAGES_PER_BLOCK << VIRTIO_BALLOON_PFN_SHIFT);
		nb++;
		used += len;
	}
	if (used < n) {
		/* more runs than descriptors: the rest waits for the next round */
		m->report_done(b->s.mctx, pfns + used, n - used, 0);
		b->rep.put_back += n - used;
	}
	if (virtq_add(vq, bufs, 0, nb, &b->rep) != 0) {
		m->report_done(b->s.mctx, pfns, used, 0);
		return 0;
	}
	virtq_kick(vq);
	b->rep.n = used;
	b->rep.in_flight = 1;
	b->rep.submitted_ns = now;
	b->rep.runs += nb;
	return 1;
}

void bal_report_poll(struct balloon *b, uint64_t now)
{
	struct virtq *vq = b->s.report_vq;
	struct balloon_report *r = &b->rep;
	if (!vq)
		return;
	if (!virtq_is_broken(vq))
		bal_report_reap(b);
	/* broken before or by this reap: said now, not at a later wake-up */
	if (virtq_is_broken(vq)) {
		if (!r->broken_logged) {
			r->broken_logged = 1;
			klog("balloon: free page reporting stopped: its queue broke; %u blocks (%llu MiB) "
			     "stay out of use", r->in_flight ? r->n : 0,
			     (unsigned long long)PAGES_TO_MIB((uint64_t)(r->in_flight ? r->n : 0) * PAGES_PER_BLOCK));
		}
		return;
	}
	if (r->in_flight) {
		if (!r->stall_logged && now - r->submitted_ns > b->s.params.ack_timeout_ns) {
			r->stall_logged = 1;
			klog_ratelimited(&b->lim_rep, LOG_INTERVAL_NS,
			                 "balloon: host has not acked a free page report for %llu ms: "
			                 "%u blocks (%llu MiB) stay out of use until it does",
			                 (unsigned long long)((now - r->submitted_ns) / NS_PER_MS), r->n,
			                 (unsigned long long)PAGES_TO_MIB((uint64_t)r->n * PAGES_PER_BLOCK));
		}
		return;
	}
	if (r->stall_logged) {
		r->stall_logged = 0;
		klog_ratelimited(&b->lim_rep, LOG_INTERVAL_NS,
		                 "balloon: host acked the free page report; the blocks are in use again");
	}
	uint64_t pending = b->s.mops->report_pending(b->s.mctx);
	if (r->state == REPORT_IDLE && pending) {
		r->state = REPORT_ARMED;
		r->due_ns = now + b->s.params.report_delay_ns;
	}
	if (r->state == REPORT_ARMED) {
		if (!pending)
			r->state = REPORT_IDLE;     /* allocated again before the delay ran out */
		else if (now >= r->due_ns)
			r->state = REPORT_BUSY;
	}
	if (r->state == REPORT_BUSY && (!pending || !report_round(b, now)))
		r->state = REPORT_IDLE;
}
