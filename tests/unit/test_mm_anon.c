/*
 * test_mm_anon.c - anonymous movable mappings: zeroed movable frames owned by
 * their address, guard pages, exact unmap, virtual space reused and merged,
 * all-or-nothing on OOM, and compaction moving them transparently.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "mm/anon.h"
#include "mm/compact.h"
#include "host_support.h"
#include "test_mm_sim.h"

#define WIN_BASE 0xffffd00000000000ull
#define WIN WIN_BASE

/* The free-extent table outside the simulated window: reserved, opened a
 * page at a time (touching past what the mapper asked for crashes). */
static int table_populate(void *ctx, void *p, size_t bytes)
{
	return mprotect(p, bytes, PROT_READ | PROT_WRITE) == 0 ? MM_OK : MM_ENOMEM;
}

static const struct anon_table *host_table(void)
{
	static struct anon_table t;
	if (t.mem)
		munmap(t.mem, ANON_TABLE_BYTES);
	t.mem = mmap(NULL, ANON_TABLE_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	t.populate = table_populate;
	return t.mem == MAP_FAILED ? NULL : &t;
}

static int setup(void **state)
{
	static struct mm_sim s;
	if (mm_sim_init_flat(&s, 32, 1))
		return -1;
	memset(s.ram, 0xcc, s.ram_bytes);
	*state = &s;
	return 0;
}



static void test_map_unmap(void **state)
{
	struct mm_sim *s = *state;
	static struct anon a;
	assert_int_equal(anon_init(&a, &s->fa, &s->pt, WIN_BASE, 1ull << 30, host_table()), MM_OK);
	uint64_t v1, v2;
	assert_int_equal(anon_map(&a, 5000, &v1), MM_OK);           /* 2 pages */
	assert_int_equal(v1, WIN);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 2);
	for (uint64_t off = 0; off < 8192; off += 512)
		assert_int_equal(*mm_sim_at(s, v1 + off), 0);                 /* zeroed */
	assert_null(mm_sim_at(s, v1 + 8192));                              /* guard page */
	assert_int_equal(anon_map(&a, 4096, &v2), MM_OK);
	assert_int_equal(v2, WIN + 3 * 4096);
	struct pt_walk w;
	assert_int_equal(pt_lookup(&s->pt, v2, &w), MM_OK);
	struct frame_info fi;
	fa_frame_info(&s->fa, w.pa >> 12, &fi);
	assert_int_equal(fi.state, FS_MOVABLE);
	assert_int_equal(fi.owner_va, v2);

	assert_int_equal(anon_unmap(&a, v1, 4096), MM_EINVAL);     /* wrong size */
	assert_int_equal(anon_unmap(&a, v1 + 4096, 4096), MM_EINVAL);
	assert_int_equal(anon_unmap(&a, v1, 5000), MM_OK);
	assert_int_equal(anon_unmap(&a, v1, 5000), MM_EINVAL);     /* twice */
	assert_int_equal(s->fa.nr[FS_MOVABLE], 1);
	assert_null(mm_sim_at(s, v1));
	/* The hole is reused first-fit, and merges back on free. */
	uint64_t v3;
	assert_int_equal(anon_map(&a, 100, &v3), MM_OK);
	assert_int_equal(v3, WIN);
	assert_int_equal(anon_unmap(&a, v3, 100), MM_OK);
	assert_int_equal(anon_unmap(&a, v2, 4096), MM_OK);
	assert_int_equal(a.nfree, 1);
	assert_int_equal(a.free[0].va, WIN);
	assert_int_equal(a.free[0].len, 1ull << 30);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 0);
	assert_int_equal(anon_map(&a, 0, &v3), MM_EINVAL);
}

static void test_oom_all_or_nothing(void **state)
{
	struct mm_sim *s = *state;
	static struct anon a;
	assert_int_equal(anon_init(&a, &s->fa, &s->pt, WIN_BASE, 1ull << 30, host_table()), MM_OK);
	uint64_t v, keep;
	assert_int_equal(anon_map(&a, 4096, &keep), MM_OK);
	uint64_t free_before = s->fa.nr[FS_FREE];
	assert_int_equal(anon_map(&a, 40ull << 20, &v), MM_ENOMEM);   /* more than the machine */
	assert_int_equal(s->fa.nr[FS_MOVABLE], 1);
	assert_true(s->fa.nr[FS_FREE] + 32 >= free_before);           /* only table frames kept */
	assert_int_equal(anon_map(&a, 8ull << 20, &v), MM_OK);         /* the space was given back */
	assert_int_equal(v, keep + 2 * 4096);
	assert_int_equal(anon_map(&a, (1ull << 30), &v), MM_ENOMEM);   /* no virtual space */
	assert_int_equal(anon_map(&a, (1ull << 30) + 1, &v), MM_EINVAL); /* more than the window */
}

/* Many small mappings freed at random fragment memory; compaction moves
 * the survivors and every byte stays readable at the same address. */
static void test_compaction_moves_anon(void **state)
{
	struct mm_sim *s = *state;
	static struct anon a;
	assert_int_equal(anon_init(&a, &s->fa, &s->pt, WIN_BASE, 1ull << 30, host_table()), MM_OK);
	enum { N = 200 };
	uint64_t va[N];
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(anon_map(&a, 4096 * (1 + i % 5) * 10, &va[i]), MM_OK);
		for (uint64_t off = 0; off < 4096ull * (1 + i % 5) * 10; off += 4096)
			memset(mm_sim_at(s, va[i] + off), (int)(i + off / 4096), 4096);
	}
	for (unsigned i = 0; i < N; i += 2)
		assert_int_equal(anon_unmap(&a, va[i], 4096 * (1 + i % 5) * 10), MM_OK);
	uint64_t before = fa_free_blocks(&s->fa);
	struct compact_result res;
	assert_int_equal(compact(&s->fa, &s->pt, UINT64_MAX, 0, &res), MM_OK);
	assert_true(res.frames_moved > 0);
	assert_true(fa_free_blocks(&s->fa) > before);
	for (unsigned i = 1; i < N; i += 2)
		for (uint64_t off = 0; off < 4096ull * (1 + i % 5) * 10; off += 4096) {
			const uint8_t *p = mm_sim_at(s, va[i] + off);
			for (unsigned k = 0; k < 4096; k += 61)
				assert_int_equal(p[k], (uint8_t)(i + off / 4096));
		}
}

/* No fixed table: more mappings than the old 16,384 cap, every other one
 * freed so the free-extent table must grow page by page, then everything
 * freed merges back into one extent; bad unmaps are still refused. */
static void test_no_fixed_tables(void **state)
{
	static struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 192, 1), 0);
	static struct anon a;
	assert_int_equal(anon_init(&a, &s.fa, &s.pt, WIN_BASE, 1ull << 34, host_table()), MM_OK);
	enum { N = 20000 };
	uint64_t *va = malloc(N * sizeof *va);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(anon_map(&a, 4096, &va[i]), MM_OK);
		*(uint32_t *)mm_sim_at(&s, va[i]) = i;
	}
	assert_int_equal(a.nlive, N);
	for (unsigned i = 0; i < N; i += 2)
		assert_int_equal(anon_unmap(&a, va[i], 4096), MM_OK);
	assert_true(a.nfree >= N / 2);
	assert_true(a.table_pages * 4096 >= a.nfree * sizeof(struct anon_extent));
	assert_int_equal(a.dropped, 0);
	/* A freed range, a guard page, a neighbour's address: all refused. */
	assert_int_equal(anon_unmap(&a, va[0], 4096), MM_EINVAL);
	assert_int_equal(anon_unmap(&a, va[1] + 4096, 4096), MM_EINVAL);
	assert_int_equal(anon_unmap(&a, va[1], 8192), MM_EINVAL);
	/* Compaction may move the table's own pages: it still works after. */
	struct compact_result res;
	assert_int_equal(compact(&s.fa, &s.pt, UINT64_MAX, 0, &res), MM_OK);
	for (unsigned i = 1; i < N; i += 2) {
		assert_int_equal(*(uint32_t *)mm_sim_at(&s, va[i]), i);
		assert_int_equal(anon_unmap(&a, va[i], 4096), MM_OK);
	}
	assert_int_equal(a.nfree, 1);
	assert_int_equal(a.nlive, 0);
	assert_int_equal(a.pages, 0);
	free(va);
	*state = &s;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_map_unmap, setup, mm_sim_teardown),
		cmocka_unit_test_setup_teardown(test_oom_all_or_nothing, setup, mm_sim_teardown),
		cmocka_unit_test_setup_teardown(test_compaction_moves_anon, setup, mm_sim_teardown),
		cmocka_unit_test_teardown(test_no_fixed_tables, mm_sim_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
