/*
 * test_mm_frame.c - frame allocator: set-up from a memory map with holes,
 * invariants under long random alloc/free sequences of every size, block
 * choice, bad frees, OOM and its notifiers, balloon and reporting hooks,
 * metrics.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mm/frame_internal.h"
#include "mm/metrics.h"
#include "host_support.h"
#include "rng.h"
#include "test_mm_sim.h"

#define MIB_PAGES 256ull

static void assert_consistent(const struct frame_alloc *fa)
{
	char why[256] = "";
	int err = fa_check(fa, why, sizeof why);
	if (err)
		fail_msg("fa_check: %s", why);
}

/* A map with the awkward parts of a real one: a legacy hole, the kernel
 * image, boot-services memory, an MMIO gap and RAM above it. */
static const struct boot_mem_region holey_map[] = {
	{ 0x0,        160,             BOOT_MEM_USABLE, 7 },       /* 0 - 640 KiB */
	{ 0xa0000,    96,              BOOT_MEM_RESERVED, 0 },     /* VGA hole: not RAM */
	{ 0x100000,   256,             BOOT_MEM_KERNEL, 0 },       /* 1 - 2 MiB */
	{ 0x200000,   30 * 512 - 10,   BOOT_MEM_USABLE, 7 },       /* 2 MiB - ~62 MiB */
	{ 0x3e00000 - 0xa000, 10,      BOOT_MEM_RECLAIMABLE, 4 },
	{ 0x3e00000,  2 * 512,         BOOT_MEM_MMIO, 11 },        /* 62 - 66 MiB: device */
	{ 0x8000000,  8 * MIB_PAGES,   BOOT_MEM_USABLE, 7 },       /* 128 - 136 MiB */
};
#define HOLEY_RAM (160 + 256 + 30 * 512 - 10 + 10 + 8 * MIB_PAGES)

static void test_init_from_holey_map(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init(&s, holey_map, 7, 0), 0);
	struct frame_alloc *fa = &s.fa;
	assert_consistent(fa);
	assert_int_equal(fa->base_pfn, 0);
	assert_int_equal(fa->nblocks, 68);
	assert_int_equal(fa->total, HOLEY_RAM);
	assert_int_equal(fa->nr[FS_KERNEL], 256 + 10);
	assert_int_equal(fa->nr[FS_FREE], HOLEY_RAM - 266);
	/* Block 0 has a hole and the kernel: unmovable. Blocks 1..29 are whole
	 * and free; block 30 holds the reclaimable frames; 64..67 free. */
	assert_int_equal(fa->blocks[0].kind, BK_UNMOVABLE);
	assert_true(fa->blocks[0].flags & BF_HOLEY);
	assert_int_equal(fa->blocks[1].kind, BK_FREE);
	assert_int_equal(fa->blocks[30].kind, BK_UNMOVABLE);
	assert_int_equal(fa->blocks[31].kind, BK_ABSENT);
	assert_int_equal(fa->blocks[64].kind, BK_FREE);
	assert_int_equal(fa_free_blocks(fa), 29 + 4);

	struct frame_info fi;
	assert_int_equal(fa_frame_info(fa, 0xa0, &fi), MM_OK);
	assert_int_equal(fi.state, FS_ABSENT);
	assert_int_equal(fa_frame_info(fa, 0x100, &fi), MM_OK);
	assert_int_equal(fi.state, FS_KERNEL);
	assert_int_equal(fa_frame_info(fa, 1u << 30, &fi), MM_ERANGE);

	/* Reclaiming boot memory: the reclaimable frames go back, block 30
	 * becomes wholly free. */
	uint64_t rec = (0x3e00000 - 0xa000) >> 12;
	assert_int_equal(fa_free_range(fa, rec, 10), 10);
	assert_int_equal(fa->blocks[30].kind, BK_FREE);
	assert_int_equal(fa_free_blocks(fa), 34);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

static void test_init_rejects_bad_input(void **state)
{
	struct frame_alloc fa;
	char meta[256];
	struct boot_mem_region none[] = { { 0x1000, 10, BOOT_MEM_MMIO, 0 } };
	assert_int_equal(fa_meta_bytes(none, 1), 0);
	assert_int_equal(fa_init(&fa, none, 1, meta, sizeof meta), MM_EINVAL);
	struct boot_mem_region one[] = { { 0, 512, BOOT_MEM_USABLE, 0 } };
	assert_true(fa_meta_bytes(one, 1) > sizeof meta);
	assert_int_equal(fa_init(&fa, one, 1, meta, sizeof meta), MM_EINVAL);   /* too small */
	/* Misaligned regions are ignored with a log line, not trusted. */
	struct boot_mem_region bad[] = {
		{ 0x200000, 512, BOOT_MEM_USABLE, 0 },
		{ 0x400123, 5, BOOT_MEM_USABLE, 0 },
	};
	size_t need = fa_meta_bytes(bad, 2);
	void *m = malloc(need);
	host_klog_reset();
	assert_int_equal(fa_init(&fa, bad, 2, m, need), MM_OK);
	assert_int_equal(fa.total, 512);
	assert_true(host_klog_contains("malformed"));
	free(m);
}

/* Allocate every 4 KiB frame: each exactly once, then OOM; free them all. */
static void test_every_frame_once(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init(&s, holey_map, 7, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t nfree = fa->nr[FS_FREE], nf = (uint64_t)fa->nblocks * 512;
	uint8_t *seen = calloc(nf, 1);
	uint64_t *got = malloc(nfree * sizeof *got);
	uint64_t n = 0, pfn;
	while (fa_alloc(fa, 0, &pfn) == MM_OK) {
		assert_true(pfn < nf);
		assert_int_equal(seen[pfn], 0);
		seen[pfn] = 1;
		got[n++] = pfn;
		assert_true(n <= nfree);
	}
	assert_int_equal(n, nfree);
	assert_int_equal(fa->nr[FS_FREE], 0);
	pfn = 12345;
	assert_int_equal(fa_alloc(fa, 0, &pfn), MM_ENOMEM);
	assert_int_equal(pfn, 12345);   /* untouched on failure */
	assert_int_equal(fa_alloc(fa, 9, &pfn), MM_ENOMEM);
	assert_int_equal(fa_alloc_movable(fa, 0x1000, &pfn), MM_ENOMEM);
	assert_consistent(fa);
	for (uint64_t k = 0; k < n; k++)
		assert_int_equal(fa_free(fa, got[k], 0), MM_OK);
	assert_int_equal(fa->nr[FS_FREE], nfree);
	assert_int_equal(fa_free_blocks(fa), 33);
	assert_consistent(fa);
	free(seen);
	free(got);
	mm_sim_fini(&s);
}

struct live { uint64_t pfn; unsigned order; int movable; };

static struct rng rng = RNG_INIT(RNG_DEFAULT_SEED);
static uint64_t rnd(void) { return rng_next(&rng); }

/* Long random sequences of alloc/free of every size and both kinds, checked
 * against a shadow map: no frame handed out twice, never a hole, runs
 * aligned, kinds never mixed in a block, counters conserved. */
static void random_run(const struct boot_mem_region *map, size_t nmap, unsigned ops, unsigned check_every)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init(&s, map, nmap, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t nf = (uint64_t)fa->nblocks * 512;
	int32_t *shadow = malloc(nf * sizeof *shadow);   /* live index or -1 */
	for (uint64_t i = 0; i < nf; i++)
		shadow[i] = -1;
	struct live *lv = malloc(nf * sizeof *lv);
	uint32_t nlive = 0;
	uint64_t used_k = 0, used_m = 0, fails = 0, initial_kernel = fa->nr[FS_KERNEL];
	uint64_t initial_free_blocks = fa_free_blocks(fa);

	for (unsigned op = 0; op < ops; op++) {
		/* Bias toward allocation until memory is tight, then balance. */
		int do_alloc = nlive == 0 || (rnd() % 100) < (fa->nr[FS_FREE] > fa->total / 4 ? 60 : 45);
		if (do_alloc) {
			unsigned r = rnd() % 100;
			int movable = r < 40;
			unsigned order = movable ? 0 : (r < 70 ? 0 : (unsigned)(rnd() % 10));
			uint64_t pfn;
			int err = movable ? fa_alloc_movable(fa, 0x7000000000ull + ((uint64_t)op << 12), &pfn)
			                  : fa_alloc(fa, order, &pfn);
			if (err) {
				assert_int_equal(err, MM_ENOMEM);
				fails++;
				continue;
			}
			uint64_t n = 1ull << order;
			assert_true(pfn + n <= nf);
			assert_int_equal(pfn & (n - 1), 0);
			struct frame_info fi;
			assert_int_equal(fa_frame_info(fa, pfn, &fi), MM_OK);
			assert_int_equal(fi.block_kind, movable ? BK_MOVABLE : BK_UNMOVABLE);
			for (uint64_t k = 0; k < n; k++) {
				if (shadow[pfn + k] != -1)
					fail_msg("frame %#llx handed out twice", (unsigned long long)(pfn + k));
				shadow[pfn + k] = (int32_t)nlive;
			}
			lv[nlive++] = (struct live){ pfn, order, movable };
			if (movable) used_m += n; else used_k += n;
		} else {
			uint32_t i = (uint32_t)(rnd() % nlive);
			struct live l = lv[i];
			assert_int_equal(fa_free(fa, l.pfn, l.order), MM_OK);
			for (uint64_t k = 0; k < (1ull << l.order); k++)
				shadow[l.pfn + k] = -1;
			if (l.movable) used_m -= 1ull << l.order; else used_k -= 1ull << l.order;
			lv[i] = lv[--nlive];
			if (i < nlive)
				for (uint64_t k = 0; k < (1ull << lv[i].order); k++)
					shadow[lv[i].pfn + k] = (int32_t)i;
		}
		assert_int_equal(fa->nr[FS_MOVABLE], used_m);
		assert_int_equal(fa->nr[FS_KERNEL], used_k + initial_kernel);
		assert_int_equal(fa->nr[FS_FREE] + fa->nr[FS_KERNEL] + fa->nr[FS_MOVABLE], fa->total);
		if (op % check_every == 0)
			assert_consistent(fa);
	}
	assert_true(fails > 0);          /* the sequence did reach OOM */
	assert_consistent(fa);
	while (nlive) {
		nlive--;
		assert_int_equal(fa_free(fa, lv[nlive].pfn, lv[nlive].order), MM_OK);
	}
	assert_consistent(fa);
	/* Everything back: every wholly-RAM block is found free again. */
	assert_int_equal(fa_free_blocks(fa), initial_free_blocks);
	assert_int_equal(fa->nr[FS_FREE], fa->total - initial_kernel);
	assert_int_equal(fa->bad_frees, 0);
	free(shadow);
	free(lv);
	mm_sim_fini(&s);
}

static void test_random_holey(void **state)
{
	random_run(holey_map, 7, 300000, 2000);
}

static void test_random_flat_small(void **state)
{
	/* 8 MiB: OOM is hit often, block kinds churn. */
	struct boot_mem_region r = { 0, 8 * MIB_PAGES, BOOT_MEM_USABLE, 7 };
	random_run(&r, 1, 200000, 500);
}

static void test_bad_frees(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 8, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t a, run, blk;
	assert_int_equal(fa_alloc(fa, 0, &a), MM_OK);
	assert_int_equal(fa_alloc(fa, 3, &run), MM_OK);
	assert_int_equal(fa_alloc(fa, 9, &blk), MM_OK);
	struct frame_alloc before = *fa;

	host_klog_reset();
	assert_int_equal(fa_free(fa, a, 0), MM_OK);
	assert_int_equal(fa_free(fa, a, 0), MM_ENOTALLOC);            /* double free */
	assert_true(host_klog_contains("bad free"));
	assert_int_equal(fa_free(fa, run + 1, 0), MM_ENOTALLOC);      /* inside a run */
	assert_int_equal(fa_free(fa, blk + 100, 0), MM_ENOTALLOC);    /* inside a block */
	assert_int_equal(fa_free(fa, run, 2), MM_EORDER);             /* wrong size */
	assert_int_equal(fa_free(fa, 1000000, 0), MM_ERANGE);         /* outside RAM */
	assert_int_equal(fa_free(fa, run, 10), MM_EINVAL);            /* oversize */
	uint64_t never = 0;
	for (uint32_t b = 0; b < fa->nblocks; b++)
		if (fa->blocks[b].kind == BK_FREE)
			never = fa_block_pfn(fa, b) + 17;
	assert_true(never != 0);
	assert_int_equal(fa_free(fa, never, 0), MM_ENOTALLOC);        /* never allocated */
	assert_int_equal(host_klog_count(), 7);
	assert_int_equal(fa->bad_frees, 7);
	/* None of them changed anything but the error counter. */
	assert_int_equal(fa->nr[FS_FREE], before.nr[FS_FREE] + 1);
	assert_int_equal(fa->nr[FS_KERNEL], before.nr[FS_KERNEL] - 1);
	assert_consistent(fa);
	assert_int_equal(fa_free(fa, run, 3), MM_OK);
	assert_int_equal(fa_free(fa, blk, 9), MM_OK);
	assert_int_equal(fa_free_blocks(fa), 4);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

static void test_bad_requests(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 4, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t pfn = 77;
	unsigned order = 99;
	assert_int_equal(fa_alloc(fa, 10, &pfn), MM_EINVAL);          /* oversize */
	assert_int_equal(fa_alloc(fa, 0, NULL), MM_EINVAL);
	assert_int_equal(fa_alloc_movable(fa, 0, &pfn), MM_EINVAL);   /* no owner */
	assert_int_equal(fa_alloc_movable(fa, 0x1234, &pfn), MM_EINVAL);
	assert_int_equal(pfn, 77);
	assert_int_equal(fa_order_for_pages(0, &order), MM_EINVAL);   /* zero size */
	assert_int_equal(fa_order_for_pages(513, &order), MM_EINVAL); /* oversize */
	assert_int_equal(order, 99);
	assert_int_equal(fa_order_for_pages(1, &order), MM_OK);
	assert_int_equal(order, 0);
	assert_int_equal(fa_order_for_pages(3, &order), MM_OK);
	assert_int_equal(order, 2);
	assert_int_equal(fa_order_for_pages(512, &order), MM_OK);
	assert_int_equal(order, 9);
	assert_int_equal(fa_balloon_take_blocks(fa, 0, &pfn), 0);
	assert_int_equal(fa_balloon_take_runs(fa, 9, 1, &pfn), 0);
	assert_int_equal(fa_set_owner(fa, 0, 0x1000), MM_ESTATE);     /* not movable */
	assert_consistent(fa);
	mm_sim_fini(&s);
}

/* 4 KiB allocations go to the fullest partially used block of their kind. */
static void test_prefers_fullest_block(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 8, 0), 0);   /* 4 blocks */
	struct frame_alloc *fa = &s.fa;
	static uint64_t p[4 * 512];
	for (unsigned i = 0; i < 4 * 512; i++)
		assert_int_equal(fa_alloc(fa, 0, &p[i]), MM_OK);
	/* Block 1 keeps 500 used, block 2 keeps 100, block 3 keeps 50; block 0
	 * is wholly freed. */
	for (unsigned i = 0; i < 4 * 512; i++) {
		uint64_t b = p[i] >> 9, k = p[i] & 511;
		if (b == 0 || (b == 1 && k >= 500) || (b == 2 && k >= 100) || (b == 3 && k >= 50))
			fa_free(fa, p[i], 0);
	}
	assert_int_equal(fa_free_blocks(fa), 1);
	uint64_t pfn;
	assert_int_equal(fa_alloc(fa, 0, &pfn), MM_OK);
	assert_int_equal(pfn >> 9, 1);         /* fullest first */
	for (unsigned i = 0; i < 11; i++)
		assert_int_equal(fa_alloc(fa, 0, &pfn), MM_OK);
	assert_int_equal(fa->blocks[1].nfree, 0);
	assert_int_equal(fa_alloc(fa, 0, &pfn), MM_OK);
	assert_int_equal(pfn >> 9, 2);         /* then the next fullest, not the free block */
	assert_int_equal(fa_free_blocks(fa), 1);
	/* Movable memory never lands in an unmovable block: it takes the free one. */
	assert_int_equal(fa_alloc_movable(fa, 0x5000, &pfn), MM_OK);
	assert_int_equal(pfn >> 9, 0);
	assert_int_equal(fa_free_blocks(fa), 0);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

static void test_runs_and_blocks(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 16, 0), 0);
	struct frame_alloc *fa = &s.fa;
	for (unsigned order = 0; order <= 9; order++) {
		uint64_t pfn;
		assert_int_equal(fa_alloc(fa, order, &pfn), MM_OK);
		assert_int_equal(pfn & ((1ull << order) - 1), 0);
		struct frame_info fi;
		assert_int_equal(fa_frame_info(fa, pfn + (1ull << order) - 1, &fi), MM_OK);
		assert_int_equal(fi.state, FS_KERNEL);
		assert_int_equal(fi.head, pfn);
		assert_int_equal(fi.order, order);
	}
	assert_consistent(fa);
	/* Whole blocks until none is left: the 2 MiB path fails cleanly while
	 * 4 KiB frames are still there. */
	uint64_t pfn, n = 0;
	while (fa_alloc(fa, 9, &pfn) == MM_OK)
		n++;
	assert_int_equal(n, fa->total / 512 - 2);   /* two blocks hold the runs above */
	assert_true(fa->nr[FS_FREE] > 0);
	assert_int_equal(fa_alloc(fa, 0, &pfn), MM_OK);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

struct oom_ctx { struct frame_alloc *fa; uint64_t held[8]; unsigned nheld; unsigned calls; int nest; };

static uint64_t oom_release_block(void *ctx, unsigned order, enum block_kind kind)
{
	struct oom_ctx *c = ctx;
	c->calls++;
	if (c->nest) {
		uint64_t pfn;   /* a nested OOM must fail fast, not recurse */
		assert_int_equal(fa_alloc(c->fa, 9, &pfn), MM_ENOMEM);
	}
	if (!c->nheld)
		return 0;
	fa_free(c->fa, c->held[--c->nheld], 9);
	return 512;
}

static void test_oom_notifier(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 8, 0), 0);
	struct frame_alloc *fa = &s.fa;
	struct oom_ctx c = { .fa = fa, .nest = 1 };
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(fa_alloc(fa, 9, &c.held[c.nheld++]), MM_OK);
	assert_int_equal(fa_add_oom_notifier(fa, oom_release_block, &c), MM_OK);
	uint64_t pfn, a, b;
	assert_int_equal(fa_alloc(fa, 9, &a), MM_OK);
	assert_int_equal(fa_alloc(fa, 9, &b), MM_OK);
	assert_int_equal(c.calls, 0);                  /* not needed yet */
	assert_int_equal(fa_alloc(fa, 9, &pfn), MM_OK);/* a held block was released */
	assert_int_equal(c.calls, 1);
	assert_int_equal(fa_alloc(fa, 9, &pfn), MM_OK);
	assert_int_equal(fa_alloc(fa, 9, &pfn), MM_ENOMEM);
	assert_int_equal(c.calls, 3);
	for (unsigned i = 1; i < FA_MAX_NOTIFIERS; i++)
		assert_int_equal(fa_add_oom_notifier(fa, oom_release_block, &c), MM_OK);
	assert_int_equal(fa_add_oom_notifier(fa, oom_release_block, &c), MM_ENOSPC);
	assert_int_equal(fa_add_oom_notifier(fa, NULL, NULL), MM_EINVAL);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

/* Balloon: whole blocks resident first, return as non-resident, runs only
 * from partial blocks, accounting adds up throughout. */
static void test_balloon_hooks(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 16, 0), 0);   /* 8 blocks, all non-resident */
	struct frame_alloc *fa = &s.fa;
	uint64_t a, b, pfns[16];
	/* Write (allocate) two blocks, give them back: now resident. */
	assert_int_equal(fa_alloc(fa, 9, &a), MM_OK);
	assert_int_equal(fa_alloc(fa, 9, &b), MM_OK);
	fa_free(fa, a, 9);
	fa_free(fa, b, 9);
	assert_int_equal(fa_balloon_take_blocks(fa, 3, pfns), 3);
	int resident_first = (pfns[0] == a || pfns[0] == b) && (pfns[1] == a || pfns[1] == b);
	assert_true(resident_first);
	assert_int_equal(fa->nr[FS_BALLOON], 3 * 512);
	struct mm_stats st;
	fa_stats(fa, &st);
	assert_int_equal(st.free + st.kernel + st.movable + st.balloon, st.total);
	assert_int_equal(st.blocks_balloon, 3);
	assert_consistent(fa);
	/* Return one: free again, not resident, so the next inflate prefers
	 * resident ones and allocation prefers resident ones too. */
	assert_int_equal(fa_balloon_return(fa, pfns[0], 9), MM_OK);
	assert_int_equal(fa->blocks[pfns[0] >> 9].kind, BK_FREE);
	assert_false(fa->blocks[pfns[0] >> 9].flags & BF_RESIDENT);
	assert_int_equal(fa_balloon_return(fa, pfns[0], 9), MM_ENOTALLOC);
	assert_int_equal(fa_free(fa, pfns[1], 9), MM_ESTATE);    /* balloon frames go back via the balloon */
	/* Small runs come from partial blocks, never from whole free blocks. */
	uint64_t k;
	assert_int_equal(fa_alloc(fa, 0, &k), MM_OK);
	uint64_t free_blocks = fa_free_blocks(fa);
	uint64_t runs[600];
	uint64_t got = fa_balloon_take_runs(fa, 2, 127, runs);
	assert_int_equal(got, 127);        /* all 508 free frames of k's block, 4 per run */
	assert_int_equal(fa_free_blocks(fa), free_blocks);
	for (uint64_t i = 0; i < got; i++)
		assert_int_equal(runs[i] >> 9, k >> 9);
	assert_consistent(fa);
	/* No partial block has room left: a free block is broken, not refused. */
	uint64_t last;
	assert_int_equal(fa_balloon_take_runs(fa, 8, 1, &last), 1);
	assert_int_equal(fa_free_blocks(fa), free_blocks - 1);
	assert_int_equal(fa->blocks[last >> 9].kind, BK_UNMOVABLE);
	assert_int_equal(fa_balloon_return(fa, last, 8), MM_OK);
	assert_int_equal(fa_free_blocks(fa), free_blocks);
	for (uint64_t i = 0; i < got; i++)
		assert_int_equal(fa_balloon_return(fa, runs[i], 2), MM_OK);
	assert_int_equal(fa_balloon_return(fa, pfns[1], 9), MM_OK);
	assert_int_equal(fa_balloon_return(fa, pfns[2], 9), MM_OK);
	fa_free(fa, k, 0);
	assert_int_equal(fa->nr[FS_BALLOON], 0);
	assert_int_equal(fa_free_blocks(fa), 8);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

/* The balloon can ask for blocks the host backs only: a block never written
 * since boot (or discarded by the host) releases nothing when ballooned. */
static void test_balloon_resident_blocks_only(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 16, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t a, b, pfns[16], nblocks = fa_free_blocks(fa);
	assert_true(nblocks >= 4 && nblocks <= 16);
	assert_int_equal(fa_balloon_take_blocks_from(fa, 16, pfns, 1), 0);   /* nothing written yet */
	assert_int_equal(fa_alloc(fa, 9, &a), MM_OK);
	assert_int_equal(fa_alloc(fa, 9, &b), MM_OK);
	fa_free(fa, a, 9);
	fa_free(fa, b, 9);
	assert_int_equal(fa_balloon_take_blocks_from(fa, 16, pfns, 1), 2);   /* the two written ones */
	assert_true((pfns[0] == a && pfns[1] == b) || (pfns[0] == b && pfns[1] == a));
	assert_int_equal(fa_balloon_take_blocks_from(fa, 16, pfns + 2, 1), 0);
	assert_int_equal(fa_balloon_take_blocks_from(fa, 16, pfns + 2, 0), nblocks - 2); /* then the others */
	for (unsigned i = 0; i < nblocks; i++)
		fa_balloon_return(fa, pfns[i], 9);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

static void test_free_page_reporting(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 16, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t a, b, pfns[8];
	assert_int_equal(fa_report_isolate(fa, 8, pfns), 0);    /* nothing resident yet */
	assert_int_equal(fa_alloc(fa, 9, &a), MM_OK);
	assert_int_equal(fa_alloc(fa, 9, &b), MM_OK);
	fa_free(fa, a, 9);
	fa_free(fa, b, 9);
	assert_int_equal(fa_report_isolate(fa, 8, pfns), 2);
	assert_int_equal(fa_free_blocks(fa), 6);                 /* isolated: not takeable */
	struct mm_stats st;
	fa_stats(fa, &st);
	/* nor free memory: the inflate budget, min_free and MEMFREE must not
	 * count what nobody can allocate until the host acks */
	assert_int_equal(st.free_in_blocks, 6 * 512);
	assert_int_equal(st.free, 6 * 512);
	assert_int_equal(st.isolated, 2 * 512);
	assert_int_equal(fa_free_pages(fa), 6 * 512);
	assert_int_equal(st.free + st.isolated + st.kernel + st.movable + st.balloon, st.total);
	assert_consistent(fa);
	assert_int_equal(fa_report_done(fa, pfns, 1, 1), MM_OK);
	assert_int_equal(fa_report_done(fa, pfns + 1, 1, 0), MM_OK);   /* host refused: back as resident */
	assert_int_equal(fa_report_done(fa, pfns, 1, 1), MM_ESTATE);   /* not isolated any more */
	fa_stats(fa, &st);
	assert_int_equal(st.reported, 512);
	assert_int_equal(st.isolated, 0);
	assert_int_equal(st.free, 8 * 512);
	struct frame_info fi;
	fa_frame_info(fa, pfns[0] + 5, &fi);
	assert_int_equal(fi.state, FS_REPORTED);
	assert_consistent(fa);
	/* Allocation prefers the resident block; a reported block that gets
	 * allocated loses its flag (it is resident again). */
	uint64_t x;
	assert_int_equal(fa_alloc(fa, 9, &x), MM_OK);
	assert_int_equal(x, pfns[1]);
	for (unsigned i = 0; i < 7; i++)
		assert_int_equal(fa_alloc(fa, 9, &x), MM_OK);
	assert_int_equal(fa->nr_reported_blocks, 0);
	assert_int_equal(fa->blocks[pfns[0] >> 9].kind, BK_UNMOVABLE);
	assert_int_equal(fa->blocks[pfns[0] >> 9].flags & (BF_REPORTED | BF_RESIDENT), BF_RESIDENT);
	assert_consistent(fa);
	mm_sim_fini(&s);
}

static void test_claim_range(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 8, 0), 0);
	struct frame_alloc *fa = &s.fa;
	assert_int_equal(fa_claim_range(fa, 600, 100), MM_OK);
	assert_int_equal(fa->nr[FS_KERNEL], 100);
	assert_int_equal(fa->blocks[1].kind, BK_UNMOVABLE);
	assert_int_equal(fa_claim_range(fa, 650, 10), MM_ESTATE);   /* already taken */
	assert_int_equal(fa_claim_range(fa, 4000, 200), MM_ERANGE);
	assert_int_equal(fa->nr[FS_KERNEL], 100);
	uint64_t m;
	assert_int_equal(fa_alloc_movable(fa, 0x1000, &m), MM_OK);
	assert_int_equal(fa_claim_range(fa, m, 1), MM_ESTATE);
	assert_int_equal(fa_free_range(fa, 600, 100), 100);
	assert_consistent(fa);

	mm_sim_fini(&s);
}

/* Boot memory goes back a block at a time: only single kernel frames (not a
 * movable frame, not an order-2 run's head or tail), ranges partly past the
 * end are cut, and the counts and lists stay right. */
static void test_free_range_by_block(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 16, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t free0 = fa_free_pages(fa);
	assert_int_equal(fa_claim_range(fa, 1000, 1200), MM_OK);   /* blocks 1..4 */
	uint64_t run, m;
	assert_int_equal(fa_alloc(fa, 2, &run), MM_OK);
	assert_true(run >= 900 && run < 2300);                     /* in a claimed block */
	assert_int_equal(fa_alloc_movable(fa, 0x1000, &m), MM_OK);
	uint64_t before_free = fa->nr[FS_FREE];
	assert_int_equal(fa_free_range(fa, 900, 1400), 1200);
	assert_int_equal(fa->nr[FS_FREE], before_free + 1200);
	struct frame_info fi;
	assert_int_equal(fa_frame_info(fa, run, &fi), MM_OK);
	assert_int_equal(fi.state, FS_KERNEL);
	assert_int_equal(fa_frame_info(fa, m, &fi), MM_OK);
	assert_int_equal(fi.state, FS_MOVABLE);
	assert_int_equal(fa_free_range(fa, 16 * 512 - 10, 100), 0);
	assert_consistent(fa);
	assert_int_equal(fa_free(fa, run, 2), MM_OK);
	assert_int_equal(fa_free(fa, m, 0), MM_OK);
	assert_consistent(fa);
	assert_int_equal(fa_free_pages(fa), free0);
	mm_sim_fini(&s);
}

static void test_metrics_format(void **state)
{
	struct mm_sim s;
	assert_int_equal(mm_sim_init_flat(&s, 64, 0), 0);
	struct frame_alloc *fa = &s.fa;
	uint64_t pfn;
	for (unsigned i = 0; i < 300; i++)
		fa_alloc_movable(fa, 0x1000ull * (i + 1), &pfn);
	struct mm_stats st;
	fa_stats(fa, &st);
	assert_int_equal(st.total, 64 * 256);
	assert_int_equal(st.movable, 300);
	assert_int_equal(st.free_in_blocks, 31 * 512);
	assert_int_equal(st.whole_permille, (unsigned)(31ull * 512 * 1000 / (64 * 256 - 300)));
	char buf[512];
	int n = mm_stats_format(&st, buf, sizeof buf);
	assert_true(n > 0 && (size_t)n < sizeof buf);
	assert_non_null(strstr(buf, "total 64 MiB"));
	assert_non_null(strstr(buf, "62 MiB in whole 2 MiB blocks"));
	assert_non_null(strstr(buf, "1 movable"));
	mm_sim_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_from_holey_map),
		cmocka_unit_test(test_init_rejects_bad_input),
		cmocka_unit_test(test_every_frame_once),
		cmocka_unit_test(test_random_holey),
		cmocka_unit_test(test_random_flat_small),
		cmocka_unit_test(test_bad_frees),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_prefers_fullest_block),
		cmocka_unit_test(test_runs_and_blocks),
		cmocka_unit_test(test_oom_notifier),
		cmocka_unit_test(test_balloon_hooks),
		cmocka_unit_test(test_balloon_resident_blocks_only),
		cmocka_unit_test(test_free_page_reporting),
		cmocka_unit_test(test_claim_range),
		cmocka_unit_test(test_free_range_by_block),
		cmocka_unit_test(test_metrics_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
