/*
 * pgtable.h - x86-64 4-level page tables, generic over where tables live.
 *
 * Contract: a struct pgtable is a PML4 plus the hooks in struct pt_ops:
 * phys_to_virt (reach a table frame), alloc_table/free_table (one 4 KiB
 * frame for a table) and flush_tlb (invalidate one virtual address). The
 * kernel binds them to the direct map, the frame allocator and invlpg; host
 * tests bind them to a malloc'd "physical memory" and count the flushes.
 *
 *  - pt_map / pt_map_2m: map one page; MM_EEXIST if anything is mapped there
 *    (including a larger page covering it), MM_EINVAL if misaligned or not
 *    canonical, MM_ENOMEM if a table frame could not be had.
 *  - pt_map_range: map [va, va+len) to [pa, pa+len), with 2 MiB pages where
 *    both sides are aligned and allow_2m is set (1 GiB pages too when it is
 *    2: the caller knows the CPU has them); stops at the first error.
 *  - pt_unmap: remove the page (4 KiB or 2 MiB) that maps va and flush it;
 *    MM_ENOENT if nothing is mapped. Emptied tables are kept (cheap reuse).
 *  - pt_remap: point a present 4 KiB mapping at another frame, but only if it
 *    currently maps expect_pa (MM_EMISMATCH otherwise); flushes the entry.
 *    This is the compactor's one write to page tables.
 *  - pt_lookup: translate; also reports the leaf's flags and page size.
 *  - pt_set_marker / pt_get_marker: keep a software value in the 4 KiB entry
 *    of an unmapped page (present bit clear: the CPU ignores the rest, as
 *    Linux keeps swap entries). The anonymous mapper marks each mapping's
 *    guard page with its length, so unmapping needs no table of mappings.
 *    Setting needs the page unmapped (MM_EEXIST otherwise) and bit 0 of the
 *    value clear; value 0 clears. Getting: MM_ENOENT if no marker.
 * Leaf flags are the PTE_* bits below (PTE_P is implied; PTE_PS is added for
 * 2 MiB pages). Intermediate entries are present + writable; the leaf decides.
 */
#ifndef MM_PGTABLE_H
#define MM_PGTABLE_H

#include <stdint.h>
#include "mm/mm_err.h"

#define PTE_P     (1ull << 0)
#define PTE_W     (1ull << 1)
#define PTE_U     (1ull << 2)
#define PTE_PWT   (1ull << 3)
#define PTE_PCD   (1ull << 4)
#define PTE_A     (1ull << 5)
#define PTE_D     (1ull << 6)
#define PTE_PS    (1ull << 7)
#define PTE_G     (1ull << 8)
#define PTE_NX    (1ull << 63)
#define PTE_ADDR  0x000ffffffffff000ull
#define PTE_UC    (PTE_PCD | PTE_PWT)      /* uncached: MMIO */

#define PT_SIZE_4K (1ull << 12)
#define PT_SIZE_2M (1ull << 21)
#define PT_SIZE_1G (1ull << 30)

struct pt_ops {
	void *(*phys_to_virt)(void *ctx, uint64_t pa);
	int   (*alloc_table)(void *ctx, uint64_t *pa);   /* MM_OK or MM_ENOMEM */
	void  (*free_table)(void *ctx, uint64_t pa);
	void  (*flush_tlb)(void *ctx, uint64_t va);
};

struct pgtable {
	uint64_t root;               /* physical address of the PML4 */
	const struct pt_ops *ops;
	void *ctx;
};

struct pt_walk {
	uint64_t pa;                 /* translation of va (page base + offset) */
	uint64_t flags;              /* leaf entry without the address bits */
	uint64_t size;               /* PT_SIZE_4K, _2M or _1G */
};

int pt_init(struct pgtable *pt, const struct pt_ops *ops, void *ctx);
/* Free every table frame (not the mapped frames). */
void pt_destroy(struct pgtable *pt);

int pt_map(struct pgtable *pt, uint64_t va, uint64_t pa, uint64_t flags);
int pt_map_2m(struct pgtable *pt, uint64_t va, uint64_t pa, uint64_t flags);
int pt_map_range(struct pgtable *pt, uint64_t va, uint64_t pa, uint64_t len,
                 uint64_t flags, int allow_2m);
int pt_unmap(struct pgtable *pt, uint64_t va, uint64_t *old_pa, uint64_t *size);
int pt_remap(struct pgtable *pt, uint64_t va, uint64_t expect_pa, uint64_t new_pa);
int pt_lookup(const struct pgtable *pt, uint64_t va, struct pt_walk *out);
int pt_set_marker(struct pgtable *pt, uint64_t va, uint64_t value);
int pt_get_marker(const struct pgtable *pt, uint64_t va, uint64_t *value);

static inline int pt_canonical(uint64_t va)
{
	uint64_t top = va >> 47;
	return top == 0 || top == 0x1ffff;
}

#endif
