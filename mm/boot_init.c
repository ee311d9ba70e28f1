/*
 * boot_init.c - bring up the memory manager (INITCALL at INIT_MM); the
 * public calls on the result are in mm.c.
 *
 * Order, and why:
 *  1. Metadata for the frame allocator and our page tables are carved from
 *     boot-services memory the firmware left (else free memory), reached
 *     through the loader's direct map (place_meta says why).
 *  2. The allocator starts with boot-services, loader and boot_info memory
 *     still allocated: we are running on the loader's page tables, which
 *     live in BOOTINFO memory.
 *  3. Our tables are built (frames from the allocator), then CR3 switches.
 *     Nothing we still use lives outside the kernel image and the direct map:
 *     the stack, GDT/IDT/TSS and the boot_info copy are all in the image.
 *  4. The heap starts (the anonymous window's table is set up on first
 *     use, mm/kmem.c). Boot memory (RECLAIMABLE and BOOTINFO; ACPI tables
 *     stay) is reclaimed after the kernel is ready, by mm_reclaim_boot.
 * If anything before the switch fails, the kernel stays on the loader's
 * tables with mm not ready: kmem then refuses DMA allocations with a clear
 * line instead of handing out memory nobody tracks.
 */
#include <string.h>
#include "boot_info.h"
#include "hw/io.h"
#include "kclock.h"
#include "kernel/lib/boot.h"
#include "kernel/lib/initcall.h"
#include "kernel/lib/wake.h"
#include "klog.h"
#include "mm/mm.h"
#include "mm/mm_kernel.h"
#include "mm/shrinker.h"

struct mm_kernel mmk;

static void *k_p2v(void *ctx, uint64_t pa) { return (void *)(BOOT_HHDM_BASE + pa); }

/* Until the allocator exists, page tables and metadata pages come from one
 * carved range, bumped upwards; what was used is then claimed from the
 * allocator like any other kernel memory. */
static struct { uint64_t next, end; } boot_bump;
static int fa_live;
/* Frames of boot memory the carve used: they stay the kernel's when the rest
 * is reclaimed ([p0, p1), empty if the carve came from free memory). */
static struct { uint64_t p0, p1; } boot_keep;

static int boot_page(uint64_t *pa)
{
	if (fa_live) {
		uint64_t pfn;
		int err = fa_alloc(&mmk.fa, 0, &pfn);
		if (err)
			return err;
		*pa = pfn << PAGE_SHIFT;
		return MM_OK;
	}
	if (boot_bump.next >= boot_bump.end)
		return MM_ENOMEM;
	*pa = boot_bump.next;
	boot_bump.next += PAGE_SIZE;
	return MM_OK;
}

static int k_alloc_table(void *ctx, uint64_t *pa)
{
	int err = boot_page(pa);
	if (!err)
		mmk.table_pages++;
	return err;
}

static void k_free_table(void *ctx, uint64_t pa)
{
	if (fa_live && fa_free(&mmk.fa, pa >> PAGE_SHIFT, 0) == MM_OK)
		mmk.table_pages--;
}

/* invlpg on a table that is not live is harmless, so no special case. */
static void k_flush(void *ctx, uint64_t va) { invlpg((uintptr_t)va); }

static const struct pt_ops kernel_pt_ops = {
	.phys_to_virt = k_p2v,
	.alloc_table = k_alloc_table,
	.free_table = k_free_table,
	.flush_tlb = k_flush,
};

static int is_ram_type(uint32_t t)
{
	return t == BOOT_MEM_USABLE || t == BOOT_MEM_RECLAIMABLE || t == BOOT_MEM_KERNEL ||
	       t == BOOT_MEM_BOOTINFO || t == BOOT_MEM_ACPI_RECLAIM || t == BOOT_MEM_ACPI_NVS ||
	       t == BOOT_MEM_EFI_RUNTIME;
}

/* The frame metadata's windows (frame.h struct fa_meta): virtual arrays with
 * room for all memory the direct map can reach, backed page by page only
 * where sections hold RAM (Linux's vmemmap). */
#define META_MAX_BLOCKS (MM_DIRECT_MAP_SIZE >> (BLOCK_ORDER + PAGE_SHIFT))
#define META_OWNER    (MM_META_BASE)
#define META_DESC     (META_OWNER + META_MAX_BLOCKS * PAGES_PER_BLOCK * 8)
#define META_BLOCKS   (META_DESC + META_MAX_BLOCKS * PAGES_PER_BLOCK)
#define META_SCRATCH  (META_BLOCKS + ((META_MAX_BLOCKS * sizeof(struct mblock) + (1ull << 30) - 1) & ~((1ull << 30) - 1)))
#define META_SECTIONS (META_SCRATCH + META_MAX_BLOCKS * 4)
#define META_END      (META_SECTIONS + (META_MAX_BLOCKS >> FA_SECTION_SHIFT))
_Static_assert(META_END <= MM_META_BASE + MM_META_SIZE, "metadata windows overflow their area");

static int meta_populate(void *ctx, void *p, size_t bytes)
{
	uint64_t va = (uint64_t)(uintptr_t)p & ~(uint64_t)(PAGE_SIZE - 1);
	uint64_t end = (uint64_t)(uintptr_t)p + bytes;
	for (; va < end; va += PAGE_SIZE) {
		struct pt_walk w;
		if (pt_lookup(&mmk.pt, va, &w) == MM_OK)
			continue;           /* shared with a neighbouring section */
		uint64_t pa;
		int err = boot_page(&pa);
		if (!err)
			err = pt_map(&mmk.pt, va, pa, PTE_W | PTE_NX | PTE_G);
		if (err)
			return MM_ENOMEM;
		mmk.meta_pages++;
	}
	return MM_OK;
}

/* The whole pages of [p, p + bytes) go back to the allocator (hot-removed
 * sections' descriptors and owner words). */
static void meta_depopulate(void *ctx, void *p, size_t bytes)
{
	uint64_t va = ((uint64_t)(uintptr_t)p + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	uint64_t end = ((uint64_t)(uintptr_t)p + bytes) & ~(uint64_t)(PAGE_SIZE - 1);
	for (; va < end; va += PAGE_SIZE) {
		uint64_t pa;
		if (pt_unmap(&mmk.pt, va, &pa, NULL) == MM_OK && fa_free(&mmk.fa, pa >> PAGE_SHIFT, 0) == MM_OK)
			mmk.meta_pages--;
	}
}

/* Page-table pages the boot mappings may need, an upper bound: per region
 * its edges and its 1 GiB directories, the kernel image, and per metadata
 * section its windows' tables. */
static uint64_t table_pages_bound(const struct boot_info *bi, size_t meta_bytes)
{
	uint64_t pages = 64 + (bi->kernel_size >> 21) + 8;
	for (uint32_t i = 0; i < bi->mmap_count; i++)
		pages += 4 + ((bi->mmap[i].pages * PAGE_SIZE) >> 30);
	return pages + (meta_bytes >> 21) * 2 + (meta_bytes >> 17);
}

/* Where the carve goes. Memory the firmware used and left behind (boot
 * services code and data, RECLAIMABLE) first: nothing uses it once we run
 * on our own stack, GDT and IDT with boot_info copied, and the host already
 * backs it - the first write to a 2 MiB page the guest never touched makes
 * the host populate it, 4-6 ms under TCG, more than the rest of mm's set-up.
 * Else the top of the highest usable region with room: far from the low
 * memory some firmware and devices like. Either way the top of the highest
 * region that fits, on a 2 MiB boundary when the region allows, so boot
 * writes one 2 MiB page of the host's, not two. */
static uint64_t place_meta(const struct boot_info *bi, uint64_t bytes, uint32_t *type)
{
	static const uint32_t prefer[] = { BOOT_MEM_RECLAIMABLE, BOOT_MEM_USABLE };
	uint64_t len = (bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	for (unsigned k = 0; k < 2; k++)
		for (uint32_t i = bi->mmap_count; i-- > 0;) {
			const struct boot_mem_region *r = &bi->mmap[i];
			uint64_t end = r->base + r->pages * PAGE_SIZE;
			if (r->type != prefer[k] || r->pages * PAGE_SIZE < len || end > bi->max_phys)
				continue;
			uint64_t at = (end - len) & ~(PT_SIZE_2M - 1);
			*type = prefer[k];
			return at >= r->base ? at : end - len;
		}
	return 0;
}

/* 1 GiB pages (CPUID 0x80000001 EDX bit 26): the direct map of a big guest
 * then takes a few entries per GiB to build, not 512. */
static int cpu_has_1g_pages(void)
{
	uint32_t r[4];
	cpuid(0x80000000u, 0, r);
	if (r[0] < 0x80000001u)
		return 0;
	cpuid(0x80000001u, 0, r);
	return (r[3] >> 26) & 1;
}

/* Direct map: every run of RAM-like regions, write-back, 2 MiB pages where
 * they fit. MMIO is not here: mmio_map adds it uncached on demand. */
static int map_direct(const struct boot_info *bi)
{
	uint32_t i = 0;
	while (i < bi->mmap_count) {
		if (!is_ram_type(bi->mmap[i].type)) {
			i++;
			continue;
		}
		uint64_t start = bi->mmap[i].base, end = start + bi->mmap[i].pages * PAGE_SIZE;
		for (i++; i < bi->mmap_count && is_ram_type(bi->mmap[i].type) && bi->mmap[i].base == end; i++)
			end += bi->mmap[i].pages * PAGE_SIZE;
		int err = pt_map_range(&mmk.pt, BOOT_HHDM_BASE + start, start, end - start,
		                       PTE_W | PTE_NX | PTE_G, cpu_has_1g_pages() ? 2 : 1);
		if (err) {
			klog("mm: direct map of %#llx-%#llx failed: %s", (unsigned long long)start,
			     (unsigned long long)end, mm_strerror(err));
			return err;
		}
	}
	return MM_OK;
}

/* The kernel image page by page with the permissions the loader gave each
 * segment, read from the loader's tables (which follow the ELF segment flags:
 * text R-X, rodata R--, data RW-) rather than trusting link-time symbols;
 * code pages never get W, whatever the loader did (W^X). */
static int map_kernel(const struct boot_info *bi)
{
	struct pgtable loader = { .root = bi->loader_pml4, .ops = &kernel_pt_ops };
	for (uint64_t off = 0; off < bi->kernel_size; off += PAGE_SIZE) {
		uint64_t va = bi->kernel_virt + off, pa = bi->kernel_phys + off;
		uint64_t flags = PTE_W | PTE_NX;
		struct pt_walk w;
		if (pt_lookup(&loader, va, &w) == MM_OK && w.pa == pa)
			flags = w.flags & (PTE_W | PTE_NX);
		if (!(flags & PTE_NX))
			flags &= ~PTE_W;    /* code is never writable */
		int err = pt_map(&mmk.pt, va, pa, flags | PTE_G);
		if (err) {
			klog("mm: mapping the kernel at %#llx failed: %s", (unsigned long long)va, mm_strerror(err));
			return err;
		}
	}
	return MM_OK;
}

/* UEFI runtime services run at their physical addresses (no
 * SetVirtualAddressMap): their code and data, ACPI NVS and the MMIO the
 * firmware declared stay identity mapped. Runtime code must stay executable. */
static int map_identity(const struct boot_info *bi)
{
	for (uint32_t i = 0; i < bi->mmap_count; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		uint64_t flags;
		switch (r->type) {
		case BOOT_MEM_EFI_RUNTIME: flags = PTE_W; break;
		case BOOT_MEM_ACPI_NVS:    flags = PTE_W | PTE_NX; break;
		case BOOT_MEM_MMIO:        flags = PTE_W | PTE_NX | PTE_UC; break;
		default: continue;
		}
		if (r->base + r->pages * PAGE_SIZE > (1ull << 46))
			continue;   /* not reachable as an identity address anyway */
		int err = pt_map_range(&mmk.pt, r->base, r->base, r->pages * PAGE_SIZE, flags, 1);
		if (err) {
			klog("mm: identity map of %#llx (+%llu pages) failed: %s", (unsigned long long)r->base,
			     (unsigned long long)r->pages, mm_strerror(err));
			return err;
		}
	}
	return MM_OK;
}

/* Second OOM notifier: ask the registered shrinkers, batch by batch. Not
 * while sbrk grows the heap: a shrinker calling free() from inside newlib's
 * malloc would corrupt the heap (newlib is not reentrant). */
static uint64_t shrink_on_oom(void *ctx, unsigned order, enum block_kind kind)
{
	uint64_t want = 1ull << order, got = 0, n;
	if (mmk.in_sbrk)
		return 0;
	for (int i = 0; i < 16 && got < want && (n = shrinker_reclaim(want - got)) > 0; i++)
		got += n;
	return got;
}

/* Compaction as the first OOM notifier: it can only help requests that need
 * a free block (unmovable memory, runs), not a movable 4 KiB frame. */
static uint64_t compact_on_oom(void *ctx, unsigned order, enum block_kind kind)
{
	if (kind == BK_MOVABLE && order == 0)
		return 0;
	struct compact_result res;
	if (mm_compact(fa_free_blocks(&mmk.fa) + 1, 0, &res) != MM_OK)
		return 0;
	return res.blocks_freed * PAGES_PER_BLOCK;
}

/* ---- the rest of RAM, after boot */

static int onlining;    /* inside fa_online_boot: its own allocations must not recurse */

/* Bring up to max_sections more sections of boot RAM online; returns how
 * many (0: all RAM is online, or it failed and said so once). */
static uint64_t online_more(unsigned max_sections)
{
	uint64_t done = 0;
	if (!mmk.ready || mmk.online_done || onlining)
		return 0;
	onlining = 1;
	uint64_t before = mmk.fa.total;
	int err = fa_online_boot(&mmk.fa, 0, UINT64_MAX, max_sections, &done);
	onlining = 0;
	uint64_t came = mmk.fa.total - before;
	mmk.pending_pages = mmk.pending_pages > came ? mmk.pending_pages - came : 0;
	if (err) {
		klog("mm: bringing RAM online stopped: no memory for its metadata (%s); %llu MiB online",
		     mm_strerror(err), (unsigned long long)(mmk.fa.total >> 8));
		mmk.online_done = 1;
	}
	if (err || !done)
		mmk.pending_pages = 0;
	if (!err && !done) {
		mmk.online_done = 1;
		mmk.online_ns = clock_ns() - mmk.online_t0;
		klog("mm: all RAM online: %llu MiB, metadata %llu KiB, %llu MiB reclaimed from boot in all, "
		     "%llu us after boot",
		     (unsigned long long)(mmk.fa.total >> 8), (unsigned long long)(mmk.meta_pages * 4),
		     (unsigned long long)((mmk.reclaimed_pages + mmk.fa.boot_reclaimed_frames) >> 8),
		     (unsigned long long)(mmk.online_ns / 1000));
	}
	return done;
}

void mm_online_all(void)
{
	while (online_more(64))
		;
}

int mm_online_pending(void) { return mmk.ready && !mmk.online_done; }

/* A slice per round of the work loop: about a millisecond of work, so the
 * console and devices stay responsive while a big guest comes up. */
static void online_poll(uint64_t now)
{
	if (!mm_online_pending())
		return;
	uint64_t t0 = clock_ns();
	while (online_more(1) && clock_ns() - t0 < MM_ONLINE_SLICE_NS)
		;
	if (mm_online_pending())
		wake_at(0);
}
POLLER(online_poll);

/* First OOM notifier: RAM not yet online is the cheapest memory there is. */
static uint64_t online_on_oom(void *ctx, unsigned order, enum block_kind kind)
{
	uint64_t before = fa_free_pages(&mmk.fa);
	while (online_more(1) && fa_free_pages(&mmk.fa) < before + (1ull << order))
		;
	return fa_free_pages(&mmk.fa) - before;
}

static int mm_boot_init(void)
{
	const struct boot_info *bi = boot_info_get();
	if (!bi)
		return -1;
	uint64_t t0 = clock_ns();
	/* The carve holds what boot needs and no more (so boot writes one host
	 * huge page, whatever the RAM size): page tables, the section flags,
	 * and metadata for MM_BOOT_SECTIONS sections - its own (at most two),
	 * the firmware's memory and low memory; later sections' metadata comes
	 * from the allocator. */
	size_t meta_bytes = fa_meta_bytes_sparse(bi->mmap, bi->mmap_count);
	size_t boot_meta = MM_BOOT_SECTIONS * fa_section_meta_bound() +
	                   ((bi->max_phys >> (BLOCK_ORDER + PAGE_SHIFT + FA_SECTION_SHIFT)) + 2 * PAGE_SIZE);
	if (boot_meta > meta_bytes)
		boot_meta = meta_bytes;
	uint64_t carve = boot_meta + table_pages_bound(bi, boot_meta) * PAGE_SIZE;
	uint32_t carve_type = 0;
	uint64_t carve_pa = meta_bytes ? place_meta(bi, carve, &carve_type) : 0;
	if (!carve_pa) {
		klog("mm: no usable region holds the %llu KiB of frame metadata and page tables",
		     (unsigned long long)carve >> 10);
		return -1;
	}
	boot_bump.next = carve_pa;
	boot_bump.end = carve_pa + carve;
	if (bi->kernel_virt + bi->kernel_size > MM_HEAP_BASE) {
		klog("mm: kernel image reaches into the heap window");
		return -1;
	}
	mmk.kernel_virt = bi->kernel_virt;
	mmk.kernel_phys = bi->kernel_phys;
	mmk.kernel_size = bi->kernel_size;

	int err = pt_init(&mmk.pt, &kernel_pt_ops, NULL);
	if (!err)
		err = map_direct(bi);
	if (!err)
		err = map_kernel(bi);
	if (!err)
		err = map_identity(bi);
	if (err) {
		klog("mm: building page tables failed (%s); staying on the loader's", mm_strerror(err));
		return -1;
	}
	mm_early_mmio_replay();

	write_cr3(mmk.pt.root);

	/* On our tables: the metadata windows can be populated now. */
	struct fa_meta meta = {
		.owner = (uint64_t *)META_OWNER, .desc = (uint8_t *)META_DESC,
		.blocks = (struct mblock *)META_BLOCKS, .scratch = (uint32_t *)META_SCRATCH,
		.sections = (uint8_t *)META_SECTIONS, .max_blocks = META_MAX_BLOCKS,
		.populate = meta_populate, .depopulate = meta_depopulate, .defer = 1,
	};
	/* Boot brings online only the section(s) of the carved range and enough
	 * low memory for the drivers' set-up; the rest comes online from the
	 * work loop (online_poll), so boot time does not grow with RAM. */
	uint64_t done;
	err = fa_init_meta(&mmk.fa, bi->mmap, bi->mmap_count, &meta);
	if (!err)
		err = fa_online_boot(&mmk.fa, carve_pa >> PAGE_SHIFT, carve >> PAGE_SHIFT, UINT32_MAX, &done);
	/* Then the firmware's and the loader's memory: reclaimed below, it is
	 * free memory the host already backs, so early allocations do not make
	 * the host populate more (each fresh 2 MiB costs it milliseconds). */
	for (uint32_t i = 0; i < bi->mmap_count && !err; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		if ((r->type == BOOT_MEM_RECLAIMABLE || r->type == BOOT_MEM_BOOTINFO) &&
		    boot_bump.end - boot_bump.next >= 2 * fa_section_meta_bound() + 8 * PAGE_SIZE)
			err = fa_online_boot(&mmk.fa, r->base >> PAGE_SHIFT, r->pages, 1, &done);
	}
	while (!err && fa_free_pages(&mmk.fa) < MM_BOOT_ONLINE_PAGES &&
	       boot_bump.end - boot_bump.next >= fa_section_meta_bound() + 8 * PAGE_SIZE &&
	       (err = fa_online_boot(&mmk.fa, 0, UINT64_MAX, 1, &done)) == MM_OK && done)
		;
	/* What the carve used stays the kernel's: boot memory is that already;
	 * free memory is claimed. */
	if (!err && carve_type == BOOT_MEM_USABLE)
		err = fa_claim_range(&mmk.fa, carve_pa >> PAGE_SHIFT, (boot_bump.next - carve_pa) >> PAGE_SHIFT);
	if (err) {
		/* Our tables map everything the kernel uses, so it runs on; kmem
		 * refuses to hand out memory nobody tracks. */
		klog("mm: frame allocator set-up failed: %s", mm_strerror(err));
		return -1;
	}
	fa_live = 1;
	mmk.ready = 1;
	boot_keep.p0 = carve_type == BOOT_MEM_RECLAIMABLE ? carve_pa >> PAGE_SHIFT : 0;
	boot_keep.p1 = carve_type == BOOT_MEM_RECLAIMABLE ? boot_bump.next >> PAGE_SHIFT : 0;
	/* RAM still to come online counts as memory the guest has (the
	 * balloon's total, its stats): it is only not set up yet. */
	for (uint32_t i = 0; i < bi->mmap_count; i++)
		if (fa_region_is_ram(bi->mmap[i].type))
			mmk.pending_pages += bi->mmap[i].pages;
	mmk.pending_pages = mmk.pending_pages > mmk.fa.total ? mmk.pending_pages - mmk.fa.total : 0;

	if (vregion_init(&mmk.heap, &mmk.fa, &mmk.pt, MM_HEAP_BASE, MM_HEAP_SIZE))
		klog("mm: heap window set-up failed");
	fa_add_oom_notifier(&mmk.fa, online_on_oom, NULL);
	fa_add_oom_notifier(&mmk.fa, compact_on_oom, NULL);
	fa_add_oom_notifier(&mmk.fa, shrink_on_oom, NULL);
	mmk.init_ns = clock_ns() - t0;
	mmk.online_t0 = t0;

	/* Counters, not fa_stats' walk over every block: this line is on the
	 * path to ready. */
	klog("mm: %llu MiB managed, %llu MiB free (%llu free 2 MiB blocks), "
	     "metadata %llu KiB, page tables %llu KiB (%llu of %llu KiB carved from %s memory), ready in %llu us",
	     (unsigned long long)(mmk.fa.total >> 8), (unsigned long long)(fa_free_pages(&mmk.fa) >> 8),
	     (unsigned long long)fa_free_blocks(&mmk.fa),
	     (unsigned long long)(mmk.meta_pages * 4), (unsigned long long)(mmk.table_pages * 4),
	     (unsigned long long)((boot_bump.next - carve_pa) >> 10), (unsigned long long)(carve >> 10),
	     carve_type == BOOT_MEM_RECLAIMABLE ? "boot-services" : "free",
	     (unsigned long long)(mmk.init_ns / 1000));
	return 0;
}
INITCALL(INIT_MM, mm_boot_init);

/* Nothing uses the loader's tables, stack or boot-services memory once the
 * kernel runs on its own tables, except what the carve took of it: all of it
 * is free memory the host already backs. It is handed back by the first late
 * initcall rather than on the way to ready: nothing before it allocates a
 * frame (the LAPIC mapping comes from the carve, the anonymous window waits
 * for its first user), so the drivers' buffers, the first allocations, come
 * from it and not from memory the host must first populate (a first write to
 * such a page costs ~10 us under TCG). What comes online later is free from
 * the start (fa_boot_reclaimed). */
static int mm_reclaim_boot(void)
{
	const struct boot_info *bi = boot_info_get();
	if (!mmk.ready)
		return 0;
	uint64_t t0 = clock_ns();
	for (uint32_t i = 0; i < bi->mmap_count; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		if (r->type != BOOT_MEM_RECLAIMABLE && r->type != BOOT_MEM_BOOTINFO)
			continue;
		uint64_t p0 = r->base >> PAGE_SHIFT, p1 = p0 + r->pages;
		if (boot_keep.p1 <= p0 || boot_keep.p0 >= p1) {
			mmk.reclaimed_pages += fa_free_range(&mmk.fa, p0, r->pages);
			continue;
		}
		if (boot_keep.p0 > p0)
			mmk.reclaimed_pages += fa_free_range(&mmk.fa, p0, boot_keep.p0 - p0);
		if (p1 > boot_keep.p1)
			mmk.reclaimed_pages += fa_free_range(&mmk.fa, boot_keep.p1, p1 - boot_keep.p1);
	}
	fa_boot_reclaimed(&mmk.fa);
	klog("mm: %llu MiB of boot memory reclaimed in %llu us",
	     (unsigned long long)(mmk.reclaimed_pages >> 8), (unsigned long long)((clock_ns() - t0) / 1000));
	return 0;
}
INITCALL(INIT_PLATFORM, mm_reclaim_boot);
