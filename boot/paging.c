/*
 * paging.c - build the loader's page tables (contract in paging.h).
 *
 * Tables come from a pool the caller allocated before the final memory map,
 * because allocating while building would change the map we are about to
 * hand over. Levels: PML4 (512 GiB per entry) -> PDPT (1 GiB) -> PD (2 MiB)
 * -> PT (4 KiB).
 */
#include "boot/paging.h"
#include "boot_info.h"

#define SZ_4K  (1ull << 12)
#define SZ_2M  (1ull << 21)
#define SZ_1G  (1ull << 30)
#define SZ_512G (1ull << 39)

#define IDX(va, shift) (((va) >> (shift)) & 511)

uint64_t paging_max_phys(uint64_t highest_end)
{
	uint64_t m = highest_end < PAGING_MIN_PHYS ? PAGING_MIN_PHYS : highest_end;
	if (m > PAGING_MAX_PHYS)
		return PAGING_MAX_PHYS;
	return (m + SZ_1G - 1) & ~(SZ_1G - 1);
}

/* How many aligned blocks of `size` bytes [a, b) touches (b > a). */
static uint64_t blocks(uint64_t a, uint64_t b, uint64_t size)
{
	return (b - 1) / size - a / size + 1;
}

uint32_t paging_tables_needed(uint64_t max_phys, const struct elf_image *img)
{
	uint64_t n = 1;                          /* PML4 */
	n += 1 + max_phys / SZ_1G;               /* shared PDPT + one PD per GiB */
	if (img->span_end > img->span_start) {
		n += blocks(img->span_start, img->span_end, SZ_512G);   /* PDPTs */
		n += blocks(img->span_start, img->span_end, SZ_1G);     /* PDs */
		n += blocks(img->span_start, img->span_end, SZ_2M);     /* PTs */
	}
	return (uint32_t)n;
}

static uint64_t *pool_take(struct pt_pool *pool)
{
	if (pool->used >= pool->total)
		return 0;
	uint64_t *t = pool->pages + (uint64_t)pool->used++ * 512;
	for (int i = 0; i < 512; i++)
		t[i] = 0;
	return t;
}

/* The table an entry points to, created if absent; 0 if the pool is empty
 * or the entry already maps a large page. */
static uint64_t *next_table(struct pt_pool *pool, uint64_t *entry)
{
	if (!(*entry & PTE_P)) {
		uint64_t *t = pool_take(pool);
		if (!t)
			return 0;
		/* Permissions are decided at the leaf: intermediate levels allow all. */
		*entry = (uint64_t)(uintptr_t)t | PTE_P | PTE_RW;
		return t;
	}
	if (*entry & PTE_PS)
		return 0;
	return (uint64_t *)(uintptr_t)(*entry & PTE_ADDR);
}

static enum paging_err map_direct(struct pt_pool *pool, uint64_t *pml4, uint64_t max_phys)
{
	for (uint64_t pa = 0; pa < max_phys; pa += SZ_2M) {
		uint64_t *pdpt = next_table(pool, &pml4[IDX(pa, 39)]);
		uint64_t *pd = pdpt ? next_table(pool, &pdpt[IDX(pa, 30)]) : 0;
		if (!pd)
			return PAGING_ERR_POOL;
		pd[IDX(pa, 21)] = pa | PTE_P | PTE_RW | PTE_PS;
	}
	/* The direct map reuses the identity map's PDPT (and so its PDs). */
	pml4[IDX(BOOT_HHDM_BASE, 39)] = pml4[0];
	return PAGING_OK;
}

/* Page flags for the span page at va: 0 if no segment touches it. */
static uint64_t kernel_page_flags(const struct elf_image *img, uint64_t va, int use_nx)
{
	int touched = 0, exec = 0, write = 0;
	for (uint32_t i = 0; i < img->nseg; i++) {
		const struct elf_segment *s = &img->seg[i];
		uint64_t lo = s->vaddr & ~(SZ_4K - 1);
		uint64_t hi = (s->vaddr + s->memsz + SZ_4K - 1) & ~(SZ_4K - 1);
		if (va >= lo && va < hi) {
			touched = 1;
			exec |= (s->flags & ELF_PF_X) != 0;
			write |= (s->flags & ELF_PF_W) != 0;
		}
	}
	if (!touched)
		return 0;
	return PTE_P | (write ? PTE_RW : 0) | (use_nx && !exec ? PTE_NX : 0);
}

static enum paging_err map_kernel(struct pt_pool *pool, uint64_t *pml4, const struct elf_image *img,
                                  uint64_t kernel_phys, int use_nx)
{
	for (uint64_t va = img->span_start; va < img->span_end; va += SZ_4K) {
		uint64_t flags = kernel_page_flags(img, va, use_nx);
		if (!flags)
			continue;
		uint64_t *pdpt = next_table(pool, &pml4[IDX(va, 39)]);
		uint64_t *pd = pdpt ? next_table(pool, &pdpt[IDX(va, 30)]) : 0;
		uint64_t *pt = pd ? next_table(pool, &pd[IDX(va, 21)]) : 0;
		if (!pt)
			return PAGING_ERR_POOL;
		pt[IDX(va, 12)] = (kernel_phys + (va - img->span_start)) | flags;
	}
	return PAGING_OK;
}

enum paging_err paging_build(struct pt_pool *pool, uint64_t max_phys,
                             const struct elf_image *img, uint64_t kernel_phys,
                             int use_nx, uint64_t *pml4_phys)
{
	if (max_phys == 0 || max_phys > PAGING_MAX_PHYS || (max_phys & (SZ_1G - 1)))
		return PAGING_ERR_RANGE;
	/* Kernel and direct map must not share a PML4 slot: the direct map's
	 * PDPT is shared between two slots and must stay 2 MiB-only. */
	if (img->span_start < BOOT_KERNEL_BASE ||
	    IDX(img->span_start, 39) == 0 || IDX(img->span_start, 39) == IDX(BOOT_HHDM_BASE, 39))
		return PAGING_ERR_RANGE;

	uint64_t *pml4 = pool_take(pool);
	if (!pml4)
		return PAGING_ERR_POOL;
	enum paging_err err = map_direct(pool, pml4, max_phys);
	if (!err)
		err = map_kernel(pool, pml4, img, kernel_phys, use_nx);
	if (!err)
		*pml4_phys = (uint64_t)(uintptr_t)pml4;
	return err;
}
