/*
 * frame_internal.h - the allocator's building blocks, shared by frame.c,
 * frame_init.c, frame_balloon.c, frame_check.c, hotplug.c and compact.c.
 * Not for other modules.
 *
 * Indices: `idx` is a frame index relative to fa->base_pfn, `b` a block
 * index, `i` a frame index inside its block (0..511).
 *
 * Invariants these helpers keep (fa_check() verifies them):
 *  - blk->nfree == number of clear bits in blk->map;
 *  - a block of kind UNMOVABLE/MOVABLE that is not current is on the partial
 *    list of its kind and bucket when 0 < nfree < 512, on no list when full,
 *    and never wholly free (it becomes BK_FREE then);
 *  - BK_FREE blocks are on FA_L_FREE_RES, FA_L_FREE_NONRES or (hot-added)
 *    FA_L_FREE_HOT: fa_free_list_of();
 *  - current, BALLOON, ISOLATED and ABSENT blocks are on no list.
 */
#ifndef MM_FRAME_INTERNAL_H
#define MM_FRAME_INTERNAL_H

#include "mm/frame.h"

#define FA_WORDS (PAGES_PER_BLOCK / 64)

/* Take a wholly free block for `kind` (resident first; else a wholly free
 * current block of either kind). FA_NIL if none. The block is on no list. */
uint32_t fa_grab_free_block(struct frame_alloc *fa, enum block_kind kind);
/* The same; resident_only: never a block the host does not back (a wholly
 * free current block counts as resident: it was in use). */
uint32_t fa_grab_block(struct frame_alloc *fa, enum block_kind kind, int resident_only);
/* Make the current block of `kind` an ordinary block and settle it. */
void fa_uncurrent(struct frame_alloc *fa, enum block_kind kind);


static inline unsigned fa_bucket(unsigned nfree)
{
	return (nfree - 1) >> FA_BUCKET_SHIFT;
}

static inline uint64_t fa_block_pfn(const struct frame_alloc *fa, uint32_t b)
{
	return fa->base_pfn + ((uint64_t)b << BLOCK_ORDER);
}

static inline uint64_t fa_nframes(const struct frame_alloc *fa)
{
	return (uint64_t)fa->nblocks << BLOCK_ORDER;
}

/* ---- sections: only blocks of present sections have metadata ---- */

static inline int fa_block_present(const struct frame_alloc *fa, uint32_t b)
{
	return b < fa->nblocks && fa->sections[b >> FA_SECTION_SHIFT];
}

static inline int fa_idx_present(const struct frame_alloc *fa, uint64_t idx)
{
	return idx < fa_nframes(fa) && fa->sections[idx >> (BLOCK_ORDER + FA_SECTION_SHIFT)];
}

/* Next present block after b (or the first with b = FA_NIL); nblocks at the
 * end. Whole absent sections are skipped without touching their metadata. */
static inline uint32_t fa_next_block(const struct frame_alloc *fa, uint32_t b)
{
	b = b == FA_NIL ? 0 : b + 1;
	while (b < fa->nblocks && !fa->sections[b >> FA_SECTION_SHIFT])
		b = (b | (FA_SECTION_BLOCKS - 1)) + 1;
	return b < fa->nblocks ? b : fa->nblocks;
}
#define FA_FOR_EACH_BLOCK(fa, b) \
	for (uint32_t b = fa_next_block((fa), FA_NIL); b < (fa)->nblocks; b = fa_next_block((fa), b))

/* Metadata of section s set up as holding no RAM (hotplug.c, frame_init.c). */
void fa_section_init(struct frame_alloc *fa, uint64_t s);
/* Make sections [s0, s1) present (populate + init those that were not). */
int fa_sections_online(struct frame_alloc *fa, uint64_t s0, uint64_t s1);
/* One allocation attempt without the OOM notifiers (frame.c). */
int fa_try_alloc(struct frame_alloc *fa, enum block_kind kind, unsigned order,
                 enum frame_state state, uint64_t owner, uint64_t *pfn);

/* ---- block lists ---- */

static inline void fa_list_add(struct frame_alloc *fa, unsigned l, uint32_t b)
{
	struct mblock *blk = &fa->blocks[b];
	struct fa_list *L = &fa->lists[l];
	blk->prev = FA_NIL;
	blk->next = L->head;
	if (L->head != FA_NIL)
		fa->blocks[L->head].prev = b;
	L->head = b;
	L->count++;
	blk->list = (uint8_t)l;
	if (l >= FA_L_PART_BASE)
		fa->part_mask[(l - FA_L_PART_BASE) / FA_NBUCKETS] |= (uint16_t)(1u << ((l - FA_L_PART_BASE) % FA_NBUCKETS));
}

static inline void fa_list_del(struct frame_alloc *fa, uint32_t b)
{
	struct mblock *blk = &fa->blocks[b];
	unsigned l = blk->list;
	struct fa_list *L = &fa->lists[l];
	if (blk->prev != FA_NIL)
		fa->blocks[blk->prev].next = blk->next;
	else
		L->head = blk->next;
	if (blk->next != FA_NIL)
		fa->blocks[blk->next].prev = blk->prev;
	L->count--;
	blk->list = FA_LIST_NONE;
	blk->prev = blk->next = FA_NIL;
	if (l >= FA_L_PART_BASE && L->head == FA_NIL)
		fa->part_mask[(l - FA_L_PART_BASE) / FA_NBUCKETS] &= (uint16_t)~(1u << ((l - FA_L_PART_BASE) % FA_NBUCKETS));
}

/* The free list a wholly free block belongs on. */
static inline unsigned fa_free_list_of(const struct mblock *blk)
{
	if (blk->flags & BF_HOT)
		return FA_L_FREE_HOT;
	return (blk->flags & BF_RESIDENT) ? FA_L_FREE_RES : FA_L_FREE_NONRES;
}

/* A block just became wholly free: it was in use, so it may be resident. */
static inline void fa_block_make_free(struct frame_alloc *fa, uint32_t b, int resident)
{
	struct mblock *blk = &fa->blocks[b];
	if (blk->list != FA_LIST_NONE)
		fa_list_del(fa, b);
	blk->kind = BK_FREE;
	blk->hint = 0;
	if (resident)
		blk->flags |= BF_RESIDENT;
	else
		blk->flags &= (uint8_t)~BF_RESIDENT;
	fa_list_add(fa, fa_free_list_of(blk), b);
	if (resident && !(blk->flags & BF_HOT) && fa->on_free_block)
		fa->on_free_block(fa->on_free_block_ctx);
}

/* Put a non-current unmovable/movable block on the list its free count asks
 * for. Cheap when nothing changes (the common case: same bucket). */
static inline void fa_block_settle(struct frame_alloc *fa, uint32_t b)
{
	struct mblock *blk = &fa->blocks[b];
	if (blk->flags & (BF_CURRENT | BF_OFFLINE))
		return;
	if (blk->nfree == PAGES_PER_BLOCK) {
		fa_block_make_free(fa, b, 1);
		return;
	}
	unsigned want = blk->nfree ? FA_L_PART(blk->kind, fa_bucket(blk->nfree)) : FA_LIST_NONE;
	if (want == blk->list)
		return;
	if (blk->list != FA_LIST_NONE)
		fa_list_del(fa, b);
	if (want != FA_LIST_NONE)
		fa_list_add(fa, want, b);
}

/* ---- bitmap runs inside a block ---- */

static inline uint64_t fa_word_mask(unsigned i, unsigned order)
{
	unsigned n = 1u << order;
	return (n >= 64 ? ~0ull : ((1ull << n) - 1)) << (i & 63);
}

/* 1 if every frame of the run [i, i + 2^order) is marked in the bitmap. */
static inline int fa_run_all_set(const struct mblock *blk, unsigned i, unsigned order)
{
	if (order < 6) {
		uint64_t m = fa_word_mask(i, order);
		return (blk->map[i >> 6] & m) == m;
	}
	for (unsigned w = i >> 6; w < (i >> 6) + (1u << (order - 6)); w++)
		if (blk->map[w] != ~0ull)
			return 0;
	return 1;
}

static inline void fa_run_set(struct mblock *blk, unsigned i, unsigned order)
{
	if (order < 6) {
		blk->map[i >> 6] |= fa_word_mask(i, order);
		return;
	}
	for (unsigned w = i >> 6; w < (i >> 6) + (1u << (order - 6)); w++)
		blk->map[w] = ~0ull;
}

static inline void fa_run_clear(struct mblock *blk, unsigned i, unsigned order)
{
	if (order < 6) {
		blk->map[i >> 6] &= ~fa_word_mask(i, order);
	} else {
		for (unsigned w = i >> 6; w < (i >> 6) + (1u << (order - 6)); w++)
			blk->map[w] = 0;
	}
	if ((i >> 6) < blk->hint)
		blk->hint = (uint8_t)(i >> 6);
}

/* First naturally aligned free run of 2^order frames in the block, or -1.
 * For runs inside one word, fold the free mask onto itself: after folding by
 * 1, 2, 4, ... bit k is set iff frames k .. k+n-1 are all free. */
static inline int fa_find_run(const struct mblock *blk, unsigned order)
{
	static const uint64_t aligned[6] = {
		~0ull, 0x5555555555555555ull, 0x1111111111111111ull,
		0x0101010101010101ull, 0x0001000100010001ull, 0x0000000100000001ull,
	};
	unsigned w = blk->hint;
	if (order < 6) {
		unsigned n = 1u << order;
		for (; w < FA_WORDS; w++) {
			uint64_t f = ~blk->map[w];
			for (unsigned s = 1; s < n; s <<= 1)
				f &= f >> s;
			f &= aligned[order];
			if (f)
				return (int)(w * 64 + (unsigned)__builtin_ctzll(f));
		}
		return -1;
	}
	unsigned nw = 1u << (order - 6);
	for (w &= ~(nw - 1); w < FA_WORDS; w += nw) {
		unsigned k = 0;
		while (k < nw && blk->map[w + k] == 0)
			k++;
		if (k == nw)
			return (int)(w * 64);
	}
	return -1;
}

/* Mark a found run allocated and write its head descriptor. */
/* Take a 2^order run from block b for `state` (frame.c); 1 if taken. */
int fa_try_block(struct frame_alloc *fa, uint32_t b, unsigned order,
                 enum frame_state state, uint64_t owner, uint64_t *pfn);

static inline uint64_t fa_take_run(struct frame_alloc *fa, uint32_t b, unsigned i, unsigned order,
                                   enum frame_state state, uint64_t owner_va)
{
	struct mblock *blk = &fa->blocks[b];
	uint64_t idx = ((uint64_t)b << BLOCK_ORDER) + i;
	unsigned n = 1u << order;
	fa_run_set(blk, i, order);
	blk->nfree = (uint16_t)(blk->nfree - n);
	fa->desc[idx] = fd_make(state, order);
	if (state == FS_MOVABLE)
		fa->owner[idx] = owner_va;
	fa->nr[FS_FREE] -= n;
	fa->nr[state] += n;
	return fa->base_pfn + idx;
}

/* Free a run whose head descriptor was checked by the caller. The block is
 * resettled (and becomes BK_FREE, resident, if it emptied). */
static inline void fa_release_run(struct frame_alloc *fa, uint64_t idx, unsigned order)
{
	uint32_t b = (uint32_t)(idx >> BLOCK_ORDER);
	struct mblock *blk = &fa->blocks[b];
	unsigned n = 1u << order;
	enum frame_state state = (enum frame_state)fd_state(fa->desc[idx]);
	fa_run_clear(blk, (unsigned)(idx & (PAGES_PER_BLOCK - 1)), order);
	blk->nfree = (uint16_t)(blk->nfree + n);
	fa->desc[idx] = fd_make(FS_FREE, 0);
	fa->nr[state] -= n;
	fa->nr[FS_FREE] += n;
	if (blk->flags & BF_CURRENT) {
		/* An emptied current block stays current (alloc/free ping-pong
		 * costs nothing) unless fuller blocks of its kind could serve
		 * instead: then it goes back to the free blocks. */
		if (blk->nfree == PAGES_PER_BLOCK && fa->part_mask[blk->kind])
			fa_uncurrent(fa, (enum block_kind)blk->kind);
		return;
	}
	fa_block_settle(fa, b);
}


#endif
