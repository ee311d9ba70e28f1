/*
 * balloon.c - the balloon core's life: init, one poll step (acks, actual, the
 * target from the device, stalls, status lines), release after a reset,
 * state. Contract and policy in balloon.h; the books in internal.h.
 *
 * Re-entry: balloon_oom() runs inside an allocation, which may happen inside
 * balloon_poll() itself (compaction, a shrinker, a log line growing the
 * heap). The books are half-updated there, so the OOM path refuses to run
 * while in_poll is set and returns 0: that allocation fails or is served by
 * the other notifiers.
 */
#include "drivers/balloon/internal.h"
#include <stdlib.h>
#include <string.h>

/* ---- init */

int balloon_init(struct balloon *b, const struct balloon_setup *s)
{
	/* After balloon_release_all (a device reset), the host's decisions
	 * outlive the books: whether it has set its own target (then
	 * balloon.initial no longer applies), the num_pages it started from, and
	 * the hold after a deflate on OOM. Undoing them would re-inflate past
	 * what the host or the OOM path decided. */
	struct { int valid, host_set, have_first_np, oom_capped; uint32_t first_np; uint64_t oom_cap; } keep = {
		b->released, b->host_set, b->have_first_np, b->oom_capped, b->first_np, b->oom_cap,
	};
	memset(b, 0, sizeof *b);
	if (keep.valid) {
		b->host_set = keep.host_set;
		b->have_first_np = keep.have_first_np;
		b->first_np = keep.first_np;
		b->oom_capped = keep.oom_capped;
		b->oom_cap = keep.oom_cap;
	}
	const char *why = NULL;
	if (!s->tops || !s->tops->read_num_pages || !s->tops->write_actual)
		why = "transport ops missing";
	else if (!s->mops || !s->mops->take_blocks || !s->mops->take_run ||
	         !s->mops->give_back || !s->mops->free_pages || !s->mops->total_pages)
		why = "memory ops missing";
	else if (!s->inflate_vq || !s->deflate_vq || virtq_is_broken(s->inflate_vq) ||
	         virtq_is_broken(s->deflate_vq) || s->inflate_vq->num < 2 || s->deflate_vq->num < 2)
		why = "inflate/deflate queues missing, broken or smaller than 2";
	else if (!s->dma || s->dma_len < BALLOON_DMA_BYTES || (s->dma_pa & 4095))
		why = "DMA memory missing, too small or misaligned";
	else if (s->max_pfn == 0 || s->max_pfn > BALLOON_MAX_PFN)
		why = "max_pfn out of range";
	else if (s->layout != BALLOON_LAYOUT_CHAIN && s->layout != BALLOON_LAYOUT_SINGLE)
		why = "unknown element layout";
	else if (!s->track || s->track_len < balloon_track_bytes(s->max_pfn) ||
	         ((uintptr_t)s->track & 7))
		why = "tracking memory missing, too small or misaligned";
	if (why) {
		klog("balloon: cannot start: %s", why);
		b->broken = 1;
		return -1;
	}
	b->s = *s;
	bal_params_defaults(&b->s.params);
	if (s->stats_vq && (virtq_is_broken(s->stats_vq) ||
	                    !(s->features & (1ull << VIRTIO_BALLOON_F_STATS_VQ))))
		b->s.stats_vq = NULL;
	if (s->report_vq) {
		const struct balloon_mem_ops *m = s->mops;
		const char *no = NULL;
		if (!(s->features & (1ull << VIRTIO_BALLOON_F_REPORTING)))
			no = "REPORTING was not negotiated";
		else if (virtq_is_broken(s->report_vq))
			no = "its queue is broken";
		else if (!m->report_pending || !m->report_isolate || !m->report_done)
			no = "the allocator cannot isolate free blocks";
		if (no) {
			klog("balloon: free page reporting off: %s", no);
			b->s.report_vq = NULL;
		}
	}
	if (s->rops && (!s->rops->count || !s->rops->reclaim))
		b->s.rops = NULL;

	b->nblocks = (s->max_pfn + PAGES_PER_BLOCK - 1) / PAGES_PER_BLOCK;
	if (bal_books_init(b) != 0) {
		b->broken = 1;
		return -1;
	}

	memset(s->dma, 0, BALLOON_DMA_BYTES);
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		b->elems[i].pfns = (le32 *)((char *)s->dma + i * BALLOON_SLOT_BYTES);
		b->elems[i].pfns_pa = s->dma_pa + i * BALLOON_SLOT_BYTES;
	}
	b->nfree_elems = BALLOON_SLOTS;
	b->stats = (struct virtio_balloon_stat *)((char *)s->dma + BALLOON_SLOTS * BALLOON_SLOT_BYTES);
	b->stats_pa = s->dma_pa + BALLOON_SLOTS * BALLOON_SLOT_BYTES;
	b->run_order_cap = BALLOON_MAX_RUN_ORDER;
	b->done_reported = 1;   /* nothing to announce until a target arrives */
	bal_params_clamp(b, &b->s.params);
	return 0;
}

/* ---- acks */

unsigned bal_reap(struct balloon *b, struct virtq *vq, int state)
{
	unsigned n = 0;
	struct balloon_elem *e;
	while ((e = virtq_get_used(vq, NULL)) != NULL) {
		/* virtq only returns tokens we gave it, each once */
		for (unsigned r = 0; r < e->nruns; r++) {
			if (state == ELEM_INFLATE)
				bal_set_range(b, e->runs[r].pfn, e->runs[r].count);
			else
				b->s.mops->give_back(b->s.mctx, e->runs[r].pfn, order_of(e->runs[r].count));
		}
		if (state == ELEM_INFLATE) {
			b->inflating -= e->pages;
			b->pages_inflated += e->pages;
		} else {
			b->deflating -= e->pages;
			b->pages_deflated += e->pages;
		}
		bal_elem_put(b, e);
		b->acks++;
		n++;
	}
	return n;
}

static int check_broken(struct balloon *b)
{
	if (!virtq_is_broken(b->s.inflate_vq) && !virtq_is_broken(b->s.deflate_vq))
		return 0;
	b->broken = 1;
	klog("balloon: stopped: device queue broken; holding %llu pages (%llu acked, "
	     "%llu inflating, %llu deflating), actual stays %u",
	     (unsigned long long)balloon_owned(b), (unsigned long long)b->settled,
	     (unsigned long long)b->inflating, (unsigned long long)b->deflating,
	     b->actual_written);
	return 1;
}

void bal_write_actual(struct balloon *b)
{
	uint32_t a = (uint32_t)balloon_actual(b);
	if (b->have_written && a == b->actual_written)
		return;
	b->s.tops->write_actual(b->s.tctx, a);
	b->actual_written = a;
	b->have_written = 1;
}

/* ---- target from the device */

static void update_target(struct balloon *b, uint64_t now)
{
	uint32_t np;
	if (b->s.tops->read_num_pages(b->s.tctx, &np) != 0) {
		/* One line when it starts; a device whose config never settles for
		 * as long as we would wait for an ack is broken. */
		if (!b->cfg_fail_since_ns) {
			b->cfg_fail_since_ns = now ? now : 1;
			klog("balloon: device config generation does not settle; keeping target %llu pages",
			     (unsigned long long)b->target);
		} else if (now - b->cfg_fail_since_ns > b->s.params.ack_timeout_ns) {
			b->broken = 1;
			klog("balloon: stopped: device config unreadable for %llu ms; holding %llu pages, "
			     "actual stays %u",
			     (unsigned long long)((now - b->cfg_fail_since_ns) / NS_PER_MS),
			     (unsigned long long)balloon_owned(b), b->actual_written);
		}
		return;
	}
	if (b->cfg_fail_since_ns) {
		b->cfg_fail_since_ns = 0;
		klog("balloon: device config readable again");
	}
	/* The host takes over from `initial` with its first change of num_pages. */
	if (!b->have_first_np) {
		b->have_first_np = 1;
		b->first_np = np;
	} else if (!b->host_set && np != b->first_np) {
		b->host_set = 1;
	}
	int changed = !b->have_num_pages || np != b->num_pages;
	if (!changed && !b->params_changed)
		return;
	if (changed && b->have_num_pages && b->oom_capped) {
		b->oom_capped = 0;   /* a new host target ends the OOM hold */
		klog_ratelimited(&b->lim_oom, LOG_INTERVAL_NS,
		                 "balloon: host set a new target (%u pages); the hold since the deflate "
		                 "on OOM ends", np);
	}
	b->have_num_pages = 1;
	b->num_pages = np;
	b->params_changed = 0;
	uint64_t was = b->target;
	bal_compute_target(b);
	if (b->target != was) {
		b->target_at_ns = now;
		b->await_first = 1;
	}
}

/* ---- stalls, status */

static void update_stall(struct balloon *b, uint64_t now)
{
	uint64_t oldest = UINT64_MAX, pages = 0;
	unsigned n = 0;
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		const struct balloon_elem *e = &b->elems[i];
		if (!elem_busy(e))
			continue;
		n++;
		pages += e->pages;
		if (e->submitted_ns < oldest)
			oldest = e->submitted_ns;
	}
	int stalled = n && now - oldest > b->s.params.ack_timeout_ns;
	if (stalled && !b->stalled)
		klog_ratelimited(&b->lim_stall, LOG_INTERVAL_NS,
		                 "balloon: host has not acked for %llu ms: %u elements (%llu pages) in flight; "
		                 "holding them, sending nothing new, actual stays %u",
		                 (unsigned long long)((now - oldest) / NS_PER_MS), n,
		                 (unsigned long long)pages, b->actual_written);
	else if (!stalled && b->stalled)
		klog_ratelimited(&b->lim_stall, LOG_INTERVAL_NS,
		                 "balloon: host acks again; resuming (actual %u)", b->actual_written);
	b->stalled = stalled;
}

static void status_line(struct balloon *b)
{
	if (b->inflating || b->deflating)
		return;
	uint64_t actual = balloon_actual(b);
	if (actual == b->target) {
		/* One status line per target; deferred, never dropped, while the
		 * previous line is under a second old. */
		if (!b->done_reported && klog_ready(&b->lim_status, LOG_INTERVAL_NS)) {
			b->done_reported = 1;
			klog_ratelimited(&b->lim_status, LOG_INTERVAL_NS,
			                 "balloon: at target %llu pages (%llu MiB): %llu whole 2 MiB blocks, "
			                 "%llu pages in smaller runs",
			                 (unsigned long long)actual, (unsigned long long)PAGES_TO_MIB(actual),
			                 (unsigned long long)b->block_runs,
			                 (unsigned long long)(b->settled - b->block_runs * PAGES_PER_BLOCK));
		}
	} else if (b->short_of_memory && !b->short_reported && actual < b->target &&
	           klog_ready(&b->lim_status, LOG_INTERVAL_NS)) {
		b->short_reported = 1;
		klog_ratelimited(&b->lim_status, LOG_INTERVAL_NS,
		                 "balloon: cannot reach target %llu pages (%llu MiB): holding %llu, "
		                 "free %llu, keeping %llu free%s; will retry quietly",
		                 (unsigned long long)b->target, (unsigned long long)PAGES_TO_MIB(b->target),
		                 (unsigned long long)actual,
		                 (unsigned long long)b->s.mops->free_pages(b->s.mctx),
		                 (unsigned long long)b->s.params.min_free_pages,
		                 b->short_reason == BSHORT_ALLOC_ERROR ? ", allocator error" :
		                 b->short_reason == BSHORT_NO_RUNS ? ", the allocator has no free run" :
		                 b->short_reason == BSHORT_BOOKS ? ", no memory for the books" :
		                 b->s.rops ? ", shrinkers have nothing left" : "");
	}
}

/* ---- state for others */

struct balloon *balloon_alloc(void) { return calloc(1, sizeof(struct balloon)); }

uint64_t balloon_actual(const struct balloon *b) { return b->settled + b->deflating; }
uint64_t balloon_owned(const struct balloon *b) { return b->settled + b->inflating + b->deflating; }
uint64_t balloon_in_flight(const struct balloon *b) { return b->inflating + b->deflating; }
uint64_t balloon_target(const struct balloon *b) { return b->target; }
const struct balloon_params *balloon_get_params(const struct balloon *b) { return &b->s.params; }

void balloon_get_status(const struct balloon *b, struct balloon_status *st)
{
	*st = (struct balloon_status){
		.state = balloon_state(b),
		.target = b->target,
		.actual = balloon_actual(b),
		.owned = balloon_owned(b),
		.inflating = b->inflating,
		.deflating = b->deflating,
		.host_num_pages = b->num_pages,
		.host_set = b->host_set,
		.actual_written = b->have_written,
		.actual_device = b->actual_written,
		.reporting = b->s.report_vq != NULL,
		.report_isolated = b->rep.in_flight ? (uint64_t)b->rep.n * PAGES_PER_BLOCK : 0,
		.reclaimed = b->reclaimed,
		.reaction_ns = b->reaction_ns,
		.limit = b->limit_reason,
		.shortfall = b->short_reason,
	};
}

/* ---- when to poll again (see balloon.h) */

uint64_t balloon_next_poll(const struct balloon *b, uint64_t now)
{
	uint64_t soon = now + BALLOON_BUSY_NS, t = UINT64_MAX;
	if (b->broken)
		return t;
	if (b->cfg_fail_since_ns || b->params_changed || b->oom_deflates != b->oom_logged ||
	    b->oom_timeouts != b->oom_timeouts_logged)
		return soon;
	uint64_t cur = b->settled + b->inflating;
	if (!b->stalled) {
		if (cur < b->target)
			t = b->short_of_memory ? b->retry_at_ns : soon;
		else if (cur > b->target && b->settled)
			return soon;
	}
	/* elements in flight: the acks come by interrupt, a stall by timeout */
	for (unsigned i = 0; i < BALLOON_SLOTS && !b->stalled; i++)
		if (elem_busy(&b->elems[i]))
			t = min_u64(t, b->elems[i].submitted_ns + b->s.params.ack_timeout_ns + 1);
	const struct balloon_report *r = &b->rep;
	if (b->s.report_vq) {
		if (r->in_flight && !r->stall_logged)
			t = min_u64(t, r->submitted_ns + b->s.params.ack_timeout_ns + 1);
		else if (!r->in_flight && r->state == REPORT_ARMED)
			t = min_u64(t, r->due_ns);
		else if (!r->in_flight && r->state == REPORT_BUSY)
			return soon;
	}
	/* a status line waiting for the log limiter */
	uint64_t actual = balloon_actual(b);
	if (!b->inflating && !b->deflating &&
	    ((actual == b->target && !b->done_reported) ||
	     (b->short_of_memory && !b->short_reported && actual < b->target)))
		t = min_u64(t, b->lim_status.last_ns + LOG_INTERVAL_NS);
	return t < now ? now : t;
}

/* ---- poll */
static void poll_body(struct balloon *b, uint64_t now)
{
	bal_reap(b, b->s.inflate_vq, ELEM_INFLATE);
	bal_reap(b, b->s.deflate_vq, ELEM_DEFLATE);
	bal_write_actual(b);   /* what was acked before any breakage is real */
	if (check_broken(b))
		return;
	bal_stats_poll(b);
	bal_oom_log(b);
	update_target(b, now);
	if (b->broken)
		return;
	update_stall(b, now);
	if (!b->stalled) {
		uint64_t cur = b->settled + b->inflating;
		if (cur < b->target)
			bal_inflate(b, now, b->target - cur);
		else {
			rate_forget(&b->rate);   /* nothing to inflate: no credit piles up */
			b->rate_limited = 0;
			if (cur > b->target && b->settled)
				bal_deflate(b, now, cur - b->target);
		}
	}
	bal_report_poll(b, now);
	status_line(b);
}

void balloon_poll(struct balloon *b, uint64_t now)
{
	if (b->broken)
		return;
	b->in_poll = 1;
	poll_body(b, now);
	b->in_poll = 0;
}

uint64_t balloon_drain(struct balloon *b, uint64_t wait_ns)
{
	if (!b->s.mops)
		return 0;   /* never initialised */
	if (b->broken)
		return balloon_owned(b);
	uint64_t deadline = clock_ns() + wait_ns;
	b->in_poll = 1;   /* the OOM path stays out while the books move */
	for (;;) {
		uint64_t now = clock_ns();
		bal_reap(b, b->s.inflate_vq, ELEM_INFLATE);   /* in flight: acked, then deflated */
		bal_reap(b, b->s.deflate_vq, ELEM_DEFLATE);
		if (b->settled)
			bal_deflate(b, now, b->settled);
		bal_write_actual(b);
		if (!balloon_owned(b) || now >= deadline || !b->s.tops->relax ||
		    virtq_is_broken(b->s.inflate_vq) || virtq_is_broken(b->s.deflate_vq))
			break;
		b->s.tops->relax(b->s.tctx);
	}
	b->in_poll = 0;
	return balloon_owned(b);
}

uint64_t balloon_release_all(struct balloon *b)
{
	const struct balloon_mem_ops *m = b->s.mops;
	uint64_t n = 0;
	if (!m)
		return 0;   /* never initialised */
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		struct balloon_elem *e = &b->elems[i];
		if (!elem_busy(e))
			continue;
		for (unsigned r = 0; r < e->nruns; r++)
			m->give_back(b->s.mctx, e->runs[r].pfn, order_of(e->runs[r].count));
		n += e->pages;
		bal_elem_put(b, e);
	}
	for (uint64_t blk = 0; blk < b->nblocks && b->settled; blk++) {
		if (!b->blk_count[blk])
			continue;   /* nothing here (and its chunk may have no books) */
		uint64_t end = (blk + 1) * PAGES_PER_BLOCK;
		for (uint64_t p = bal_next_head(b, blk * PAGES_PER_BLOCK, end); p < end;
		     p = bal_next_head(b, p, end)) {
			uint32_t len = bal_run_len(b, p);
			bal_clear_range(b, p, len);
			m->give_back(b->s.mctx, p, order_of(len));
			n += len;
			p += len;
		}
	}
	/* Isolated report blocks were never the balloon's: back to the
	 * allocator as they were (the reset device no longer touches them). */
	if (b->rep.in_flight && m->report_done)
		m->report_done(b->s.mctx, b->rep.pfns, b->rep.n, 0);
	b->rep.in_flight = 0;
	b->rep.n = 0;
	b->inflating = b->deflating = 0;
	b->broken = 1;
	b->released = 1;
	return n;
}

enum balloon_state balloon_state(const struct balloon *b)
{
	if (b->broken)
		return BALLOON_BROKEN;
	if (b->stalled)
		return BALLOON_STALLED;
	uint64_t actual = balloon_actual(b);
	if (!b->inflating && !b->deflating && actual == b->target)
		return BALLOON_AT_TARGET;
	if (b->short_of_memory && !b->inflating && actual < b->target)
		return BALLOON_SHORT;
	return b->settled + b->inflating < b->target ? BALLOON_INFLATING : BALLOON_DEFLATING;
}

