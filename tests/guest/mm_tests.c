/*
 * mm_tests.c - in-guest self-tests of the memory manager on real page tables
 * and the real memory map.
 *
 * mm_compact_live is the scenario: movable pages filled with
 * checksummed data, fragmented, compacted; every byte is verified through
 * its virtual address (the MMU, not a table walk) and fresh writes through
 * the VA must land in the frame the tables now name (a stale TLB entry
 * would send them to the old frame). mm_bench_compact (run only when named)
 * prints one JSON line for the guest benchmark.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "boot_info.h"
#include "hw/io.h"
#include "kclock.h"
#include "kernel/lib/console.h"
#include "mm/frame_internal.h"
#include "mm/kmem.h"
#include "kernel/lib/selftest.h"
#include "mm/mm.h"
#include "mm/mm_kernel.h"
#include "tests/unit/rng.h"

#define TEST_VA   0xffffe00000000000ull
#define MAX_PAGES (1u << 18)            /* 1 GiB of test pages at most */

static uint8_t live[MAX_PAGES];
static struct rng rng = RNG_INIT(0x2545f4914f6cdd1dull);

static uint64_t rnd(void) { return rng_next(&rng); }

static inline uint64_t pattern(uint64_t va, unsigned w)
{
	return (va + w) * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995;
}

/* Map up to n movable pages at TEST_VA, each filled through its VA. */
static uint64_t tp_fill(uint64_t n)
{
	uint64_t k;
	for (k = 0; k < n && k < MAX_PAGES; k++) {
		uint64_t va = TEST_VA + (k << 12), pfn;
		if (fa_alloc_movable(&mmk.fa, va, &pfn) != MM_OK)
			break;
		if (pt_map(&mmk.pt, va, pfn << 12, PTE_W | PTE_NX) != MM_OK) {
			fa_free(&mmk.fa, pfn, 0);
			break;
		}
		uint64_t *p = (uint64_t *)va;
		for (unsigned w = 0; w < 512; w++)
			p[w] = pattern(va, w);
		live[k] = 1;
	}
	return k;
}

static void tp_unmap(uint64_t k)
{
	uint64_t pa;
	if (live[k] && pt_unmap(&mmk.pt, TEST_VA + (k << 12), &pa, NULL) == MM_OK)
		fa_free(&mmk.fa, pa >> 12, 0);
	live[k] = 0;
}

/* Every word of every live page, through the MMU. Returns the first bad page or -1. */
static int64_t tp_verify(uint64_t n)
{
	for (uint64_t k = 0; k < n; k++) {
		if (!live[k])
			continue;
		const uint64_t *p = (const uint64_t *)(TEST_VA + (k << 12));
		for (unsigned w = 0; w < 512; w++)
			if (p[w] != pattern(TEST_VA + (k << 12), w))
				return (int64_t)k;
	}
	return -1;
}

static void movable_partials(uint64_t *p, uint64_t *u)
{
	*p = *u = 0;
	FA_FOR_EACH_BLOCK(&mmk.fa, b) {
		const struct mblock *blk = &mmk.fa.blocks[b];
		if (blk->kind == BK_MOVABLE && blk->nfree && blk->nfree < PAGES_PER_BLOCK) {
			(*p)++;
			*u += PAGES_PER_BLOCK - blk->nfree;
		}
	}
}

SELFTEST(mm_state_consistent)
{
	ST_ASSERT(mm_ready());
	ST_ASSERT(read_cr3() == mmk.pt.root);
	/* Loader and boot-services memory was given back: freed at the switch
	 * where it was online, or free when its section came online later. */
	ST_ASSERT(mmk.reclaimed_pages + mmk.fa.boot_reclaimed_frames > 0);
	char why[160];
	if (fa_check(&mmk.fa, why, sizeof why) != MM_OK)
		ST_FAIL("allocator inconsistent: %s", why);
	struct mm_stats st;
	mm_get_stats(&st);
	ST_ASSERT(st.free + st.isolated + st.kernel + st.movable + st.balloon == st.total);
	ST_ASSERT(st.blocks_free > 0);
	mm_print_stats();
	return 0;
}

static int text_marker(void) { return 42; }
static int data_marker = 7;

SELFTEST(mm_page_tables_live)
{
	struct pt_walk w;
	/* Kernel text: executable, read-only. Data: writable, not executable. */
	ST_ASSERT(pt_lookup(&mmk.pt, (uint64_t)&text_marker, &w) == MM_OK);
	ST_ASSERT(!(w.flags & PTE_W) && !(w.flags & PTE_NX));
	ST_ASSERT(text_marker() == 42);
	ST_ASSERT(pt_lookup(&mmk.pt, (uint64_t)&data_marker, &w) == MM_OK);
	ST_ASSERT((w.flags & PTE_W) && (w.flags & PTE_NX));
	ST_ASSERT(virt_to_phys(&data_marker) == w.pa);
	/* Read-only data: neither writable nor executable. */
	static const uint64_t rodata_marker = 0x726f64617461ull;
	ST_ASSERT(pt_lookup(&mmk.pt, (uint64_t)&rodata_marker, &w) == MM_OK);
	ST_ASSERT(!(w.flags & PTE_W) && (w.flags & PTE_NX));
	ST_ASSERT(*(volatile const uint64_t *)&rodata_marker == 0x726f64617461ull);
	/* DMA memory: zeroed, contiguous, aligned to its size, same frame through the direct map. */
	uint64_t pa;
	uint8_t *d = dma_alloc_pages(3, &pa);
	ST_ASSERT(d != NULL);
	ST_ASSERT((pa & (4 * 4096 - 1)) == 0);
	ST_ASSERT(virt_to_phys(d + 3 * 4096 + 5) == pa + 3 * 4096 + 5);
	for (unsigned i = 0; i < 3 * 4096; i += 64)
		ST_ASSERT(d[i] == 0);
	d[100] = 0xab;
	ST_ASSERT(((volatile uint8_t *)phys_to_virt(pa))[100] == 0xab);
	dma_free_pages(d, 3);
	ST_ASSERT(dma_alloc_pages(0, &pa) == NULL);
	ST_ASSERT(dma_alloc_pages(513, &pa) == NULL);
	/* MMIO: uncached; RAM refused. The LAPIC page is device memory on every PC. */
	volatile uint32_t *lapic = mmio_map(0xfee00000, 4096);
	ST_ASSERT(lapic != NULL);
	ST_ASSERT(pt_lookup(&mmk.pt, (uint64_t)lapic, &w) == MM_OK);
	ST_ASSERT((w.flags & PTE_UC) == PTE_UC && w.pa == 0xfee00000);
	ST_ASSERT((mmio_read32(lapic + 0x30 / 4) & 0xff) != 0xff);   /* version register reads sanely */
	ST_ASSERT(mmio_map(pa, 4096) == NULL);
	/* Anonymous movable memory: zeroed, owned by its address, given back.
	 * The window's extent table is set up on first use (one movable page
	 * of its own, kept): counted from after that. */
	kmem_anon_unmap(kmem_anon_map(1), 1);
	ST_ASSERT(mmk.anon_state == 1);
	uint64_t movable = mmk.fa.nr[FS_MOVABLE];
	uint8_t *a = kmem_anon_map(3 * 4096 + 1);
	ST_ASSERT(a != NULL && a[0] == 0 && a[4 * 4096 - 1] == 0);
	ST_ASSERT(mmk.fa.nr[FS_MOVABLE] == movable + 4);
	kmem_anon_unmap(a, 3 * 4096 + 1);
	ST_ASSERT(mmk.fa.nr[FS_MOVABLE] == movable);
	return 0;
}

/* The scenario on real tables: fill, fragment, compact, verify. */
SELFTEST(mm_compact_live)
{
	struct mm_stats st;
	mm_get_stats(&st);
	/* A quarter of free memory, at most 64 MiB: quick under TCG. */
	uint64_t n = st.free / 4;
	if (n > 64 * 256)
		n = 64 * 256;
	/* Fragment: start from fresh blocks so the prediction is exact. */
	uint64_t got = tp_fill(n);
	ST_ASSERT(got == n);
	for (uint64_t k = 0; k < n; k++)
		if (rnd() % 100 < 60)
			tp_unmap(k);
	/* Also some newlib heap data, which the compactor may move as well. */
	enum { NCHUNK = 64 };
	uint32_t *chunk[NCHUNK];
	for (unsigned i = 0; i < NCHUNK; i++) {
		chunk[i] = malloc(6000);
		ST_ASSERT(chunk[i] != NULL);
		for (unsigned j = 0; j < 1500; j++)
			chunk[i][j] = i * 7919u + j;
	}
	uint64_t P, U;
	movable_partials(&P, &U);
	uint64_t before = fa_free_blocks(&mmk.fa);
	struct compact_result r;
	ST_ASSERT(mm_compact(UINT64_MAX, 0, &r) == MM_OK);
	printf("    moved %llu frames in %llu us, freed %llu blocks (%llu -> %llu)\n",
	       (unsigned long long)r.frames_moved, (unsigned long long)(r.ns / 1000),
	       (unsigned long long)r.blocks_freed, (unsigned long long)r.free_blocks_before,
	       (unsigned long long)r.free_blocks_after);
	ST_ASSERT(r.frames_failed == 0);
	ST_ASSERT(r.blocks_freed == P - (U + 511) / 512);
	ST_ASSERT(fa_free_blocks(&mmk.fa) == before + r.blocks_freed);
	ST_ASSERT(r.blocks_freed > 0);
	int64_t bad = tp_verify(n);
	if (bad >= 0)
		ST_FAIL("page %lld corrupted after compaction", (long long)bad);
	for (unsigned i = 0; i < NCHUNK; i++)
		for (unsigned j = 0; j < 1500; j++)
			ST_ASSERT(chunk[i][j] == i * 7919u + j);
	/* Writes through the VA reach the frame the tables name now. */
	for (uint64_t k = 0; k < n; k++) {
		if (!live[k])
			continue;
		volatile uint64_t *p = (volatile uint64_t *)(TEST_VA + (k << 12));
		p[7] = ~pattern((uint64_t)p, 7);
		struct pt_walk w;
		ST_ASSERT(pt_lookup(&mmk.pt, (uint64_t)p, &w) == MM_OK);
		if (((volatile uint64_t *)phys_to_virt(w.pa))[7] != ~pattern((uint64_t)p, 7))
			ST_FAIL("page %llu: write went to a stale translation", (unsigned long long)k);
	}
	for (unsigned i = 0; i < NCHUNK; i++)
		free(chunk[i]);
	for (uint64_t k = 0; k < n; k++)
		tp_unmap(k);
	char why[160];
	if (fa_check(&mmk.fa, why, sizeof why) != MM_OK)
		ST_FAIL("allocator inconsistent: %s", why);
	return 0;
}

/* newlib's free trims the heap: frames go back to the allocator. */
SELFTEST(mm_newlib_heap_shrinks)
{
	uint64_t movable = mmk.fa.nr[FS_MOVABLE], heap = vregion_pages(&mmk.heap);
	uint8_t *p = malloc(16u << 20);
	ST_ASSERT(p != NULL);
	memset(p, 0x5a, 16u << 20);
	ST_ASSERT(mmk.fa.nr[FS_MOVABLE] >= movable + 4096);
	ST_ASSERT(vregion_pages(&mmk.heap) >= heap + 4096);
	/* movable: no physical address a device could be given */
	ST_ASSERT(virt_to_phys(p) == ~0ull);
	free(p);
	malloc_trim(0);
	ST_ASSERT(vregion_pages(&mmk.heap) <= heap + 16);
	ST_ASSERT(mmk.fa.nr[FS_MOVABLE] <= movable + 16);
	/* And it grows again. */
	p = malloc(1u << 20);
	ST_ASSERT(p != NULL);
	memset(p, 1, 1u << 20);
	free(p);
	return 0;
}

/* Lending memory out (the balloon's seam, mm.h): blocks and runs out, back
 * in, accounting intact. */
SELFTEST(mm_balloon_ops)
{
	uint64_t free0 = mm_free_pages(), total = mm_total_pages(), pfns[2], run;
	ST_ASSERT(total == mmk.fa.total && free0 <= total);
	ST_ASSERT(mm_take_free_blocks(pfns, 2, 0) == 2);
	ST_ASSERT(pfns[0] % 512 == 0 && pfns[1] % 512 == 0 && pfns[1] < mm_max_pfn());
	ST_ASSERT(mm_free_pages() == free0 - 1024);
	ST_ASSERT(mm_take_run(3, &run) == MM_OK && run % 8 == 0);
	uint64_t none = 77;
	ST_ASSERT(mm_take_run(9, &none) != MM_OK && none == 77);   /* order 9 is not a run */
	ST_ASSERT(mmk.fa.nr[FS_BALLOON] == 1024 + 8);
	mm_give_back(run, 3);
	mm_give_back(pfns[0], 9);
	mm_give_back(pfns[1], 9);
	ST_ASSERT(mm_free_pages() == free0);
	ST_ASSERT(mmk.fa.nr[FS_BALLOON] == 0);
	ST_ASSERT(!(mmk.fa.blocks[(pfns[0] - mmk.fa.base_pfn) >> 9].flags & BF_RESIDENT));
	return 0;
}

/* An unmovable 2 MiB request with no free block left: the OOM path compacts. */
SELFTEST(mm_oom_compacts)
{
	/* Fragment a few blocks of movable pages, then hand every free block to
	 * a pretend balloon so only compaction can make a new one. */
	uint64_t n = 8 * 512, got = tp_fill(n);
	ST_ASSERT(got == n);
	for (uint64_t k = 0; k < n; k++)
		if (k % 3)
			tp_unmap(k);
	static uint64_t held[4096];
	uint64_t nheld = fa_balloon_take_blocks(&mmk.fa, 4096, held);
	ST_ASSERT(fa_free_blocks(&mmk.fa) == 0);
	uint64_t calls = mmk.fa.oom_calls, blk;
	int err = fa_alloc(&mmk.fa, 9, &blk);
	for (uint64_t i = 0; i < nheld; i++)
		fa_balloon_return(&mmk.fa, held[i], 9);
	ST_ASSERT(err == MM_OK);
	ST_ASSERT(mmk.fa.oom_calls == calls + 1);
	fa_free(&mmk.fa, blk, 9);
	int64_t bad = tp_verify(n);
	for (uint64_t k = 0; k < n; k++)
		tp_unmap(k);
	if (bad >= 0)
		ST_FAIL("page %lld corrupted", (long long)bad);
	return 0;
}

/* Guest benchmark (TCG, relative figures): the host bench's compaction
 * scenario on real page tables with most of free memory. */
SELFTEST_OPT(mm_bench_compact)
{
	struct mm_stats st;
	mm_get_stats(&st);
	uint64_t n = st.free - st.free / 8;
	if (n > MAX_PAGES)
		n = MAX_PAGES;
	uint64_t t0 = clock_ns();
	n = tp_fill(n);
	uint64_t fill_ns = clock_ns() - t0;
	for (uint64_t k = 0; k < n; k++)
		if (rnd() % 100 < 60)
			tp_unmap(k);
	mm_get_stats(&st);
	unsigned before = st.whole_permille;
	struct compact_result r;
	ST_ASSERT(mm_compact(UINT64_MAX, 0, &r) == MM_OK);
	mm_get_stats(&st);
	int64_t bad = tp_verify(n);
	double sec = (double)r.ns / 1e9;
	printf("mm_guest_bench: {\"mem_mib\": %llu, \"pages_filled\": %llu, \"fill_ms\": %.1f, "
	       "\"compaction_ms\": %.1f, \"compaction_mib_per_s\": %.1f, \"frames_moved\": %llu, "
	       "\"blocks_freed\": %llu, \"whole_fraction_before\": %.3f, \"whole_fraction_after\": %.3f}\n",
	       (unsigned long long)(st.total >> 8), (unsigned long long)n, fill_ns / 1e6,
	       sec * 1e3, sec > 0 ? (double)r.frames_moved / 256.0 / sec : 0.0,
	       (unsigned long long)r.frames_moved, (unsigned long long)r.blocks_freed,
	       before / 1000.0, st.whole_permille / 1000.0);
	for (uint64_t k = 0; k < n; k++)
		tp_unmap(k);
	if (bad >= 0)
		ST_FAIL("page %lld corrupted", (long long)bad);
	return 0;
}

/* The console's memory commands: numbers out, bad arguments refused. */
SELFTEST(mm_console_commands)
{
	char mem[] = "mem", compact1[] = "compact 1", bad[] = "compact lots", extra[] = "compact 1 2";
	char neg[] = "compact -1", huge[] = "compact 99999999999999999999", many[] = "compact 1000000000";
	ST_ASSERT(console_exec(mem) == 0);
	ST_ASSERT(console_exec(compact1) == 0);
	ST_ASSERT(console_exec(bad) != 0);
	ST_ASSERT(console_exec(extra) != 0);
	ST_ASSERT(console_exec(neg) != 0);      /* used to wrap to "as many as possible" */
	ST_ASSERT(console_exec(huge) != 0);
	ST_ASSERT(console_exec(many) != 0);     /* more blocks than there are */
	return 0;
}
