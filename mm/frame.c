/*
 * frame.c - frame allocator: block choice, allocation and free of unmovable
 * runs and movable frames, the OOM slow path, queries. Set-up is
 * frame_init.c. See frame.h for the contract and frame_internal.h for the
 * invariants.
 */
#include <string.h>
#include "mm/frame_internal.h"
#include "klog.h"
/* ---------------------------------------------------------------- block choice */

uint32_t fa_grab_free_block(struct frame_alloc *fa, enum block_kind kind)
{
	return fa_grab_block(fa, kind, 0);
}

uint32_t fa_grab_block(struct frame_alloc *fa, enum block_kind kind, int resident_only)
{
	/* Memory the host backs first. Hot-added memory is for movable memory
	 * only (what it holds must stay movable for it to be given back), and
	 * movable memory takes it before boot RAM the host never backed, which
	 * then stays for the kernel's own needs (Linux's ZONE_MOVABLE order). */
	uint32_t b = fa->lists[FA_L_FREE_RES].head;
	if (b == FA_NIL && kind == BK_MOVABLE)
		b = fa->lists[FA_L_FREE_HOT].head;
	if (b == FA_NIL && !resident_only)
		b = fa->lists[FA_L_FREE_NONRES].head;
	if (b != FA_NIL) {
		fa_list_del(fa, b);
	} else {
		/* A current block that emptied stays current (so alloc/free
		 * ping-pong does not churn lists); it is still a free block. */
		for (unsigned k = 0; k < FA_NKINDS && b == FA_NIL; k++) {
			uint32_t c = fa->cur[k];
			if (c != FA_NIL && fa->blocks[c].nfree == PAGES_PER_BLOCK &&
			    (kind == BK_MOVABLE || !(fa->blocks[c].flags & BF_HOT))) {
				fa->blocks[c].flags &= (uint8_t)~BF_CURRENT;
				fa->cur[k] = FA_NIL;
				b = c;
			}
		}
		if (b == FA_NIL)
			return FA_NIL;
	}
	struct mblock *blk = &fa->blocks[b];
	if (blk->flags & BF_REPORTED)
		fa->nr_reported_blocks--;
	blk->kind = (uint8_t)kind;
	blk->hint = 0;
	blk->flags &= (uint8_t)~(BF_REPORTED | BF_CURRENT);
	if (kind == BK_BALLOON)
		blk->flags &= (uint8_t)~BF_RESIDENT;   /* the host drops it */
	else
		blk->flags |= BF_RESIDENT;             /* about to be written */
	return b;
}

void fa_uncurrent(struct frame_alloc *fa, enum block_kind kind)
{
	uint32_t c = fa->cur[kind];
	if (c == FA_NIL)
		return;
	fa->blocks[c].flags &= (uint8_t)~BF_CURRENT;
	fa->cur[kind] = FA_NIL;
	fa_block_settle(fa, c);
}

static void make_current(struct frame_alloc *fa, enum block_kind kind, uint32_t b)
{
	if (fa->blocks[b].list != FA_LIST_NONE)
		fa_list_del(fa, b);
	fa->blocks[b].flags |= BF_CURRENT;
	fa->cur[kind] = b;
}

/* Try a run in block b; on success settle it (unless current) and return 1. */
int fa_try_block(struct frame_alloc *fa, uint32_t b, unsigned order,
                 enum frame_state state, uint64_t owner, uint64_t *pfn)
{
	struct mblock *blk = &fa->blocks[b];
	if (blk->nfree < (1u << order))
		return 0;
	int i = fa_find_run(blk, order);
	if (i < 0)
		return 0;
	*pfn = fa_take_run(fa, b, (unsigned)i, order, state, owner);
	fa_block_settle(fa, b);
	return 1;
}

/* One attempt without OOM notifiers. */
int fa_try_alloc(struct frame_alloc *fa, enum block_kind kind, unsigned order,
                     enum frame_state state, uint64_t owner, uint64_t *pfn)
{
	uint32_t b;
	if (order == BLOCK_ORDER) {
		b = fa_grab_free_block(fa, kind);
		if (b == FA_NIL)
			return 0;
		*pfn = fa_take_run(fa, b, 0, order, state, owner);
		return 1;   /* full: on no list */
	}
	b = fa->cur[kind];
	if (b != FA_NIL && fa_try_block(fa, b, order, state, owner, pfn))
		return 1;
	if (order == 0) {
		/* Current block exhausted: the fullest partial block of this
		 * kind takes over, so sparse blocks drain; else a free block. */
		fa_uncurrent(fa, kind);
		uint16_t mask = fa->part_mask[kind];
		if (mask)
			b = fa->lists[FA_L_PART(kind, __builtin_ctz(mask))].head;
		else if ((b = fa_grab_free_block(fa, kind)) == FA_NIL)
			return 0;
		make_current(fa, kind, b);
		return fa_try_block(fa, b, 0, state, owner, pfn);
	}
	/* Runs: fullest partial blocks first, a bounded number of tries. */
	unsigned tries = 0;
	for (unsigned bk = fa_bucket(1u << order); bk < FA_NBUCKETS; bk++)
		for (b = fa->lists[FA_L_PART(kind, bk)].head; b != FA_NIL && tries < 16;
		     b = fa->blocks[b].next, tries++)
			if (fa_try_block(fa, b, order, state, owner, pfn))
				return 1;
	b = fa_grab_free_block(fa, kind);
	if (b != FA_NIL) {
		*pfn = fa_take_run(fa, b, 0, order, state, owner);
		if (fa->cur[kind] == FA_NIL)
			make_current(fa, kind, b);
		else
			fa_block_settle(fa, b);
		return 1;
	}
	/* No free block left: look at every partial block before failing. */
	for (unsigned bk = fa_bucket(1u << order); bk < FA_NBUCKETS; bk++)
		for (b = fa->lists[FA_L_PART(kind, bk)].head; b != FA_NIL; b = fa->blocks[b].next)
			if (fa_try_block(fa, b, order, state, owner, pfn))
				return 1;
	return 0;
}

/* Ask the notifiers (compaction, balloon deflate) for memory; 1 if any came. */
static int run_oom_notifiers(struct frame_alloc *fa, unsigned order, enum block_kind kind)
{
	if (fa->in_oom || fa->noom == 0)
		return 0;
	fa->in_oom = 1;
	fa->oom_calls++;
	uint64_t got = 0;
	for (unsigned k = 0; k < fa->noom && got < (1u << order); k++)
		got += fa->oom[k].fn(fa->oom[k].ctx, order, kind);
	fa->in_oom = 0;
	return got > 0;
}

static int alloc_slow(struct frame_alloc *fa, enum block_kind kind, unsigned order,
                      enum frame_state state, uint64_t owner, uint64_t *pfn)
{
	for (unsigned attempt = 0;; attempt++) {
		if (fa_try_alloc(fa, kind, order, state, owner, pfn))
			return MM_OK;
		if (attempt == 3 || !run_oom_notifiers(fa, order, kind))
			return MM_ENOMEM;
	}
}

/* The fast path: one 4 KiB frame from the current block. */
static inline int alloc0(struct frame_alloc *fa, enum block_kind kind, enum frame_state state,
                         uint64_t owner, uint64_t *pfn)
{
	uint32_t b = fa->cur[kind];
	if (__builtin_expect(b != FA_NIL, 1)) {
		struct mblock *blk = &fa->blocks[b];
		if (__builtin_expect(blk->nfree != 0, 1)) {
			unsigned w = blk->hint;
			while (blk->map[w] == ~0ull)   /* nfree > 0: a clear bit exists at or after hint */
				w++;
			blk->hint = (uint8_t)w;
			unsigned i = w * 64 + (unsigned)__builtin_ctzll(~blk->map[w]);
			*pfn = fa_take_run(fa, b, i, 0, state, owner);
			return MM_OK;
		}
	}
	return alloc_slow(fa, kind, 0, state, owner, pfn);
}

int fa_alloc(struct frame_alloc *fa, unsigned order, uint64_t *pfn)
{
	if (!pfn || order > FA_MAX_ORDER)
		return MM_EINVAL;
	if (order == 0)
		return alloc0(fa, BK_UNMOVABLE, FS_KERNEL, 0, pfn);
	return alloc_slow(fa, BK_UNMOVABLE, order, FS_KERNEL, 0, pfn);
}

int fa_alloc_movable(struct frame_alloc *fa, uint64_t owner_va, uint64_t *pfn)
{
	/* The owner mapping is what makes the frame movable: it must exist
	 * and be page aligned. */
	if (!pfn || owner_va == 0 || (owner_va & (PAGE_SIZE - 1)))
		return MM_EINVAL;
	return alloc0(fa, BK_MOVABLE, FS_MOVABLE, owner_va, pfn);
}

static int bad_free(struct frame_alloc *fa, uint64_t pfn, unsigned order, int err)
{
	fa->bad_frees++;
	klog("mm: bad free of pfn %#llx order %u: %s", (unsigned long long)pfn, order, mm_strerror(err));
	return err;
}

int fa_free(struct frame_alloc *fa, uint64_t pfn, unsigned order)
{
	uint64_t idx = pfn - fa->base_pfn;
	if (order > FA_MAX_ORDER)
		return bad_free(fa, pfn, order, MM_EINVAL);
	if (!fa_idx_present(fa, idx))
		return bad_free(fa, pfn, order, MM_ERANGE);
	uint8_t d = fa->desc[idx];
	if (order == 0 && (d == fd_make(FS_KERNEL, 0) || d == fd_make(FS_MOVABLE, 0))) {
		/* Fast path for one frame: the block changes lists only when
		 * its free count enters a new bucket (1, 33, 65, ...) or the
		 * block empties, so most frees touch no list. */
		struct mblock *blk = &fa->blocks[idx >> BLOCK_ORDER];
		unsigned i = (unsigned)(idx & (PAGES_PER_BLOCK - 1));
		blk->map[i >> 6] &= ~(1ull << (i & 63));
		if ((i >> 6) < blk->hint)
			blk->hint = (uint8_t)(i >> 6);
		unsigned nfree = ++blk->nfree;
		fa->desc[idx] = fd_make(FS_FREE, 0);
		fa->nr[fd_state(d)]--;
		fa->nr[FS_FREE]++;
		if (__builtin_expect(((nfree - 1) & ((1u << FA_BUCKET_SHIFT) - 1)) == 0 ||
		                     nfree == PAGES_PER_BLOCK, 0)) {
			if (!(blk->flags & BF_CURRENT))
				fa_block_settle(fa, (uint32_t)(idx >> BLOCK_ORDER));
			else if (nfree == PAGES_PER_BLOCK && fa->part_mask[blk->kind])
				fa_uncurrent(fa, (enum block_kind)blk->kind);
		}
		return MM_OK;
	}
	if (__builtin_expect(d != fd_make(FS_KERNEL, order) && d != fd_make(FS_MOVABLE, order), 0)) {
		unsigned st = fd_state(d);
		if (st == FS_KERNEL || st == FS_MOVABLE)
			return bad_free(fa, pfn, order, MM_EORDER);
		return bad_free(fa, pfn, order, st == FS_BALLOON ? MM_ESTATE : MM_ENOTALLOC);
	}
	fa_release_run(fa, idx, order);
	return MM_OK;
}

int fa_order_for_pages(uint64_t pages, unsigned *order)
{
	if (pages == 0 || pages > PAGES_PER_BLOCK || !order)
		return MM_EINVAL;
	unsigned o = 0;
	while ((1ull << o) < pages)
		o++;
	*order = o;
	return MM_OK;
}

int fa_set_owner(struct frame_alloc *fa, uint64_t pfn, uint64_t owner_va)
{
	uint64_t idx = pfn - fa->base_pfn;
	if (!fa_idx_present(fa, idx))
		return MM_ERANGE;
	if (owner_va == 0 || (owner_va & (PAGE_SIZE - 1)))
		return MM_EINVAL;
	if (fd_state(fa->desc[idx]) != FS_MOVABLE)
		return MM_ESTATE;
	fa->owner[idx] = owner_va;
	return MM_OK;
}

int fa_add_oom_notifier(struct frame_alloc *fa, fa_oom_fn fn, void *ctx)
{
	if (!fn)
		return MM_EINVAL;
	if (fa->noom == FA_MAX_NOTIFIERS)
		return MM_ENOSPC;
	fa->oom[fa->noom].fn = fn;
	fa->oom[fa->noom].ctx = ctx;
	fa->noom++;
	return MM_OK;
}

/* ---------------------------------------------------------------- queries */

int fa_frame_info(const struct frame_alloc *fa, uint64_t pfn, struct frame_info *out)
{
	uint64_t idx = pfn - fa->base_pfn;
	if (!fa_idx_present(fa, idx))
		return MM_ERANGE;
	const struct mblock *blk = &fa->blocks[idx >> BLOCK_ORDER];
	unsigned i = (unsigned)(idx & (PAGES_PER_BLOCK - 1));
	memset(out, 0, sizeof *out);
	out->block_kind = (enum block_kind)blk->kind;
	out->block_flags = blk->flags;
	out->head = pfn;
	uint8_t d = fa->desc[idx];
	if (fd_state(d) != FS_FREE) {
		out->state = (enum frame_state)fd_state(d);
		out->order = fd_order(d);
		out->owner_va = fd_state(d) == FS_MOVABLE ? fa->owner[idx] : 0;
		return MM_OK;
	}
	if (!((blk->map[i >> 6] >> (i & 63)) & 1)) {
		out->state = (blk->flags & BF_REPORTED) ? FS_REPORTED : FS_FREE;
		return MM_OK;
	}
	/* In use but not a head: find the run that covers it. */
	for (unsigned o = 1; o <= FA_MAX_ORDER; o++) {
		uint64_t h = idx & ~((1ull << o) - 1);
		uint8_t hd = fa->desc[h];
		if (fd_state(hd) != FS_FREE && fd_state(hd) != FS_ABSENT && fd_order(hd) >= o) {
			out->state = (enum frame_state)fd_state(hd);
			out->order = fd_order(hd);
			out->head = fa->base_pfn + h;
			return MM_OK;
		}
	}
	return MM_ESTATE;   /* bitmap says used, no head covers it: corruption */
}

uint64_t fa_free_blocks(const struct frame_alloc *fa)
{
	uint64_t n = fa->lists[FA_L_FREE_RES].count + fa->lists[FA_L_FREE_NONRES].count +
	             fa->lists[FA_L_FREE_HOT].count;
	for (unsigned k = 0; k < FA_NKINDS; k++)
		if (fa->cur[k] != FA_NIL && fa->blocks[fa->cur[k]].nfree == PAGES_PER_BLOCK)
			n++;
	return n;
}

uint64_t fa_free_pages(const struct frame_alloc *fa)
{
	return fa->nr[FS_FREE] - (uint64_t)fa->nr_isolated_blocks * PAGES_PER_BLOCK;
}
