/*
 * frame_balloon.c - the allocator side of the balloon and of free page
 * reporting: hand whole free blocks (or, as a fallback, smaller runs) to the
 * balloon, take them back as non-resident free memory, and isolate free
 * blocks while they are reported to the host.
 *
 * Residency: a block the balloon or reporting gave to the host was discarded
 * there, so when it comes back it is free and not resident; allocation and
 * inflate both prefer resident free blocks (fa_grab_free_block), so the guest
 * does not grow its host footprint while it still has resident free memory.
 */
#include "mm/frame_internal.h"
#include "klog.h"

uint64_t fa_balloon_take_blocks(struct frame_alloc *fa, uint64_t n, uint64_t *pfns)
{
	return fa_balloon_take_blocks_from(fa, n, pfns, 0);
}

uint64_t fa_balloon_take_blocks_from(struct frame_alloc *fa, uint64_t n, uint64_t *pfns, int resident_only)
{
	uint64_t got = 0;
	if (!pfns)
		return 0;
	while (got < n) {
		uint32_t b = fa_grab_block(fa, BK_BALLOON, resident_only);
		if (b == FA_NIL)
			break;
		pfns[got++] = fa_take_run(fa, b, 0, BLOCK_ORDER, FS_BALLOON, 0);
	}
	return got;
}

/* One run from block b, settling it; 1 if taken. */
static int run_from(struct frame_alloc *fa, uint32_t b, unsigned order, uint64_t *pfn)
{
	if (fa->blocks[b].flags & BF_HOT)
		return 0;   /* hot-added memory holds movable frames only */
	return fa_try_block(fa, b, order, FS_BALLOON, 0, pfn);
}

/* Where a small balloon run comes from, in order: unmovable blocks (they are
 * not compaction material anyway), then movable blocks fullest first, so the
 * sparse movable blocks the compactor empties are not pinned by balloon
 * frames; a wholly free block is broken (as unmovable) only as a last resort. */
static int take_one_run(struct frame_alloc *fa, unsigned order, uint64_t *pfn)
{
	for (unsigned kind = 0; kind < FA_NKINDS; kind++) {
		if (fa->cur[kind] != FA_NIL && run_from(fa, fa->cur[kind], order, pfn))
			return 1;
		for (unsigned bk = fa_bucket(1u << order); bk < FA_NBUCKETS; bk++)
			for (uint32_t b = fa->lists[FA_L_PART(kind, bk)].head; b != FA_NIL; b = fa->blocks[b].next)
				if (run_from(fa, b, order, pfn))
					return 1;   /* b may have moved lists: stop walking */
	}
	uint32_t b = fa_grab_free_block(fa, BK_UNMOVABLE);
	if (b == FA_NIL)
		return 0;
	*pfn = fa_take_run(fa, b, 0, order, FS_BALLOON, 0);
	fa_block_settle(fa, b);
	return 1;
}

uint64_t fa_balloon_take_runs(struct frame_alloc *fa, unsigned order, uint64_t n, uint64_t *pfns)
{
	if (!pfns || order >= BLOCK_ORDER)
		return 0;
	uint64_t got = 0;
	while (got < n && take_one_run(fa, order, &pfns[got]))
		got++;
	return got;
}

int fa_balloon_return(struct frame_alloc *fa, uint64_t pfn, unsigned order)
{
	uint64_t idx = pfn - fa->base_pfn;
	int err = MM_OK;
	if (order > FA_MAX_ORDER)
		err = MM_EINVAL;
	else if (!fa_idx_present(fa, idx))
		err = MM_ERANGE;
	else if (fd_state(fa->desc[idx]) != FS_BALLOON)
		err = MM_ENOTALLOC;
	else if (fd_order(fa->desc[idx]) != order)
		err = MM_EORDER;
	if (err) {
		fa->bad_frees++;
		klog("mm: bad balloon return of pfn %#llx order %u: %s",
		     (unsigned long long)pfn, order, mm_strerror(err));
		return err;
	}
	fa_release_run(fa, idx, order);
	if (order == BLOCK_ORDER)
		fa_block_make_free(fa, (uint32_t)(idx >> BLOCK_ORDER), 0);
	return MM_OK;
}

uint64_t fa_report_isolate(struct frame_alloc *fa, uint64_t max, uint64_t *pfns)
{
	uint64_t got = 0;
	if (!pfns)
		return 0;
	while (got < max) {
		uint32_t b = fa->lists[FA_L_FREE_RES].head;
		if (b == FA_NIL)
			break;
		fa_list_del(fa, b);
		fa->blocks[b].kind = BK_ISOLATED;
		fa->nr_isolated_blocks++;
		pfns[got++] = fa_block_pfn(fa, b);
	}
	return got;
}

int fa_report_done(struct frame_alloc *fa, const uint64_t *pfns, uint64_t n, int reported)
{
	int err = MM_OK;
	for (uint64_t k = 0; k < n; k++) {
		uint64_t idx = pfns[k] - fa->base_pfn;
		if (!fa_idx_present(fa, idx) || (idx & (PAGES_PER_BLOCK - 1)) ||
		    fa->blocks[idx >> BLOCK_ORDER].kind != BK_ISOLATED) {
			klog("mm: report_done for pfn %#llx which was not isolated",
			     (unsigned long long)pfns[k]);
			err = MM_ESTATE;
			continue;
		}
		uint32_t b = (uint32_t)(idx >> BLOCK_ORDER);
		struct mblock *blk = &fa->blocks[b];
		fa->nr_isolated_blocks--;
		blk->kind = BK_FREE;
		if (reported) {
			blk->flags = (uint8_t)((blk->flags | BF_REPORTED) & ~BF_RESIDENT);
			fa->nr_reported_blocks++;
			fa_list_add(fa, FA_L_FREE_NONRES, b);
		} else {
			fa_list_add(fa, FA_L_FREE_RES, b);
		}
	}
	return err;
}
