/*
 * compact.c - the compactor. See compact.h for the contract.
 *
 * Two pointers over the movable blocks sorted sparsest first: `s` walks
 * sources from the sparse end, `t` walks targets from the dense end, and
 * `room` is the free space in the targets (s, t]. Sources drain into the
 * densest blocks, so every block filled is filled completely and the
 * pointers meet where no further block can be emptied.
 */
#include <string.h>
#include "mm/compact.h"
#include "mm/frame_internal.h"
#include "kclock.h"

/* Movable blocks that are neither full nor empty, sparsest first, into
 * fa->scratch; returns how many. A counting sort on the free count: exact,
 * and O(blocks). */
static uint32_t sort_candidates(struct frame_alloc *fa)
{
	uint32_t pos[PAGES_PER_BLOCK];
	uint32_t n = 0;
	memset(pos, 0, sizeof pos);
	for (unsigned bk = 0; bk < FA_NBUCKETS; bk++)
		for (uint32_t b = fa->lists[FA_L_PART(BK_MOVABLE, bk)].head; b != FA_NIL;
		     b = fa->blocks[b].next, n++)
			pos[fa->blocks[b].nfree]++;
	uint32_t at = 0;
	for (unsigned nf = PAGES_PER_BLOCK - 1; nf >= 1; nf--) {
		uint32_t c = pos[nf];
		pos[nf] = at;
		at += c;
	}
	for (unsigned bk = 0; bk < FA_NBUCKETS; bk++)
		for (uint32_t b = fa->lists[FA_L_PART(BK_MOVABLE, bk)].head; b != FA_NIL;
		     b = fa->blocks[b].next)
			fa->scratch[pos[fa->blocks[b].nfree]++] = b;
	return n;
}

/* Every used frame is a movable frame with an owner (no balloon runs). */
static int evacuable(const struct frame_alloc *fa, uint32_t b)
{
	const struct mblock *blk = &fa->blocks[b];
	uint64_t base = (uint64_t)b << BLOCK_ORDER;
	for (unsigned w = 0; w < FA_WORDS; w++)
		for (uint64_t m = blk->map[w]; m; m &= m - 1) {
			uint64_t idx = base + w * 64 + (unsigned)__builtin_ctzll(m);
			if (fa->desc[idx] != fd_make(FS_MOVABLE, 0) || fa->owner[idx] == 0)
				return 0;
		}
	return 1;
}

/* Move one frame into block tb. 1 moved, 0 left in place. */
static int move_frame(struct frame_alloc *fa, struct pgtable *pt, uint64_t src_idx, uint32_t tb)
{
	uint64_t owner = fa->owner[src_idx];
	int i = fa_find_run(&fa->blocks[tb], 0);
	uint64_t dst_pfn = fa_take_run(fa, tb, (unsigned)i, 0, FS_MOVABLE, owner);
	fa_block_settle(fa, tb);
	uint64_t src_pa = (fa->base_pfn + src_idx) << PAGE_SHIFT;
	uint64_t dst_pa = dst_pfn << PAGE_SHIFT;
	memcpy(pt->ops->phys_to_virt(pt->ctx, dst_pa), pt->ops->phys_to_virt(pt->ctx, src_pa), PAGE_SIZE);
	if (pt_remap(pt, owner, src_pa, dst_pa) != MM_OK) {
		fa_release_run(fa, dst_pfn - fa->base_pfn, 0);
		return 0;
	}
	fa_release_run(fa, src_idx, 0);
	return 1;
}

int compact(struct frame_alloc *fa, struct pgtable *pt, uint64_t want_free_blocks,
            uint64_t max_moves, struct compact_result *res)
{
	if (!fa || !pt || !res)
		return MM_EINVAL;
	memset(res, 0, sizeof *res);
	uint64_t t0 = clock_ns();
	uint64_t free_blocks = fa_free_blocks(fa);
	res->free_blocks_before = free_blocks;
	res->stop = COMPACT_EXHAUSTED;

	if (free_blocks < want_free_blocks) {
		/* The current movable block is a candidate like any other. */
		fa_uncurrent(fa, BK_MOVABLE);
		uint32_t n = sort_candidates(fa);
		uint64_t room = 0;
		for (uint32_t k = 1; k < n; k++)
			room += fa->blocks[fa->scratch[k]].nfree;
		uint32_t s = 0, t = n ? n - 1 : 0;
		while (s < t && free_blocks < want_free_blocks) {
			uint32_t src = fa->scratch[s];
			unsigned used = PAGES_PER_BLOCK - fa->blocks[src].nfree;
			if (used > room)
				break;      /* denser blocks cannot take it all */
			if (max_moves && res->frames_moved + used > max_moves) {
				res->stop = COMPACT_BUDGET;
				break;
			}
			if (evacuable(fa, src)) {
				uint64_t base = (uint64_t)src << BLOCK_ORDER;
				for (unsigned w = 0; w < FA_WORDS; w++) {
					for (uint64_t m = fa->blocks[src].map[w]; m; m &= m - 1) {
						while (t > s && fa->blocks[fa->scratch[t]].nfree == 0)
							t--;
						if (t == s)
							break;
						if (move_frame(fa, pt, base + w * 64 + (unsigned)__builtin_ctzll(m),
						               fa->scratch[t])) {
							res->frames_moved++;
							room--;
						} else {
							res->frames_failed++;
						}
					}
				}
				if (fa->blocks[src].kind == BK_FREE) {
					res->blocks_freed++;
					free_blocks++;
				}
			}
			s++;
			if (s <= t)
				room -= fa->blocks[fa->scratch[s]].nfree;
		}
	}
	res->free_blocks_after = fa_free_blocks(fa);
	if (res->free_blocks_after >= want_free_blocks)
		res->stop = COMPACT_REACHED;
	res->ns = clock_ns() - t0;
	return MM_OK;
}
