/*
 * hotplug.c - memory that arrives and leaves while the kernel runs (virtio-mem
 * plugs and unplugs device blocks). See frame.h for the contract of
 * fa_hot_add and fa_hot_remove.
 *
 * Why it is cheap here: metadata lives in sections (frame.h), so adding
 * memory far above boot RAM only populates the sections it touches; and
 * unmovable and movable memory never share a 2 MiB block, so a block is
 * either free, emptiable by moving its frames (each has exactly one mapping
 * to repoint), or pinned - decided by its kind alone, before anything moves.
 */
#include <string.h>
#include "mm/frame_internal.h"
#include "mm/pgtable.h"

/* Whole blocks of a range inside the span: MM_OK and the block numbers. */
static int range_blocks(const struct frame_alloc *fa, uint64_t pfn, uint64_t count, uint64_t limit_blocks,
                        uint32_t *b0, uint32_t *b1)
{
	if (count == 0 || ((pfn | count) & (PAGES_PER_BLOCK - 1)))
		return MM_EINVAL;
	if (pfn < fa->base_pfn)
		return MM_ERANGE;
	uint64_t first = (pfn - fa->base_pfn) >> BLOCK_ORDER, n = count >> BLOCK_ORDER;
	if (first >= limit_blocks || n > limit_blocks - first)
		return MM_ERANGE;
	*b0 = (uint32_t)first;
	*b1 = (uint32_t)(first + n);
	return MM_OK;
}

int fa_hot_add(struct frame_alloc *fa, uint64_t pfn, uint64_t count)
{
	uint32_t b0, b1;
	int err = range_blocks(fa, pfn, count, fa->max_blocks, &b0, &b1);
	if (err)
		return err;
	/* Every block must hold no RAM yet; blocks of absent sections do not. */
	for (uint32_t b = b0; b < b1; b++)
		if (fa_block_present(fa, b) && fa->blocks[b].kind != BK_ABSENT)
			return MM_ESTATE;

	/* Grow the span first (new sections start absent), then the metadata. */
	if (b1 > fa->nblocks) {
		uint64_t old_nsec = ((uint64_t)fa->nblocks + FA_SECTION_BLOCKS - 1) >> FA_SECTION_SHIFT;
		uint64_t nsec = ((uint64_t)b1 + FA_SECTION_BLOCKS - 1) >> FA_SECTION_SHIFT;
		if (nsec > old_nsec) {
			if (fa->meta.populate && fa->meta.populate(fa->meta.ctx, fa->sections + old_nsec,
			                                           nsec - old_nsec) != MM_OK)
				return MM_ENOMEM;
			memset(fa->sections + old_nsec, 0, nsec - old_nsec);
		}
		fa->nblocks = b1;
	}
	if (fa_sections_online(fa, b0 >> FA_SECTION_SHIFT,
	                       ((uint64_t)(b1 - 1) >> FA_SECTION_SHIFT) + 1) != MM_OK)
		return MM_ENOMEM;   /* the span stays grown: absent sections cost nothing */

	for (uint32_t b = b0; b < b1; b++) {
		struct mblock *blk = &fa->blocks[b];
		memset(blk->map, 0, sizeof blk->map);
		memset(fa->desc + ((uint64_t)b << BLOCK_ORDER), fd_make(FS_FREE, 0), PAGES_PER_BLOCK);
		blk->nfree = blk->ncap = PAGES_PER_BLOCK;
		blk->hint = 0;
		blk->flags = BF_HOT;    /* not resident: the host has not populated it */
		blk->kind = BK_FREE;
		fa_list_add(fa, FA_L_FREE_HOT, b);
		fa->total += PAGES_PER_BLOCK;
		fa->nr[FS_FREE] += PAGES_PER_BLOCK;
	}
	return MM_OK;
}

/* Can block b be taken out? MM_OK (free or all frames movable), else why not. */
static int removable(const struct frame_alloc *fa, uint32_t b)
{
	const struct mblock *blk = &fa->blocks[b];
	if (blk->kind == BK_FREE)
		return MM_OK;
	if (blk->kind == BK_ABSENT || (blk->flags & BF_HOLEY))
		return MM_ESTATE;
	if (blk->kind != BK_MOVABLE)
		return MM_EBUSY;     /* unmovable, lent to the balloon, being reported */
	uint64_t base = (uint64_t)b << BLOCK_ORDER;
	for (unsigned w = 0; w < FA_WORDS; w++)
		for (uint64_t m = blk->map[w]; m; m &= m - 1) {
			uint64_t idx = base + w * 64 + (unsigned)__builtin_ctzll(m);
			if (fa->desc[idx] != fd_make(FS_MOVABLE, 0) || fa->owner[idx] == 0)
				return MM_EBUSY;
		}
	return MM_OK;
}

/* Take block b off every list and out of allocation's reach. */
static void fence(struct frame_alloc *fa, uint32_t b)
{
	struct mblock *blk = &fa->blocks[b];
	if (blk->flags & BF_CURRENT) {
		fa->cur[blk->kind] = FA_NIL;
		blk->flags &= (uint8_t)~BF_CURRENT;
	}
	if (blk->list != FA_LIST_NONE)
		fa_list_del(fa, b);
	blk->flags |= BF_OFFLINE;
}

/* Undo fence: the block goes back where its state says. */
static void unfence(struct frame_alloc *fa, uint32_t b)
{
	struct mblock *blk = &fa->blocks[b];
	blk->flags &= (uint8_t)~BF_OFFLINE;
	if (blk->nfree == PAGES_PER_BLOCK)
		fa_block_make_free(fa, b, (blk->flags & BF_RESIDENT) != 0);
	else
		fa_block_settle(fa, b);
}

/* Move frame idx of a fenced block to a frame outside it. */
static int evacuate(struct frame_alloc *fa, struct pgtable *pt, uint64_t idx)
{
	uint64_t owner = fa->owner[idx], dst;
	if (!fa_try_alloc(fa, BK_MOVABLE, 0, FS_MOVABLE, owner, &dst))
		return MM_ENOMEM;
	uint64_t src_pa = (fa->base_pfn + idx) << PAGE_SHIFT, dst_pa = dst << PAGE_SHIFT;
	memcpy(pt->ops->phys_to_virt(pt->ctx, dst_pa), pt->ops->phys_to_virt(pt->ctx, src_pa), PAGE_SIZE);
	if (pt_remap(pt, owner, src_pa, dst_pa) != MM_OK) {
		fa_release_run(fa, dst - fa->base_pfn, 0);
		return MM_EBUSY;
	}
	fa_release_run(fa, idx, 0);
	return MM_OK;
}

/* A section none of whose blocks holds RAM any more goes absent and gives
 * back its descriptors and owner words (page aligned per section); its block
 * headers stay, small and shared with neighbours. Metadata then costs
 * nothing for memory that was unplugged, as for memory never plugged. */
static void sections_release(struct frame_alloc *fa, uint64_t s0, uint64_t s1)
{
	for (uint64_t s = s0; s < s1; s++) {
		if (!fa->sections[s] || !fa->meta.depopulate)
			continue;
		uint64_t b0 = s << FA_SECTION_SHIFT, b1 = b0 + FA_SECTION_BLOCKS;
		if (b1 > fa->max_blocks)
			b1 = fa->max_blocks;
		int empty = 1;
		for (uint64_t b = b0; b < b1 && b < fa->nblocks && empty; b++)
			empty = fa->blocks[b].kind == BK_ABSENT;
		if (!empty)
			continue;
		fa->sections[s] = 0;
		uint64_t f0 = b0 << BLOCK_ORDER, nf = (b1 - b0) << BLOCK_ORDER;
		fa->meta.depopulate(fa->meta.ctx, fa->owner + f0, nf * sizeof(uint64_t));
		fa->meta.depopulate(fa->meta.ctx, fa->desc + f0, nf);
	}
}

int fa_hot_remove(struct frame_alloc *fa, struct pgtable *pt, uint64_t pfn, uint64_t count,
                  uint64_t *moved)
{
	uint32_t b0, b1;
	uint64_t nmoved = 0;
	if (moved)
		*moved = 0;
	int err = range_blocks(fa, pfn, count, fa->nblocks, &b0, &b1);
	if (err)
		return err;
	uint64_t used = 0;
	for (uint32_t b = b0; b < b1; b++) {
		if (!fa_block_present(fa, b))
			return MM_ESTATE;
		if ((err = removable(fa, b)) != MM_OK)
			return err;
		used += PAGES_PER_BLOCK - fa->blocks[b].nfree;
	}
	if (used && !pt)
		return MM_EINVAL;

	for (uint32_t b = b0; b < b1; b++)
		fence(fa, b);
	for (uint32_t b = b0; b < b1 && !err; b++) {
		struct mblock *blk = &fa->blocks[b];
		uint64_t base = (uint64_t)b << BLOCK_ORDER;
		for (unsigned w = 0; w < FA_WORDS && !err; w++)
			for (uint64_t m = blk->map[w]; m && !err; m &= m - 1) {
				err = evacuate(fa, pt, base + w * 64 + (unsigned)__builtin_ctzll(m));
				nmoved += err == MM_OK;
			}
	}
	if (moved)
		*moved = nmoved;
	if (err) {
		for (uint32_t b = b0; b < b1; b++)
			unfence(fa, b);
		return err;
	}

	/* Every block is wholly free and fenced: it stops being RAM. */
	for (uint32_t b = b0; b < b1; b++) {
		struct mblock *blk = &fa->blocks[b];
		if (blk->flags & BF_REPORTED)
			fa->nr_reported_blocks--;
		fa->total -= blk->ncap;
		fa->nr[FS_FREE] -= blk->ncap;
		memset(fa->desc + ((uint64_t)b << BLOCK_ORDER), fd_make(FS_ABSENT, 0), PAGES_PER_BLOCK);
		memset(blk->map, 0xff, sizeof blk->map);
		blk->nfree = blk->ncap = 0;
		blk->flags = 0;
		blk->hint = 0;
		blk->kind = BK_ABSENT;
	}
	sections_release(fa, b0 >> FA_SECTION_SHIFT, ((uint64_t)(b1 - 1) >> FA_SECTION_SHIFT) + 1);
	return MM_OK;
}
