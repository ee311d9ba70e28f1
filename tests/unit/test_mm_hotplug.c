/*
 * test_mm_hotplug.c - sparse frame metadata and memory that comes and goes:
 * holes in the memory map cost no metadata (touching an absent section's
 * metadata would fault: the windows are PROT_NONE until populated), hot-add
 * above boot RAM, hot-remove of free blocks and of movable blocks whose
 * frames move out with their data and mappings intact, and every refusal
 * (pinned, no room, misaligned, twice, metadata allocation failing) leaving
 * the allocator exactly as it was.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>
#include "mm/frame_internal.h"
#include "mm/compact.h"
#include "mm/metrics.h"
#include "rng.h"
#include "test_mm_sim.h"

#define VA   0xffffc00000000000ull
#define GIB  (1ull << 30)
#define MIB_ (1ull << 20)

static void assert_consistent(const struct frame_alloc *fa)
{
	char why[256] = "";
	if (fa_check(fa, why, sizeof why))
		fail_msg("fa_check: %s", why);
}

static uint64_t pattern(uint64_t va, unsigned word)
{
	uint64_t x = va * 0x9e3779b97f4a7c15ull ^ (word + 1) * 0xff51afd7ed558ccdull;
	return x ^ (x >> 29);
}

/* 64 MiB of boot RAM at 0, room to hot-add up to ram_end. */
static void boot_small(struct mm_sim *s, uint64_t ram_end)
{
	struct boot_mem_region r = { .base = 0, .pages = (64 * MIB_) >> 12, .type = BOOT_MEM_USABLE };
	assert_int_equal(mm_sim_init_sparse(s, &r, 1, ram_end, 1), 0);
}

static void check_movable(struct mm_sim *s, uint64_t k)
{
	uint64_t va = VA + (k << 12);
	struct pt_walk w;
	assert_int_equal(pt_lookup(&s->pt, va, &w), MM_OK);
	const uint64_t *p = mm_sim_p2v(s, w.pa);
	for (unsigned i = 0; i < 512; i++)
		if (p[i] != pattern(va, i))
			fail_msg("page %llu word %u corrupted", (unsigned long long)k, i);
	struct frame_info fi;
	assert_int_equal(fa_frame_info(&s->fa, w.pa >> 12, &fi), MM_OK);
	assert_int_equal(fi.state, FS_MOVABLE);
	assert_int_equal(fi.owner_va, va);
}

static void teardown(struct mm_sim *s)
{
	assert_consistent(&s->fa);
	pt_destroy(&s->pt);
	mm_sim_fini(s);
}

/* Two 64 MiB pieces of RAM 64 GiB apart: metadata for two sections, not for
 * the 64 GiB between them (the dense layout would need ~150 MB). */
static void test_holes_cost_nothing(void **state)
{
	struct mm_sim s;
	struct boot_mem_region r[2] = {
		{ .base = 0, .pages = (64 * MIB_) >> 12, .type = BOOT_MEM_USABLE },
		{ .base = 64 * GIB, .pages = (64 * MIB_) >> 12, .type = BOOT_MEM_USABLE },
	};
	assert_int_equal(mm_sim_init_sparse(&s, r, 2, 64 * GIB + 64 * MIB_, 0), 0);
	assert_true(s.populated < 1024 * 1024);
	assert_true(fa_meta_bytes_sparse(r, 2) < 1024 * 1024);
	assert_true(fa_meta_bytes(r, 2) > 100ull * 1024 * 1024);
	assert_int_equal(s.fa.total, 2 * ((64 * MIB_) >> 12));
	assert_true(fa_pfn_present(&s.fa, 0));
	assert_false(fa_pfn_present(&s.fa, GIB >> 12));
	assert_true(fa_pfn_present(&s.fa, (64 * GIB) >> 12));
	/* Frames in the hole are refused without touching metadata. */
	struct frame_info fi;
	assert_int_equal(fa_frame_info(&s.fa, (2 * GIB) >> 12, &fi), MM_ERANGE);
	assert_int_equal(fa_free(&s.fa, (2 * GIB) >> 12, 0), MM_ERANGE);
	assert_int_equal(fa_claim_range(&s.fa, (2 * GIB) >> 12, 1), MM_ERANGE);
	/* Both pieces serve allocations. */
	uint64_t pfn, seen_high = 0;
	while (fa_alloc(&s.fa, 9, &pfn) == MM_OK)
		seen_high |= pfn >= (64 * GIB) >> 12;
	assert_true(seen_high);
	assert_int_equal(fa_free_pages(&s.fa), 0);
	struct mm_stats st;
	fa_stats(&s.fa, &st);
	assert_int_equal(st.blocks_total, 64);
	teardown(&s);
}

static void test_hot_add_above(void **state)
{
	struct mm_sim s;
	boot_small(&s, 4 * GIB + 256 * MIB_);
	uint64_t total0 = s.fa.total, free0 = fa_free_pages(&s.fa), pop0 = s.populated;
	uint64_t pfn0 = (4 * GIB) >> 12, n = (256 * MIB_) >> 12;
	assert_int_equal(fa_hot_add(&s.fa, pfn0, n), MM_OK);
	assert_int_equal(s.fa.total, total0 + n);
	assert_int_equal(fa_free_pages(&s.fa), free0 + n);
	/* Two new sections of metadata, nothing for the 4 GiB below. */
	assert_true(s.populated - pop0 < 2 * 320 * 1024);
	assert_false(fa_pfn_present(&s.fa, (2 * GIB) >> 12));
	struct frame_info fi;
	assert_int_equal(fa_frame_info(&s.fa, pfn0 + 5, &fi), MM_OK);
	assert_int_equal(fi.state, FS_FREE);
	assert_int_equal(fi.block_kind, BK_FREE);
	assert_false(fi.block_flags & BF_RESIDENT);    /* the host has not populated it */
	assert_consistent(&s.fa);
	/* Unmovable memory never goes there (it could never be given back),
	 * nor the balloon; movable memory does, once boot RAM is used up. */
	uint64_t pfn, high = 0;
	while (fa_alloc(&s.fa, 9, &pfn) == MM_OK)
		assert_true(pfn < pfn0);
	while (fa_alloc(&s.fa, 0, &pfn) == MM_OK)
		assert_true(pfn < pfn0);
	assert_int_equal(fa_balloon_take_blocks(&s.fa, 1, &pfn), 0);
	assert_int_equal(fa_free_blocks(&s.fa), n / 512);
	for (uint64_t k = 0; fa_alloc_movable(&s.fa, VA + (k << 12), &pfn) == MM_OK; k++) {
		assert_true(pfn >= pfn0);
		high++;
		memset(mm_sim_p2v(&s, pfn << 12), 0xa5, 4096);
	}
	assert_int_equal(high, n);
	teardown(&s);
}

static void test_hot_add_refusals(void **state)
{
	struct mm_sim s;
	boot_small(&s, 2 * GIB);
	uint64_t total0 = s.fa.total;
	uint64_t g = GIB >> 12;
	assert_int_equal(fa_hot_add(&s.fa, g + 1, 512), MM_EINVAL);       /* misaligned */
	assert_int_equal(fa_hot_add(&s.fa, g, 100), MM_EINVAL);
	assert_int_equal(fa_hot_add(&s.fa, g, 0), MM_EINVAL);
	assert_int_equal(fa_hot_add(&s.fa, 0, 512), MM_ESTATE);           /* boot RAM */
	assert_int_equal(fa_hot_add(&s.fa, (2 * GIB) >> 12, 512), MM_ERANGE);  /* beyond the windows */
	assert_int_equal(fa_hot_add(&s.fa, g, UINT64_MAX & ~511ull), MM_ERANGE);
	assert_int_equal(s.fa.total, total0);
	assert_consistent(&s.fa);
	/* Metadata that cannot be had: nothing added, and a retry works. */
	s.populate_fail_after = 1;
	assert_int_equal(fa_hot_add(&s.fa, g, 512), MM_ENOMEM);
	assert_int_equal(s.fa.total, total0);
	assert_consistent(&s.fa);
	assert_int_equal(fa_hot_add(&s.fa, g, 1024), MM_OK);
	assert_int_equal(fa_hot_add(&s.fa, g + 512, 512), MM_ESTATE);     /* twice */
	assert_int_equal(s.fa.total, total0 + 1024);
	teardown(&s);
}

/* Free blocks go; the kernel never touches them again (the test makes them
 * inaccessible, then allocates everything that is left and writes it). */
static void test_hot_remove_free(void **state)
{
	struct mm_sim s;
	boot_small(&s, 2 * GIB);
	uint64_t g = GIB >> 12, n = (128 * MIB_) >> 12;
	uint64_t total0 = s.fa.total;
	assert_int_equal(fa_hot_add(&s.fa, g, n), MM_OK);
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, g, n / 2, NULL), MM_OK);
	assert_int_equal(s.fa.total, total0 + n / 2);
	assert_consistent(&s.fa);
	assert_int_equal(mprotect(s.ram + GIB, 64 * MIB_, PROT_NONE), 0);
	uint64_t pfn;
	while (fa_alloc(&s.fa, 0, &pfn) == MM_OK) {
		assert_false(pfn >= g && pfn < g + n / 2);
		*(volatile uint8_t *)mm_sim_p2v(&s, pfn << 12) = 1;
	}
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, g, n / 2, NULL), MM_ESTATE);  /* gone already */
	assert_int_equal(mprotect(s.ram + GIB, 64 * MIB_, PROT_READ | PROT_WRITE), 0);
	/* Back in again. */
	assert_int_equal(fa_hot_add(&s.fa, g, n / 2), MM_OK);
	assert_int_equal(s.depopulated, 0);      /* its section still has RAM */
	/* All of it gone: the section's descriptors and owner words go back
	 * (the windows turn PROT_NONE again), and it can come back later. */
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, g, n, NULL), MM_OK);
	assert_false(fa_pfn_present(&s.fa, g));
	assert_int_equal(s.depopulated, 64 * 512 * 9);
	assert_consistent(&s.fa);
	assert_int_equal(fa_hot_add(&s.fa, g + 512, 512), MM_OK);
	uint64_t pfn2;
	while (fa_alloc_movable(&s.fa, VA, &pfn2) == MM_OK && pfn2 < g)
		;
	assert_int_equal(pfn2, g + 512);
	teardown(&s);
}

/* Movable data spread over the hot-added range moves out with its contents,
 * mapping and owner; the removed range holds no RAM afterwards. */
static void test_hot_remove_moves_movable(void **state)
{
	struct mm_sim s;
	boot_small(&s, 2 * GIB);
	uint64_t g = GIB >> 12, n = (64 * MIB_) >> 12;
	assert_int_equal(fa_hot_add(&s.fa, g, n), MM_OK);
	/* Fill everything with movable pages, then free 3 of 4: the survivors
	 * sit in every block, boot RAM and hot-added alike. */
	uint64_t npages = 0;
	while (s.fa.nr[FS_FREE] > 64) {
		uint64_t va = VA + (npages << 12), pfn;
		if (fa_alloc_movable(&s.fa, va, &pfn) != MM_OK)
			break;
		assert_int_equal(pt_map(&s.pt, va, pfn << 12, PTE_W | PTE_NX), MM_OK);
		uint64_t *p = mm_sim_p2v(&s, pfn << 12);
		for (unsigned w = 0; w < 512; w++)
			p[w] = pattern(va, w);
		npages++;
	}
	uint8_t *live = calloc(npages, 1);
	for (uint64_t k = 0; k < npages; k++) {
		live[k] = k % 4 == 0;
		if (!live[k]) {
			uint64_t pa;
			assert_int_equal(pt_unmap(&s.pt, VA + (k << 12), &pa, NULL), MM_OK);
			assert_int_equal(fa_free(&s.fa, pa >> 12, 0), MM_OK);
		}
	}
	uint64_t in_range = 0;
	for (uint64_t k = 0; k < npages; k++) {
		struct pt_walk w;
		if (live[k] && pt_lookup(&s.pt, VA + (k << 12), &w) == MM_OK)
			in_range += (w.pa >> 12) >= g && (w.pa >> 12) < g + n;
	}
	assert_true(in_range > 1000);
	uint64_t moved = 0, total0 = s.fa.total;
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, g, n, &moved), MM_OK);
	assert_int_equal(moved, in_range);
	assert_int_equal(s.fa.total, total0 - n);
	for (uint64_t k = 0; k < npages; k++)
		if (live[k]) {
			check_movable(&s, k);
			struct pt_walk w;
			assert_int_equal(pt_lookup(&s.pt, VA + (k << 12), &w), MM_OK);
			assert_false((w.pa >> 12) >= g && (w.pa >> 12) < g + n);
		}
	free(live);
	teardown(&s);
}

/* Refusals leave everything as it was: the block of a page table (boot RAM)
 * is unmovable, a movable frame whose mapping does not point back cannot be
 * moved, and without room outside the range the movable frames cannot go.
 * (Hot-added blocks are never lent to the balloon: test_hot_add_above.) */
static void test_hot_remove_refusals(void **state)
{
	struct mm_sim s;
	boot_small(&s, 2 * GIB);
	uint64_t g = GIB >> 12, n = (64 * MIB_) >> 12;
	assert_int_equal(fa_hot_add(&s.fa, g, n), MM_OK);
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, g + 1, 512, NULL), MM_EINVAL);
	/* The block holding the page-table root is unmovable. */
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, (s.pt.root >> 12) & ~511ull, 512, NULL), MM_EBUSY);

	/* A movable frame whose one mapping does not point back cannot be
	 * moved: its block stays, and nothing else changes. */
	uint64_t pfn, k = 0;
	while (fa_alloc(&s.fa, 9, &pfn) == MM_OK)
		;    /* boot RAM full, so movable frames land in the hot-added range */
	assert_int_equal(fa_alloc_movable(&s.fa, VA + (k++ << 12), &pfn), MM_OK);
	assert_true(pfn >= g);
	uint64_t stale = pfn;
	struct mm_stats before, after;
	fa_stats(&s.fa, &before);
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, stale & ~511ull, 512, NULL), MM_EBUSY);
	fa_stats(&s.fa, &after);
	/* (The copy it tried wrote a target block: that one counts as
	 * resident now, which is true.) */
	assert_int_equal(after.total, before.total);
	assert_int_equal(after.free, before.free);
	assert_int_equal(after.movable, before.movable);
	assert_int_equal(after.blocks_free, before.blocks_free);
	assert_int_equal(after.blocks_movable, before.blocks_movable);
	assert_consistent(&s.fa);
	assert_int_equal(fa_free(&s.fa, stale, 0), MM_OK);

	/* Movable pages in the range with no room left outside it. */
	while (fa_alloc_movable(&s.fa, VA + (k << 12), &pfn) == MM_OK) {
		assert_int_equal(pt_map(&s.pt, VA + (k << 12), pfn << 12, PTE_W | PTE_NX), MM_OK);
		k++;
	}
	fa_stats(&s.fa, &before);
	assert_int_equal(fa_hot_remove(&s.fa, &s.pt, g, 512, NULL), MM_ENOMEM);
	fa_stats(&s.fa, &after);
	assert_memory_equal(&before, &after, sizeof before);
	teardown(&s);
}

/* Deferred bring-up (what the kernel does at boot): nothing is online until
 * asked, sections come online a few at a time, loader memory in a section
 * that comes online after fa_boot_reclaimed() is free, and the end result
 * equals the all-at-once set-up frame for frame. */
static void test_deferred_online(void **state)
{
	struct boot_mem_region r[3] = {
		{ .base = 0, .pages = (256 * MIB_) >> 12, .type = BOOT_MEM_USABLE },
		{ .base = 256 * MIB_, .pages = (64 * MIB_) >> 12, .type = BOOT_MEM_RECLAIMABLE },
		{ .base = 8 * GIB, .pages = (512 * MIB_) >> 12, .type = BOOT_MEM_USABLE },
	};
	struct mm_sim all;
	assert_int_equal(mm_sim_init_sparse(&all, r, 3, 8 * GIB + 512 * MIB_, 0), 0);
	assert_int_equal(all.fa.nr[FS_KERNEL], (64 * MIB_) >> 12);   /* loader memory, not reclaimed */

	struct mm_sim none;
	assert_int_equal(mm_sim_init_sparse(&none, r, 0, GIB, 0), -1);   /* no RAM: refused */
	mm_sim_fini(&none);

	struct mm_sim d;
	assert_int_equal(mm_sim_init_sparse_defer(&d, r, 3, 8 * GIB + 512 * MIB_, 0, 1), 0);
	assert_int_equal(d.fa.total, 0);
	assert_false(fa_pfn_present(&d.fa, 0));
	uint64_t n;
	/* The high piece first (as the kernel does for its metadata). */
	assert_int_equal(fa_online_boot(&d.fa, (8 * GIB) >> 12, 512, UINT32_MAX, &n), MM_OK);
	assert_int_equal(n, 1);
	assert_int_equal(d.fa.total, (128 * MIB_) >> 12);
	assert_consistent(&d.fa);
	fa_boot_reclaimed(&d.fa);
	unsigned steps = 0;
	do {
		assert_int_equal(fa_online_boot(&d.fa, 0, UINT64_MAX, 1, &n), MM_OK);
		steps += n != 0;
		assert_consistent(&d.fa);
	} while (n);
	assert_int_equal(steps, 2 + 1 + 3);     /* 256 MiB + 64 MiB in 3 sections, 3 more high ones */
	assert_int_equal(d.fa.total, all.fa.total);
	assert_int_equal(d.fa.nr[FS_KERNEL], 0);    /* came online after the reclaim: free */
	assert_int_equal(fa_free_pages(&d.fa), all.fa.total);
	mm_sim_fini(&d);
	mm_sim_fini(&all);
}

/* Random interleaving of everything that touches hot-added memory: movable
 * and unmovable allocations and frees, hot add and remove of random device
 * blocks, compaction. After every step the allocator's invariants hold,
 * every live movable page still holds its pattern, no unmovable frame is in
 * hot-added memory, and removed memory is never handed out. */
static void test_random_interleaving(void **state)
{
	enum { NHOT = 64, MAXLIVE = 6000 };
	struct mm_sim s;
	boot_small(&s, 2 * GIB);
	struct rng r = RNG_INIT(0x6a09e667f3bcc909ull);
	const uint64_t g = GIB >> 12;
	uint8_t hot[NHOT] = { 0 };          /* block k of the hot range is online */
	struct { uint64_t pfn; uint64_t va; int movable; } *live = calloc(MAXLIVE, sizeof *live);
	unsigned nlive = 0;
	uint64_t next_va = 0;
	for (unsigned step = 0; step < 20000; step++) {
		unsigned op = (unsigned)(rng_next(&r) % 100);
		if (op < 40 && nlive < MAXLIVE) {
			int movable = op < 30;
			uint64_t pfn, va = VA + (next_va++ << 12);
			if (movable ? fa_alloc_movable(&s.fa, va, &pfn) == MM_OK : fa_alloc(&s.fa, 0, &pfn) == MM_OK) {
				assert_false(!movable && pfn >= g);
				if (movable) {
					assert_int_equal(pt_map(&s.pt, va, pfn << 12, PTE_W | PTE_NX), MM_OK);
					uint64_t *p = mm_sim_p2v(&s, pfn << 12);
					p[0] = pattern(va, 0);
					p[511] = pattern(va, 511);
				}
				live[nlive].pfn = pfn;
				live[nlive].va = va;
				live[nlive++].movable = movable;
			}
		} else if (op < 75 && nlive) {
			unsigned i = (unsigned)(rng_next(&r) % nlive);
			uint64_t pfn = live[i].pfn;
			if (live[i].movable) {
				uint64_t pa;
				assert_int_equal(pt_unmap(&s.pt, live[i].va, &pa, NULL), MM_OK);
				pfn = pa >> 12;
			}
			assert_int_equal(fa_free(&s.fa, pfn, 0), MM_OK);
			live[i] = live[--nlive];
		} else if (op < 85) {
			unsigned k = (unsigned)(rng_next(&r) % NHOT), n = 1 + (unsigned)(rng_next(&r) % 4);
			if (k + n > NHOT)
				n = NHOT - k;
			int all_off = 1;
			for (unsigned j = k; j < k + n; j++)
				all_off &= !hot[j];
			int rc = fa_hot_add(&s.fa, g + (uint64_t)k * 512, (uint64_t)n * 512);
			assert_int_equal(rc, all_off ? MM_OK : MM_ESTATE);
			if (rc == MM_OK)
				for (unsigned j = k; j < k + n; j++)
					hot[j] = 1;
		} else if (op < 97) {
			unsigned k = (unsigned)(rng_next(&r) % NHOT);
			int rc = fa_hot_remove(&s.fa, &s.pt, g + (uint64_t)k * 512, 512, NULL);
			if (!hot[k])
				assert_true(rc == MM_ESTATE || rc == MM_ERANGE);   /* not online / beyond the span */
			else if (rc == MM_OK)
				hot[k] = 0;
			else
				assert_true(rc == MM_ENOMEM || rc == MM_EBUSY);
		} else {
			struct compact_result res;
			assert_int_equal(compact(&s.fa, &s.pt, fa_free_blocks(&s.fa) + 4, 256, &res), MM_OK);
		}
		if (step % 500 == 0 || op >= 75) {
			assert_consistent(&s.fa);
			for (unsigned i = 0; i < nlive; i++) {
				if (!live[i].movable)
					continue;
				struct pt_walk w;
				assert_int_equal(pt_lookup(&s.pt, live[i].va, &w), MM_OK);
				const uint64_t *p = mm_sim_p2v(&s, w.pa);
				assert_int_equal(p[0], pattern(live[i].va, 0));
				assert_int_equal(p[511], pattern(live[i].va, 511));
				uint64_t b = (w.pa >> 12) >= g ? ((w.pa >> 12) - g) / 512 : NHOT;
				assert_true(b == NHOT || hot[b]);
			}
		}
	}
	free(live);
	teardown(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holes_cost_nothing),
		cmocka_unit_test(test_hot_add_above),
		cmocka_unit_test(test_hot_add_refusals),
		cmocka_unit_test(test_hot_remove_free),
		cmocka_unit_test(test_hot_remove_moves_movable),
		cmocka_unit_test(test_hot_remove_refusals),
		cmocka_unit_test(test_deferred_online),
		cmocka_unit_test(test_random_interleaving),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
