/*
 * early_mem.c - kernel/kmem.h on the loader's page tables, until mm/ takes
 * over: the loader maps all of [0, max_phys) at BOOT_HHDM_BASE, and DMA
 * memory comes from a pool in .bss (physically contiguous: the loader loads
 * the kernel image into one run).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include "boot_info.h"
#include "kernel/boot.h"
#include "kernel/kmem.h"
#include "hw/io.h"
#include "klog.h"

extern char __kernel_start[], __kernel_end[];

void *phys_to_virt(uint64_t pa) { return (void *)(pa + BOOT_HHDM_BASE); }

uint64_t virt_to_phys(const void *va)
{
	uint64_t v = (uint64_t)va;
	const struct boot_info *bi = boot_info_get();
	if (bi && v >= bi->kernel_virt && v < bi->kernel_virt + bi->kernel_size)
		return v - bi->kernel_virt + bi->kernel_phys;
	if (v >= BOOT_HHDM_BASE && bi && v - BOOT_HHDM_BASE < bi->max_phys)
		return v - BOOT_HHDM_BASE;
	return ~0ull;
}

/* Device memory above the loader's direct map (OVMF puts 64-bit BARs far above
 * RAM): add 2 MiB uncached (PCD|PWT) pages at BOOT_HHDM_BASE + pa to the
 * loader's tables, taking table pages from the DMA pool. */
#define PTE_P 0x1ull
#define PTE_W 0x2ull
#define PTE_PWT 0x8ull
#define PTE_PCD 0x10ull
#define PTE_PS 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull

static void *map_high(uint64_t pa, uint64_t len)
{
	uint64_t *pml4 = phys_to_virt(read_cr3() & PTE_ADDR);
	for (uint64_t c = pa & ~(BLOCK_SIZE - 1); c < pa + len; c += BLOCK_SIZE) {
		uint64_t va = BOOT_HHDM_BASE + c, *t = pml4;
		static const int shift[2] = { 39, 30 };
		for (int l = 0; l < 2; l++) {
			uint64_t *e = &t[(va >> shift[l]) & 511];
			if (!(*e & PTE_P)) {
				uint64_t npa;
				if (!dma_alloc_pages(1, &npa))
					return NULL;
				*e = npa | PTE_P | PTE_W;
			}
			t = phys_to_virt(*e & PTE_ADDR);
		}
		t[(va >> 21) & 511] = c | PTE_PS | PTE_PCD | PTE_PWT | PTE_P | PTE_W;
		invlpg(va);
	}
	return phys_to_virt(pa);
}

void *mmio_map(uint64_t pa, uint64_t len)
{
	const struct boot_info *bi = boot_info_get();
	if (bi && pa >= bi->max_phys && len && pa + len > pa && pa + len <= (1ull << 46))
		return map_high(pa, len);
	if (!bi || pa + len > bi->max_phys) {
		klog("mmio: %#lx+%#lx is outside the loader's map", pa, len);
		return NULL;
	}
	return phys_to_virt(pa);
}

#define DMA_POOL_PAGES 256
static uint8_t dma_pool[DMA_POOL_PAGES * PAGE_SIZE] __attribute__((aligned(4096)));
static size_t dma_used;

void *dma_alloc_pages(size_t pages, uint64_t *pa)
{
	if (pages > DMA_POOL_PAGES - dma_used)
		return NULL;
	void *va = dma_pool + dma_used * PAGE_SIZE;
	dma_used += pages;
	memset(va, 0, pages * PAGE_SIZE);
	*pa = virt_to_phys(va);
	return va;
}

void dma_free_pages(void *va, size_t pages) { /* early pool: never reused */ }

/* Early: from the newlib heap, page aligned. Functional, not movable. */
void *kmem_anon_map(size_t bytes)
{
	if (bytes == 0)
		return NULL;
	bytes = (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	void *p = memalign(PAGE_SIZE, bytes);
	if (p)
		memset(p, 0, bytes);
	return p;
}

void kmem_anon_unmap(void *va, size_t bytes) { free(va); }
