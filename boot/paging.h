/*
 * paging.h - the page tables the loader hands to the kernel.
 *
 * Contract: paging_build() fills a 4-level hierarchy from a pool of zeroed-on-
 * use 4 KiB pages that the caller allocated up front (paging_tables_needed()
 * tells how many), and maps:
 *   - [0, max_phys) identity (PML4[0]) and at BOOT_HHDM_BASE + phys
 *     (PML4[256]) with 2 MiB pages, RW, write-back; both slots share one PDPT;
 *   - every 4 KiB page of the kernel span that a PT_LOAD segment touches, at
 *     its link address, to kernel_phys + (vaddr - span_start), writable only
 *     if a writable segment touches it, and NX unless an executable segment
 *     touches it (only if use_nx): text R-X, rodata R--, data RW-.
 * Pages of the span no segment touches stay unmapped.
 *
 * A table's physical address is its pointer value: true in the loader (UEFI
 * identity-maps memory) and good enough for host tests, which walk the
 * tables back through the same pointers. No EFI headers here.
 */
#ifndef BOOT_PAGING_H
#define BOOT_PAGING_H

#include <stdint.h>
#include "boot/elf_check.h"

#define PTE_P    (1ull << 0)
#define PTE_RW   (1ull << 1)
#define PTE_PS   (1ull << 7)
#define PTE_NX   (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull

#define PAGING_MIN_PHYS (4ull << 30)      /* always map at least 4 GiB (MMIO below it) */
#define PAGING_MAX_PHYS (512ull << 30)    /* one PML4 slot */

struct pt_pool {
	uint64_t *pages;    /* `total` 4 KiB-aligned pages, contiguous */
	uint32_t total;
	uint32_t used;
};

enum paging_err {
	PAGING_OK = 0,
	PAGING_ERR_POOL,     /* the pool ran out: paging_tables_needed() was not used */
	PAGING_ERR_RANGE,    /* max_phys not a multiple of 1 GiB in (0, 512 GiB], or
	                        the kernel span collides with the direct map */
};

/* max(highest_end, 4 GiB) rounded up to 1 GiB, capped at 512 GiB. */
uint64_t paging_max_phys(uint64_t highest_end);

/* Upper bound of the tables paging_build() takes for this map and image. */
uint32_t paging_tables_needed(uint64_t max_phys, const struct elf_image *img);

enum paging_err paging_build(struct pt_pool *pool, uint64_t max_phys,
                             const struct elf_image *img, uint64_t kernel_phys,
                             int use_nx, uint64_t *pml4_phys);

#endif /* BOOT_PAGING_H */
