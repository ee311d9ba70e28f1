/*
 * mm.c - the memory manager's public calls (mm/mm.h) on the kernel's one
 * allocator and page tables, brought up by boot_init.c. Every call is safe
 * before bring-up finished: it does nothing and says so by its result.
 */
#include <string.h>
#include "hw/io.h"
#include "mm/mm.h"
#include "mm/mm_kernel.h"

int mm_ready(void) { return mmk.ready; }
struct frame_alloc *mm_frames(void) { return mmk.ready ? &mmk.fa : NULL; }
struct pgtable *mm_kernel_pt(void) { return mmk.ready ? &mmk.pt : NULL; }

uint64_t mm_max_pfn(void)
{
	return mmk.ready ? mmk.fa.base_pfn + ((uint64_t)mmk.fa.nblocks << BLOCK_ORDER) : 0;
}

int mm_compact(uint64_t want_free_blocks, uint64_t max_moves, struct compact_result *res)
{
	if (!mmk.ready)
		return MM_ESTATE;
	uint64_t flags = irq_save();
	int err = compact(&mmk.fa, &mmk.pt, want_free_blocks, max_moves, res);
	irq_restore(flags);
	return err;
}

int mm_add_oom_notifier(fa_oom_fn fn, void *ctx)
{
	if (!mmk.ready)
		return MM_ESTATE;
	return fa_add_oom_notifier(&mmk.fa, fn, ctx);
}

void mm_get_stats(struct mm_stats *s)
{
	if (mmk.ready)
		fa_stats(&mmk.fa, s);
	else
		memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- lending memory out */

unsigned mm_take_free_blocks(uint64_t *pfns, unsigned max, int resident_only)
{
	return mmk.ready ? (unsigned)fa_balloon_take_blocks_from(&mmk.fa, max, pfns, resident_only) : 0;
}

int mm_take_run(unsigned order, uint64_t *pfn)
{
	if (!mmk.ready || order >= BLOCK_ORDER)
		return MM_EINVAL;
	return fa_balloon_take_runs(&mmk.fa, order, 1, pfn) == 1 ? MM_OK : MM_ENOMEM;
}

void mm_give_back(uint64_t pfn, unsigned order)
{
	if (mmk.ready)
		fa_balloon_return(&mmk.fa, pfn, order);   /* logs a bad range itself */
}

unsigned mm_compact_blocks(unsigned want)
{
	struct compact_result res;
	if (!mmk.ready || mm_compact(fa_free_blocks(&mmk.fa) + want, MM_LEND_COMPACT_BUDGET, &res) != MM_OK)
		return 0;
	return (unsigned)res.blocks_freed;
}

uint64_t mm_free_pages(void) { return mmk.ready ? fa_free_pages(&mmk.fa) : 0; }
uint64_t mm_total_pages(void) { return mmk.ready ? mmk.fa.total + mmk.pending_pages : 0; }

uint64_t mm_report_pending(void)
{
	return mmk.ready ? mmk.fa.lists[FA_L_FREE_RES].count : 0;
}

static void (*free_block_fn)(void);
static void call_free_block_fn(void *ctx) { free_block_fn(); }

void mm_on_free_block(void (*fn)(void))
{
	free_block_fn = fn;
	mmk.fa.on_free_block = fn ? call_free_block_fn : NULL;
}

unsigned mm_report_isolate(uint64_t *pfns, unsigned max)
{
	return mmk.ready ? (unsigned)fa_report_isolate(&mmk.fa, max, pfns) : 0;
}

void mm_report_done(const uint64_t *pfns, unsigned n, int reported)
{
	if (mmk.ready)
		fa_report_done(&mmk.fa, pfns, n, reported);   /* logs a bad block itself */
}

/* ---------------------------------------------------------------- hot-plugged memory */

/* Hot-added memory is direct-mapped in 2 MiB pages (mm_hot_add). */
static void unmap_direct(uint64_t pa, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += 2 * MIB)
		pt_unmap(&mmk.pt, BOOT_HHDM_BASE + pa + off, NULL, NULL);
}

int mm_hot_add(uint64_t pfn, uint64_t npages)
{
	if (!mmk.ready)
		return MM_ESTATE;
	if (npages == 0 || ((pfn | npages) & (PAGES_PER_BLOCK - 1)))
		return MM_EINVAL;
	uint64_t pa = pfn << PAGE_SHIFT, len = npages << PAGE_SHIFT;
	if (pfn >= (MM_DIRECT_MAP_SIZE >> PAGE_SHIFT) || npages > (MM_DIRECT_MAP_SIZE >> PAGE_SHIFT) - pfn)
		return MM_ERANGE;
	/* Mapped before the allocator may hand it out. */
	int err = pt_map_range(&mmk.pt, BOOT_HHDM_BASE + pa, pa, len, PTE_W | PTE_NX | PTE_G, 1);
	if (err == MM_OK) {
		err = fa_hot_add(&mmk.fa, pfn, npages);
		if (err != MM_OK)
			unmap_direct(pa, len);
	}
	if (err == MM_OK)
		mmk.hot_pages += npages;
	return err;
}

int mm_hot_remove(uint64_t pfn, uint64_t npages)
{
	if (!mmk.ready)
		return MM_ESTATE;
	uint64_t flags = irq_save();
	int err = fa_hot_remove(&mmk.fa, &mmk.pt, pfn, npages, NULL);
	irq_restore(flags);
	if (err == MM_OK) {
		unmap_direct(pfn << PAGE_SHIFT, npages << PAGE_SHIFT);
		mmk.hot_pages = mmk.hot_pages >= npages ? mmk.hot_pages - npages : 0;
	}
	return err;
}

int mm_block_info(uint64_t pfn, struct mm_block_info *out)
{
	if (!out)
		return MM_EINVAL;
	memset(out, 0, sizeof *out);
	out->kind = BK_ABSENT;
	if (!mmk.ready)
		return MM_ESTATE;
	if (pfn & (PAGES_PER_BLOCK - 1))
		return MM_EINVAL;
	if (!fa_pfn_present(&mmk.fa, pfn))
		return MM_OK;
	const struct mblock *blk = &mmk.fa.blocks[(pfn - mmk.fa.base_pfn) >> BLOCK_ORDER];
	out->online = blk->kind != BK_ABSENT;
	out->kind = blk->kind;
	out->nfree = blk->nfree;
	out->resident = (blk->flags & BF_RESIDENT) != 0;
	return MM_OK;
}

uint64_t mm_hot_pages(void) { return mmk.hot_pages; }
