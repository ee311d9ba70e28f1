/*
 * balloon.c - virtio balloon core: targets, inflate/deflate, actual, stats.
 * Contract and policy in balloon.h.
 *
 * Books: every balloon-owned frame is in exactly one place:
 *   - the bitmap (acked by the host on the inflate queue: "settled"),
 *   - an inflate element in flight (taken from the allocator, not yet acked),
 *   - a deflate element in flight (told to the host, not yet acked).
 * actual = settled + deflating: a frame leaves `actual` when the host acked
 * its deflate, and enters it when the host acked its inflate.
 * Ranges stay as the allocator gave them (a block, or a 2^k run): the heads
 * bitmap marks where each starts, so a range is found again, and given back,
 * whole. balloon_check() verifies all of this.
 *
 * Blocks isolated for free page reporting are not the balloon's: they stay
 * the allocator's free memory, only out of circulation until the host acks
 * the report (rep.pfns while rep.in_flight).
 *
 * Re-entry: balloon_oom() runs inside an allocation, which may happen inside
 * balloon_poll() itself (compaction, a shrinker, a log line growing the
 * heap). The books are half-updated there, so the OOM path refuses to run
 * while in_poll is set and returns 0: that allocation fails or is served by
 * the other notifiers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "drivers/balloon/balloon.h"
#include "kclock.h"

#define PPB BALLOON_PAGES_PER_BLOCK
#define DEFAULT_ACK_TIMEOUT_NS (5 * NS_PER_S)
#define DEFAULT_RETRY_NS       (1 * NS_PER_S)
#define DEFAULT_BATCH          16u
#define LOG_INTERVAL_NS        (1 * NS_PER_S)
#define DEFAULT_OOM_WAIT_NS    (200 * NS_PER_MS)
#define MAX_REPORT_DELAY_NS    (3600 * NS_PER_S)
#define RECLAIM_STEP           256u    /* pages asked of the shrinkers at least (their batch) */

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static uint64_t mib(uint64_t pages) { return pages >> (20 - 12); }

/* ------------------------------------------------------------ features */

void balloon_vq_layout(uint64_t offered, struct balloon_vq_layout *l)
{
	int next = 0;
	l->inflate = next++;
	l->deflate = next++;
	l->stats = (offered & (1ull << VIRTIO_BALLOON_F_STATS_VQ)) ? next++ : -1;
	l->free_page_hint = (offered & (1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT)) ? next++ : -1;
	l->reporting = (offered & (1ull << VIRTIO_BALLOON_F_REPORTING)) ? next++ : -1;
	l->count = (unsigned)next;
}

uint64_t balloon_features_wanted(uint64_t offered)
{
	if (!(offered & (1ull << VIRTIO_F_VERSION_1)))
		return 0;
	uint64_t ok = (1ull << VIRTIO_F_VERSION_1) |
	              (1ull << VIRTIO_BALLOON_F_STATS_VQ) |
	              (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST) |
	              (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) |
	              (1ull << VIRTIO_BALLOON_F_REPORTING);
	return offered & ok;
}

/* ------------------------------------------------------------ bitmap books */

size_t balloon_track_bytes(uint64_t max_pfn)
{
	uint64_t nblocks = (max_pfn + PPB - 1) / PPB;
	return (size_t)(nblocks * 2 * (PPB / 8) + nblocks * sizeof(uint16_t));
}

static int bit_test(const struct balloon *b, uint64_t pfn)
{
	return (b->bitmap[pfn / 64] >> (pfn % 64)) & 1;
}

static int head_test(const struct balloon *b, uint64_t pfn)
{
	return (b->heads[pfn / 64] >> (pfn % 64)) & 1;
}

static unsigned order_of(uint32_t count)
{
	unsigned k = 0;
	while ((1u << k) < count)
		k++;
	return k;
}

/* Length of the settled range starting at head `pfn`: up to the next head,
 * the next frame not in the balloon, or the end of the block. */
static uint32_t run_len(const struct balloon *b, uint64_t pfn)
{
	uint64_t end = (pfn / PPB + 1) * PPB;
	uint32_t n = 1;
	for (uint64_t p = pfn + 1; p < end && bit_test(b, p) && !head_test(b, p); p++)
		n++;
	return n;
}

/* 1 if the block is one settled range of 512 frames. */
static int is_block_run(const struct balloon *b, uint64_t blk)
{
	if (b->blk_count[blk] != PPB)
		return 0;
	const uint64_t *h = &b->heads[blk * (PPB / 64)];
	if (h[0] != 1)
		return 0;
	for (unsigned w = 1; w < PPB / 64; w++)
		if (h[w])
			return 0;
	return 1;
}

/* Ranges are aligned powers of two <= a block, so never cross a block. */
static void set_range(struct balloon *b, uint64_t pfn, uint32_t count)
{
	for (uint64_t p = pfn; p < pfn + count; p++)
		b->bitmap[p / 64] |= 1ull << (p % 64);
	b->heads[pfn / 64] |= 1ull << (pfn % 64);
	b->blk_count[pfn / PPB] = (uint16_t)(b->blk_count[pfn / PPB] + count);
	b->settled += count;
	if (count == PPB)
		b->block_runs++;
}

static void clear_range(struct balloon *b, uint64_t pfn, uint32_t count)
{
	for (uint64_t p = pfn; p < pfn + count; p++)
		b->bitmap[p / 64] &= ~(1ull << (p % 64));
	b->heads[pfn / 64] &= ~(1ull << (pfn % 64));
	b->blk_count[pfn / PPB] = (uint16_t)(b->blk_count[pfn / PPB] - count);
	b->settled -= count;
	if (count == PPB)
		b->block_runs--;
}

int balloon_has_pfn(const struct balloon *b, uint64_t pfn)
{
	return pfn < b->s.max_pfn && bit_test(b, pfn);
}

/* ------------------------------------------------------------ elements */

static struct balloon_elem *elem_get(struct balloon *b)
{
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		struct balloon_elem *e = &b->elems[i];
		if (e->state == ELEM_FREE) {
			e->nruns = 0;
			e->pages = 0;
			b->nfree_elems--;
			e->state = ELEM_DEFLATE + 1;   /* reserved, being filled */
			return e;
		}
	}
	return NULL;
}

static void elem_put(struct balloon *b, struct balloon_elem *e)
{
	e->state = ELEM_FREE;
	e->nruns = 0;
	e->pages = 0;
	b->nfree_elems++;
}

static int elem_busy(const struct balloon_elem *e)
{
	return e->state == ELEM_INFLATE || e->state == ELEM_DEFLATE;
}

static void elem_add_run(struct balloon_elem *e, uint64_t pfn, uint32_t count)
{
	e->runs[e->nruns].pfn = pfn;
	e->runs[e->nruns].count = count;
	e->nruns++;
	e->pages += count;
}

/* Fill the element's PFN array and make it available on `vq`: up to 256 PFNs
 * per descriptor, so a whole block is two 1 KiB descriptors in one chain. */
static int elem_submit(struct balloon *b, struct virtq *vq, struct balloon_elem *e,
                       int state, uint64_t now)
{
	uint32_t i = 0;
	for (unsigned r = 0; r < e->nruns; r++)
		for (uint32_t j = 0; j < e->runs[r].count; j++)
			e->pfns[i++] = (le32)(e->runs[r].pfn + j);
	struct virtq_buf bufs[2];
	unsigned n = 0;
	for (uint32_t off = 0; off < e->pages; off += BALLOON_PFNS_PER_DESC) {
		uint32_t cnt = (uint32_t)min_u64(BALLOON_PFNS_PER_DESC, e->pages - off);
		bufs[n].addr = e->pfns_pa + off * 4u;
		bufs[n].len = cnt * 4u;
		n++;
	}
	int rc = virtq_add(vq, bufs, n, 0, e);
	if (rc != 0)
		return rc;
	e->state = (uint8_t)state;
	e->submitted_ns = now;
	(void)b;
	return 0;
}

/* ------------------------------------------------------------ memory ops checks */

static void mem_error(struct balloon *b, const char *what, uint64_t pfn, uint32_t count)
{
	b->mem_error = 1;
	klog_ratelimited(&b->lim_mem, LOG_INTERVAL_NS,
	                 "balloon: allocator returned a bad range (pfn 0x%llx, %u frames: %s); "
	                 "not used, inflate stopped",
	                 (unsigned long long)pfn, count, what);
}

/* A range fresh from the allocator must be aligned, inside the tracked frames,
 * and not already the balloon's (acked or in flight): otherwise the allocator
 * handed a frame out twice and using it would lose track of memory. */
static int new_range_ok(struct balloon *b, uint64_t pfn, uint32_t count)
{
	const char *why = NULL;
	if (pfn % count)
		why = "misaligned";
	else if (pfn >= b->s.max_pfn || b->s.max_pfn - pfn < count)
		why = "beyond the tracked memory";
	else {
		for (uint64_t p = pfn; p < pfn + count && !why; p++)
			if (bit_test(b, p))
				why = "already in the balloon";
		for (unsigned i = 0; i < BALLOON_SLOTS && !why; i++) {
			const struct balloon_elem *e = &b->elems[i];
			for (unsigned r = 0; r < e->nruns && !why; r++)
				if (pfn < e->runs[r].pfn + e->runs[r].count && e->runs[r].pfn < pfn + count)
					why = "already in flight";
		}
	}
	if (why) {
		mem_error(b, why, pfn, count);
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ params */

static void params_defaults(struct balloon_params *p)
{
	if (!p->ack_timeout_ns) p->ack_timeout_ns = DEFAULT_ACK_TIMEOUT_NS;
	if (!p->retry_ns) p->retry_ns = DEFAULT_RETRY_NS;
	if (!p->batch) p->batch = DEFAULT_BATCH;
	if (!p->oom_pages) p->oom_pages = BALLOON_DEFAULT_OOM_PAGES;
	if (!p->oom_wait_ns) p->oom_wait_ns = DEFAULT_OOM_WAIT_NS;
}

/* Clamp what cannot make sense on this machine, one line per value. */
static int params_clamp(struct balloon *b, struct balloon_params *q)
{
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	int n = 0;
	if (q->min_free_pages > total) {
		klog("balloon: min_free %llu MiB is more than the %llu MiB of RAM: using %llu MiB "
		     "(the balloon stays empty)", (unsigned long long)mib(q->min_free_pages),
		     (unsigned long long)mib(total), (unsigned long long)mib(total));
		q->min_free_pages = total;
		n++;
	}
	if (q->max_pages > total) {
		klog("balloon: max %llu MiB is more than the %llu MiB of RAM: using %llu MiB",
		     (unsigned long long)mib(q->max_pages), (unsigned long long)mib(total),
		     (unsigned long long)mib(total));
		q->max_pages = total;
		n++;
	}
	uint64_t room = total - q->min_free_pages;
	if (q->max_pages && q->max_pages < room)
		room = q->max_pages;
	if (q->initial_pages > room) {
		klog("balloon: initial %llu MiB is more than can be given (%llu MiB of RAM, keeping "
		     "%llu MiB free, max %llu MiB): using %llu MiB",
		     (unsigned long long)mib(q->initial_pages), (unsigned long long)mib(total),
		     (unsigned long long)mib(q->min_free_pages), (unsigned long long)mib(q->max_pages),
		     (unsigned long long)mib(room));
		q->initial_pages = room;
		n++;
	}
	if (q->report_delay_ns > MAX_REPORT_DELAY_NS) {
		klog("balloon: report delay %llu s is absurd: using %llu s",
		     (unsigned long long)(q->report_delay_ns / NS_PER_S),
		     (unsigned long long)(MAX_REPORT_DELAY_NS / NS_PER_S));
		q->report_delay_ns = MAX_REPORT_DELAY_NS;
		n++;
	}
	return n;
}

int balloon_set_params(struct balloon *b, const struct balloon_params *p)
{
	if (!b->s.mops)
		return 0;   /* never initialised */
	struct balloon_params q = *p;
	params_defaults(&q);
	int n = params_clamp(b, &q);
	/* A new initial size is a new target from the guest's side: it lifts
	 * an OOM hold (the host's changes do that too). */
	if (q.initial_pages != b->s.params.initial_pages)
		b->oom_capped = 0;
	if (q.rate_pages_per_s != b->s.params.rate_pages_per_s)
		b->rate_last_ns = 0;   /* restart the bucket at the new rate */
	b->s.params = q;
	b->params_changed = 1;
	return n;
}

/* ------------------------------------------------------------ init */

int balloon_init(struct balloon *b, const struct balloon_setup *s)
{
	memset(b, 0, sizeof *b);
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
	else if (!s->track || s->track_len < balloon_track_bytes(s->max_pfn) ||
	         ((uintptr_t)s->track & 7))
		why = "tracking memory missing, too small or misaligned";
	if (why) {
		klog("balloon: cannot start: %s", why);
		b->broken = 1;
		return -1;
	}
	b->s = *s;
	params_defaults(&b->s.params);
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

	b->nblocks = (s->max_pfn + PPB - 1) / PPB;
	memset(s->track, 0, balloon_track_bytes(s->max_pfn));
	b->bitmap = s->track;
	b->heads = b->bitmap + b->nblocks * (PPB / 64);
	b->blk_count = (uint16_t *)(b->heads + b->nblocks * (PPB / 64));

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
	params_clamp(b, &b->s.params);
	return 0;
}

/* ------------------------------------------------------------ stats */

/*
 * Every tag we can honestly know, in the kernel's own units and from the
 * same counters `mem` and `shrinkers` print:
 *   SWAP_IN, SWAP_OUT  0: there is no swap.
 *   MAJFLT, MINFLT     0: the kernel maps all memory up front and takes no
 *                      page faults (any #PF is a panic, kernel/arch.c), so
 *                      whenever a buffer can be sent the count is 0.
 *   MEMFREE            free frames (mem_ops free_pages: the allocator's free
 *                      count, balloon frames excluded, reported and isolated
 *                      blocks included: they are free).
 *   MEMTOT             frames the allocator manages (total_pages), balloon
 *                      included: like Linux with DEFLATE_ON_OOM, the balloon
 *                      is memory the guest can get back; `mem` prints the same.
 *   CACHES             what the shrinkers could free now (reclaim count).
 *   AVAIL              MEMFREE + CACHES: what an allocation could get without
 *                      touching the balloon.
 *   HTLB_PGALLOC/FAIL  not sent: there is no hugetlb pool (the host shows
 *                      them as absent rather than as a made-up 0).
 */
unsigned balloon_stats_fill(const struct balloon *b, struct virtio_balloon_stat *out, unsigned max)
{
	uint64_t free = b->s.mops->free_pages(b->s.mctx);
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	uint64_t caches = b->s.rops ? b->s.rops->count(b->s.rctx) : 0;
	const struct virtio_balloon_stat all[] = {
		{ VIRTIO_BALLOON_S_SWAP_IN, 0 },
		{ VIRTIO_BALLOON_S_SWAP_OUT, 0 },
		{ VIRTIO_BALLOON_S_MAJFLT, 0 },
		{ VIRTIO_BALLOON_S_MINFLT, 0 },
		{ VIRTIO_BALLOON_S_MEMFREE, free << 12 },
		{ VIRTIO_BALLOON_S_MEMTOT, total << 12 },
		{ VIRTIO_BALLOON_S_AVAIL, (free + caches) << 12 },
		{ VIRTIO_BALLOON_S_CACHES, caches << 12 },
	};
	unsigned n = 0;
	for (; n < max && n < sizeof all / sizeof all[0]; n++)
		out[n] = all[n];
	return n;
}

const char *balloon_stat_name(unsigned tag)
{
	static const char *const names[] = { "swap-in", "swap-out", "major-faults", "minor-faults",
	                                     "free-memory", "total-memory", "available-memory",
	                                     "disk-caches", "htlb-pgalloc", "htlb-pgfail" };
	return tag < sizeof names / sizeof names[0] ? names[tag] : "?";
}

static void stats_queue(struct balloon *b)
{
	unsigned n = balloon_stats_fill(b, b->stats, BALLOON_STATS_MAX);
	struct virtq_buf buf = { b->stats_pa, (uint32_t)(n * sizeof(struct virtio_balloon_stat)) };
	if (virtq_add(b->s.stats_vq, &buf, 1, 0, b->stats) == 0) {
		b->stats_queued = 1;
		virtq_kick(b->s.stats_vq);
	}
}

static void stats_poll(struct balloon *b)
{
	struct virtq *vq = b->s.stats_vq;
	if (!vq || virtq_is_broken(vq))
		return;   /* the virtq logged why; the balloon goes on without stats */
	void *tok;
	while ((tok = virtq_get_used(vq, NULL)) != NULL)
		b->stats_queued = 0;   /* the only token on this queue is b->stats */
	if (!b->stats_queued && !virtq_is_broken(vq))
		stats_queue(b);
}

/* ------------------------------------------------------------ acks */

static unsigned reap(struct balloon *b, struct virtq *vq, int state)
{
	unsigned n = 0;
	struct balloon_elem *e;
	while ((e = virtq_get_used(vq, NULL)) != NULL) {
		/* virtq only returns tokens we gave it, each once */
		for (unsigned r = 0; r < e->nruns; r++) {
			if (state == ELEM_INFLATE)
				set_range(b, e->runs[r].pfn, e->runs[r].count);
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
		elem_put(b, e);
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

static void write_actual(struct balloon *b)
{
	uint32_t a = (uint32_t)balloon_actual(b);
	if (b->have_written && a == b->actual_written)
		return;
	b->s.tops->write_actual(b->s.tctx, a);
	b->actual_written = a;
	b->have_written = 1;
}

/* ------------------------------------------------------------ target */

/* From the host's num_pages and the knobs to the target (see balloon.h). */
static void compute_target(struct balloon *b)
{
	const struct balloon_params *p = &b->s.params;
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	uint64_t req = b->num_pages;
	int from_initial = 0;
	if (!b->host_set && p->initial_pages > req) {
		req = p->initial_pages;
		from_initial = 1;
	}
	uint64_t room = total > p->min_free_pages ? total - p->min_free_pages : 0;
	uint64_t limit = room;
	enum balloon_limit_reason why = BLIM_NONE;
	if (p->max_pages && p->max_pages < limit)
		limit = p->max_pages;
	uint64_t t = req;
	if (t > limit) {
		t = limit;
		why = limit < room ? BLIM_MAX : BLIM_MIN_FREE;
		if (from_initial)
			klog_ratelimited(&b->lim_clamp, LOG_INTERVAL_NS,
			                 "balloon: initial balloon %llu pages (%llu MiB), at most %llu can be "
			                 "given (total %llu, keeping %llu free, max %llu): clamped",
			                 (unsigned long long)req, (unsigned long long)mib(req),
			                 (unsigned long long)limit, (unsigned long long)total,
			                 (unsigned long long)p->min_free_pages, (unsigned long long)p->max_pages);
		else
			klog_ratelimited(&b->lim_clamp, LOG_INTERVAL_NS,
			                 "balloon: host asks for %u pages (%llu MiB), at most %llu can be given "
			                 "(total %llu, keeping %llu free, max %llu): clamped",
			                 b->num_pages, (unsigned long long)mib(b->num_pages),
			                 (unsigned long long)limit, (unsigned long long)total,
			                 (unsigned long long)p->min_free_pages, (unsigned long long)p->max_pages);
	}
	if (b->oom_capped && t > b->oom_cap) {
		t = b->oom_cap;
		why = BLIM_OOM;
	}
	b->limit_reason = why;
	if (t == b->target)
		return;
	klog_ratelimited(&b->lim_target, LOG_INTERVAL_NS,
	                 "balloon: new target %llu pages (%llu MiB), was %llu, actual %llu%s",
	                 (unsigned long long)t, (unsigned long long)mib(t),
	                 (unsigned long long)b->target, (unsigned long long)balloon_actual(b),
	                 why == BLIM_OOM ? " (held since a deflate on OOM)" :
	                 from_initial ? " (initial balloon)" : "");
	b->target = t;
	/* a new target gets a fresh attempt and its own status lines */
	b->blocks_dry = 0;
	b->compact_tried = 0;
	b->run_order_cap = BALLOON_MAX_RUN_ORDER;
	b->short_of_memory = 0;
	b->short_reason = BSHORT_NONE;
	b->reclaim_dry = 0;
	b->short_reported = 0;
	b->done_reported = 0;
	b->retry_at_ns = 0;
}

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
	compute_target(b);
}

/* ------------------------------------------------------------ rate limit */

/* Inflation credit in pages (UINT64_MAX: unlimited), a token bucket kept
 * in nano-pages so no fraction is lost between polls. An inflation starts
 * with one block of credit (poll_body forgets the bucket whenever nothing is
 * to be inflated, so idle time buys no burst). While inflating, up to one
 * second (at least two blocks) of credit is kept: polls are not exactly
 * 1 ms apart, and a guest the host did not run for a while catches up
 * instead of falling behind the rate it was given. */
static uint64_t rate_credit(struct balloon *b, uint64_t now)
{
	uint64_t r = b->s.params.rate_pages_per_s;
	if (!r)
		return UINT64_MAX;
	uint64_t burst = max_u64(2 * PPB, r) * NS_PER_S;
	if (!b->rate_last_ns || now < b->rate_last_ns) {
		b->rate_last_ns = now ? now : 1;
		b->rate_tokens = PPB * NS_PER_S;   /* one block to start with */
	}
	uint64_t dt = min_u64(now - b->rate_last_ns, 4 * NS_PER_S);
	b->rate_last_ns = now;
	b->rate_tokens = min_u64(b->rate_tokens + r * dt, burst);
	return b->rate_tokens / NS_PER_S;
}

static void rate_spend(struct balloon *b, uint64_t pages)
{
	if (!b->s.params.rate_pages_per_s)
		return;
	uint64_t cost = pages * NS_PER_S;
	b->rate_tokens = b->rate_tokens > cost ? b->rate_tokens - cost : 0;
}

/* ------------------------------------------------------------ inflate */

static unsigned floor_log2(uint64_t x)
{
	unsigned k = 0;
	while (x >>= 1)
		k++;
	return k;
}

/* One element of small runs: largest first, never more than still needed
 * or allowed by min_free. Returns 1 if an element went out. */
static int inflate_small(struct balloon *b, uint64_t now, uint64_t *need, uint64_t *budget)
{
	struct balloon_elem *e = elem_get(b);
	while (e->pages < PPB && e->nruns < BALLOON_ELEM_RUNS && *need && *budget &&
	       b->run_order_cap >= 0 && !b->mem_error) {
		uint64_t lim = min_u64(min_u64(*need, *budget), PPB - e->pages);
		int k = (int)floor_log2(lim);
		if (k > b->run_order_cap)
			k = b->run_order_cap;
		uint64_t pfn = 0;
		int got = 0;
		for (; k >= 0; k--) {
			if (b->s.mops->take_run(b->s.mctx, (unsigned)k, &pfn) == 0) {
				got = 1;
				break;
			}
			/* no free run of this order means none larger either */
			b->run_order_cap = k - 1;
		}
		if (!got)
			break;
		if (!new_range_ok(b, pfn, 1u << k))
			break;
		elem_add_run(e, pfn, 1u << k);
		*need -= 1u << k;
		*budget -= 1u << k;
	}
	if (e->pages == 0) {
		elem_put(b, e);
		return 0;
	}
	if (elem_submit(b, b->s.inflate_vq, e, ELEM_INFLATE, now) != 0) {
		for (unsigned r = 0; r < e->nruns; r++)
			b->s.mops->give_back(b->s.mctx, e->runs[r].pfn, order_of(e->runs[r].count));
		*need += e->pages;
		elem_put(b, e);
		return 0;
	}
	b->inflating += e->pages;
	b->runs_sent += e->nruns;
	return 1;
}

/* Ask the shrinkers for one batch when free memory (above min_free) cannot
 * cover `need`. Returns 1 if they freed something: the caller then waits for
 * the next poll (gradual: one batch per poll, the work loop keeps running)
 * unless free memory covers the need already. */
static int reclaim_step(struct balloon *b, uint64_t need, uint64_t budget)
{
	if (!b->s.rops || b->reclaim_dry || need <= budget)
		return 0;
	/* whole pieces: a cache gives nothing when asked for less than one */
	uint64_t want = max_u64(need - budget, RECLAIM_STEP);
	uint64_t got = b->s.rops->reclaim(b->s.rctx, want);
	b->reclaim_calls++;
	if (!got) {
		b->reclaim_dry = 1;
		return 0;
	}
	b->reclaimed += got;
	return 1;
}

static uint64_t inflate_budget(struct balloon *b)
{
	uint64_t free = b->s.mops->free_pages(b->s.mctx);
	return free > b->s.params.min_free_pages ? free - b->s.params.min_free_pages : 0;
}

static void inflate(struct balloon *b, uint64_t now, uint64_t need)
{
	const struct balloon_mem_ops *m = b->s.mops;
	struct virtq *vq = b->s.inflate_vq;
	if (b->short_of_memory) {
		if (now < b->retry_at_ns)
			return;
		/* quiet retry: memory may have been freed since */
		b->short_of_memory = 0;
		b->blocks_dry = 0;
		b->compact_tried = 0;
		b->reclaim_dry = 0;
		b->run_order_cap = BALLOON_MAX_RUN_ORDER;
	}
	/* Rate limit: whole blocks while more than a block is wanted (credit
	 * for less waits: it must not turn into small runs). */
	uint64_t credit = rate_credit(b, now);
	b->rate_limited = 0;
	if (credit < need) {
		b->rate_limited = 1;
		if (need >= PPB) {
			if (credit < PPB)
				return;
			need = credit / PPB * PPB;
		} else {
			return;
		}
	}
	uint64_t budget = inflate_budget(b);
	if (reclaim_step(b, need, budget)) {
		budget = inflate_budget(b);
		if (budget < need)
			return;
	}
	uint64_t before = b->inflating;
	unsigned sent = 0;
	int dry = 0;

	while (need && sent < b->s.params.batch && b->nfree_elems && virtq_num_free(vq) >= 2 &&
	       !b->mem_error) {
		if (budget == 0) {
			dry = 1;
			break;
		}
		if (need >= PPB && budget >= PPB && !b->blocks_dry) {
			uint64_t want = min_u64(need / PPB, budget / PPB);
			want = min_u64(want, b->s.params.batch - sent);
			want = min_u64(want, b->nfree_elems);
			want = min_u64(want, virtq_num_free(vq) / 2);
			uint64_t pfns[BALLOON_SLOTS];
			unsigned got = m->take_blocks(b->s.mctx, pfns, (unsigned)want);
			if (got > want) {
				mem_error(b, "take_blocks returned more than asked", 0, got);
				break;
			}
			for (unsigned i = 0; i < got; i++) {
				if (!new_range_ok(b, pfns[i], PPB))
					continue;   /* not ours to give back: leave it alone */
				struct balloon_elem *e = elem_get(b);
				elem_add_run(e, pfns[i], PPB);
				if (elem_submit(b, vq, e, ELEM_INFLATE, now) != 0) {
					/* cannot happen (space was checked); never lose the block */
					m->give_back(b->s.mctx, pfns[i], BALLOON_BLOCK_ORDER);
					elem_put(b, e);
					continue;
				}
				b->inflating += PPB;
				b->blocks_sent++;
				need -= PPB;
				budget -= PPB;
				sent++;
			}
			if (got < want) {
				if (m->compact && !b->compact_tried) {
					b->compact_tried = 1;
					if (m->compact(b->s.mctx, (unsigned)(want - got)) > 0)
						continue;
				}
				b->blocks_dry = 1;
			}
			continue;
		}
		if (!inflate_small(b, now, &need, &budget)) {
			dry = 1;
			break;
		}
		sent++;
	}
	rate_spend(b, b->inflating - before);
	if (sent)
		virtq_kick(vq);
	if (need && (dry || b->mem_error)) {
		b->short_of_memory = 1;
		b->retry_at_ns = now + b->s.params.retry_ns;
		b->short_reason = b->mem_error ? BSHORT_ALLOC_ERROR :
		                  inflate_budget(b) == 0 ? BSHORT_MIN_FREE : BSHORT_NO_RUNS;
	}
}

/* ------------------------------------------------------------ deflate */

static void take_settled(struct balloon *b, struct balloon_elem *e, uint64_t pfn, uint32_t len)
{
	clear_range(b, pfn, len);
	elem_add_run(e, pfn, len);
}

/* Choose ranges for one deflate element, wanting `n` frames: small runs
 * that fit first (they release no whole host page), then one whole block.
 * Ranges go back whole, so if nothing fits without overshooting, the
 * smallest range goes and the caller's next inflate makes up the difference
 * with small runs (never the other way round: inflate never overshoots, so
 * this cannot oscillate). Clears what it takes from the bitmap. */
static void deflate_collect(struct balloon *b, struct balloon_elem *e, uint64_t n)
{
	int small = b->settled > b->block_runs * PPB;
	for (uint64_t blk = 0; small && blk < b->nblocks; blk++) {
		if (!b->blk_count[blk] || is_block_run(b, blk))
			continue;
		for (uint64_t p = blk * PPB; p < (blk + 1) * PPB; ) {
			if (e->pages >= n || e->pages >= PPB || e->nruns >= BALLOON_ELEM_RUNS)
				return;
			if (!head_test(b, p)) {
				p++;
				continue;
			}
			uint32_t len = run_len(b, p);
			if (len <= n - e->pages && e->pages + len <= PPB)
				take_settled(b, e, p, len);
			p += len;
		}
	}
	if (e->pages)
		return;
	if (n >= PPB && b->block_runs) {
		for (uint64_t i = 0; i < b->nblocks; i++) {
			uint64_t blk = (b->deflate_cursor + i) % b->nblocks;
			if (is_block_run(b, blk)) {
				b->deflate_cursor = blk;
				take_settled(b, e, blk * PPB, PPB);
				return;
			}
		}
	}
	/* nothing fits: the smallest range there is */
	uint64_t best = UINT64_MAX;
	uint32_t best_len = PPB + 1;
	for (uint64_t blk = 0; blk < b->nblocks && best_len > 1; blk++) {
		if (!b->blk_count[blk])
			continue;
		for (uint64_t p = blk * PPB; p < (blk + 1) * PPB; ) {
			if (!head_test(b, p)) {
				p++;
				continue;
			}
			uint32_t len = run_len(b, p);
			if (len < best_len) {
				best = p;
				best_len = len;
			}
			p += len;
		}
	}
	if (best != UINT64_MAX)
		take_settled(b, e, best, best_len);
}

static void deflate(struct balloon *b, uint64_t now, uint64_t over)
{
	struct virtq *vq = b->s.deflate_vq;
	uint64_t n = min_u64(over, b->settled);
	unsigned sent = 0;
	while (n && sent < b->s.params.batch && b->nfree_elems && virtq_num_free(vq) >= 2) {
		struct balloon_elem *e = elem_get(b);
		deflate_collect(b, e, n);
		if (e->pages == 0) {
			elem_put(b, e);
			break;
		}
		if (elem_submit(b, vq, e, ELEM_DEFLATE, now) != 0) {
			for (unsigned r = 0; r < e->nruns; r++)
				set_range(b, e->runs[r].pfn, e->runs[r].count);
			elem_put(b, e);
			break;
		}
		b->deflating += e->pages;
		b->deflates_sent++;
		n = e->pages < n ? n - e->pages : 0;
		sent++;
	}
	if (sent)
		virtq_kick(vq);
}

/* ------------------------------------------------------------ free page reporting */

/* If the host acked the report element, its blocks go back to the allocator
 * as reported. Returns the blocks returned. Never logs (OOM path). */
static unsigned report_reap(struct balloon *b)
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
	if (pfn % PPB)
		return "not a block start";
	if (pfn >= b->s.max_pfn || b->s.max_pfn - pfn < PPB)
		return "beyond the tracked memory";
	if (i > 0 && pfns[i - 1] == pfn)
		return "isolated twice";
	if (b->blk_count[pfn / PPB])
		return "in the balloon";
	for (unsigned k = 0; k < BALLOON_SLOTS; k++) {
		const struct balloon_elem *e = &b->elems[k];
		for (unsigned r = 0; r < e->nruns; r++)
			if (e->runs[r].pfn < pfn + PPB && pfn < e->runs[r].pfn + e->runs[r].count)
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
	uint64_t room = free > minf ? (free - minf) / PPB : 0;
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
		       pfns[used + len] == pfns[used] + (uint64_t)len * PPB)
			len++;
		bufs[nb].addr = pfns[used] << VIRTIO_BALLOON_PFN_SHIFT;
		bufs[nb].len = len * (PPB << VIRTIO_BALLOON_PFN_SHIFT);
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

static void report_poll(struct balloon *b, uint64_t now)
{
	struct virtq *vq = b->s.report_vq;
	struct balloon_report *r = &b->rep;
	if (!vq)
		return;
	if (virtq_is_broken(vq)) {
		if (!r->broken_logged) {
			r->broken_logged = 1;
			klog("balloon: free page reporting stopped: its queue broke; %u blocks (%llu MiB) "
			     "stay out of use", r->in_flight ? r->n : 0,
			     (unsigned long long)mib((uint64_t)(r->in_flight ? r->n : 0) * PPB));
		}
		return;
	}
	report_reap(b);
	if (r->in_flight) {
		if (!r->stall_logged && now - r->submitted_ns > b->s.params.ack_timeout_ns) {
			r->stall_logged = 1;
			klog_ratelimited(&b->lim_rep, LOG_INTERVAL_NS,
			                 "balloon: host has not acked a free page report for %llu ms: "
			                 "%u blocks (%llu MiB) stay out of use until it does",
			                 (unsigned long long)((now - r->submitted_ns) / NS_PER_MS), r->n,
			                 (unsigned long long)mib((uint64_t)r->n * PPB));
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

/* ------------------------------------------------------------ deflate on OOM */

/* Hold back (or release) the queues' error lines: see virtq_quiet(). */
static void set_quiet(struct balloon *b, int on)
{
	struct virtq *q[] = { b->s.inflate_vq, b->s.deflate_vq, b->s.report_vq };
	for (unsigned k = 0; k < sizeof q / sizeof q[0]; k++)
		if (q[k])
			virtq_quiet(q[k], on);
}

uint64_t balloon_oom(struct balloon *b, uint64_t want)
{
	b->oom_calls++;
	if (b->broken || b->in_poll || b->in_oom || !b->s.mops) {
		b->oom_refused++;
		return 0;
	}
	b->in_oom = 1;
	/* No logging inside an allocation: a queue that breaks now keeps its
	 * line until the next poll. */
	set_quiet(b, 1);
	const struct balloon_params *p = &b->s.params;
	uint64_t defl0 = b->pages_deflated, rep0 = b->rep.blocks;
	int doo = (b->s.features >> VIRTIO_BALLOON_F_DEFLATE_ON_OOM) & 1;
	if (virtq_is_broken(b->s.inflate_vq) || virtq_is_broken(b->s.deflate_vq))
		doo = 0;   /* the next poll says so */
	uint64_t now = clock_ns(), deadline = now + p->oom_wait_ns;

	if (doo) {
		reap(b, b->s.inflate_vq, ELEM_INFLATE);
		reap(b, b->s.deflate_vq, ELEM_DEFLATE);
	}
	report_reap(b);
	if (b->oom_waiting && !(doo && b->deflating) && !b->rep.in_flight)
		b->oom_waiting = 0;   /* what timed out before has come back */
	if (doo && !b->oom_waiting && !b->stalled) {
		/* More than asked: the next allocations of a burst find it free. */
		uint64_t goal = max_u64(want, p->oom_pages);
		if (goal > b->deflating && b->settled)
			deflate(b, now, goal - b->deflating);
		if (b->deflating) {
			/* Do not inflate into the same shortage: hold at what is
			 * left until the host changes its target. */
			b->oom_capped = 1;
			b->oom_cap = b->settled + b->inflating;
			b->params_changed = 1;
		}
	}
	/* Bounded wait for the acks the allocation depends on. */
	for (;;) {
		if (doo)
			reap(b, b->s.deflate_vq, ELEM_DEFLATE);
		report_reap(b);
		uint64_t got = (b->pages_deflated - defl0) + (b->rep.blocks - rep0) * PPB;
		int pending = (doo && b->deflating) || b->rep.in_flight;
		if (!pending || got >= want || b->oom_waiting || !b->s.tops->relax)
			break;
		if (clock_ns() >= deadline) {
			b->oom_waiting = 1;
			b->oom_timeouts++;
			break;
		}
		b->s.tops->relax(b->s.tctx);
	}
	uint64_t defl = b->pages_deflated - defl0;
	if (defl) {
		b->oom_deflates++;
		b->oom_pages += defl;
	}
	if (doo)
		write_actual(b);
	set_quiet(b, 0);
	b->in_oom = 0;
	return defl + (b->rep.blocks - rep0) * PPB;
}

/* What the OOM path did, said from the poller (it cannot log itself). */
static void oom_log(struct balloon *b)
{
	if (b->oom_waiting && !b->deflating && !b->rep.in_flight)
		b->oom_waiting = 0;
	if (b->oom_deflates != b->oom_logged) {
		b->oom_logged = b->oom_deflates;
		klog_ratelimited(&b->lim_oom, LOG_INTERVAL_NS,
		                 "balloon: deflated on OOM: %llu MiB in %llu deflates so far; holding "
		                 "%llu MiB until the host sets a new target",
		                 (unsigned long long)mib(b->oom_pages), (unsigned long long)b->oom_deflates,
		                 (unsigned long long)mib(b->oom_cap));
	}
	if (b->oom_timeouts != b->oom_timeouts_logged) {
		b->oom_timeouts_logged = b->oom_timeouts;
		klog_ratelimited(&b->lim_oom, LOG_INTERVAL_NS,
		                 "balloon: host did not ack a deflate on OOM within %llu ms: that allocation "
		                 "was not helped; the pages come back when the host acks",
		                 (unsigned long long)(b->s.params.oom_wait_ns / NS_PER_MS));
	}
}

/* ------------------------------------------------------------ stalls, status */

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

static void report(struct balloon *b)
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
			                 (unsigned long long)actual, (unsigned long long)mib(actual),
			                 (unsigned long long)b->block_runs,
			                 (unsigned long long)(b->settled - b->block_runs * PPB));
		}
	} else if (b->short_of_memory && !b->short_reported && actual < b->target &&
	           klog_ready(&b->lim_status, LOG_INTERVAL_NS)) {
		b->short_reported = 1;
		klog_ratelimited(&b->lim_status, LOG_INTERVAL_NS,
		                 "balloon: cannot reach target %llu pages (%llu MiB): holding %llu, "
		                 "free %llu, keeping %llu free%s; will retry quietly",
		                 (unsigned long long)b->target, (unsigned long long)mib(b->target),
		                 (unsigned long long)actual,
		                 (unsigned long long)b->s.mops->free_pages(b->s.mctx),
		                 (unsigned long long)b->s.params.min_free_pages,
		                 b->short_reason == BSHORT_ALLOC_ERROR ? ", allocator error" :
		                 b->short_reason == BSHORT_NO_RUNS ? ", the allocator has no free run" :
		                 b->s.rops ? ", shrinkers have nothing left" : "");
	}
}

/* ------------------------------------------------------------ poll */

static void poll_body(struct balloon *b, uint64_t now)
{
	reap(b, b->s.inflate_vq, ELEM_INFLATE);
	reap(b, b->s.deflate_vq, ELEM_DEFLATE);
	write_actual(b);   /* what was acked before any breakage is real */
	if (check_broken(b))
		return;
	stats_poll(b);
	oom_log(b);
	update_target(b, now);
	if (b->broken)
		return;
	update_stall(b, now);
	if (!b->stalled) {
		uint64_t cur = b->settled + b->inflating;
		if (cur < b->target)
			inflate(b, now, b->target - cur);
		else {
			b->rate_last_ns = 0;   /* nothing to inflate: no credit piles up */
			b->rate_limited = 0;
			if (cur > b->target && b->settled)
				deflate(b, now, cur - b->target);
		}
	}
	report_poll(b, now);
	report(b);
}

void balloon_poll(struct balloon *b, uint64_t now)
{
	if (b->broken)
		return;
	b->in_poll = 1;
	poll_body(b, now);
	b->in_poll = 0;
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
		elem_put(b, e);
	}
	for (uint64_t blk = 0; blk < b->nblocks && b->settled; blk++) {
		for (uint64_t p = blk * PPB; p < (blk + 1) * PPB && b->blk_count[blk]; ) {
			if (!head_test(b, p)) {
				p++;
				continue;
			}
			uint32_t len = run_len(b, p);
			clear_range(b, p, len);
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

const char *balloon_state_name(enum balloon_state st)
{
	static const char *const names[] = { "at target", "inflating", "deflating",
	                                     "short of memory", "host stalled", "stopped" };
	return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}

const char *balloon_limit_name(enum balloon_limit_reason r)
{
	static const char *const names[] = { "none", "clamped by balloon.max",
	                                     "clamped by balloon.min_free",
	                                     "held since a deflate on OOM until the host sets a new target" };
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

const char *balloon_short_name(enum balloon_short_reason r)
{
	static const char *const names[] = { "none",
	                                     "free memory is down to balloon.min_free and the shrinkers gave nothing",
	                                     "free memory exists but the allocator has no run to give",
	                                     "the allocator returned a bad range: inflate stopped" };
	return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

void balloon_format_status(const struct balloon *b, char *buf, size_t len)
{
	uint64_t actual = balloon_actual(b);
	snprintf(buf, len,
	         "balloon: %s; actual %llu pages (%llu MiB), target %llu (host %u); "
	         "%llu whole blocks + %llu pages in runs; in flight +%llu/-%llu; sent %llu blocks, "
	         "%llu runs, %llu deflates",
	         balloon_state_name(balloon_state(b)), (unsigned long long)actual,
	         (unsigned long long)mib(actual), (unsigned long long)b->target, b->num_pages,
	         (unsigned long long)b->block_runs,
	         (unsigned long long)(b->settled - b->block_runs * PPB),
	         (unsigned long long)b->inflating, (unsigned long long)b->deflating,
	         (unsigned long long)b->blocks_sent, (unsigned long long)b->runs_sent,
	         (unsigned long long)b->deflates_sent);
}

/* snprintf that appends and never runs past the end. */
static void appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	if (*off >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = min_u64(len, *off + (size_t)n);
}

void balloon_format_details(const struct balloon *b, char *buf, size_t len)
{
	const struct balloon_params *p = &b->s.params;
	const struct balloon_report *r = &b->rep;
	size_t o = 0;
	unsigned busy = BALLOON_SLOTS - b->nfree_elems;
	buf[0] = 0;
	appendf(buf, len, &o, "balloon: target %llu MiB, actual %llu MiB, host asks %llu MiB%s; "
	        "limit: %s\n", (unsigned long long)mib(b->target),
	        (unsigned long long)mib(balloon_actual(b)), (unsigned long long)mib(b->num_pages),
	        b->host_set ? "" : p->initial_pages ? " (initial balloon until the host sets a target)" : "",
	        balloon_limit_name(b->limit_reason));
	appendf(buf, len, &o, "balloon: max %llu MiB%s, min-free %llu MiB, rate ",
	        (unsigned long long)mib(p->max_pages), p->max_pages ? "" : " (none)",
	        (unsigned long long)mib(p->min_free_pages));
	if (p->rate_pages_per_s)
		appendf(buf, len, &o, "%llu MiB/s%s", (unsigned long long)mib(p->rate_pages_per_s),
		        b->rate_limited ? " (limiting now)" : "");
	else
		appendf(buf, len, &o, "unlimited");
	appendf(buf, len, &o, ", initial %llu MiB, report delay %llu ms\n",
	        (unsigned long long)mib(p->initial_pages), (unsigned long long)(p->report_delay_ns / NS_PER_MS));
	appendf(buf, len, &o, "balloon: inflight +%llu/-%llu pages in %u elements, report %s\n",
	        (unsigned long long)b->inflating, (unsigned long long)b->deflating, busy,
	        !b->s.report_vq ? "off" : r->in_flight ? "in flight" :
	        r->state == REPORT_ARMED ? "due" : "idle");
	appendf(buf, len, &o, "balloon: totals: inflated %llu pages, deflated %llu pages; elements "
	        "%llu blocks + %llu runs inflate, %llu deflate; %llu acks\n",
	        (unsigned long long)b->pages_inflated, (unsigned long long)b->pages_deflated,
	        (unsigned long long)b->blocks_sent, (unsigned long long)b->runs_sent,
	        (unsigned long long)b->deflates_sent, (unsigned long long)b->acks);
	appendf(buf, len, &o, "balloon: oom: %s; %llu deflates (%llu pages), %llu timeouts, "
	        "%llu calls\n",
	        (b->s.features >> VIRTIO_BALLOON_F_DEFLATE_ON_OOM) & 1 ? "deflate-on-oom" : "off",
	        (unsigned long long)b->oom_deflates, (unsigned long long)b->oom_pages,
	        (unsigned long long)b->oom_timeouts, (unsigned long long)b->oom_calls);
	appendf(buf, len, &o, "balloon: reporting: %s; %llu blocks (%llu MiB) in %llu reports, "
	        "%llu runs, %llu put back\n", b->s.report_vq ? "on" : "off",
	        (unsigned long long)r->blocks, (unsigned long long)mib(r->blocks * PPB),
	        (unsigned long long)r->rounds, (unsigned long long)r->runs,
	        (unsigned long long)r->put_back);
	appendf(buf, len, &o, "balloon: reclaim: %llu pages from shrinkers in %llu calls\n",
	        (unsigned long long)b->reclaimed, (unsigned long long)b->reclaim_calls);
	appendf(buf, len, &o, "balloon: shortfall: %s",
	        balloon_state(b) == BALLOON_SHORT ? balloon_short_name(b->short_reason) : "none");
}

/* ------------------------------------------------------------ self-check */

#define CHECK(cond, ...) do { if (!(cond)) { snprintf(why, len, __VA_ARGS__); return -1; } } while (0)

int balloon_check(const struct balloon *b, char *why, size_t len)
{
	uint64_t bits = 0, block_runs = 0;
	for (uint64_t blk = 0; blk < b->nblocks; blk++) {
		uint64_t c = 0;
		for (unsigned w = 0; w < PPB / 64; w++) {
			uint64_t i = blk * (PPB / 64) + w;
			c += (uint64_t)__builtin_popcountll(b->bitmap[i]);
			CHECK(!(b->heads[i] & ~b->bitmap[i]), "block %llu: a range starts on a free frame",
			      (unsigned long long)blk);
		}
		CHECK(c == b->blk_count[blk], "block %llu: %llu bits but count %u",
		      (unsigned long long)blk, (unsigned long long)c, b->blk_count[blk]);
		bits += c;
		/* the ranges tile the set bits: aligned powers of two, each begun by a head */
		for (uint64_t p = blk * PPB; p < (blk + 1) * PPB; ) {
			if (!bit_test(b, p)) {
				p++;
				continue;
			}
			CHECK(head_test(b, p), "frame 0x%llx ballooned but in no range", (unsigned long long)p);
			uint32_t l = run_len(b, p);
			CHECK((l & (l - 1)) == 0 && p % l == 0, "range at 0x%llx of %u frames is not an "
			      "aligned power of two", (unsigned long long)p, l);
			block_runs += l == PPB;
			p += l;
		}
	}
	CHECK(bits == b->settled, "bitmap has %llu frames, settled says %llu",
	      (unsigned long long)bits, (unsigned long long)b->settled);
	CHECK(block_runs == b->block_runs, "%llu whole-block ranges, counter says %llu",
	      (unsigned long long)block_runs, (unsigned long long)b->block_runs);

	uint64_t infl = 0, defl = 0;
	unsigned nfree = 0;
	for (unsigned i = 0; i < BALLOON_SLOTS; i++) {
		const struct balloon_elem *e = &b->elems[i];
		if (e->state == ELEM_FREE) {
			nfree++;
			CHECK(e->nruns == 0 && e->pages == 0, "free element %u carries runs", i);
			continue;
		}
		CHECK(elem_busy(e), "element %u in a half-built state", i);
		uint64_t pages = 0;
		for (unsigned r = 0; r < e->nruns; r++) {
			const struct balloon_run *run = &e->runs[r];
			CHECK(run->count && (run->count & (run->count - 1)) == 0 && run->pfn % run->count == 0,
			      "element %u run %u is not an aligned power of two", i, r);
			pages += run->count;
			for (uint64_t p = run->pfn; p < run->pfn + run->count; p++)
				CHECK(!bit_test(b, p), "frame 0x%llx both in flight and ballooned",
				      (unsigned long long)p);
			for (unsigned j = 0; j < BALLOON_SLOTS; j++) {
				const struct balloon_elem *o = &b->elems[j];
				for (unsigned q = 0; q < o->nruns; q++) {
					if (j == i && q == r)
						continue;
					CHECK(!(run->pfn < o->runs[q].pfn + o->runs[q].count &&
					        o->runs[q].pfn < run->pfn + run->count),
					      "in-flight runs overlap at 0x%llx", (unsigned long long)run->pfn);
				}
			}
		}
		CHECK(pages == e->pages, "element %u pages %u != runs %llu", i, e->pages,
		      (unsigned long long)pages);
		if (e->state == ELEM_INFLATE) infl += pages; else defl += pages;
	}
	CHECK(nfree == b->nfree_elems, "free elements %u, counter %u", nfree, b->nfree_elems);
	CHECK(infl == b->inflating && defl == b->deflating,
	      "in flight +%llu/-%llu, counters +%llu/-%llu", (unsigned long long)infl,
	      (unsigned long long)defl, (unsigned long long)b->inflating,
	      (unsigned long long)b->deflating);
	if (b->have_written && !b->broken)
		CHECK(b->actual_written == balloon_actual(b), "actual written %u, books say %llu",
		      b->actual_written, (unsigned long long)balloon_actual(b));
	/* blocks out for reporting: whole blocks, not the balloon's, none twice */
	CHECK(b->rep.in_flight || b->rep.n == 0, "%u report blocks without a report in flight", b->rep.n);
	CHECK(b->rep.n <= BALLOON_REPORT_BLOCKS, "%u report blocks", b->rep.n);
	for (unsigned i = 0; i < b->rep.n; i++) {
		uint64_t pfn = b->rep.pfns[i];
		CHECK(pfn % PPB == 0 && pfn < b->s.max_pfn && !b->blk_count[pfn / PPB] &&
		      (i == 0 || b->rep.pfns[i - 1] < pfn),
		      "report block 0x%llx is misaligned, ballooned or repeated", (unsigned long long)pfn);
	}
	CHECK(!b->oom_capped || b->params_changed || b->target <= b->oom_cap,
	      "target %llu above the OOM hold %llu", (unsigned long long)b->target,
	      (unsigned long long)b->oom_cap);
	return 0;
}
