/*
 * kmem.h - the kernel-wide memory seam every driver uses.
 *
 * Implemented by mm/kmem.c on the kernel's own page tables (mm/boot_init.c
 * builds them at INIT_MM): callers need not know how memory is managed.
 */
#ifndef MM_KMEM_H
#define MM_KMEM_H

#include <stddef.h>
#include <stdint.h>
#include "units.h"

/* Direct map: every physical address below boot_info.max_phys. */
void *phys_to_virt(uint64_t pa);
/* Physical address of a direct-map or kernel-image address (what a device
 * may be given: DMA memory comes from dma_alloc_pages); ~0 for anything else,
 * movable memory (the heap, kmem_anon_map) included: the compactor may move
 * its frames at any time. */
uint64_t virt_to_phys(const void *va);

/* Map device memory uncached; NULL (and one log line) if it cannot be mapped. */
void *mmio_map(uint64_t pa, uint64_t len);

/* Zeroed, physically contiguous, page-aligned, never moved: rings, buffers the
 * device reads. NULL when out of memory. */
void *dma_alloc_pages(size_t pages, uint64_t *pa);
void dma_free_pages(void *va, size_t pages);

/* Anonymous movable memory for applications (like mmap(MAP_ANONYMOUS)):
 * page-granular, zeroed, backed by movable frames the compactor may move, and
 * given back to the frame allocator by kmem_anon_unmap(), wherever it lies.
 * NULL when memory is short even after the allocator's OOM notifiers ran
 * (deflate-on-OOM). newlib's heap cannot return memory from its middle;
 * workloads that come and go use this. */
void *kmem_anon_map(size_t bytes);
void kmem_anon_unmap(void *va, size_t bytes);

/* Kernel memory reserved now and backed later, for books that cover all of
 * RAM but are written in a few places (the balloon's): kmem_lazy_reserve
 * sets aside `bytes` (page-rounded) of virtual space with nothing behind it,
 * NULL when the window is full; kmem_lazy_populate backs the pages of
 * [p, p + bytes) not backed yet with zeroed unmovable frames, 0 or -1 when
 * out of memory (pages backed so far stay). Reading a page not backed
 * faults: callers keep track. Never given back (such books live as long as
 * the kernel). */
void *kmem_lazy_reserve(size_t bytes);
int kmem_lazy_populate(void *p, size_t bytes);

#endif
