/*
 * frame_init.c - the frame allocator's set-up: metadata layout (dense for
 * host tests, sparse sections for the kernel), sections coming online from
 * the boot memory map (all at once, or a few at a time after boot), and the
 * boot-time claim and reclaim of ranges. Allocation is frame.c; see frame.h
 * for the contract and frame_internal.h for the invariants.
 */
#include <string.h>
#include "mm/frame_internal.h"
#include "klog.h"
/* ---------------------------------------------------------------- set-up */

/* 1: RAM that starts free; 2: RAM that starts allocated (kernel, loader data,
 * tables to parse); 0: not ours to manage. */
static int region_class(uint32_t type)
{
	switch (type) {
	case BOOT_MEM_USABLE:
		return 1;
	case BOOT_MEM_RECLAIMABLE:
	case BOOT_MEM_KERNEL:
	case BOOT_MEM_BOOTINFO:
	case BOOT_MEM_ACPI_RECLAIM:
		return 2;
	default:
		return 0;
	}
}

int fa_region_is_ram(uint32_t type) { return region_class(type) != 0; }

/* A region we can use: RAM, page aligned, non-empty, no address overflow. */
static int region_ok(const struct boot_mem_region *r)
{
	if (!region_class(r->type) || r->pages == 0 || (r->base & (PAGE_SIZE - 1)))
		return 0;
	uint64_t first = r->base >> PAGE_SHIFT;
	return r->pages <= (1ull << 40) && first + r->pages > first;
}

/* Block-aligned frame span covering all managed RAM. 0 if there is none. */
static int span_of(const struct boot_mem_region *r, size_t n, uint64_t *lo, uint64_t *hi)
{
	uint64_t a = UINT64_MAX, z = 0;
	for (size_t k = 0; k < n; k++) {
		if (!region_ok(&r[k]))
			continue;
		uint64_t first = r[k].base >> PAGE_SHIFT;
		if (first < a)
			a = first;
		if (first + r[k].pages > z)
			z = first + r[k].pages;
	}
	if (a == UINT64_MAX)
		return 0;
	*lo = a & ~(uint64_t)(PAGES_PER_BLOCK - 1);
	*hi = (z + PAGES_PER_BLOCK - 1) & ~(uint64_t)(PAGES_PER_BLOCK - 1);
	return 1;
}

/* Dense metadata layout (fa_init): owner words, descriptor bytes, block
 * headers (64-byte aligned so a block's bitmap is one cache line), the
 * compactor's scratch array, the section flags. */
static size_t layout(uint64_t nblocks, size_t *off_blocks, size_t *off_scratch, size_t *off_sec)
{
	size_t frames = (size_t)nblocks * PAGES_PER_BLOCK * (sizeof(uint64_t) + 1);
	*off_blocks = (frames + 63) & ~(size_t)63;
	*off_scratch = *off_blocks + (size_t)nblocks * sizeof(struct mblock);
	*off_sec = *off_scratch + (size_t)nblocks * sizeof(uint32_t);
	return *off_sec + ((nblocks + FA_SECTION_BLOCKS - 1) >> FA_SECTION_SHIFT) + 64; /* + slack to align */
}

size_t fa_meta_bytes(const struct boot_mem_region *r, size_t n)
{
	uint64_t lo, hi;
	size_t ob, os, osec;
	if (!r || !span_of(r, n, &lo, &hi))
		return 0;
	return layout((hi - lo) >> BLOCK_ORDER, &ob, &os, &osec);
}

int fa_init(struct frame_alloc *fa, const struct boot_mem_region *r, size_t n,
            void *meta, size_t meta_bytes)
{
	uint64_t lo, hi;
	size_t ob, os, osec;
	if (!fa || !r || !meta || !span_of(r, n, &lo, &hi))
		return MM_EINVAL;
	uint64_t nblocks = (hi - lo) >> BLOCK_ORDER;
	if (nblocks >= FA_NIL)
		return MM_EINVAL;
	/* Align the start to 64 bytes inside the caller's buffer. */
	uintptr_t start = ((uintptr_t)meta + 63) & ~(uintptr_t)63;
	size_t need = layout(nblocks, &ob, &os, &osec);
	if (meta_bytes < need || start - (uintptr_t)meta > 64)
		return MM_EINVAL;
	struct fa_meta m = {
		.owner = (uint64_t *)start,
		.desc = (uint8_t *)(start + nblocks * PAGES_PER_BLOCK * sizeof(uint64_t)),
		.blocks = (struct mblock *)(start + ob),
		.scratch = (uint32_t *)(start + os),
		.sections = (uint8_t *)(start + osec),
		.max_blocks = nblocks,
	};
	return fa_init_meta(fa, r, n, &m);
}

/* Bytes of each array that section s owns (clipped to max_blocks). */
struct sec_part { void *p; size_t bytes; };
static unsigned section_parts(const struct frame_alloc *fa, uint64_t s, struct sec_part part[4])
{
	uint64_t b0 = s << FA_SECTION_SHIFT, b1 = b0 + FA_SECTION_BLOCKS;
	if (b1 > fa->max_blocks)
		b1 = fa->max_blocks;
	uint64_t nb = b1 - b0, f0 = b0 << BLOCK_ORDER, nf = nb << BLOCK_ORDER;
	part[0] = (struct sec_part){ fa->meta.owner + f0, nf * sizeof(uint64_t) };
	part[1] = (struct sec_part){ fa->meta.desc + f0, nf };
	part[2] = (struct sec_part){ fa->meta.blocks + b0, nb * sizeof(struct mblock) };
	part[3] = (struct sec_part){ fa->meta.scratch + b0, nb * sizeof(uint32_t) };
	return 4;
}

void fa_section_init(struct frame_alloc *fa, uint64_t s)
{
	uint64_t b0 = s << FA_SECTION_SHIFT, b1 = b0 + FA_SECTION_BLOCKS;
	if (b1 > fa->max_blocks)
		b1 = fa->max_blocks;
	/* Owner words are left as they are: only a movable head's is read,
	 * and it is written when the frame is allocated. */
	memset(fa->desc + (b0 << BLOCK_ORDER), fd_make(FS_ABSENT, 0), (b1 - b0) << BLOCK_ORDER);
	for (uint64_t b = b0; b < b1; b++) {
		struct mblock *blk = &fa->blocks[b];
		memset(blk, 0, sizeof *blk);
		memset(blk->map, 0xff, sizeof blk->map);
		blk->kind = BK_ABSENT;
		blk->list = FA_LIST_NONE;
		blk->prev = blk->next = FA_NIL;
	}
}

static int populate(struct frame_alloc *fa, void *p, size_t bytes)
{
	return fa->meta.populate ? fa->meta.populate(fa->meta.ctx, p, bytes) : MM_OK;
}

int fa_sections_online(struct frame_alloc *fa, uint64_t s0, uint64_t s1)
{
	for (uint64_t s = s0; s < s1; s++) {
		if (fa->sections[s])
			continue;
		struct sec_part part[4];
		unsigned np = section_parts(fa, s, part);
		for (unsigned k = 0; k < np; k++)
			if (populate(fa, part[k].p, part[k].bytes) != MM_OK)
				return MM_ENOMEM;
		fa_section_init(fa, s);
		fa->sections[s] = 1;
	}
	return MM_OK;
}

size_t fa_section_meta_bound(void)
{
	/* Each of the four arrays page-rounded, plus a page for straddling. */
	size_t owner = (size_t)FA_SECTION_BLOCKS * PAGES_PER_BLOCK * sizeof(uint64_t);
	size_t desc = (size_t)FA_SECTION_BLOCKS * PAGES_PER_BLOCK;
	size_t blk = FA_SECTION_BLOCKS * sizeof(struct mblock), scr = FA_SECTION_BLOCKS * sizeof(uint32_t);
	return owner + desc + ((blk + PAGE_SIZE - 1) & ~(size_t)(PAGE_SIZE - 1)) + PAGE_SIZE +
	       ((scr + PAGE_SIZE - 1) & ~(size_t)(PAGE_SIZE - 1)) + PAGE_SIZE;
}

int fa_pfn_present(const struct frame_alloc *fa, uint64_t pfn)
{
	return pfn >= fa->base_pfn && fa_idx_present(fa, pfn - fa->base_pfn);
}

size_t fa_meta_bytes_sparse(const struct boot_mem_region *r, size_t n)
{
	uint64_t lo, hi;
	if (!r || !span_of(r, n, &lo, &hi))
		return 0;
	uint64_t nsec = (((hi - lo) >> BLOCK_ORDER) + FA_SECTION_BLOCKS - 1) >> FA_SECTION_SHIFT;
	size_t per_sec = (size_t)FA_SECTION_BLOCKS * (PAGES_PER_BLOCK * (sizeof(uint64_t) + 1) +
	                 sizeof(struct mblock) + sizeof(uint32_t)) + 4 * PAGE_SIZE;
	size_t bytes = nsec + PAGE_SIZE, last_sec = UINT64_MAX;
	/* Regions come sorted from the loader; a section counted twice only
	 * makes the bound looser. */
	for (size_t k = 0; k < n; k++) {
		if (!region_ok(&r[k]))
			continue;
		uint64_t f = (r[k].base >> PAGE_SHIFT) - lo;
		uint64_t s0 = f >> (BLOCK_ORDER + FA_SECTION_SHIFT);
		uint64_t s1 = (f + r[k].pages - 1) >> (BLOCK_ORDER + FA_SECTION_SHIFT);
		for (uint64_t s = s0; s <= s1; s++)
			if (s != last_sec) {
				bytes += per_sec;
				last_sec = s;
			}
	}
	return bytes;
}

int fa_init_meta(struct frame_alloc *fa, const struct boot_mem_region *r, size_t n,
                 const struct fa_meta *meta)
{
	uint64_t lo, hi;
	if (!fa || !r || !meta || !meta->owner || !meta->desc || !meta->blocks || !meta->scratch ||
	    !meta->sections || !span_of(r, n, &lo, &hi))
		return MM_EINVAL;
	uint64_t nblocks = (hi - lo) >> BLOCK_ORDER;
	if (nblocks >= FA_NIL || meta->max_blocks >= FA_NIL || nblocks > meta->max_blocks)
		return MM_EINVAL;

	memset(fa, 0, sizeof *fa);
	fa->meta = *meta;
	fa->base_pfn = lo;
	fa->nblocks = (uint32_t)nblocks;
	fa->max_blocks = (uint32_t)meta->max_blocks;
	fa->owner = meta->owner;
	fa->desc = meta->desc;
	fa->blocks = meta->blocks;
	fa->scratch = meta->scratch;
	fa->sections = meta->sections;
	for (unsigned k = 0; k < FA_NKINDS; k++)
		fa->cur[k] = FA_NIL;
	for (unsigned l = 0; l < FA_NLISTS; l++)
		fa->lists[l].head = FA_NIL;
	uint64_t nsec = (nblocks + FA_SECTION_BLOCKS - 1) >> FA_SECTION_SHIFT;
	if (populate(fa, fa->sections, nsec) != MM_OK)
		return MM_ENOMEM;
	memset(fa->sections, 0, nsec);

	for (size_t k = 0; k < n; k++)
		if (region_class(r[k].type) && !region_ok(&r[k]))
			klog("mm: ignoring malformed RAM region base %#llx pages %llu",
			     (unsigned long long)r[k].base, (unsigned long long)r[k].pages);
	fa->boot_map = r;
	fa->boot_map_n = n;
	if (meta->defer)
		return MM_OK;   /* the caller brings sections online (fa_online_boot) */
	uint64_t done;
	int err = fa_online_boot(fa, fa->base_pfn, fa_nframes(fa), UINT32_MAX, &done);
	fa->boot_map = NULL;    /* the caller's map need not outlive this call */
	if (err)
		return err;
	return fa->total ? MM_OK : MM_EINVAL;
}

/* Mark the RAM frames [f0, f1) (indices) of one region in a section that
 * was just set up: whole blocks in bulk, edges frame by frame. A frame some
 * earlier region claimed stays as it is (the first region wins). */
static uint64_t mark_frames(struct frame_alloc *fa, uint64_t f0, uint64_t f1, int is_free)
{
	uint64_t overlaps = 0;
	for (uint64_t idx = f0; idx < f1;) {
		uint32_t b = (uint32_t)(idx >> BLOCK_ORDER);
		struct mblock *blk = &fa->blocks[b];
		uint64_t bend = ((uint64_t)b + 1) << BLOCK_ORDER;
		if ((idx & (PAGES_PER_BLOCK - 1)) == 0 && f1 >= bend && blk->ncap == 0) {
			memset(fa->desc + idx, is_free ? fd_make(FS_FREE, 0) : fd_make(FS_KERNEL, 0), PAGES_PER_BLOCK);
			memset(blk->map, is_free ? 0 : 0xff, sizeof blk->map);
			blk->ncap = PAGES_PER_BLOCK;
			blk->nfree = is_free ? PAGES_PER_BLOCK : 0;
			if (!is_free)
				fa->nr[FS_KERNEL] += PAGES_PER_BLOCK;
			idx = bend;
			continue;
		}
		if (fd_state(fa->desc[idx]) != FS_ABSENT) {
			overlaps++;
			idx++;
			continue;
		}
		unsigned i = (unsigned)(idx & (PAGES_PER_BLOCK - 1));
		blk->ncap++;
		if (is_free) {
			fa->desc[idx] = fd_make(FS_FREE, 0);
			blk->map[i >> 6] &= ~(1ull << (i & 63));
			blk->nfree++;
		} else {
			fa->desc[idx] = fd_make(FS_KERNEL, 0);
			fa->nr[FS_KERNEL]++;
		}
		idx++;
	}
	return overlaps;
}

/* Bring section s online from the boot map: metadata, frames, block lists. */
static int online_boot_section(struct frame_alloc *fa, uint64_t s)
{
	if (fa_sections_online(fa, s, s + 1) != MM_OK)
		return MM_ENOMEM;
	uint64_t s_f0 = s << (BLOCK_ORDER + FA_SECTION_SHIFT);
	uint64_t s_f1 = s_f0 + ((uint64_t)FA_SECTION_BLOCKS << BLOCK_ORDER);
	if (s_f1 > fa_nframes(fa))
		s_f1 = fa_nframes(fa);
	uint64_t overlaps = 0;
	for (size_t k = 0; k < fa->boot_map_n; k++) {
		const struct boot_mem_region *r = &fa->boot_map[k];
		if (!region_ok(r))
			continue;
		uint64_t f0 = (r->base >> PAGE_SHIFT) - fa->base_pfn, f1 = f0 + r->pages;
		if (f1 <= s_f0 || f0 >= s_f1)
			continue;
		int cls = region_class(r->type);
		/* Loader and boot-services memory in a section that comes online
		 * after the kernel reclaimed it is free like the rest. */
		int is_free = cls == 1 || (fa->boot_reclaimed &&
		              (r->type == BOOT_MEM_RECLAIMABLE || r->type == BOOT_MEM_BOOTINFO));
		uint64_t a = f0 > s_f0 ? f0 : s_f0, z = f1 < s_f1 ? f1 : s_f1;
		overlaps += mark_frames(fa, a, z, is_free);
		if (is_free && cls == 2)
			fa->boot_reclaimed_frames += z - a;
		/* The firmware and the loader wrote that memory: the host backs
		 * it, so it is what allocations and the balloon should use first. */
		if (cls == 2)
			for (uint64_t b = a >> BLOCK_ORDER; b <= (z - 1) >> BLOCK_ORDER; b++)
				fa->blocks[b].flags |= BF_RESIDENT;
	}
	if (overlaps)
		klog("mm: %llu frames in overlapping memory-map regions counted once",
		     (unsigned long long)overlaps);
	for (uint32_t b = (uint32_t)(s << FA_SECTION_SHIFT); b < fa->nblocks && b < (s + 1) << FA_SECTION_SHIFT; b++) {
		struct mblock *blk = &fa->blocks[b];
		fa->total += blk->ncap;
		fa->nr[FS_FREE] += blk->nfree;
		if (blk->ncap == 0)
			continue;                       /* BK_ABSENT */
		if (blk->nfree == PAGES_PER_BLOCK) {
			/* Unless boot memory was in it, never written: assume the
			 * host has not populated it (QEMU allocates RAM lazily). */
			blk->kind = BK_FREE;
			fa_list_add(fa, fa_free_list_of(blk), b);
			continue;
		}
		blk->kind = BK_UNMOVABLE;
		blk->flags = BF_RESIDENT | (blk->ncap < PAGES_PER_BLOCK ? BF_HOLEY : 0);
		fa_block_settle(fa, b);
	}
	return MM_OK;
}

int fa_online_boot(struct frame_alloc *fa, uint64_t pfn, uint64_t count, unsigned max_sections,
                   uint64_t *onlined)
{
	*onlined = 0;
	if (!fa->boot_map || pfn < fa->base_pfn)
		return MM_OK;
	uint64_t lo = pfn - fa->base_pfn, hi = count > fa_nframes(fa) - (lo < fa_nframes(fa) ? lo : fa_nframes(fa))
	              ? fa_nframes(fa) : lo + count;
	/* Walk the map's RAM in [lo, hi) section by section, skipping holes
	 * region by region so a huge hole costs no steps either. */
	for (size_t k = 0; k < fa->boot_map_n && *onlined < max_sections; k++) {
		const struct boot_mem_region *r = &fa->boot_map[k];
		if (!region_ok(r))
			continue;
		uint64_t f0 = (r->base >> PAGE_SHIFT) - fa->base_pfn, f1 = f0 + r->pages;
		if (f0 < lo)
			f0 = lo;
		if (f1 > hi)
			f1 = hi;
		if (f0 >= f1)
			continue;
		uint64_t s0 = f0 >> (BLOCK_ORDER + FA_SECTION_SHIFT), s1 = ((f1 - 1) >> (BLOCK_ORDER + FA_SECTION_SHIFT)) + 1;
		for (uint64_t sec = s0; sec < s1 && *onlined < max_sections; sec++) {
			if (fa->sections[sec])
				continue;
			int err = online_boot_section(fa, sec);
			if (err)
				return err;
			(*onlined)++;
		}
	}
	return MM_OK;
}

void fa_boot_reclaimed(struct frame_alloc *fa) { fa->boot_reclaimed = 1; }

int fa_claim_range(struct frame_alloc *fa, uint64_t pfn, uint64_t count)
{
	uint64_t idx0 = pfn - fa->base_pfn;
	if (count == 0 || idx0 >= fa_nframes(fa) || count > fa_nframes(fa) - idx0)
		return MM_ERANGE;
	for (uint64_t idx = idx0; idx < idx0 + count; idx++)
		if (!fa_idx_present(fa, idx))
			return MM_ERANGE;
	for (uint64_t idx = idx0; idx < idx0 + count; idx++) {
		const struct mblock *blk = &fa->blocks[idx >> BLOCK_ORDER];
		unsigned i = (unsigned)(idx & (PAGES_PER_BLOCK - 1));
		if (fd_state(fa->desc[idx]) != FS_FREE || (blk->map[i >> 6] >> (i & 63)) & 1 ||
		    (blk->kind != BK_FREE && blk->kind != BK_UNMOVABLE))
			return MM_ESTATE;
	}
	for (uint64_t idx = idx0; idx < idx0 + count; idx++) {
		uint32_t b = (uint32_t)(idx >> BLOCK_ORDER);
		struct mblock *blk = &fa->blocks[b];
		if (blk->kind == BK_FREE) {
			fa_list_del(fa, b);
			if (blk->flags & BF_REPORTED)
				fa->nr_reported_blocks--;
			blk->kind = BK_UNMOVABLE;
			blk->flags = (uint8_t)((blk->flags & ~BF_REPORTED) | BF_RESIDENT);
		}
		fa_take_run(fa, b, (unsigned)(idx & (PAGES_PER_BLOCK - 1)), 0, FS_KERNEL, 0);
		fa_block_settle(fa, b);
	}
	return MM_OK;
}

uint64_t fa_free_range(struct frame_alloc *fa, uint64_t pfn, uint64_t count)
{
	/* A block at a time: the frames' bits and descriptors, then the block's
	 * counts and its list once - boot hands back tens of MiB this way, and
	 * resettling the block per frame cost milliseconds. */
	uint64_t freed = 0;
	for (uint64_t p = pfn; p < pfn + count;) {
		uint64_t idx = p - fa->base_pfn;
		uint64_t stop = ((idx >> BLOCK_ORDER) + 1) << BLOCK_ORDER;
		if (stop - idx > pfn + count - p)
			stop = idx + (pfn + count - p);
		p += stop - idx;
		if (idx >= fa_nframes(fa) || !fa_idx_present(fa, idx))
			continue;       /* a section is present or not as a whole */
		uint32_t b = (uint32_t)(idx >> BLOCK_ORDER);
		struct mblock *blk = &fa->blocks[b];
		unsigned n = 0;
		for (; idx < stop; idx++) {
			if (fa->desc[idx] != fd_make(FS_KERNEL, 0))
				continue;
			unsigned i = (unsigned)(idx & (PAGES_PER_BLOCK - 1));
			blk->map[i >> 6] &= ~(1ull << (i & 63));
			if ((i >> 6) < blk->hint)
				blk->hint = (uint8_t)(i >> 6);
			fa->desc[idx] = fd_make(FS_FREE, 0);
			n++;
		}
		if (!n)
			continue;
		blk->nfree = (uint16_t)(blk->nfree + n);
		fa->nr[FS_KERNEL] -= n;
		fa->nr[FS_FREE] += n;
		freed += n;
		if (blk->flags & BF_CURRENT) {
			if (blk->nfree == PAGES_PER_BLOCK && fa->part_mask[blk->kind])
				fa_uncurrent(fa, (enum block_kind)blk->kind);
		} else {
			fa_block_settle(fa, b);
		}
	}
	return freed;
}
