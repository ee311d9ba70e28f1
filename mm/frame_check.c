/*
 * frame_check.c - full consistency check of a frame allocator: every bitmap
 * bit, descriptor, list link and counter. O(frames); for tests and the
 * in-guest self-tests, never on a hot path.
 */
#include <stdarg.h>
#include <stdio.h>
#include "mm/frame_internal.h"
#include "kernel/lib/fmt.h"

static int fail(char *why, size_t len, const char *fmt, ...)
{
	if (why && len) {
		va_list ap;
		va_start(ap, fmt);
		kvsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return MM_ESTATE;
}

static int bit(const struct mblock *blk, unsigned i)
{
	return (int)((blk->map[i >> 6] >> (i & 63)) & 1);
}

/* Walk one block's frames: runs must be aligned, fully marked, covered by
 * exactly one head; free frames must be clear. Adds frames per state. */
static int check_block_frames(const struct frame_alloc *fa, uint32_t b, uint64_t nr[FS_COUNT],
                              char *why, size_t len)
{
	const struct mblock *blk = &fa->blocks[b];
	const uint8_t *fr = &fa->desc[(uint64_t)b << BLOCK_ORDER];
	const uint64_t *own = &fa->owner[(uint64_t)b << BLOCK_ORDER];
	unsigned clear = 0, cap = 0;
	for (unsigned w = 0; w < FA_WORDS; w++) {
		clear += (unsigned)__builtin_popcountll(~blk->map[w]);
		if (w < blk->hint && blk->map[w] != ~0ull)
			return fail(why, len, "block %u: clear bit below hint %u", b, blk->hint);
	}
	if (clear != blk->nfree)
		return fail(why, len, "block %u: nfree %u but %u clear bits", b, blk->nfree, clear);
	for (unsigned i = 0; i < PAGES_PER_BLOCK;) {
		unsigned st = fd_state(fr[i]), order = fd_order(fr[i]);
		if (st == FS_ABSENT) {
			if (!bit(blk, i))
				return fail(why, len, "block %u frame %u: hole marked free", b, i);
			i++;
			continue;
		}
		cap++;
		if (st == FS_FREE) {
			if (order != 0)
				return fail(why, len, "block %u frame %u: free with order %u", b, i, order);
			if (bit(blk, i))
				return fail(why, len, "block %u frame %u: used but no head covers it", b, i);
			nr[FS_FREE]++;
			i++;
			continue;
		}
		if (st != FS_KERNEL && st != FS_MOVABLE && st != FS_BALLOON)
			return fail(why, len, "block %u frame %u: bad state %u", b, i, st);
		unsigned n = 1u << order;
		if (order > FA_MAX_ORDER || (i & (n - 1)))
			return fail(why, len, "block %u frame %u: order %u misaligned", b, i, order);
		if (!fa_run_all_set(blk, i, order))
			return fail(why, len, "block %u frame %u: run of order %u not fully marked", b, i, order);
		for (unsigned k = 1; k < n; k++)
			if (fr[i + k] != fd_make(FS_FREE, 0))
				return fail(why, len, "block %u frame %u: tail frame %u has descriptor %#x",
				            b, i, i + k, fr[i + k]);
		cap += n - 1;
		if (st == FS_MOVABLE && (order != 0 || blk->kind != BK_MOVABLE || own[i] == 0))
			return fail(why, len, "block %u frame %u: movable frame order %u owner %#llx in block kind %u",
			            b, i, order, (unsigned long long)own[i], blk->kind);
		if (st == FS_KERNEL && blk->kind != BK_UNMOVABLE)
			return fail(why, len, "block %u frame %u: unmovable frame in block kind %u", b, i, blk->kind);
		if (st == FS_BALLOON && order == BLOCK_ORDER && blk->kind != BK_BALLOON)
			return fail(why, len, "block %u: ballooned block has kind %u", b, blk->kind);
		nr[st] += n;
		i += n;
	}
	if (cap != blk->ncap)
		return fail(why, len, "block %u: ncap %u but %u RAM frames", b, blk->ncap, cap);
	return MM_OK;
}

static int check_block_place(const struct frame_alloc *fa, uint32_t b, char *why, size_t len)
{
	const struct mblock *blk = &fa->blocks[b];
	int current = (blk->flags & BF_CURRENT) != 0;
	if (current && (blk->kind > BK_MOVABLE || fa->cur[blk->kind] != b))
		return fail(why, len, "block %u: BF_CURRENT but not current", b);
	switch (blk->kind) {
	case BK_UNMOVABLE:
	case BK_MOVABLE: {
		if (current)
			return blk->list == FA_LIST_NONE ? MM_OK
			       : fail(why, len, "block %u: current but on list %u", b, blk->list);
		if (blk->nfree == PAGES_PER_BLOCK)
			return fail(why, len, "block %u: wholly free but kind %u", b, blk->kind);
		unsigned want = blk->nfree ? FA_L_PART(blk->kind, fa_bucket(blk->nfree)) : FA_LIST_NONE;
		if (blk->list != want)
			return fail(why, len, "block %u: nfree %u on list %u, want %u", b, blk->nfree, blk->list, want);
		if (blk->kind == BK_MOVABLE && (blk->flags & BF_HOLEY))
			return fail(why, len, "block %u: holey block is movable", b);
		if (blk->kind != BK_MOVABLE && (blk->flags & BF_HOT))
			return fail(why, len, "block %u: hot-added block holds kind %u", b, blk->kind);
		return MM_OK;
	}
	case BK_FREE:
		if (blk->nfree != PAGES_PER_BLOCK || current)
			return fail(why, len, "block %u: free block nfree %u flags %#x", b, blk->nfree, blk->flags);
		if (blk->list != fa_free_list_of(blk))
			return fail(why, len, "block %u: free block on list %u flags %#x", b, blk->list, blk->flags);
		return MM_OK;
	case BK_ISOLATED:
		if (blk->nfree != PAGES_PER_BLOCK || blk->list != FA_LIST_NONE)
			return fail(why, len, "block %u: isolated block nfree %u list %u", b, blk->nfree, blk->list);
		return MM_OK;
	case BK_BALLOON:
		if (blk->nfree != 0 || blk->list != FA_LIST_NONE ||
		    fa->desc[(uint64_t)b << BLOCK_ORDER] != fd_make(FS_BALLOON, BLOCK_ORDER))
			return fail(why, len, "block %u: balloon block nfree %u list %u", b, blk->nfree, blk->list);
		return MM_OK;
	case BK_ABSENT:
		if (blk->ncap != 0 || blk->list != FA_LIST_NONE)
			return fail(why, len, "block %u: absent block has RAM or a list", b);
		return MM_OK;
	default:
		return fail(why, len, "block %u: bad kind %u", b, blk->kind);
	}
}

static int check_lists(const struct frame_alloc *fa, char *why, size_t len)
{
	for (unsigned l = 0; l < FA_NLISTS; l++) {
		uint32_t count = 0, prev = FA_NIL;
		for (uint32_t b = fa->lists[l].head; b != FA_NIL; b = fa->blocks[b].next) {
			if (!fa_block_present(fa, b) || count > fa->nblocks)
				return fail(why, len, "list %u: broken link", l);
			if (fa->blocks[b].list != l || fa->blocks[b].prev != prev)
				return fail(why, len, "list %u: block %u has list %u prev %u (want %u)",
				            l, b, fa->blocks[b].list, fa->blocks[b].prev, prev);
			prev = b;
			count++;
		}
		if (count != fa->lists[l].count)
			return fail(why, len, "list %u: count %u but %u linked", l, fa->lists[l].count, count);
		if (l >= FA_L_PART_BASE) {
			unsigned kind = (l - FA_L_PART_BASE) / FA_NBUCKETS, bk = (l - FA_L_PART_BASE) % FA_NBUCKETS;
			if (!!(fa->part_mask[kind] & (1u << bk)) != (count != 0))
				return fail(why, len, "list %u: mask bit disagrees with count %u", l, count);
		}
	}
	return MM_OK;
}

int fa_check(const struct frame_alloc *fa, char *why, size_t why_len)
{
	uint64_t nr[FS_COUNT] = { 0 }, total = 0;
	uint32_t reported = 0, isolated = 0;
	FA_FOR_EACH_BLOCK(fa, b) {
		const struct mblock *blk = &fa->blocks[b];
		int err = check_block_frames(fa, b, nr, why, why_len);
		if (!err)
			err = check_block_place(fa, b, why, why_len);
		if (err)
			return err;
		total += blk->ncap;
		if (blk->flags & BF_OFFLINE)
			return fail(why, why_len, "block %u: left half taken out", b);
		if (blk->flags & BF_REPORTED) {
			if (blk->kind != BK_FREE)
				return fail(why, why_len, "block %u: reported but kind %u", b, blk->kind);
			reported++;
		}
		isolated += blk->kind == BK_ISOLATED;
	}
	for (unsigned k = 0; k < FA_NKINDS; k++)
		if (fa->cur[k] != FA_NIL && (!fa_block_present(fa, fa->cur[k]) ||
		    !(fa->blocks[fa->cur[k]].flags & BF_CURRENT) || fa->blocks[fa->cur[k]].kind != k))
			return fail(why, why_len, "current block of kind %u is %u but not marked", k, fa->cur[k]);
	int err = check_lists(fa, why, why_len);
	if (err)
		return err;
	if (total != fa->total)
		return fail(why, why_len, "total %llu but blocks hold %llu frames",
		            (unsigned long long)fa->total, (unsigned long long)total);
	for (unsigned s = FS_FREE; s <= FS_BALLOON; s++)
		if (nr[s] != fa->nr[s])
			return fail(why, why_len, "state %u: counter %llu but %llu frames", s,
			            (unsigned long long)fa->nr[s], (unsigned long long)nr[s]);
	if (fa->nr[FS_FREE] + fa->nr[FS_KERNEL] + fa->nr[FS_MOVABLE] + fa->nr[FS_BALLOON] != fa->total)
		return fail(why, why_len, "free + used + balloon != total");
	if (reported != fa->nr_reported_blocks || isolated != fa->nr_isolated_blocks)
		return fail(why, why_len, "reported/isolated counters %u/%u but %u/%u blocks",
		            fa->nr_reported_blocks, fa->nr_isolated_blocks, reported, isolated);
	return MM_OK;
}
