/*
 * test_mm_compact.c - the compactor on fragmented simulated memory: data
 * preserved byte for byte through the mappings, mappings and owners updated,
 * one TLB flush per move, exactly the predicted blocks freed, unmovable and
 * balloon frames never moved, early stop at the requested block count,
 * stale mappings survived.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mm/compact.h"
#include "mm/frame_internal.h"
#include "mm/metrics.h"
#include "host_support.h"
#include "rng.h"
#include "test_mm_sim.h"

#define VA 0xffffc00000000000ull

struct frag {
	struct mm_sim s;
	uint64_t npages;         /* pages mapped at VA + k * 4 KiB at the start */
	uint8_t *live;           /* still mapped */
	uint64_t *pa;            /* physical address before compaction */
};

static struct rng rng = RNG_INIT(0x243f6a8885a308d3ull);
static uint64_t rnd(void) { return rng_next(&rng); }

static uint64_t pattern(uint64_t va, unsigned word)
{
	uint64_t x = va * 0x9e3779b97f4a7c15ull ^ (word + 1) * 0xff51afd7ed558ccdull;
	return x ^ (x >> 29);
}

static void assert_consistent(const struct frame_alloc *fa)
{
	char why[256] = "";
	if (fa_check(fa, why, sizeof why))
		fail_msg("fa_check: %s", why);
}

/* Fill memory with mapped, patterned movable frames (stop `reserve` frames
 * short of full), then unmap and free each with probability free_pct. */
static void fragment(struct frag *f, uint64_t mib, unsigned free_pct, uint64_t reserve)
{
	assert_int_equal(mm_sim_init_flat(&f->s, mib, 1), 0);
	struct frame_alloc *fa = &f->s.fa;
	uint64_t max = fa->total;
	f->live = calloc(max, 1);
	f->pa = calloc(max, sizeof *f->pa);
	f->npages = 0;
	while (fa->nr[FS_FREE] > reserve + 8) {
		uint64_t va = VA + (f->npages << 12), pfn;
		if (fa_alloc_movable(fa, va, &pfn) != MM_OK)
			break;
		if (pt_map(&f->s.pt, va, pfn << 12, PTE_W | PTE_NX) != MM_OK) {
			fa_free(fa, pfn, 0);
			break;
		}
		uint64_t *p = mm_sim_p2v(&f->s, pfn << 12);
		for (unsigned w = 0; w < 512; w++)
			p[w] = pattern(va, w);
		f->live[f->npages++] = 1;
	}
	for (uint64_t k = 0; k < f->npages; k++) {
		if (rnd() % 100 < free_pct) {
			uint64_t pa;
			assert_int_equal(pt_unmap(&f->s.pt, VA + (k << 12), &pa, NULL), MM_OK);
			assert_int_equal(fa_free(fa, pa >> 12, 0), MM_OK);
			f->live[k] = 0;
		}
	}
	for (uint64_t k = 0; k < f->npages; k++)
		if (f->live[k]) {
			struct pt_walk w;
			assert_int_equal(pt_lookup(&f->s.pt, VA + (k << 12), &w), MM_OK);
			f->pa[k] = w.pa;
		}
	assert_consistent(fa);
}

static void unfragment(struct frag *f)
{
	pt_destroy(&f->s.pt);
	mm_sim_fini(&f->s);
	free(f->live);
	free(f->pa);
}

/* Every live page still reads its pattern through its mapping; returns how
 * many live pages changed physical frame (each now owned by its address). */
static uint64_t verify_pages(struct frag *f)
{
	uint64_t moved = 0;
	for (uint64_t k = 0; k < f->npages; k++) {
		if (!f->live[k])
			continue;
		uint64_t va = VA + (k << 12);
		struct pt_walk w;
		assert_int_equal(pt_lookup(&f->s.pt, va, &w), MM_OK);
		const uint64_t *p = mm_sim_p2v(&f->s, w.pa);
		for (unsigned i = 0; i < 512; i++)
			if (p[i] != pattern(va, i))
				fail_msg("page %llu word %u corrupted", (unsigned long long)k, i);
		struct frame_info fi;
		assert_int_equal(fa_frame_info(&f->s.fa, w.pa >> 12, &fi), MM_OK);
		assert_int_equal(fi.state, FS_MOVABLE);
		assert_int_equal(fi.owner_va, va);
		moved += w.pa != f->pa[k];
	}
	return moved;
}

/* Partially used movable blocks and the frames they hold. */
static void movable_partials(const struct frame_alloc *fa, uint64_t *p, uint64_t *u)
{
	*p = *u = 0;
	for (uint32_t b = 0; b < fa->nblocks; b++) {
		const struct mblock *blk = &fa->blocks[b];
		if (blk->kind == BK_MOVABLE && blk->nfree > 0 && blk->nfree < PAGES_PER_BLOCK) {
			(*p)++;
			*u += PAGES_PER_BLOCK - blk->nfree;
		}
	}
}

static void test_frees_predicted_blocks(void **state)
{
	struct frag f;
	fragment(&f, 64, 60, 0);
	struct frame_alloc *fa = &f.s.fa;
	uint64_t P, U;
	movable_partials(fa, &P, &U);
	assert_true(P > 20);
	uint64_t predicted = P - (U + PAGES_PER_BLOCK - 1) / PAGES_PER_BLOCK;
	/* The sparsest `predicted` blocks are emptied and nothing else moves. */
	unsigned used[512], nu = 0;
	for (uint32_t b = 0; b < fa->nblocks; b++)
		if (fa->blocks[b].kind == BK_MOVABLE && fa->blocks[b].nfree && fa->blocks[b].nfree < 512)
			used[nu++] = 512 - fa->blocks[b].nfree;
	for (unsigned i = 0; i < nu; i++)          /* insertion sort, ascending */
		for (unsigned j = i; j > 0 && used[j] < used[j - 1]; j--) {
			unsigned t = used[j]; used[j] = used[j - 1]; used[j - 1] = t;
		}
	uint64_t expect_moved = 0;
	for (unsigned i = 0; i < predicted; i++)
		expect_moved += used[i];
	uint64_t before = fa_free_blocks(fa), flushes = f.s.flushes;
	struct mm_stats st0, st1;
	fa_stats(fa, &st0);

	host_clock_set(1000);
	struct compact_result res;
	assert_int_equal(compact(fa, &f.s.pt, UINT64_MAX, 0, &res), MM_OK);
	assert_int_equal(res.stop, COMPACT_EXHAUSTED);
	assert_int_equal(res.blocks_freed, predicted);
	assert_int_equal(res.free_blocks_before, before);
	assert_int_equal(res.free_blocks_after, before + predicted);
	assert_int_equal(fa_free_blocks(fa), before + predicted);
	assert_int_equal(res.frames_failed, 0);
	assert_int_equal(res.frames_moved, expect_moved);
	assert_int_equal(f.s.flushes - flushes, res.frames_moved);   /* one flush per move */
	assert_int_equal(verify_pages(&f), res.frames_moved);        /* data + mappings + owners */
	assert_consistent(fa);

	/* At most one movable block is left partially used. */
	uint64_t P2, U2;
	movable_partials(fa, &P2, &U2);
	assert_true(P2 <= 1);
	fa_stats(fa, &st1);
	assert_int_equal(st1.free, st0.free);                        /* nothing lost */
	assert_int_equal(st1.movable, st0.movable);
	assert_true(st1.whole_permille > st0.whole_permille);
	/* A second run has nothing to do. */
	assert_int_equal(compact(fa, &f.s.pt, UINT64_MAX, 0, &res), MM_OK);
	assert_int_equal(res.frames_moved, 0);
	assert_int_equal(res.blocks_freed, 0);
	unfragment(&f);
}

static void test_stops_at_requested_blocks(void **state)
{
	struct frag f;
	fragment(&f, 64, 60, 0);
	struct frame_alloc *fa = &f.s.fa;
	uint64_t P, U;
	movable_partials(fa, &P, &U);
	uint64_t before = fa_free_blocks(fa);
	struct compact_result res;
	assert_int_equal(compact(fa, &f.s.pt, before, 0, &res), MM_OK);   /* already there */
	assert_int_equal(res.frames_moved, 0);
	assert_int_equal(res.stop, COMPACT_REACHED);
	assert_int_equal(compact(fa, &f.s.pt, before + 2, 0, &res), MM_OK);
	assert_int_equal(res.stop, COMPACT_REACHED);
	assert_int_equal(res.blocks_freed, 2);
	assert_int_equal(fa_free_blocks(fa), before + 2);
	/* The sparsest blocks went first: fewer frames moved than two average blocks. */
	assert_true(res.frames_moved < 2 * U / P);
	verify_pages(&f);
	assert_consistent(fa);
	unfragment(&f);
}

/* Unmovable frames sit in their own blocks and never move, whatever the
 * compactor does around them. */
static void test_unmovable_never_moved(void **state)
{
	struct frag f;
	fragment(&f, 64, 0, 3 * 512);    /* leave 3 blocks for unmovable data */
	struct frame_alloc *fa = &f.s.fa;
	uint64_t un[600], n = 0;
	for (; n < 600; n++) {
		unsigned order = n % 7 == 0 ? 2 : 0;
		assert_int_equal(fa_alloc(fa, order, &un[n]), MM_OK);
		uint64_t *p = mm_sim_p2v(&f.s, un[n] << 12);
		for (unsigned w = 0; w < 512; w++)
			p[w] = pattern(un[n], w) ^ 0x5a5a;
	}
	for (uint64_t k = 0; k < f.npages; k++)    /* now fragment the movable pages */
		if (rnd() % 100 < 60) {
			uint64_t pa;
			pt_unmap(&f.s.pt, VA + (k << 12), &pa, NULL);
			fa_free(fa, pa >> 12, 0);
			f.live[k] = 0;
		}
	uint8_t kinds[64];
	for (uint32_t b = 0; b < fa->nblocks; b++)
		kinds[b] = fa->blocks[b].kind;
	struct compact_result res;
	assert_int_equal(compact(fa, &f.s.pt, UINT64_MAX, 0, &res), MM_OK);
	assert_true(res.blocks_freed > 5);
	for (uint64_t i = 0; i < n; i++) {
		struct frame_info fi;
		assert_int_equal(fa_frame_info(fa, un[i], &fi), MM_OK);
		assert_int_equal(fi.state, FS_KERNEL);
		assert_int_equal(fi.head, un[i]);
		const uint64_t *p = mm_sim_p2v(&f.s, un[i] << 12);
		for (unsigned w = 0; w < 512; w++)
			assert_int_equal(p[w], pattern(un[i], w) ^ 0x5a5a);
	}
	for (uint32_t b = 0; b < fa->nblocks; b++)
		if (kinds[b] == BK_UNMOVABLE)
			assert_int_equal(fa->blocks[b].kind, BK_UNMOVABLE);
	verify_pages(&f);
	assert_consistent(fa);
	unfragment(&f);
}

/* Balloon frames cannot move: blocks holding them are not emptied. */
static void test_balloon_frames_pin_blocks(void **state)
{
	struct frag f;
	fragment(&f, 64, 60, 0);
	struct frame_alloc *fa = &f.s.fa;
	uint64_t holes = fa->nr[FS_FREE] - fa_free_blocks(fa) * PAGES_PER_BLOCK;
	uint64_t *runs = malloc(holes * sizeof *runs);
	/* Balloon every free frame outside whole blocks. */
	fa_uncurrent(fa, BK_MOVABLE);
	fa_uncurrent(fa, BK_UNMOVABLE);
	holes = fa->nr[FS_FREE] - fa_free_blocks(fa) * PAGES_PER_BLOCK;
	assert_int_equal(fa_balloon_take_runs(fa, 0, holes, runs), holes);
	struct compact_result res;
	assert_int_equal(compact(fa, &f.s.pt, UINT64_MAX, 0, &res), MM_OK);
	assert_int_equal(res.frames_moved, 0);
	assert_int_equal(res.blocks_freed, 0);
	for (uint64_t i = 0; i < holes; i++)
		assert_int_equal(fa_balloon_return(fa, runs[i], 0), MM_OK);
	uint64_t P, U;
	movable_partials(fa, &P, &U);
	assert_int_equal(compact(fa, &f.s.pt, UINT64_MAX, 0, &res), MM_OK);
	assert_int_equal(res.blocks_freed, P - (U + 511) / 512);
	verify_pages(&f);
	assert_consistent(fa);
	free(runs);
	unfragment(&f);
}

/* A movable frame whose owner mapping points elsewhere is left alone,
 * reported, and costs nothing else. */
static void test_stale_mapping_left_in_place(void **state)
{
	struct frag f;
	fragment(&f, 64, 60, 0);
	struct frame_alloc *fa = &f.s.fa;
	/* Sparsest movable block, and one live page in it. */
	uint32_t sparse = FA_NIL;
	for (uint32_t b = 0; b < fa->nblocks; b++)
		if (fa->blocks[b].kind == BK_MOVABLE && fa->blocks[b].nfree < PAGES_PER_BLOCK &&
		    (sparse == FA_NIL || fa->blocks[b].nfree > fa->blocks[sparse].nfree))
			sparse = b;
	uint64_t victim = UINT64_MAX;
	for (uint64_t k = 0; k < f.npages && victim == UINT64_MAX; k++)
		if (f.live[k] && (f.pa[k] >> 21) == sparse)
			victim = k;
	assert_true(victim != UINT64_MAX);
	/* Its address now maps a different (unmovable) frame. */
	uint64_t other, pa, va = VA + (victim << 12);
	assert_int_equal(fa_alloc(fa, 0, &other), MM_OK);
	assert_int_equal(pt_unmap(&f.s.pt, va, &pa, NULL), MM_OK);
	assert_int_equal(pt_map(&f.s.pt, va, other << 12, PTE_W), MM_OK);
	f.live[victim] = 0;

	uint64_t movable = fa->nr[FS_MOVABLE];
	host_klog_reset();
	struct compact_result res;
	assert_int_equal(compact(fa, &f.s.pt, UINT64_MAX, 0, &res), MM_OK);
	assert_int_equal(res.frames_failed, 1);
	assert_int_equal(fa->blocks[sparse].kind, BK_MOVABLE);       /* could not be emptied */
	struct frame_info fi;
	assert_int_equal(fa_frame_info(fa, pa >> 12, &fi), MM_OK);
	assert_int_equal(fi.state, FS_MOVABLE);                      /* still there, untouched */
	assert_int_equal(fa->nr[FS_MOVABLE], movable);
	verify_pages(&f);
	assert_consistent(fa);
	unfragment(&f);
}

/* A bounded call moves at most its budget; repeated calls end where one
 * unbounded call would. */
static void test_budget(void **state)
{
	struct frag f;
	fragment(&f, 64, 60, 0);
	struct frame_alloc *fa = &f.s.fa;
	uint64_t P, U;
	movable_partials(fa, &P, &U);
	uint64_t predicted = P - (U + 511) / 512, before = fa_free_blocks(fa), freed = 0, calls = 0;
	struct compact_result res;
	do {
		assert_int_equal(compact(fa, &f.s.pt, UINT64_MAX, 300, &res), MM_OK);
		assert_true(res.frames_moved <= 300);
		freed += res.blocks_freed;
		calls++;
	} while (res.stop == COMPACT_BUDGET);
	assert_int_equal(res.stop, COMPACT_EXHAUSTED);
	assert_true(calls > 5);
	assert_int_equal(freed, predicted);
	assert_int_equal(fa_free_blocks(fa), before + predicted);
	verify_pages(&f);
	assert_consistent(fa);
	unfragment(&f);
}

static void test_bad_arguments(void **state)
{
	struct compact_result res;
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 4, 1), 0);
	assert_int_equal(compact(NULL, &s.pt, 1, 0, &res), MM_EINVAL);
	assert_int_equal(compact(&s.fa, NULL, 1, 0, &res), MM_EINVAL);
	assert_int_equal(compact(&s.fa, &s.pt, 1, 0, NULL), MM_EINVAL);
	/* Nothing movable: exhausted at once, nothing moved. */
	assert_int_equal(compact(&s.fa, &s.pt, 100, 0, &res), MM_OK);
	assert_int_equal(res.stop, COMPACT_EXHAUSTED);
	assert_int_equal(res.frames_moved, 0);
	pt_destroy(&s.pt);
	mm_sim_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frees_predicted_blocks),
		cmocka_unit_test(test_stops_at_requested_blocks),
		cmocka_unit_test(test_unmovable_never_moved),
		cmocka_unit_test(test_balloon_frames_pin_blocks),
		cmocka_unit_test(test_stale_mapping_left_in_place),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
