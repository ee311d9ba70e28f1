/*
 * kmem.c - mm/kmem.h on the memory manager.
 *
 *  - phys_to_virt / virt_to_phys: the direct map and the kernel image only;
 *    movable memory (heap, anonymous window) has no stable physical address.
 *  - mmio_map: device memory mapped uncached at BOOT_HHDM_BASE + pa, on
 *    demand; RAM is refused (it is already mapped write-back). Before mm is
 *    up it falls back to the loader's direct map and remembers the range so
 *    the same address stays valid after the switch to our tables.
 *  - dma_alloc_pages: an unmovable run of 2^order frames (the smallest order
 *    holding `pages`), zeroed, through the direct map.
 *  - kmem_anon_map/unmap: mm/anon.c over the anonymous window.
 */
#include <string.h>
#include "boot_info.h"
#include "kernel/lib/boot.h"
#include "mm/kmem.h"
#include "klog.h"
#include "mm/mm.h"
#include "mm/mm_kernel.h"

void *phys_to_virt(uint64_t pa) { return (void *)(pa + BOOT_HHDM_BASE); }

uint64_t virt_to_phys(const void *p)
{
	uint64_t va = (uint64_t)p;
	const struct boot_info *bi = boot_info_get();
	if (bi && va >= bi->kernel_virt && va - bi->kernel_virt < bi->kernel_size)
		return va - bi->kernel_virt + bi->kernel_phys;
	if (!mmk.ready) {
		if (bi && va >= BOOT_HHDM_BASE && va - BOOT_HHDM_BASE < bi->max_phys)
			return va - BOOT_HHDM_BASE;
		return ~0ull;
	}
	struct pt_walk w;
	if (pt_lookup(&mmk.pt, va, &w) != MM_OK)
		return ~0ull;
	/* The identity map is for the firmware: only the direct map counts. The
	 * heap and anonymous windows are movable memory: the compactor may move
	 * a frame at any time, so its physical address is no address a device
	 * may be given (DMA comes from dma_alloc_pages). */
	if (va >= BOOT_HHDM_BASE && va - BOOT_HHDM_BASE == w.pa)
		return w.pa;
	return ~0ull;
}

/* ---------------------------------------------------------------- MMIO */

#define EARLY_MMIO_MAX 16
static struct { uint64_t pa, len; } early_mmio[EARLY_MMIO_MAX];
static unsigned early_mmio_n;

static int overlaps_ram(const struct boot_info *bi, uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < bi->mmap_count; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		uint32_t t = r->type;
		if (t != BOOT_MEM_USABLE && t != BOOT_MEM_RECLAIMABLE && t != BOOT_MEM_KERNEL &&
		    t != BOOT_MEM_BOOTINFO && t != BOOT_MEM_ACPI_RECLAIM)
			continue;
		if (start < r->base + r->pages * PAGE_SIZE && r->base < end)
			return 1;
	}
	return 0;
}

/* Map [start, end) uncached at HHDM + pa; an existing mapping of the same
 * physical page (earlier mmio_map, EFI/ACPI direct map) is fine. */
static int map_uncached(uint64_t start, uint64_t end)
{
	uint64_t pa = start;
	while (pa < end) {
		uint64_t va = BOOT_HHDM_BASE + pa;
		if (!(pa & (PT_SIZE_2M - 1)) && end - pa >= PT_SIZE_2M &&
		    pt_map_2m(&mmk.pt, va, pa, PTE_W | PTE_NX | PTE_UC | PTE_G) == MM_OK) {
			pa += PT_SIZE_2M;
			continue;
		}
		int err = pt_map(&mmk.pt, va, pa, PTE_W | PTE_NX | PTE_UC | PTE_G);
		if (err == MM_EEXIST) {
			struct pt_walk w;
			if (pt_lookup(&mmk.pt, va, &w) == MM_OK && w.pa == pa)
				err = MM_OK;
		}
		if (err)
			return err;
		pa += PAGE_SIZE;
	}
	return MM_OK;
}

void *mmio_map(uint64_t pa, uint64_t len)
{
	const struct boot_info *bi = boot_info_get();
	uint64_t start = pa & ~(PAGE_SIZE - 1);
	uint64_t end = (pa + len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (!bi || len == 0 || end <= start || end > (1ull << 46)) {
		klog("mmio: cannot map %#llx+%#llx", (unsigned long long)pa, (unsigned long long)len);
		return NULL;
	}
	if (overlaps_ram(bi, start, end)) {
		klog("mmio: %#llx+%#llx is RAM, not device memory", (unsigned long long)pa, (unsigned long long)len);
		return NULL;
	}
	if (!mmk.ready) {
		/* Loader's tables: everything below max_phys is mapped (write-back). */
		if (end > bi->max_phys || early_mmio_n == EARLY_MMIO_MAX) {
			klog("mmio: %#llx+%#llx cannot be mapped before mm is up", (unsigned long long)pa,
			     (unsigned long long)len);
			return NULL;
		}
		early_mmio[early_mmio_n].pa = start;
		early_mmio[early_mmio_n++].len = end - start;
		return phys_to_virt(pa);
	}
	int err = map_uncached(start, end);
	if (err) {
		klog("mmio: mapping %#llx+%#llx failed: %s", (unsigned long long)pa, (unsigned long long)len,
		     mm_strerror(err));
		return NULL;
	}
	return phys_to_virt(pa);
}

void mm_early_mmio_replay(void)
{
	for (unsigned i = 0; i < early_mmio_n; i++)
		if (map_uncached(early_mmio[i].pa, early_mmio[i].pa + early_mmio[i].len))
			klog("mmio: could not keep early mapping of %#llx", (unsigned long long)early_mmio[i].pa);
}

/* ---------------------------------------------------------------- DMA */

void *dma_alloc_pages(size_t pages, uint64_t *pa)
{
	unsigned order;
	uint64_t pfn;
	if (!pa || fa_order_for_pages(pages, &order) != MM_OK) {
		klog("dma: bad request for %llu pages", (unsigned long long)pages);
		return NULL;
	}
	if (!mmk.ready) {
		klog("dma: memory manager not ready");
		return NULL;
	}
	if (fa_alloc(&mmk.fa, order, &pfn) != MM_OK)
		return NULL;
	*pa = pfn << PAGE_SHIFT;
	void *va = phys_to_virt(*pa);
	memset(va, 0, PAGE_SIZE << order);
	return va;
}

void dma_free_pages(void *va, size_t pages)
{
	unsigned order;
	uint64_t v = (uint64_t)va;
	if (!va || !mmk.ready || fa_order_for_pages(pages, &order) != MM_OK || v < BOOT_HHDM_BASE) {
		klog("dma: bad free of %p (%llu pages)", va, (unsigned long long)pages);
		return;
	}
	fa_free(&mmk.fa, (v - BOOT_HHDM_BASE) >> PAGE_SHIFT, order);   /* logs a bad free itself */
}

/* ---------------------------------------------------------------- anonymous memory */

/* The window's extent table is set up when something first maps, not at
 * boot: its first page and page tables cost boot ~0.6 ms under TCG, and
 * nothing maps anonymous memory before the application starts. */
static int anon_up(void)
{
	if (!mmk.ready)
		return 0;
	if (!mmk.anon_state) {
		int err = anon_init(&mmk.anon, &mmk.fa, &mmk.pt, MM_ANON_BASE, MM_ANON_SIZE, NULL);
		mmk.anon_state = err ? -1 : 1;
		if (err)
			klog("mm: anonymous window set-up failed (%s): no anonymous mappings", mm_strerror(err));
	}
	return mmk.anon_state > 0;
}

void *kmem_anon_map(size_t bytes)
{
	uint64_t va;
	if (!anon_up() || anon_map(&mmk.anon, bytes, &va) != MM_OK)
		return NULL;
	return (void *)va;
}

void kmem_anon_unmap(void *va, size_t bytes)
{
	if (!va)
		return;
	if (mmk.anon_state <= 0 || anon_unmap(&mmk.anon, (uint64_t)va, bytes) != MM_OK)
		klog("kmem: bad anon unmap of %p (%llu bytes)", va, (unsigned long long)bytes);
}

/* ---------------------------------------------------------------- lazily backed memory */

void *kmem_lazy_reserve(size_t bytes)
{
	uint64_t len = ((uint64_t)bytes + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	if (!mmk.ready || len == 0)
		return NULL;
	if (!mmk.lazy_next)
		mmk.lazy_next = MM_LAZY_BASE;
	if (len > MM_LAZY_BASE + MM_LAZY_SIZE - mmk.lazy_next) {
		klog("kmem: lazy window full: %llu KiB more cannot be reserved", (unsigned long long)(len >> 10));
		return NULL;
	}
	void *p = (void *)mmk.lazy_next;
	mmk.lazy_next += len + PAGE_SIZE;     /* a guard page between reservations */
	return p;
}

int kmem_lazy_populate(void *p, size_t bytes)
{
	uint64_t va = (uint64_t)(uintptr_t)p & ~(uint64_t)(PAGE_SIZE - 1);
	uint64_t end = (uint64_t)(uintptr_t)p + bytes;
	if (!mmk.ready || va < MM_LAZY_BASE || end > mmk.lazy_next || end < va)
		return -1;
	for (; va < end; va += PAGE_SIZE) {
		struct pt_walk w;
		if (pt_lookup(&mmk.pt, va, &w) == MM_OK)
			continue;
		uint64_t pfn;
		if (fa_alloc(&mmk.fa, 0, &pfn) != MM_OK)
			return -1;
		memset(phys_to_virt(pfn << PAGE_SHIFT), 0, PAGE_SIZE);
		if (pt_map(&mmk.pt, va, pfn << PAGE_SHIFT, PTE_W | PTE_NX | PTE_G) != MM_OK) {
			fa_free(&mmk.fa, pfn, 0);
			return -1;
		}
		mmk.lazy_pages++;
	}
	return 0;
}
