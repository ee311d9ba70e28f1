/*
 * mm_bench.c - host benchmark of the frame allocator and the compactor on a
 * simulated 1 GiB machine. Prints one JSON object: {"mm_host": {...}}.
 *
 *   build/bench/mm_bench           medians of several runs (wall clock)
 *   build/bench/mm_bench --quick   each operation a fixed number of times,
 *                                  one run: for instruction counts with
 *       valgrind --tool=callgrind --toggle-collect='bench_*' build/bench/mm_bench --quick
 *   (the JSON's *_ops fields are the operation counts to divide by).
 *
 * Scenarios (the reference numbers are LLFree on this machine, 1 GiB):
 *  - 4k_pair: allocate every 4 KiB frame, then free them all; ns per pair.
 *  - 4k_hot_pair: allocate and immediately free one frame; ns per pair.
 *  - 2m_pair: allocate every 2 MiB block, then free them all; ns per pair.
 *  - random_pair: half the frames in use at random; free a random one and
 *    allocate one; ns per pair.
 *  - blocks_request: take 64 free 2 MiB blocks for the balloon and give them
 *    back; ns per request.
 *  - compaction: fill movable memory (mapped, written), free a random 60% of
 *    frames, compact everything: MiB moved per second and the fraction of
 *    free memory (and of free movable memory) in whole 2 MiB blocks before
 *    and after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mm/compact.h"
#include "mm/frame_internal.h"
#include "mm/metrics.h"
#include "test_mm_sim.h"

#define MEM_MIB  1024ull
#define NFRAMES  (MEM_MIB * 256)
#define HEAP_VA  0xffffc00000000000ull

static int quick;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static inline uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void die(const char *what)
{
	fprintf(stderr, "mm_bench: %s\n", what);
	exit(1);
}

/* A fresh 1 GiB allocator (no RAM behind it: the allocator never touches
 * the memory it manages). */
static struct frame_alloc *fresh(void **meta)
{
	static struct frame_alloc fa;
	struct boot_mem_region r = { 0, NFRAMES, BOOT_MEM_USABLE, 7 };
	size_t n = fa_meta_bytes(&r, 1);
	*meta = malloc(n);
	if (!*meta || fa_init(&fa, &r, 1, *meta, n) != MM_OK)
		die("allocator init failed");
	return &fa;
}

static uint64_t *pfns;

__attribute__((noinline)) static void bench_4k_bulk(struct frame_alloc *fa, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (fa_alloc(fa, 0, &pfns[i]) != MM_OK)
			die("4k alloc failed");
	for (uint64_t i = 0; i < n; i++)
		fa_free(fa, pfns[i], 0);
}

__attribute__((noinline)) static void bench_4k_hot(struct frame_alloc *fa, uint64_t n)
{
	uint64_t p;
	for (uint64_t i = 0; i < n; i++) {
		if (fa_alloc(fa, 0, &p) != MM_OK)
			die("4k alloc failed");
		fa_free(fa, p, 0);
	}
}

__attribute__((noinline)) static void bench_2m_bulk(struct frame_alloc *fa, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (fa_alloc(fa, 9, &pfns[i]) != MM_OK)
			die("2m alloc failed");
	for (uint64_t i = 0; i < n; i++)
		fa_free(fa, pfns[i], 9);
}

__attribute__((noinline)) static void bench_random(struct frame_alloc *fa, uint64_t live, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t k = (uint64_t)(((unsigned __int128)rnd() * live) >> 64);   /* no division */
		fa_free(fa, pfns[k], 0);
		if (fa_alloc(fa, 0, &pfns[k]) != MM_OK)
			die("random alloc failed");
	}
}

__attribute__((noinline)) static void bench_blocks_request(struct frame_alloc *fa, uint64_t n, uint64_t per)
{
	uint64_t got[64];
	for (uint64_t i = 0; i < n; i++) {
		if (fa_balloon_take_blocks(fa, per, got) != per)
			die("block request failed");
		for (uint64_t k = 0; k < per; k++)
			fa_balloon_return(fa, got[k], 9);
	}
}

__attribute__((noinline)) static int bench_compact(struct frame_alloc *fa, struct pgtable *pt,
                                                   struct compact_result *res)
{
	return compact(fa, pt, UINT64_MAX, 0, res);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define RUNS_MAX 15

struct micro {
	double k4, k4hot, m2, rnd, req;
};

static void run_micro(struct micro *m, uint64_t *ops)
{
	void *meta;
	struct frame_alloc *fa = fresh(&meta);
	uint64_t n4 = fa->nr[FS_FREE], nblocks = n4 / 512, t;
	uint64_t hot_n = quick ? 100000 : 10000000;
	uint64_t m2_rounds = quick ? 4 : 200;
	uint64_t rnd_n = quick ? 100000 : 4000000;
	uint64_t req_n = quick ? 1000 : 50000;

	bench_4k_bulk(fa, n4);                         /* warm the metadata */
	t = now_ns();
	bench_4k_bulk(fa, n4);
	m->k4 = (double)(now_ns() - t) / (double)n4;
	ops[0] = n4;

	t = now_ns();
	bench_4k_hot(fa, hot_n);
	m->k4hot = (double)(now_ns() - t) / (double)hot_n;
	ops[1] = hot_n;

	t = now_ns();
	for (uint64_t r = 0; r < m2_rounds; r++)
		bench_2m_bulk(fa, nblocks);
	m->m2 = (double)(now_ns() - t) / (double)(m2_rounds * nblocks);
	ops[2] = m2_rounds * nblocks;

	t = now_ns();
	bench_blocks_request(fa, req_n, 64);
	m->req = (double)(now_ns() - t) / (double)req_n;
	ops[3] = req_n;

	/* Random: all frames allocated, a random half freed. */
	for (uint64_t i = 0; i < n4; i++)
		if (fa_alloc(fa, 0, &pfns[i]) != MM_OK)
			die("fill failed");
	for (uint64_t i = n4 - 1; i > 0; i--) {        /* shuffle */
		uint64_t j = rnd() % (i + 1), x = pfns[i];
		pfns[i] = pfns[j];
		pfns[j] = x;
	}
	uint64_t live = n4 / 2;
	for (uint64_t i = live; i < n4; i++)
		fa_free(fa, pfns[i], 0);
	t = now_ns();
	bench_random(fa, live, rnd_n);
	m->rnd = (double)(now_ns() - t) / (double)rnd_n;
	ops[4] = rnd_n;
	char why[200];
	if (fa_check(fa, why, sizeof why) != MM_OK)
		die(why);
	free(meta);
}

struct comp {
	double mib_s, ms, whole_before, whole_after, movable_whole_before, movable_whole_after;
	uint64_t moved, freed, free_blocks_before, free_blocks_after;
};

/* Fraction of free movable memory (free frames in movable blocks plus whole
 * free blocks) that lies in whole free blocks. */
static double movable_whole(const struct frame_alloc *fa)
{
	uint64_t whole = 0, partial = 0;
	FA_FOR_EACH_BLOCK(fa, b) {
		const struct mblock *blk = &fa->blocks[b];
		if (blk->nfree == PAGES_PER_BLOCK)
			whole += PAGES_PER_BLOCK;
		else if (blk->kind == BK_MOVABLE)
			partial += blk->nfree;
	}
	return whole + partial ? (double)whole / (double)(whole + partial) : 1.0;
}

static void run_compaction(struct comp *c)
{
	static struct mm_sim s;
	if (mm_sim_init_flat(&s, MEM_MIB, 1))
		die("sim init failed");
	struct frame_alloc *fa = &s.fa;
	uint64_t n = 0;
	for (;; n++) {
		uint64_t va = HEAP_VA + (n << 12), pfn;
		if (fa_alloc_movable(fa, va, &pfn) != MM_OK)
			break;
		if (pt_map(&s.pt, va, pfn << 12, PTE_W | PTE_NX) != MM_OK) {
			fa_free(fa, pfn, 0);
			break;
		}
		uint64_t *p = mm_sim_p2v(&s, pfn << 12);
		for (unsigned w = 0; w < 512; w += 8)
			p[w] = va ^ w;
	}
	for (uint64_t k = 0; k < n; k++)
		if (rnd() % 100 < 60) {
			uint64_t pa;
			pt_unmap(&s.pt, HEAP_VA + (k << 12), &pa, NULL);
			fa_free(fa, pa >> 12, 0);
		}
	struct mm_stats st;
	fa_stats(fa, &st);
	c->whole_before = st.whole_permille / 1000.0;
	c->movable_whole_before = movable_whole(fa);
	struct compact_result res;
	uint64_t t = now_ns();
	if (bench_compact(fa, &s.pt, &res) != MM_OK)
		die("compact failed");
	double sec = (double)(now_ns() - t) / 1e9;
	fa_stats(fa, &st);
	c->whole_after = st.whole_permille / 1000.0;
	c->movable_whole_after = movable_whole(fa);
	c->moved = res.frames_moved;
	c->freed = res.blocks_freed;
	c->free_blocks_before = res.free_blocks_before;
	c->free_blocks_after = res.free_blocks_after;
	c->ms = sec * 1e3;
	c->mib_s = (double)res.frames_moved * 4096.0 / (1 << 20) / sec;
	char why[200];
	if (fa_check(fa, why, sizeof why) != MM_OK)
		die(why);
	pt_destroy(&s.pt);
	mm_sim_fini(&s);
}

int main(int argc, char **argv)
{
	quick = argc > 1 && !strcmp(argv[1], "--quick");
	pfns = malloc(NFRAMES * sizeof *pfns);
	if (!pfns)
		die("out of memory");
	int runs = quick ? 1 : 7, cruns = quick ? 1 : 3;
	double k4[RUNS_MAX], hot[RUNS_MAX], m2[RUNS_MAX], rn[RUNS_MAX], rq[RUNS_MAX];
	uint64_t ops[5];
	for (int r = 0; r < runs; r++) {
		struct micro m;
		run_micro(&m, ops);
		k4[r] = m.k4; hot[r] = m.k4hot; m2[r] = m.m2; rn[r] = m.rnd; rq[r] = m.req;
	}
	double rate[RUNS_MAX], ms[RUNS_MAX];
	struct comp c;
	for (int r = 0; r < cruns; r++) {
		run_compaction(&c);
		rate[r] = c.mib_s;
		ms[r] = c.ms;
	}
	printf("{\"mm_host\": {"
	       "\"mem_mib\": %llu, \"runs\": %d, \"quick\": %s, "
	       "\"4k_pair_ns\": %.1f, \"4k_hot_pair_ns\": %.1f, \"2m_pair_ns\": %.1f, "
	       "\"random_pair_ns\": %.1f, \"blocks_request_64_ns\": %.1f, "
	       "\"compaction_mib_per_s\": %.0f, \"compaction_ms\": %.1f, "
	       "\"compaction_frames_moved\": %llu, \"compaction_blocks_freed\": %llu, "
	       "\"free_blocks_before\": %llu, \"free_blocks_after\": %llu, "
	       "\"whole_fraction_before\": %.3f, \"whole_fraction_after\": %.3f, "
	       "\"movable_whole_fraction_before\": %.4f, \"movable_whole_fraction_after\": %.4f, "
	       "\"ops\": {\"4k_pair\": %llu, \"4k_hot_pair\": %llu, \"2m_pair\": %llu, "
	       "\"blocks_request\": %llu, \"random_pair\": %llu}, "
	       "\"reference_llfree_ns\": {\"4k_pair\": 53, \"2m_pair\": 40, \"random_pair\": 82}, "
	       "\"targets_ns\": {\"4k_pair\": 30, \"2m_pair\": 30, \"random_pair\": 50, "
	       "\"movable_whole_fraction_after\": 0.98}}}\n",
	       MEM_MIB, runs, quick ? "true" : "false",
	       median(k4, runs), median(hot, runs), median(m2, runs), median(rn, runs), median(rq, runs),
	       median(rate, cruns), median(ms, cruns),
	       (unsigned long long)c.moved, (unsigned long long)c.freed,
	       (unsigned long long)c.free_blocks_before, (unsigned long long)c.free_blocks_after,
	       c.whole_before, c.whole_after, c.movable_whole_before, c.movable_whole_after,
	       (unsigned long long)ops[0], (unsigned long long)ops[1], (unsigned long long)ops[2],
	       (unsigned long long)ops[3], (unsigned long long)ops[4]);
	free(pfns);
	return 0;
}
