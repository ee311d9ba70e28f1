/*
 * test_mm_vregion.c - the movable region behind _sbrk: growth maps zeroed
 * movable frames owned by their address, shrinking (malloc_trim) gives the
 * frames back, failures change nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "mm/vregion.h"
#include "host_support.h"
#include "test_mm_sim.h"

#define HEAP_VA 0xffffc00000000000ull

static int setup(void **state)
{
	static struct mm_sim s;
	if (mm_sim_init_flat(&s, 16, 1))
		return -1;
	memset(s.ram, 0xaa, s.ram_bytes);   /* garbage, so zeroing is visible */
	*state = &s;
	return 0;
}



static void test_grow_and_shrink(void **state)
{
	struct mm_sim *s = *state;
	struct vregion r;
	uint64_t old;
	assert_int_equal(vregion_init(&r, &s->fa, &s->pt, HEAP_VA, 8ull << 20), MM_OK);
	assert_int_equal(vregion_sbrk(&r, 0, &old), MM_OK);
	assert_int_equal(old, HEAP_VA);
	assert_int_equal(vregion_sbrk(&r, 100, &old), MM_OK);
	assert_int_equal(old, HEAP_VA);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 1);
	uint8_t *p = mm_sim_at(s, HEAP_VA);
	assert_non_null(p);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(p[i], 0);
	/* Within the mapped page: no new frame. */
	assert_int_equal(vregion_sbrk(&r, 3996, &old), MM_OK);
	assert_int_equal(old, HEAP_VA + 100);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 1);
	assert_int_equal(vregion_sbrk(&r, 1 << 20, &old), MM_OK);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 257);
	/* Each frame records its mapping, so the compactor can move it. */
	struct pt_walk w;
	assert_int_equal(pt_lookup(&s->pt, HEAP_VA + 0x5000, &w), MM_OK);
	struct frame_info fi;
	assert_int_equal(fa_frame_info(&s->fa, w.pa >> 12, &fi), MM_OK);
	assert_int_equal(fi.state, FS_MOVABLE);
	assert_int_equal(fi.owner_va, HEAP_VA + 0x5000);
	assert_true(w.flags & PTE_NX);

	/* malloc_trim: a negative increment returns whole pages. */
	uint64_t f = s->flushes;
	assert_int_equal(vregion_sbrk(&r, -(int64_t)(512 << 10) - 10, &old), MM_OK);
	assert_int_equal(old, HEAP_VA + 4096 + (1 << 20));
	assert_int_equal(r.brk, HEAP_VA + 4096 + (512 << 10) - 10);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 129);       /* the page holding brk - 1 stays */
	assert_int_equal(s->flushes - f, 128);
	assert_null(mm_sim_at(s, HEAP_VA + 129 * 4096));
	assert_non_null(mm_sim_at(s, HEAP_VA + 128 * 4096));
	assert_int_equal(vregion_sbrk(&r, -(int64_t)(r.brk - HEAP_VA), &old), MM_OK);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 0);
	assert_int_equal(vregion_pages(&r), 0);
}

static void test_limits(void **state)
{
	struct mm_sim *s = *state;
	struct vregion r;
	uint64_t old;
	assert_int_equal(vregion_init(&r, &s->fa, &s->pt, HEAP_VA + 1, 1 << 20), MM_EINVAL);
	assert_int_equal(vregion_init(&r, &s->fa, &s->pt, HEAP_VA, 0), MM_EINVAL);
	assert_int_equal(vregion_init(&r, &s->fa, &s->pt, 0x0000800000000000ull, 1 << 20), MM_EINVAL);
	assert_int_equal(vregion_init(&r, &s->fa, &s->pt, HEAP_VA, 1 << 20), MM_OK);
	assert_int_equal(vregion_sbrk(&r, (1 << 20) + 1, &old), MM_ENOMEM);    /* beyond the region */
	assert_int_equal(vregion_sbrk(&r, -1, &old), MM_EINVAL);               /* below the base */
	assert_int_equal(vregion_sbrk(&r, INT64_MIN, &old), MM_EINVAL);
	assert_int_equal(r.brk, HEAP_VA);
	assert_int_equal(vregion_sbrk(&r, 1 << 20, &old), MM_OK);              /* exactly full */
	assert_int_equal(vregion_sbrk(&r, 1, &old), MM_ENOMEM);
}

/* Out of frames half way: all or nothing. */
static void test_grow_oom_changes_nothing(void **state)
{
	struct mm_sim *s = *state;
	struct vregion r;
	uint64_t old;
	assert_int_equal(vregion_init(&r, &s->fa, &s->pt, HEAP_VA, 64ull << 20), MM_OK);
	assert_int_equal(vregion_sbrk(&r, 4096, &old), MM_OK);
	uint64_t free_before = s->fa.nr[FS_FREE];
	assert_int_equal(vregion_sbrk(&r, 20 << 20, &old), MM_ENOMEM);   /* 20 MiB of a 16 MiB machine */
	assert_int_equal(r.brk, HEAP_VA + 4096);
	assert_int_equal(s->fa.nr[FS_MOVABLE], 1);
	/* Table frames made on the way may stay (they are reused); data frames may not. */
	assert_true(s->fa.nr[FS_FREE] + 8 >= free_before);
	assert_null(mm_sim_at(s, HEAP_VA + 4096));
	assert_int_equal(vregion_sbrk(&r, 8 << 20, &old), MM_OK);         /* and it still works */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_grow_and_shrink, setup, mm_sim_teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, mm_sim_teardown),
		cmocka_unit_test_setup_teardown(test_grow_oom_changes_nothing, setup, mm_sim_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
