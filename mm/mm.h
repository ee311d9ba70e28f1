/*
 * mm.h - the kernel's memory manager, for the rest of the kernel.
 *
 * mm_boot_init (INITCALL level INIT_MM, mm/boot_init.c) builds the frame
 * allocator from boot_info's memory map, builds the kernel's own page tables
 * (direct map of RAM at BOOT_HHDM_BASE, the kernel image at its link address
 * with the loader's permissions, identity maps of EFI runtime, ACPI NVS and
 * MMIO regions for UEFI runtime services), switches CR3, reclaims the
 * loader's and boot services' memory, and starts the movable heap (_sbrk)
 * and the anonymous movable window (kmem_anon_map). mm/kmem.h (DMA, MMIO,
 * anonymous memory for drivers and applications) is implemented on top
 * (mm/kmem.c); the calls below are in mm/mm.c.
 *
 * Virtual layout:
 *   0 .. 4 GiB-ish            identity: EFI runtime, ACPI NVS, MMIO from the map
 *   BOOT_HHDM_BASE + pa       direct map: RAM (write-back), MMIO via mmio_map (uncached)
 *   MM_ANON_BASE              anonymous movable mappings (16 TiB window)
 *   MM_META_BASE              frame metadata windows (frame.h struct fa_meta),
 *                             backed only where sections hold RAM
 *   MM_LAZY_BASE              kernel memory reserved now, backed page by page
 *                             when first needed (kmem_lazy_reserve)
 *   kernel image              at its link address, 0xffffffff80100000
 *   MM_HEAP_BASE              newlib heap (movable frames), above the image so
 *                             newlib accepts it after the early bss pool
 *
 * Everything here runs on one core from thread context (initcalls, pollers,
 * console); mm_compact() disables interrupts while it moves frames so an
 * interrupt handler never sees a half-copied page.
 */
#ifndef MM_MM_H
#define MM_MM_H

#include <stdint.h>
#include "mm/compact.h"
#include "mm/frame.h"
#include "mm/metrics.h"
#include "mm/pgtable.h"

#define MM_DIRECT_MAP_SIZE (64ull << 40)  /* BOOT_HHDM_BASE .. MM_ANON_BASE */
#define MM_ANON_BASE  0xffffc00000000000ull
#define MM_ANON_SIZE  (16ull << 40)
#define MM_META_BASE  (MM_ANON_BASE + MM_ANON_SIZE)
#define MM_META_SIZE  (512ull << 30)
#define MM_LAZY_BASE  (MM_META_BASE + MM_META_SIZE)
#define MM_LAZY_SIZE  (512ull << 30)
#define MM_HEAP_BASE  0xffffffffa0000000ull
#define MM_HEAP_SIZE  (1ull << 30)

/* Frames one mm_compact_blocks call may move (bounded work in a poller). */
#define MM_LEND_COMPACT_BUDGET 2048

/* Boot brings this much free memory online (with the metadata's own
 * section); the rest of RAM comes online from the work loop in slices of
 * about MM_ONLINE_SLICE_NS, or at once when an allocation would fail. */
#define MM_BOOT_ONLINE_PAGES  (64ull << (20 - 12))
#define MM_BOOT_SECTIONS      6   /* sections boot sets up: its own, boot memory, low memory */
#define MM_ONLINE_SLICE_NS    1000000ull

int mm_ready(void);
/* 1 while boot RAM is still coming online; mm_online_all() finishes it now
 * (self-tests and anything that needs every frame counted). */
int mm_online_pending(void);
void mm_online_all(void);
struct frame_alloc *mm_frames(void);       /* NULL before mm_boot_init */
struct pgtable *mm_kernel_pt(void);
/* PFNs the allocator can hand out are below this. */
uint64_t mm_max_pfn(void);

/* Compact until `want_free_blocks` wholly free blocks exist, moving at most
 * max_moves frames (0 = no bound). Interrupts are off while frames move. */
int mm_compact(uint64_t want_free_blocks, uint64_t max_moves, struct compact_result *res);
int mm_add_oom_notifier(fa_oom_fn fn, void *ctx);

void mm_get_stats(struct mm_stats *s);
/* Two lines on the console: free memory, whole-block share, counts. */
void mm_print_stats(void);

/*
 * Lending memory out (the balloon, drivers/balloon/kernel.c). A frame taken
 * here belongs to the caller until mm_give_back: the allocator does not hand
 * it out, the compactor does not move it, and it is not counted as free.
 * Frames come back free, with undefined contents, counted as not resident.
 */
/* Up to `max` wholly free 2 MiB blocks (first PFNs into pfns[]), blocks the
 * host may hold resident first; resident_only: no others. Does not compact. */
unsigned mm_take_free_blocks(uint64_t *pfns, unsigned max, int resident_only);
/* One free, naturally aligned run of 2^order frames, order < BLOCK_ORDER:
 * MM_OK and *pfn, or MM_ENOMEM (nothing changed). */
int mm_take_run(unsigned order, uint64_t *pfn);
/* Give back a block or run exactly as it was taken. */
void mm_give_back(uint64_t pfn, unsigned order);
/* Compact (bounded: MM_LEND_COMPACT_BUDGET frames) for `want` more wholly
 * free blocks; returns the blocks it freed. */
unsigned mm_compact_blocks(unsigned want);
/* Frames free now (lent frames, and blocks isolated for a free page report
 * in flight, excluded) and frames managed (all, boot RAM still coming online
 * included: it is the guest's memory, only not set up yet). */
uint64_t mm_free_pages(void);
uint64_t mm_total_pages(void);
/* Free page reporting: wholly free, resident, unreported blocks now; take up
 * to `max` of them out of circulation; put them back (reported = 1: the host
 * was told, so they come back not resident with undefined contents). */
uint64_t mm_report_pending(void);
/* Have fn() called whenever a block in use becomes wholly free and resident
 * (one subscriber; NULL removes it). It runs inside the allocator, maybe with
 * interrupts off: it may only take note (wake a poller), never allocate. */
void mm_on_free_block(void (*fn)(void));
unsigned mm_report_isolate(uint64_t *pfns, unsigned max);
void mm_report_done(const uint64_t *pfns, unsigned n, int reported);

/*
 * Hot-plugged memory (virtio-mem, drivers/virtio_mem/kernel.c). Whole 2 MiB
 * blocks; all or nothing. mm_hot_add maps the range in the direct map and
 * hands it to the allocator (free, not resident); mm_hot_remove takes it out
 * (free blocks taken, movable ones emptied by moving their frames elsewhere,
 * interrupts off while frames move) and unmaps it: afterwards the kernel
 * never touches it. Errors: MM_EINVAL misaligned, MM_ERANGE beyond what mm
 * can cover, MM_ESTATE already present / not all online, MM_ENOMEM no
 * metadata (add) or no room for the moved frames (remove), MM_EBUSY pinned
 * (unmovable, lent to the balloon, being reported).
 */
struct mm_block_info {
	int online;         /* the block is RAM the allocator manages */
	int kind;           /* enum block_kind */
	unsigned nfree;     /* free frames in it */
	int resident;       /* the host may back it (written since added or discarded) */
};
int mm_hot_add(uint64_t pfn, uint64_t npages);
int mm_hot_remove(uint64_t pfn, uint64_t npages);
int mm_block_info(uint64_t pfn, struct mm_block_info *out);
/* Frames hot-added and still online. */
uint64_t mm_hot_pages(void);

#endif
