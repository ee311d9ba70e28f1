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
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "balloon.h"
#include "kclock.h"

#define PPB BALLOON_PAGES_PER_BLOCK
#define DEFAULT_ACK_TIMEOUT_NS (5 * NS_PER_S)
#define DEFAULT_RETRY_NS       (1 * NS_PER_S)
#define DEFAULT_BATCH          16u
#define LOG_INTERVAL_NS        (1 * NS_PER_S)

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
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
	              (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST);
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
	if (!b->s.params.ack_timeout_ns) b->s.params.ack_timeout_ns = DEFAULT_ACK_TIMEOUT_NS;
	if (!b->s.params.retry_ns) b->s.params.retry_ns = DEFAULT_RETRY_NS;
	if (!b->s.params.batch) b->s.params.batch = DEFAULT_BATCH;
	if (s->stats_vq && (virtq_is_broken(s->stats_vq) ||
	                    !(s->features & (1ull << VIRTIO_BALLOON_F_STATS_VQ))))
		b->s.stats_vq = NULL;

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
	return 0;
}

/* ------------------------------------------------------------ stats */

static void stats_queue(struct balloon *b)
{
	uint64_t free = b->s.mops->free_pages(b->s.mctx);
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	unsigned n = 0;
	b->stats[n++] = (struct virtio_balloon_stat){ VIRTIO_BALLOON_S_MEMFREE, free << 12 };
	b->stats[n++] = (struct virtio_balloon_stat){ VIRTIO_BALLOON_S_MEMTOT, total << 12 };
	b->stats[n++] = (struct virtio_balloon_stat){ VIRTIO_BALLOON_S_AVAIL, free << 12 };
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
		if (state == ELEM_INFLATE)
			b->inflating -= e->pages;
		else
			b->deflating -= e->pages;
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

static uint64_t balloon_limit(const struct balloon *b)
{
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	uint64_t minf = b->s.params.min_free_pages;
	uint64_t limit = total > minf ? total - minf : 0;
	if (b->s.params.max_pages && b->s.params.max_pages < limit)
		limit = b->s.params.max_pages;
	return limit;
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
	if (b->have_num_pages && np == b->num_pages)
		return;
	b->have_num_pages = 1;
	b->num_pages = np;

	uint64_t limit = balloon_limit(b), t = np;
	if (t > limit) {
		t = limit;
		klog_ratelimited(&b->lim_clamp, LOG_INTERVAL_NS,
		                 "balloon: host asks for %u pages (%llu MiB), at most %llu can be given "
		                 "(total %llu, keeping %llu free, max %llu): clamped",
		                 np, (unsigned long long)mib(np), (unsigned long long)limit,
		                 (unsigned long long)b->s.mops->total_pages(b->s.mctx),
		                 (unsigned long long)b->s.params.min_free_pages,
		                 (unsigned long long)b->s.params.max_pages);
	}
	if (t == b->target)
		return;
	klog_ratelimited(&b->lim_target, LOG_INTERVAL_NS,
	                 "balloon: new target %llu pages (%llu MiB), was %llu, actual %llu",
	                 (unsigned long long)t, (unsigned long long)mib(t),
	                 (unsigned long long)b->target, (unsigned long long)balloon_actual(b));
	b->target = t;
	/* a new target gets a fresh attempt and its own status lines */
	b->blocks_dry = 0;
	b->compact_tried = 0;
	b->run_order_cap = BALLOON_MAX_RUN_ORDER;
	b->short_of_memory = 0;
	b->short_reported = 0;
	b->done_reported = 0;
	b->retry_at_ns = 0;
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
		b->run_order_cap = BALLOON_MAX_RUN_ORDER;
	}
	uint64_t free = m->free_pages(b->s.mctx);
	uint64_t budget = free > b->s.params.min_free_pages ? free - b->s.params.min_free_pages : 0;
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
	if (sent)
		virtq_kick(vq);
	if (need && (dry || b->mem_error)) {
		b->short_of_memory = 1;
		b->retry_at_ns = now + b->s.params.retry_ns;
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
		if (!b->done_reported) {
			b->done_reported = 1;
			klog_ratelimited(&b->lim_status, LOG_INTERVAL_NS,
			                 "balloon: at target %llu pages (%llu MiB): %llu whole 2 MiB blocks, "
			                 "%llu pages in smaller runs",
			                 (unsigned long long)actual, (unsigned long long)mib(actual),
			                 (unsigned long long)b->block_runs,
			                 (unsigned long long)(b->settled - b->block_runs * PPB));
		}
	} else if (b->short_of_memory && !b->short_reported && actual < b->target) {
		b->short_reported = 1;
		klog_ratelimited(&b->lim_status, LOG_INTERVAL_NS,
		                 "balloon: cannot reach target %llu pages (%llu MiB): holding %llu, "
		                 "free %llu, keeping %llu free%s; will retry quietly",
		                 (unsigned long long)b->target, (unsigned long long)mib(b->target),
		                 (unsigned long long)actual,
		                 (unsigned long long)b->s.mops->free_pages(b->s.mctx),
		                 (unsigned long long)b->s.params.min_free_pages,
		                 b->mem_error ? ", allocator error" : "");
	}
}

/* ------------------------------------------------------------ poll */

void balloon_poll(struct balloon *b, uint64_t now)
{
	if (b->broken)
		return;
	reap(b, b->s.inflate_vq, ELEM_INFLATE);
	reap(b, b->s.deflate_vq, ELEM_DEFLATE);
	write_actual(b);   /* what was acked before any breakage is real */
	if (check_broken(b))
		return;
	stats_poll(b);
	update_target(b, now);
	if (b->broken)
		return;
	update_stall(b, now);
	if (!b->stalled) {
		uint64_t cur = b->settled + b->inflating;
		if (cur < b->target)
			inflate(b, now, b->target - cur);
		else if (cur > b->target && b->settled)
			deflate(b, now, cur - b->target);
	}
	report(b);
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
	return 0;
}
