/*
 * inflate.c - the element traffic: inflate (whole free blocks first, compaction
 * when short, small runs last, shrinkers asked when free memory runs out)
 * and deflate (small runs first, whole ranges back as they were taken).
 */
#include "drivers/balloon/internal.h"

/* ---- inflate */

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
	struct balloon_elem *e = bal_elem_get(b);
	uint32_t cap = bal_elem_cap(b);
	while (e->pages < cap && e->nruns < BALLOON_ELEM_RUNS && *need && *budget &&
	       b->run_order_cap >= 0 && !b->mem_error) {
		uint64_t lim = min_u64(min_u64(*need, *budget), cap - e->pages);
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
		int ok = bal_new_range_ok(b, pfn, 1u << k);
		if (ok < 0)
			b->s.mops->give_back(b->s.mctx, pfn, (unsigned)k);   /* no books for it */
		if (ok <= 0)
			break;
		bal_elem_add_run(e, pfn, 1u << k);
		*need -= 1u << k;
		*budget -= 1u << k;
	}
	if (e->pages == 0) {
		bal_elem_put(b, e);
		return 0;
	}
	if (bal_elem_submit(b, b->s.inflate_vq, e, ELEM_INFLATE, now) != 0) {
		for (unsigned r = 0; r < e->nruns; r++)
			b->s.mops->give_back(b->s.mctx, e->runs[r].pfn, order_of(e->runs[r].count));
		*need += e->pages;
		bal_elem_put(b, e);
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

void bal_inflate(struct balloon *b, uint64_t now, uint64_t need)
{
	const struct balloon_mem_ops *m = b->s.mops;
	struct virtq *vq = b->s.inflate_vq;
	if (b->short_of_memory) {
		if (now < b->retry_at_ns)
			return;
		/* quiet retry: memory may have been freed since */
		bal_attempt_reset(b);
	}
	/* Rate limit: whole blocks while more than a block is wanted (credit
	 * for less waits: it must not turn into small runs). */
	uint64_t credit = bal_rate_credit(b, now);
	b->rate_limited = 0;
	if (credit < need) {
		b->rate_limited = 1;
		if (need >= PAGES_PER_BLOCK) {
			if (credit < PAGES_PER_BLOCK)
				return;
			need = credit / PAGES_PER_BLOCK * PAGES_PER_BLOCK;
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
	b->books_short = 0;

	while (need && sent < b->s.params.batch && b->nfree_elems && virtq_num_free(vq) >= 2 &&
	       !b->mem_error && !b->books_short) {
		if (budget == 0) {
			dry = 1;
			break;
		}
		if (need >= PAGES_PER_BLOCK && budget >= PAGES_PER_BLOCK && !b->blocks_dry &&
		    b->s.layout == BALLOON_LAYOUT_CHAIN) {
			uint64_t want = min_u64(need / PAGES_PER_BLOCK, budget / PAGES_PER_BLOCK);
			want = min_u64(want, b->s.params.batch - sent);
			want = min_u64(want, b->nfree_elems);
			want = min_u64(want, virtq_num_free(vq) / 2);
			uint64_t pfns[BALLOON_SLOTS];
			unsigned got = m->take_blocks(b->s.mctx, pfns, (unsigned)want);
			if (got > want) {
				bal_mem_error(b, "take_blocks returned more than asked", 0, got);
				break;
			}
			for (unsigned i = 0; i < got; i++) {
				int ok = bal_new_range_ok(b, pfns[i], PAGES_PER_BLOCK);
				if (ok < 0)
					m->give_back(b->s.mctx, pfns[i], BLOCK_ORDER);   /* no books for it */
				if (ok <= 0)
					continue;   /* 0: not ours to give back: leave it alone */
				struct balloon_elem *e = bal_elem_get(b);
				bal_elem_add_run(e, pfns[i], PAGES_PER_BLOCK);
				if (bal_elem_submit(b, vq, e, ELEM_INFLATE, now) != 0) {
					/* cannot happen (space was checked); never lose the block */
					m->give_back(b->s.mctx, pfns[i], BLOCK_ORDER);
					bal_elem_put(b, e);
					continue;
				}
				b->inflating += PAGES_PER_BLOCK;
				b->blocks_sent++;
				need -= PAGES_PER_BLOCK;
				budget -= PAGES_PER_BLOCK;
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
	bal_rate_spend(b, b->inflating - before);
	if (sent)
		virtq_kick(vq);
	if (need && (dry || b->mem_error || b->books_short)) {
		b->short_of_memory = 1;
		b->retry_at_ns = now + b->s.params.retry_ns;
		b->short_reason = b->mem_error ? BSHORT_ALLOC_ERROR : b->books_short ? BSHORT_BOOKS :
		                  inflate_budget(b) == 0 ? BSHORT_MIN_FREE : BSHORT_NO_RUNS;
	}
}

/* ---- deflate */

static void take_settled(struct balloon *b, struct balloon_elem *e, uint64_t pfn, uint32_t len)
{
	bal_clear_range(b, pfn, len);
	bal_elem_add_run(e, pfn, len);
}

/* Choose ranges for one deflate element, wanting `n` frames: small runs
 * that fit first (they release no whole host page), then one whole block.
 * Ranges go back whole, so if nothing fits without overshooting, the
 * smallest range goes and the caller's next inflate makes up the difference
 * with small runs (never the other way round: inflate never overshoots, so
 * this cannot oscillate). Clears what it takes from the bitmap. */
static void deflate_collect(struct balloon *b, struct balloon_elem *e, uint64_t n)
{
	int small = b->settled > b->block_runs * PAGES_PER_BLOCK;
	for (uint64_t blk = 0; small && blk < b->nblocks; blk++) {
		if (!b->blk_count[blk] || bal_is_block_run(b, blk))
			continue;
		uint64_t end = (blk + 1) * PAGES_PER_BLOCK;
		for (uint64_t p = bal_next_head(b, blk * PAGES_PER_BLOCK, end); p < end;
		     p = bal_next_head(b, p, end)) {
			if (e->pages >= n || e->pages >= bal_elem_cap(b) || e->nruns >= BALLOON_ELEM_RUNS)
				return;
			uint32_t len = bal_run_len(b, p);
			if (len <= n - e->pages && e->pages + len <= bal_elem_cap(b))
				take_settled(b, e, p, len);
			p += len;
		}
	}
	if (e->pages)
		return;
	if (n >= PAGES_PER_BLOCK && b->block_runs) {
		for (uint64_t i = 0; i < b->nblocks; i++) {
			uint64_t blk = (b->deflate_cursor + i) % b->nblocks;
			if (bal_is_block_run(b, blk)) {
				b->deflate_cursor = blk;
				take_settled(b, e, blk * PAGES_PER_BLOCK, PAGES_PER_BLOCK);
				return;
			}
		}
	}
	/* nothing fits: the smallest range there is */
	uint64_t best = UINT64_MAX;
	uint32_t best_len = PAGES_PER_BLOCK + 1;
	for (uint64_t blk = 0; blk < b->nblocks && best_len > 1; blk++) {
		if (!b->blk_count[blk])
			continue;
		uint64_t end = (blk + 1) * PAGES_PER_BLOCK;
		for (uint64_t p = bal_next_head(b, blk * PAGES_PER_BLOCK, end); p < end;
		     p = bal_next_head(b, p, end)) {
			uint32_t len = bal_run_len(b, p);
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

void bal_deflate(struct balloon *b, uint64_t now, uint64_t over)
{
	struct virtq *vq = b->s.deflate_vq;
	uint64_t n = min_u64(over, b->settled);
	unsigned sent = 0;
	while (n && sent < b->s.params.batch && b->nfree_elems && virtq_num_free(vq) >= 2) {
		struct balloon_elem *e = bal_elem_get(b);
		deflate_collect(b, e, n);
		if (e->pages == 0) {
			bal_elem_put(b, e);
			break;
		}
		if (bal_elem_submit(b, vq, e, ELEM_DEFLATE, now) != 0) {
			for (unsigned r = 0; r < e->nruns; r++)
				bal_set_range(b, e->runs[r].pfn, e->runs[r].count);
			bal_elem_put(b, e);
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
