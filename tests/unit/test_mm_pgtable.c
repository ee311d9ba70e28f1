/*
 * test_mm_pgtable.c - 4-level page tables in simulated physical memory:
 * hardware entry layout, 4 KiB and 2 MiB maps, lookups, unmap with TLB
 * flush, remap (the compactor's write), errors, table OOM, teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "mm/pgtable.h"
#include "host_support.h"
#include "test_mm_sim.h"

#define VA_BASE 0xffff900000000000ull

static int setup(void **state)
{
	static struct mm_sim s;
	if (mm_sim_init_flat(&s, 16, 1))
		return -1;
	*state = &s;
	return 0;
}

static int teardown(void **state)
{
	struct mm_sim *s = *state;
	char why[200];
	pt_destroy(&s->pt);
	/* Every table frame went back to the allocator. */
	int leak = s->fa.nr[FS_KERNEL] != 0;
	int bad = fa_check(&s->fa, why, sizeof why);
	mm_sim_fini(s);
	return leak || bad ? -1 : 0;
}

static uint64_t raw_entry(struct mm_sim *s, uint64_t table_pa, uint64_t va, int level)
{
	uint64_t *t = mm_sim_p2v(s, table_pa & PTE_ADDR);
	return t[(va >> (12 + 9 * (level - 1))) & 511];
}

/* The tables are what an x86-64 CPU would walk: check raw memory. */
static void test_hardware_layout(void **state)
{
	struct mm_sim *s = *state;
	uint64_t va = VA_BASE + 0x12345000ull;
	assert_int_equal(pt_map(&s->pt, va, 0x7000, PTE_W | PTE_NX), MM_OK);
	uint64_t e4 = raw_entry(s, s->pt.root, va, 4);
	assert_true((e4 & (PTE_P | PTE_W)) == (PTE_P | PTE_W));
	assert_false(e4 & PTE_NX);             /* the leaf decides */
	uint64_t e3 = raw_entry(s, e4, va, 3);
	uint64_t e2 = raw_entry(s, e3, va, 2);
	assert_false(e2 & PTE_PS);
	uint64_t e1 = raw_entry(s, e2, va, 1);
	assert_int_equal(e1, 0x7000 | PTE_P | PTE_W | PTE_NX);
	/* 4 tables: PML4 + PDPT + PD + PT. */
	assert_int_equal(s->fa.nr[FS_KERNEL], 4);

	assert_int_equal(pt_map_2m(&s->pt, VA_BASE + 0x40000000ull, 0x600000, PTE_W | PTE_G), MM_OK);
	uint64_t e3b = raw_entry(s, e4, VA_BASE + 0x40000000ull, 3);
	uint64_t e2b = raw_entry(s, e3b, VA_BASE + 0x40000000ull, 2);
	assert_int_equal(e2b, 0x600000 | PTE_P | PTE_W | PTE_G | PTE_PS);
}

static void test_map_lookup(void **state)
{
	struct mm_sim *s = *state;
	struct pt_walk w;
	uint64_t va = VA_BASE + 0x1000;
	assert_int_equal(pt_lookup(&s->pt, va, &w), MM_ENOENT);
	assert_int_equal(pt_map(&s->pt, va, 0x123000, PTE_W | PTE_NX), MM_OK);
	assert_int_equal(pt_lookup(&s->pt, va + 0x45, &w), MM_OK);
	assert_int_equal(w.pa, 0x123045);
	assert_int_equal(w.size, PT_SIZE_4K);
	assert_true(w.flags & PTE_NX);
	assert_true(w.flags & PTE_W);
	assert_int_equal(pt_map(&s->pt, va, 0x200000, PTE_W), MM_EEXIST);

	uint64_t big = VA_BASE + 0x200000;
	assert_int_equal(pt_map_2m(&s->pt, big, 0x400000, PTE_W), MM_OK);
	assert_int_equal(pt_lookup(&s->pt, big + 0x12345, &w), MM_OK);
	assert_int_equal(w.pa, 0x412345);
	assert_int_equal(w.size, PT_SIZE_2M);
	assert_int_equal(pt_map(&s->pt, big + 0x3000, 0x9000, PTE_W), MM_EEXIST);  /* inside a 2 MiB page */
	assert_int_equal(pt_map_2m(&s->pt, VA_BASE, 0x800000, PTE_W), MM_EEXIST);  /* a 4 KiB table is there */

	/* Uncached MMIO mapping keeps its cache bits. */
	assert_int_equal(pt_map(&s->pt, VA_BASE + 0x5000, 0xfebf0000, PTE_W | PTE_UC | PTE_NX), MM_OK);
	assert_int_equal(pt_lookup(&s->pt, VA_BASE + 0x5000, &w), MM_OK);
	assert_int_equal(w.flags & PTE_UC, PTE_UC);
	assert_int_equal(w.pa, 0xfebf0000);
}

static void test_bad_arguments(void **state)
{
	struct mm_sim *s = *state;
	assert_int_equal(pt_map(&s->pt, VA_BASE + 1, 0x1000, PTE_W), MM_EINVAL);
	assert_int_equal(pt_map(&s->pt, VA_BASE, 0x1001, PTE_W), MM_EINVAL);
	assert_int_equal(pt_map(&s->pt, VA_BASE, 1ull << 52, PTE_W), MM_EINVAL);
	assert_int_equal(pt_map(&s->pt, 0x0000800000000000ull, 0x1000, PTE_W), MM_EINVAL);  /* non-canonical */
	assert_int_equal(pt_map_2m(&s->pt, VA_BASE + 0x1000, 0x200000, PTE_W), MM_EINVAL);
	assert_int_equal(pt_map_2m(&s->pt, VA_BASE, 0x201000, PTE_W), MM_EINVAL);
	assert_int_equal(pt_map_range(&s->pt, VA_BASE, 0, 0x1800, PTE_W, 1), MM_EINVAL);
	struct pt_walk w;
	assert_int_equal(pt_lookup(&s->pt, 0x0000800000000000ull, &w), MM_ENOENT);
	assert_int_equal(pt_init(&s->pt, NULL, NULL), MM_EINVAL);
}

static void test_unmap_flushes(void **state)
{
	struct mm_sim *s = *state;
	uint64_t va = VA_BASE + 0x7000, pa, size;
	assert_int_equal(pt_map(&s->pt, va, 0x300000, PTE_W), MM_OK);
	uint64_t f = s->flushes;
	assert_int_equal(pt_unmap(&s->pt, va, &pa, &size), MM_OK);
	assert_int_equal(pa, 0x300000);
	assert_int_equal(size, PT_SIZE_4K);
	assert_int_equal(s->flushes, f + 1);
	assert_int_equal(s->last_flush_va, va);
	struct pt_walk w;
	assert_int_equal(pt_lookup(&s->pt, va, &w), MM_ENOENT);
	assert_int_equal(pt_unmap(&s->pt, va, &pa, &size), MM_ENOENT);
	assert_int_equal(s->flushes, f + 1);

	uint64_t big = VA_BASE + 0x600000;
	assert_int_equal(pt_map_2m(&s->pt, big, 0x800000, PTE_W), MM_OK);
	assert_int_equal(pt_unmap(&s->pt, big + 0x1000, &pa, &size), MM_EINVAL);  /* not the page start */
	assert_int_equal(pt_unmap(&s->pt, big, &pa, &size), MM_OK);
	assert_int_equal(size, PT_SIZE_2M);
	assert_int_equal(pa, 0x800000);
	/* The emptied slot can be mapped again. */
	assert_int_equal(pt_map(&s->pt, big + 0x1000, 0x5000, PTE_W), MM_OK);
}

static void test_remap(void **state)
{
	struct mm_sim *s = *state;
	uint64_t va = VA_BASE + 0x9000;
	assert_int_equal(pt_map(&s->pt, va, 0x10000, PTE_W | PTE_NX), MM_OK);
	uint64_t f = s->flushes;
	assert_int_equal(pt_remap(&s->pt, va, 0x20000, 0x30000), MM_EMISMATCH);
	assert_int_equal(s->flushes, f);
	assert_int_equal(pt_remap(&s->pt, va, 0x10000, 0x30000), MM_OK);
	assert_int_equal(s->flushes, f + 1);
	assert_int_equal(s->last_flush_va, va);
	struct pt_walk w;
	assert_int_equal(pt_lookup(&s->pt, va, &w), MM_OK);
	assert_int_equal(w.pa, 0x30000);
	assert_true(w.flags & PTE_NX);      /* permissions kept */
	assert_int_equal(pt_remap(&s->pt, va + 0x1000, 0x10000, 0x30000), MM_ENOENT);
	assert_int_equal(pt_map_2m(&s->pt, VA_BASE + 0xa00000, 0xa00000, PTE_W), MM_OK);
	assert_int_equal(pt_remap(&s->pt, VA_BASE + 0xa00000, 0xa00000, 0x30000), MM_EMISMATCH);
	assert_int_equal(pt_remap(&s->pt, va, 0x30001, 0x40000), MM_EINVAL);
}

/* Markers live in unmapped 4 KiB entries: kept, read back, never taken
 * for a mapping (lookup and unmap see nothing), overwritten by a map. */
static void test_markers(void **state)
{
	struct mm_sim *s = *state;
	struct pgtable *pt = &s->pt;
	uint64_t va = 0xffffc00000200000ull, v;
	assert_int_equal(pt_get_marker(pt, va, &v), MM_ENOENT);
	assert_int_equal(pt_set_marker(pt, va, 0), MM_OK);             /* clearing nothing */
	assert_int_equal(pt_set_marker(pt, va, 0x1235), MM_EINVAL);    /* present bit */
	assert_int_equal(pt_set_marker(pt, va + 1, 0x1234), MM_EINVAL);
	assert_int_equal(pt_set_marker(pt, va, 0x1234), MM_OK);
	assert_int_equal(pt_get_marker(pt, va, &v), MM_OK);
	assert_int_equal(v, 0x1234);
	struct pt_walk w;
	assert_int_equal(pt_lookup(pt, va, &w), MM_ENOENT);
	assert_int_equal(pt_unmap(pt, va, NULL, NULL), MM_ENOENT);
	assert_int_equal(pt_map(pt, va, 0x5000, PTE_W), MM_OK);
	assert_int_equal(pt_get_marker(pt, va, &v), MM_ENOENT);
	assert_int_equal(pt_set_marker(pt, va, 0x1234), MM_EEXIST);
	assert_int_equal(pt_unmap(pt, va, NULL, NULL), MM_OK);
	assert_int_equal(pt_set_marker(pt, va, 0x8000), MM_OK);
	assert_int_equal(pt_set_marker(pt, va, 0), MM_OK);
	assert_int_equal(pt_get_marker(pt, va, &v), MM_ENOENT);
}

static void test_map_range_picks_sizes(void **state)
{
	struct mm_sim *s = *state;
	struct pt_walk w;
	/* Aligned: 2 MiB pages, then a 4 KiB tail. */
	uint64_t va = VA_BASE + 0x40000000ull;
	assert_int_equal(pt_map_range(&s->pt, va, 0x400000, 3 * PT_SIZE_2M + 0x3000, PTE_W, 1), MM_OK);
	for (unsigned k = 0; k < 3; k++) {
		assert_int_equal(pt_lookup(&s->pt, va + k * PT_SIZE_2M + 0x777, &w), MM_OK);
		assert_int_equal(w.size, PT_SIZE_2M);
		assert_int_equal(w.pa, 0x400000 + k * PT_SIZE_2M + 0x777);
	}
	assert_int_equal(pt_lookup(&s->pt, va + 3 * PT_SIZE_2M + 0x2000, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_4K);
	assert_int_equal(pt_lookup(&s->pt, va + 3 * PT_SIZE_2M + 0x3000, &w), MM_ENOENT);
	/* Offset by 4 KiB on both sides: 4 KiB pages up to the boundary, then 2 MiB. */
	uint64_t vb = VA_BASE + 0x80000000ull + 0x1000;
	assert_int_equal(pt_map_range(&s->pt, vb, 0x1000, 2 * PT_SIZE_2M, PTE_W, 1), MM_OK);
	assert_int_equal(pt_lookup(&s->pt, vb, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_4K);
	assert_int_equal(pt_lookup(&s->pt, vb + PT_SIZE_2M - 0x1000, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_2M);
	assert_int_equal(w.pa, PT_SIZE_2M);
	/* allow_2m = 0: only 4 KiB pages. */
	uint64_t vc = VA_BASE + 0xc0000000ull;
	assert_int_equal(pt_map_range(&s->pt, vc, 0x200000, PT_SIZE_2M, PTE_W, 0), MM_OK);
	assert_int_equal(pt_lookup(&s->pt, vc + 0x1ff000, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_4K);
	/* allow_2m = 2: 1 GiB pages where both sides are 1 GiB aligned, then
	 * 2 MiB; a 2 MiB unmap inside a 1 GiB page is refused, not split. */
	uint64_t vd = VA_BASE + 0x4000000000ull;
	assert_int_equal(pt_map_range(&s->pt, vd, 1ull << 30, PT_SIZE_1G + PT_SIZE_2M, PTE_W, 2), MM_OK);
	assert_int_equal(pt_lookup(&s->pt, vd + 0x12345678, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_1G);
	assert_int_equal(w.pa, (1ull << 30) + 0x12345678);
	assert_int_equal(pt_lookup(&s->pt, vd + PT_SIZE_1G, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_2M);
	assert_int_equal(pt_unmap(&s->pt, vd + PT_SIZE_2M, NULL, NULL), MM_EINVAL);
	assert_int_equal(pt_map_2m(&s->pt, vd + PT_SIZE_2M, 0, PTE_W), MM_EEXIST);
}

/* Runs of one page size are written entry after entry in their table:
 * they must still cross into the next table, stop where a different size
 * fits, keep each entry's address and flags, and stop at an entry that
 * exists (MM_EEXIST, what came before it stays mapped). */
static void test_map_range_runs(void **state)
{
	struct mm_sim *s = *state;
	struct pt_walk w;
	/* 4 KiB pages across a page-table boundary: 10 before it, 10 after. */
	uint64_t va = VA_BASE + 0x100000000ull + PT_SIZE_2M - 10 * PT_SIZE_4K;
	assert_int_equal(pt_map_range(&s->pt, va, 0x5000000, 20 * PT_SIZE_4K, PTE_W | PTE_NX, 0), MM_OK);
	for (unsigned k = 0; k < 20; k++) {
		assert_int_equal(pt_lookup(&s->pt, va + k * PT_SIZE_4K, &w), MM_OK);
		assert_int_equal(w.size, PT_SIZE_4K);
		assert_int_equal(w.pa, 0x5000000 + k * PT_SIZE_4K);
		assert_true((w.flags & PTE_W) && (w.flags & PTE_NX));
	}
	assert_int_equal(pt_lookup(&s->pt, va + 20 * PT_SIZE_4K, &w), MM_ENOENT);
	assert_int_equal(pt_lookup(&s->pt, va - PT_SIZE_4K, &w), MM_ENOENT);
	/* 2 MiB pages across a page-directory boundary (1 GiB), with 1 GiB
	 * pages not allowed: 3 before it, 3 after. */
	uint64_t vb = VA_BASE + 0x200000000ull - 3 * PT_SIZE_2M;
	assert_int_equal(pt_map_range(&s->pt, vb, 0x40000000, 6 * PT_SIZE_2M, PTE_W, 1), MM_OK);
	for (unsigned k = 0; k < 6; k++) {
		assert_int_equal(pt_lookup(&s->pt, vb + k * PT_SIZE_2M + 0x1234, &w), MM_OK);
		assert_int_equal(w.size, PT_SIZE_2M);
		assert_int_equal(w.pa, 0x40000000 + k * PT_SIZE_2M + 0x1234);
	}
	/* 4 KiB pages up to a 2 MiB boundary, then 2 MiB pages: the run of
	 * small pages stops where a big one fits. */
	uint64_t vc = VA_BASE + 0x300000000ull - 4 * PT_SIZE_4K;
	assert_int_equal(pt_map_range(&s->pt, vc, 0x80000000 - 4 * PT_SIZE_4K, 4 * PT_SIZE_4K + PT_SIZE_2M,
	                              PTE_W, 1), MM_OK);
	assert_int_equal(pt_lookup(&s->pt, vc + 3 * PT_SIZE_4K, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_4K);
	assert_int_equal(pt_lookup(&s->pt, vc + 4 * PT_SIZE_4K, &w), MM_OK);
	assert_int_equal(w.size, PT_SIZE_2M);
	assert_int_equal(w.pa, 0x80000000);
	/* An entry already there in the middle of a run. */
	uint64_t vd = VA_BASE + 0x400000000ull;
	assert_int_equal(pt_map(&s->pt, vd + 5 * PT_SIZE_4K, 0x9000, PTE_W), MM_OK);
	assert_int_equal(pt_map_range(&s->pt, vd, 0x6000000, 8 * PT_SIZE_4K, PTE_W, 0), MM_EEXIST);
	assert_int_equal(pt_lookup(&s->pt, vd + 4 * PT_SIZE_4K, &w), MM_OK);
	assert_int_equal(w.pa, 0x6000000 + 4 * PT_SIZE_4K);
	assert_int_equal(pt_lookup(&s->pt, vd + 5 * PT_SIZE_4K, &w), MM_OK);
	assert_int_equal(w.pa, 0x9000);
	assert_int_equal(pt_lookup(&s->pt, vd + 6 * PT_SIZE_4K, &w), MM_ENOENT);
}

static void test_table_oom(void **state)
{
	struct mm_sim *s = *state;
	uint64_t pfn, n = 0;
	static uint64_t held[4096];
	while (fa_alloc(&s->fa, 0, &pfn) == MM_OK)
		held[n++] = pfn;
	/* A new PML4 slot needs three new tables: none can be had. */
	uint64_t va = 0xffffa00000000000ull;
	assert_int_equal(pt_map(&s->pt, va, 0x1000, PTE_W), MM_ENOMEM);
	struct pt_walk w;
	assert_int_equal(pt_lookup(&s->pt, va, &w), MM_ENOENT);
	while (n)
		fa_free(&s->fa, held[--n], 0);
	assert_int_equal(pt_map(&s->pt, va, 0x1000, PTE_W), MM_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hardware_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unmap_flushes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_markers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_range_picks_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_range_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_oom, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
