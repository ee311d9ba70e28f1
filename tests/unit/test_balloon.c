/*
 * test_balloon.c - the balloon core against a fake transport, fake memory
 * (tests/unit/fake_balloon_mem.c, which checks ownership of every frame) and
 * the real virtqueue code driven by simulated devices that keep the host's
 * view of the balloon (tests/unit/fake_virtio_dev.c).
 *
 * Checked after every poll: the balloon's own invariants (balloon_check), the
 * fake allocator's errors (double give / foreign frames), that the frames the
 * allocator thinks the balloon owns are exactly the balloon's books, and the
 * host's errors (PFN inflated twice, deflated while not in the balloon,
 * descriptor larger than 1 KiB or device-writable).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/balloon/balloon.h"
#include "drivers/balloon/internal.h"   /* white-box: the tests read the core's books */
#include "fake_balloon_mem.h"
#include "fake_virtio_dev.h"
#include "host_support.h"
#include "kclock.h"

#define BASE_PFN  1024u                 /* RAM starts at 4 MiB */
#define MEM_PAGES (128u * PAGES_PER_BLOCK)          /* 256 MiB */
#define MAX_PFN   (BASE_PFN + MEM_PAGES)
#define QSIZE     128u                  /* QEMU's inflate/deflate/stats size */

enum { QI, QD, QS };

struct bfx {
	struct fake_mem mem;
	struct balloon_mem_ops mops;
	struct {
		uint32_t num_pages;
		int fail_reads;
		uint32_t actual;
		unsigned writes, reads;
	} tr;
	struct virtq vq[3];
	struct fake_vq dev[3];
	void *ring[3];
	void *dma, *track;
	struct balloon b;
	struct balloon_setup setup;

	uint8_t host_map[MAX_PFN];          /* host view: frame is in the balloon */
	uint64_t host_pages;
	unsigned host_errors, host_elems[2], host_block_elems, host_pfns_max_desc;
	unsigned stats_seen;
	uint64_t stats_free, stats_total;
};

/* ------------------------------------------------------------ fakes */

static int tr_read(void *ctx, uint32_t *np)
{
	struct bfx *fx = ctx;
	fx->tr.reads++;
	if (fx->tr.fail_reads)
		return -1;
	*np = fx->tr.num_pages;
	return 0;
}

static void tr_write(void *ctx, uint32_t actual)
{
	struct bfx *fx = ctx;
	fx->tr.actual = actual;
	fx->tr.writes++;
}

static const struct balloon_transport_ops tr_ops = { .read_num_pages = tr_read, .write_actual = tr_write };

static void host_err(struct bfx *fx, const char *what, uint64_t v)
{
	fx->host_errors++;
	fprintf(stderr, "host: %s (0x%llx)\n", what, (unsigned long long)v);
}

/* The host side of inflate/deflate: read the PFNs like QEMU does. */
static uint32_t host_elem(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct bfx *fx = ctx;
	int inflate = f == &fx->dev[QI];
	uint32_t n = 0;
	uint64_t first = 0;
	int consecutive = 1;
	for (unsigned s = 0; s < e->nseg; s++) {
		if (e->seg[s].writable)
			host_err(fx, "writable descriptor on inflate/deflate", s);
		if (e->seg[s].len % 4 || e->seg[s].len > 1024)
			host_err(fx, "descriptor length not a multiple of 4 or above 1 KiB", e->seg[s].len);
		if (e->seg[s].len / 4 > fx->host_pfns_max_desc)
			fx->host_pfns_max_desc = e->seg[s].len / 4;
		const uint32_t *pfns = (const uint32_t *)(uintptr_t)e->seg[s].addr;
		for (uint32_t k = 0; k < e->seg[s].len / 4; k++, n++) {
			uint64_t pfn = pfns[k];
			if (n == 0)
				first = pfn;
			else if (pfn != first + n)
				consecutive = 0;
			if (pfn < BASE_PFN || pfn >= MAX_PFN) {
				host_err(fx, "PFN outside guest RAM", pfn);
				continue;
			}
			if (inflate) {
				if (fx->host_map[pfn])
					host_err(fx, "PFN inflated twice", pfn);
				fx->host_map[pfn] = 1;
				fx->host_pages++;
			} else {
				if (!fx->host_map[pfn])
					host_err(fx, "deflate of a PFN not in the balloon", pfn);
				fx->host_map[pfn] = 0;
				fx->host_pages--;
			}
		}
	}
	fx->host_elems[!inflate]++;
	if (inflate && n == PAGES_PER_BLOCK && consecutive && first % PAGES_PER_BLOCK == 0 && e->nseg == 2 &&
	    e->seg[0].len == 1024 && e->seg[1].len == 1024)
		fx->host_block_elems++;
	return 0;
}

static uint32_t host_stats(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct bfx *fx = ctx;
	(void)f;
	fx->stats_seen++;
	const uint8_t *p = (const uint8_t *)(uintptr_t)e->seg[0].addr;
	for (uint32_t off = 0; off + 10 <= e->seg[0].len; off += 10) {
		uint16_t tag;
		uint64_t val;
		memcpy(&tag, p + off, 2);
		memcpy(&val, p + off + 2, 8);
		if (tag == VIRTIO_BALLOON_S_MEMFREE) fx->stats_free = val;
		if (tag == VIRTIO_BALLOON_S_MEMTOT) fx->stats_total = val;
	}
	return e->out_bytes;   /* QEMU reports the bytes it read */
}

/* ------------------------------------------------------------ fixture */

static struct bfx *make(uint64_t min_free, int compactor, enum fake_mode mode)
{
	struct bfx *fx = calloc(1, sizeof *fx);
	assert_non_null(fx);
	fake_mem_init(&fx->mem, BASE_PFN, MEM_PAGES, 0);
	fx->mops = fake_mem_ops;
	if (!compactor)
		fx->mops.compact = NULL;
	for (int q = 0; q < 3; q++) {
		fx->ring[q] = aligned_alloc(4096, (virtq_mem_size(QSIZE) + 4095) & ~4095ul);
		assert_int_equal(virtq_init(&fx->vq[q], q == QI ? "inflate" : q == QD ? "deflate" : "stats",
		                            (uint16_t)q, QSIZE, fx->ring[q], (uintptr_t)fx->ring[q],
		                            fake_vq_notify, &fx->dev[q]), 0);
		fake_vq_attach(&fx->dev[q], &fx->vq[q], q == QS ? FAKE_HOLD : mode);
		fx->dev[q].process_on_notify = 1;
		fx->dev[q].on_elem = q == QS ? host_stats : host_elem;
		fx->dev[q].ctx = fx;
	}
	fx->dma = aligned_alloc(4096, BALLOON_DMA_BYTES);
	fx->track = aligned_alloc(4096, (balloon_track_bytes(MAX_PFN) + 4095) & ~4095ul);
	fx->setup = (struct balloon_setup){
		.tops = &tr_ops, .tctx = fx, .mops = &fx->mops, .mctx = &fx->mem,
		.inflate_vq = &fx->vq[QI], .deflate_vq = &fx->vq[QD], .stats_vq = &fx->vq[QS],
		.features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BALLOON_F_STATS_VQ),
		.dma = fx->dma, .dma_pa = (uintptr_t)fx->dma, .dma_len = BALLOON_DMA_BYTES,
		.track = fx->track, .track_len = balloon_track_bytes(MAX_PFN), .max_pfn = MAX_PFN,
		.params = { .min_free_pages = min_free },
	};
	host_clock_set(NS_PER_S);
	host_klog_reset();
	assert_int_equal(balloon_init(&fx->b, &fx->setup), 0);
	return fx;
}

static void destroy(struct bfx *fx)
{
	for (int q = 0; q < 3; q++)
		free(fx->ring[q]);
	free(fx->dma);
	free(fx->track);
	fake_mem_destroy(&fx->mem);
	free(fx);
}

static void check_all(struct bfx *fx)
{
	char why[200];
	if (balloon_check(&fx->b, why, sizeof why) != 0)
		fail_msg("balloon_check: %s", why);
	assert_int_equal(fx->mem.errors, 0);
	assert_int_equal(fx->host_errors, 0);
	assert_int_equal(fake_mem_consistent(&fx->mem), 0);
	assert_int_equal(fx->mem.nballoon, balloon_owned(&fx->b));
	for (int q = 0; q < 3; q++)
		assert_int_equal(fx->dev[q].driver_errors, 0);
}

static void poll_n(struct bfx *fx, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		host_clock_advance(NS_PER_MS);
		balloon_poll(&fx->b, clock_ns());
		check_all(fx);
	}
}

/* Long waits: one poll every 10 ms of fake time (still checked every poll). */
static void wait_ms(struct bfx *fx, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 10) {
		host_clock_advance(9 * NS_PER_MS);
		poll_n(fx, 1);
	}
}

/* Host and guest agree and nothing is in flight. */
static void assert_settled(struct bfx *fx, uint64_t pages)
{
	assert_int_equal(balloon_actual(&fx->b), pages);
	assert_int_equal(fx->tr.actual, pages);
	assert_int_equal(fx->host_pages, pages);
	assert_int_equal(fx->mem.nballoon, pages);
	assert_int_equal(fx->b.inflating + fx->b.deflating, 0);
	for (uint64_t p = BASE_PFN; p < MAX_PFN; p++)
		if (fx->host_map[p] != balloon_has_pfn(&fx->b, p))
			fail_msg("host and guest disagree on pfn 0x%llx", (unsigned long long)p);
}

/* ------------------------------------------------------------ tests */

static void test_queue_numbering(void **state)
{
	(void)state;
	struct balloon_vq_layout l;
	const uint64_t S = 1ull << VIRTIO_BALLOON_F_STATS_VQ, H = 1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT,
	               R = 1ull << VIRTIO_BALLOON_F_REPORTING, V = 1ull << VIRTIO_F_VERSION_1;
	balloon_vq_layout(V, &l);
	assert_int_equal(l.inflate, 0); assert_int_equal(l.deflate, 1);
	assert_int_equal(l.stats, -1); assert_int_equal(l.free_page_hint, -1);
	assert_int_equal(l.reporting, -1); assert_int_equal(l.count, 2);
	balloon_vq_layout(V | S | R, &l);        /* QEMU with free-page-reporting=on */
	assert_int_equal(l.stats, 2); assert_int_equal(l.free_page_hint, -1);
	assert_int_equal(l.reporting, 3); assert_int_equal(l.count, 4);
	balloon_vq_layout(V | S | H | R, &l);
	assert_int_equal(l.stats, 2); assert_int_equal(l.free_page_hint, 3);
	assert_int_equal(l.reporting, 4); assert_int_equal(l.count, 5);
	balloon_vq_layout(V | R, &l);            /* no stats queue: reporting moves up */
	assert_int_equal(l.stats, -1); assert_int_equal(l.reporting, 2); assert_int_equal(l.count, 3);
	balloon_vq_layout(V | H, &l);
	assert_int_equal(l.free_page_hint, 2); assert_int_equal(l.count, 3);

	assert_int_equal(balloon_features_wanted(S | R), 0);   /* legacy only: refuse */
	uint64_t all = V | S | H | R | (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST) |
	               (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | (1ull << VIRTIO_BALLOON_F_PAGE_POISON) |
	               (1ull << 28) | (1ull << 29);
	/* hinting and poisoning declined, everything else we know taken */
	assert_int_equal(balloon_features_wanted(all),
	                 V | S | R | (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST) |
	                 (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	assert_int_equal(balloon_features_wanted(V), V);
	/* a device behind the platform's DMA translation (QEMU iommu_platform=on)
	 * refuses FEATURES_OK unless ACCESS_PLATFORM is accepted */
	uint64_t A = 1ull << VIRTIO_F_ACCESS_PLATFORM;
	assert_int_equal(balloon_features_wanted(V | A | S), V | A | S);
}

/* The reporting queue is found by what the device shows, for QEMU's
 * consecutive numbering and for the spec's fixed index alike. */
static void test_reporting_queue_either_convention(void **state)
{
	(void)state;
	const uint64_t V = 1ull << VIRTIO_F_VERSION_1, S = 1ull << VIRTIO_BALLOON_F_STATS_VQ,
	               R = 1ull << VIRTIO_BALLOON_F_REPORTING, H = 1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT;
	struct balloon_vq_layout l;
	const char *conv;
	balloon_vq_layout(V | S | R, &l);
	assert_int_equal(l.reporting, 3);
	/* QEMU 7.2: queues 0..3, reporting at 3 */
	assert_int_equal(balloon_pick_reporting_vq(&l, 4, 32, 0, &conv), 3);
	assert_non_null(strstr(conv, "QEMU"));
	/* a device that follows the spec: queue 3 (hinting) absent, reporting at 4 */
	assert_int_equal(balloon_pick_reporting_vq(&l, 5, 0, 32, &conv), 4);
	assert_non_null(strstr(conv, "spec"));
	/* ... with a hinting queue present although hinting is not offered */
	assert_int_equal(balloon_pick_reporting_vq(&l, 5, 128, 32, &conv), 4);
	/* neither exists: no reporting */
	assert_int_equal(balloon_pick_reporting_vq(&l, 5, 0, 0, &conv), -1);
	/* hinting offered too: both conventions say 4 */
	balloon_vq_layout(V | S | H | R, &l);
	assert_int_equal(balloon_pick_reporting_vq(&l, 5, 32, 32, &conv), 4);
	assert_int_equal(balloon_pick_reporting_vq(&l, 5, 0, 0, &conv), -1);
	/* reporting not offered */
	balloon_vq_layout(V | S, &l);
	assert_int_equal(balloon_pick_reporting_vq(&l, 3, 0, 0, &conv), -1);
}

static void test_init_rejects_bad_setup(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	struct balloon_setup s = fx->setup;
	struct balloon *b = &fx->b;
	host_klog_reset();
	s.dma_len = BALLOON_DMA_BYTES - 1;
	assert_int_equal(balloon_init(b, &s), -1);
	assert_true(host_klog_contains("DMA memory"));
	s = fx->setup; s.track_len = balloon_track_bytes(MAX_PFN) - 1;
	assert_int_equal(balloon_init(b, &s), -1);
	s = fx->setup; s.mops = NULL;
	assert_int_equal(balloon_init(b, &s), -1);
	s = fx->setup; s.max_pfn = BALLOON_MAX_PFN + 1;
	assert_int_equal(balloon_init(b, &s), -1);
	assert_int_equal(host_klog_count(), 4);
	assert_int_equal(balloon_state(b), BALLOON_BROKEN);
	balloon_poll(b, clock_ns());          /* a failed balloon does nothing */
	assert_int_equal(fx->tr.reads, 0);
	destroy(fx);
}

static void test_inflate_whole_blocks(void **state)
{
	(void)state;
	struct bfx *fx = make(4 * PAGES_PER_BLOCK, 1, FAKE_ACK);
	fx->tr.num_pages = 40 * PAGES_PER_BLOCK;            /* 80 MiB */
	poll_n(fx, 10);
	assert_settled(fx, 40 * PAGES_PER_BLOCK);
	assert_int_equal(fx->host_block_elems, 40);   /* every element was one whole block */
	assert_int_equal(fx->host_elems[0], 40);
	assert_int_equal(fx->host_pfns_max_desc, 256);
	assert_int_equal(fx->b.block_runs, 40);
	assert_int_equal(fx->b.runs_sent, 0);
	assert_int_equal(balloon_state(&fx->b), BALLOON_AT_TARGET);
	assert_true(host_klog_contains("at target 20480 pages (80 MiB): 40 whole 2 MiB blocks, 0 pages"));
	/* nothing more happens at target: no new elements, no new lines */
	unsigned lines = host_klog_count(), writes = fx->tr.writes;
	poll_n(fx, 100);
	assert_int_equal(host_klog_count(), lines);
	assert_int_equal(fx->tr.writes, writes);
	assert_int_equal(fx->host_elems[0], 40);
	destroy(fx);
}

static void test_many_in_flight_actual_follows_acks(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_HOLD);
	fx->tr.num_pages = 32 * PAGES_PER_BLOCK;
	poll_n(fx, 1);
	/* one poll put a whole batch in flight, nothing acked yet */
	assert_int_equal(fx->dev[QI].nheld, 16);
	assert_int_equal(fx->b.inflating, 16 * PAGES_PER_BLOCK);
	assert_int_equal(balloon_actual(&fx->b), 0);
	assert_int_equal(fx->tr.actual, 0);
	poll_n(fx, 1);
	assert_int_equal(fx->dev[QI].nheld, 32);     /* more while the first are in flight */
	fake_vq_complete(&fx->dev[QI], 5);
	poll_n(fx, 1);
	assert_int_equal(fx->tr.actual, 5 * PAGES_PER_BLOCK);     /* written as the batch was acked */
	assert_int_equal(balloon_actual(&fx->b), 5 * PAGES_PER_BLOCK);
	fake_vq_complete_at(&fx->dev[QI], 20);        /* out of order */
	fake_vq_complete_at(&fx->dev[QI], 3);
	poll_n(fx, 1);
	assert_int_equal(fx->tr.actual, 7 * PAGES_PER_BLOCK);
	fake_vq_complete(&fx->dev[QI], 100);
	poll_n(fx, 2);
	assert_settled(fx, 32 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_deflate_tells_host_first_then_reuses(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 20 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_settled(fx, 20 * PAGES_PER_BLOCK);

	fx->dev[QD].mode = FAKE_HOLD;
	fx->tr.num_pages = 12 * PAGES_PER_BLOCK;
	poll_n(fx, 1);
	assert_int_equal(fx->dev[QD].nheld, 8);      /* 8 whole blocks told to the host */
	assert_int_equal(fx->b.deflating, 8 * PAGES_PER_BLOCK);
	/* not acked: frames still the balloon's, actual unchanged */
	assert_int_equal(fx->mem.nballoon, 20 * PAGES_PER_BLOCK);
	assert_int_equal(fx->tr.actual, 20 * PAGES_PER_BLOCK);
	poll_n(fx, 50);
	assert_int_equal(fx->mem.nballoon, 20 * PAGES_PER_BLOCK);
	assert_int_equal(fx->tr.actual, 20 * PAGES_PER_BLOCK);
	fake_vq_complete(&fx->dev[QD], 8);
	poll_n(fx, 1);
	assert_settled(fx, 12 * PAGES_PER_BLOCK);
	assert_int_equal(fx->mem.give_calls, 8);     /* one give_back per whole block */
	/* the guest reuses the returned frames */
	uint64_t free_before = fx->mem.nfree;
	assert_int_equal(fake_mem_alloc_any(&fx->mem, free_before, 0), free_before);
	assert_int_equal(fx->mem.nfree, 0);
	check_all(fx);
	destroy(fx);
}

static void test_partial_targets_use_small_runs(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 3 * PAGES_PER_BLOCK + 100;            /* 3 blocks + 64 + 32 + 4 */
	poll_n(fx, 5);
	assert_settled(fx, 3 * PAGES_PER_BLOCK + 100);
	assert_int_equal(fx->b.blocks_sent, 3);
	assert_int_equal(fx->b.runs_sent, 3);
	assert_int_equal(fx->host_block_elems, 3);
	/* down by 150: the 100 pages of runs go first (they fit), then the other
	 * 50 can only come out of a whole block: it goes back whole and 462
	 * pages come back in as small runs (256+128+64+8+4+2) */
	unsigned runs_before = (unsigned)fx->b.runs_sent;
	fx->tr.num_pages = 3 * PAGES_PER_BLOCK - 50;
	poll_n(fx, 5);
	assert_settled(fx, 3 * PAGES_PER_BLOCK - 50);
	assert_int_equal(fx->b.block_runs, 2);
	assert_int_equal(fx->b.runs_sent - runs_before, 6);
	assert_int_equal(fx->b.deflates_sent, 2);
	/* up by 50 and down again by 50: no churn beyond the small runs */
	fx->tr.num_pages = 3 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_settled(fx, 3 * PAGES_PER_BLOCK);
	fx->tr.num_pages = 3 * PAGES_PER_BLOCK - 50;
	poll_n(fx, 5);
	assert_settled(fx, 3 * PAGES_PER_BLOCK - 50);
	assert_int_equal(fx->b.block_runs, 2);
	/* back to zero: every frame returned exactly once */
	fx->tr.num_pages = 0;
	poll_n(fx, 5);
	assert_settled(fx, 0);
	assert_int_equal(fx->mem.nfree, MEM_PAGES);
	destroy(fx);
}

static void test_compacts_when_blocks_are_fragmented(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	/* one movable frame in every block: no whole free block anywhere */
	for (uint64_t b = BASE_PFN; b < MAX_PFN; b += PAGES_PER_BLOCK)
		assert_int_equal(fake_mem_alloc_at(&fx->mem, b + 7, 0), 0);
	fx->tr.num_pages = 8 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_settled(fx, 8 * PAGES_PER_BLOCK);
	assert_true(fx->mem.compact_calls >= 1);
	assert_true(fx->mem.moved >= 8);
	assert_int_equal(fx->host_block_elems, 8);    /* compaction made whole blocks */
	assert_int_equal(fx->b.runs_sent, 0);
	destroy(fx);
}

static void test_small_runs_when_blocks_cannot_be_made(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	/* a pinned frame in every block: compaction cannot help */
	for (uint64_t b = BASE_PFN; b < MAX_PFN; b += PAGES_PER_BLOCK)
		assert_int_equal(fake_mem_alloc_at(&fx->mem, b + 300, 1), 0);
	fx->tr.num_pages = 4 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_settled(fx, 4 * PAGES_PER_BLOCK);
	assert_int_equal(fx->b.blocks_sent, 0);
	assert_int_equal(fx->host_block_elems, 0);
	assert_true(fx->b.runs_sent > 0);
	assert_true(fx->host_pfns_max_desc <= 256);
	/* each element carries at most 512 PFNs in descriptors of at most 1 KiB */
	assert_true(fx->host_elems[0] >= 4);
	assert_int_equal(fx->mem.compact_calls, 1);   /* tried once, no progress: not again */
	destroy(fx);
}

static void test_absurd_target_clamped_once(void **state)
{
	(void)state;
	const uint64_t min_free = 16 * PAGES_PER_BLOCK;
	struct bfx *fx = make(min_free, 1, FAKE_ACK);
	fx->tr.num_pages = 0xffffffffu;
	poll_n(fx, 200);
	assert_settled(fx, MEM_PAGES - min_free);
	assert_int_equal(fx->mem.nfree, min_free);
	assert_true(host_klog_contains("host asks for 4294967295 pages"));
	assert_true(host_klog_contains("clamped"));
	unsigned clamp_lines = 0;
	(void)clamp_lines;
	/* exactly one clamp line over 200 polls: count by resetting and polling on */
	host_klog_reset();
	wait_ms(fx, 2000);
	assert_int_equal(host_klog_count(), 0);
	/* a different absurd value is a change: one more line */
	fx->tr.num_pages = 0xfffffff0u;
	host_clock_advance(2 * NS_PER_S);
	poll_n(fx, 100);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("4294967280"));
	assert_int_equal(balloon_actual(&fx->b), MEM_PAGES - min_free);
	destroy(fx);
}

static void test_max_pages_knob(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->b.s.params.max_pages = 10 * PAGES_PER_BLOCK;
	fx->tr.num_pages = 30 * PAGES_PER_BLOCK;
	poll_n(fx, 10);
	assert_settled(fx, 10 * PAGES_PER_BLOCK);
	assert_true(host_klog_contains("clamped"));
	destroy(fx);
}

static void test_unreachable_target_stable_and_quiet(void **state)
{
	(void)state;
	const uint64_t min_free = 8 * PAGES_PER_BLOCK;
	struct bfx *fx = make(min_free, 1, FAKE_ACK);
	/* the guest holds all but 20 blocks, pinned */
	assert_int_equal(fake_mem_alloc_any(&fx->mem, MEM_PAGES - 20 * PAGES_PER_BLOCK, 1), MEM_PAGES - 20 * PAGES_PER_BLOCK);
	fx->tr.num_pages = 50 * PAGES_PER_BLOCK;                 /* allowed by the clamp, not by free memory */
	poll_n(fx, 20);
	assert_settled(fx, 12 * PAGES_PER_BLOCK);                /* 20 free - 8 kept */
	assert_int_equal(fx->mem.nfree, min_free);
	assert_int_equal(balloon_state(&fx->b), BALLOON_SHORT);
	assert_true(host_klog_contains("cannot reach target 25600 pages (100 MiB): holding 6144"));
	/* 10 s more: no new line, actual stable, allocator asked about once a second */
	host_klog_reset();
	unsigned calls = fx->mem.take_blocks_calls + fx->mem.take_run_calls;
	unsigned writes = fx->tr.writes;
	wait_ms(fx, 10000);
	assert_int_equal(host_klog_count(), 0);
	assert_int_equal(fx->tr.writes, writes);
	assert_int_equal(fx->tr.actual, 12 * PAGES_PER_BLOCK);
	unsigned more = fx->mem.take_blocks_calls + fx->mem.take_run_calls - calls;
	assert_true(more <= 10 * 12);  /* <= 10 retries, a handful of calls each */
	/* memory freed by the guest gets used on a retry */
	for (uint64_t p = BASE_PFN; p < BASE_PFN + 4 * PAGES_PER_BLOCK; p++)
		assert_int_equal(fake_mem_free_at(&fx->mem, p), 0);
	wait_ms(fx, 1100);
	assert_settled(fx, 16 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_host_stops_acking_inflate(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_DROP);
	fx->dev[QD].mode = FAKE_ACK;
	fx->tr.num_pages = 100 * PAGES_PER_BLOCK;
	wait_ms(fx, 6000);                          /* 6 s, timeout is 5 s */
	unsigned popped = fx->dev[QI].popped;
	assert_true(popped > 0 && popped <= BALLOON_SLOTS);
	assert_int_equal(balloon_state(&fx->b), BALLOON_STALLED);
	assert_true(host_klog_contains("host has not acked for"));
	assert_int_equal(fx->tr.actual, 0);
	/* frames in flight stay the balloon's; nothing more is sent; quiet */
	host_klog_reset();
	wait_ms(fx, 10000);
	assert_int_equal(host_klog_count(), 0);
	assert_int_equal(fx->dev[QI].popped, popped);
	assert_int_equal(fx->mem.nballoon, popped * PAGES_PER_BLOCK);
	assert_int_equal(fx->tr.actual, 0);
	/* target drops while stalled: still nothing given back early */
	fx->tr.num_pages = 0;
	poll_n(fx, 100);
	assert_int_equal(fx->mem.nballoon, popped * PAGES_PER_BLOCK);
	/* the host wakes up */
	fake_vq_complete(&fx->dev[QI], popped);
	fx->dev[QI].mode = FAKE_ACK;
	poll_n(fx, 20);
	assert_true(host_klog_contains("host acks again"));
	assert_settled(fx, 0);
	destroy(fx);
}

static void test_host_stops_acking_deflate(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 10 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_settled(fx, 10 * PAGES_PER_BLOCK);
	fx->dev[QD].mode = FAKE_DROP;
	fx->tr.num_pages = 0;
	wait_ms(fx, 7000);
	assert_int_equal(balloon_state(&fx->b), BALLOON_STALLED);
	assert_int_equal(fx->tr.actual, 10 * PAGES_PER_BLOCK);          /* stable */
	assert_int_equal(fx->mem.nballoon, 10 * PAGES_PER_BLOCK);       /* not reused before the ack */
	assert_int_equal(fx->b.deflating, 10 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_config_generation_unsettled_for_a_while(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 4 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_settled(fx, 4 * PAGES_PER_BLOCK);
	host_klog_reset();
	fx->tr.fail_reads = 1;
	fx->tr.num_pages = 50 * PAGES_PER_BLOCK;
	wait_ms(fx, 3000);                           /* 3 s of failing reads */
	assert_settled(fx, 4 * PAGES_PER_BLOCK);                 /* old target kept */
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("config generation does not settle"));
	fx->tr.fail_reads = 0;
	poll_n(fx, 10);
	assert_true(host_klog_contains("config readable again"));
	assert_settled(fx, 50 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_config_generation_never_settles(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 4 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	host_klog_reset();
	fx->tr.fail_reads = 1;
	wait_ms(fx, 10000);
	assert_int_equal(balloon_state(&fx->b), BALLOON_BROKEN);
	assert_int_equal(host_klog_count(), 2);
	assert_true(host_klog_contains("balloon: stopped: device config unreadable"));
	unsigned reads = fx->tr.reads;
	poll_n(fx, 100);
	assert_int_equal(fx->tr.reads, reads);       /* the device is left alone */
	assert_settled(fx, 4 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_flipping_target_no_flood(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	for (unsigned i = 0; i < 3000; i++) {
		fx->tr.num_pages = (i & 1) ? 30 * PAGES_PER_BLOCK : 0xfffffff0u - i;
		poll_n(fx, 1);
	}
	assert_true(host_klog_count() <= 3 * 4 + 4);   /* each limiter: ~1 line/s + summaries */
	fx->tr.num_pages = 6 * PAGES_PER_BLOCK;
	poll_n(fx, 20);
	assert_settled(fx, 6 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_hostile_inflate_queue_stops_cleanly(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_HOLD);
	fx->tr.num_pages = 10 * PAGES_PER_BLOCK;
	poll_n(fx, 1);
	fake_vq_complete(&fx->dev[QI], 3);
	poll_n(fx, 1);
	assert_int_equal(fx->tr.actual, 3 * PAGES_PER_BLOCK);
	host_klog_reset();
	fake_vq_push_raw(&fx->dev[QI], 200, 0);      /* id out of range */
	poll_n(fx, 100);
	assert_int_equal(balloon_state(&fx->b), BALLOON_BROKEN);
	assert_int_equal(host_klog_count(), 2);      /* the queue's line and the balloon's */
	assert_true(host_klog_contains("used id 200 out of range"));
	assert_true(host_klog_contains("balloon: stopped"));
	assert_int_equal(fx->tr.actual, 3 * PAGES_PER_BLOCK);
	assert_int_equal(fx->mem.nballoon, 10 * PAGES_PER_BLOCK); /* in-flight frames still held */
	/* after a device reset everything goes back, each frame once */
	assert_int_equal(balloon_release_all(&fx->b), 10 * PAGES_PER_BLOCK);
	assert_int_equal(fx->mem.nballoon, 0);
	assert_int_equal(fx->mem.nfree, MEM_PAGES);
	assert_int_equal(fx->mem.errors, 0);
	destroy(fx);
}

static void test_hostile_deflate_len(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 4 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	fx->dev[QD].mode = FAKE_HOLD;
	fx->tr.num_pages = 0;
	poll_n(fx, 1);
	/* complete a deflate element with a len beyond its 2 KiB */
	fake_vq_push_raw(&fx->dev[QD], fx->dev[QD].held[0].head, 4096);
	host_klog_reset();
	poll_n(fx, 10);
	assert_int_equal(balloon_state(&fx->b), BALLOON_BROKEN);
	assert_true(host_klog_contains("larger than the buffer"));
	assert_int_equal(fx->mem.nballoon, 4 * PAGES_PER_BLOCK);  /* nothing given back on a bad ack */
	assert_int_equal(fx->tr.actual, 4 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_allocator_double_hand_out_detected(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 2 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_settled(fx, 2 * PAGES_PER_BLOCK);
	host_klog_reset();
	uint64_t owned = BASE_PFN;                    /* the first block is already ballooned */
	assert_true(balloon_has_pfn(&fx->b, owned));
	fx->mem.bad_block_pfn = owned;
	fx->tr.num_pages = 4 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_true(host_klog_contains("already in the balloon"));
	assert_int_equal(fx->b.mem_error, 1);
	/* the duplicate was not counted twice nor sent twice (host_errors == 0) */
	assert_true(balloon_actual(&fx->b) <= 4 * PAGES_PER_BLOCK);
	check_all(fx);
	destroy(fx);
}

static void test_stats_buffer_refilled(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	poll_n(fx, 1);
	assert_int_equal(fx->stats_seen, 1);
	assert_int_equal(fx->dev[QS].nheld, 1);      /* the host keeps it */
	assert_int_equal(fx->stats_total, (uint64_t)MEM_PAGES * 4096);
	assert_int_equal(fx->stats_free, (uint64_t)MEM_PAGES * 4096);
	fx->tr.num_pages = 10 * PAGES_PER_BLOCK;
	poll_n(fx, 5);
	assert_int_equal(fx->stats_seen, 1);         /* not re-sent until returned */
	fake_vq_complete(&fx->dev[QS], 1);           /* host asks for fresh numbers */
	poll_n(fx, 1);
	assert_int_equal(fx->stats_seen, 2);
	assert_int_equal(fx->stats_free, (uint64_t)(MEM_PAGES - 10 * PAGES_PER_BLOCK) * 4096);
	assert_int_equal(fx->dev[QS].nheld, 1);
	destroy(fx);
}

static void test_min_free_never_crossed(void **state)
{
	(void)state;
	const uint64_t min_free = 30 * PAGES_PER_BLOCK + 17;
	struct bfx *fx = make(min_free, 1, FAKE_ACK);
	fake_mem_alloc_any(&fx->mem, 50 * PAGES_PER_BLOCK, 0);
	for (unsigned i = 0; i < 50; i++) {
		fx->tr.num_pages = (uint32_t)((i * 7919u) % MEM_PAGES);
		for (unsigned k = 0; k < 20; k++) {
			poll_n(fx, 1);
			assert_true(fx->mem.nfree >= min_free);
		}
	}
	fx->tr.num_pages = 0;
	poll_n(fx, 20);
	assert_settled(fx, 0);
	destroy(fx);
}

/* Lazy books (balloon.h track_populate): the track starts as garbage and
 * only what the core backs reads as zero. Counts and chunk bits are backed
 * at start, a chunk's bitmaps when the balloon first takes a frame there;
 * nothing else is ever read (balloon_check, run after every poll, would
 * trip over the 0xa5 garbage). A failed backing gives the frames back. */
static struct { uint8_t *base; size_t len; uint8_t backed[1024]; int fail; unsigned calls; } lazy;

static int lazy_populate(void *ctx, void *p, size_t bytes)
{
	(void)ctx;
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095, e = ((uintptr_t)p + bytes + 4095) & ~(uintptr_t)4095;
	assert_true(a >= (uintptr_t)lazy.base && e <= (uintptr_t)lazy.base + lazy.len);
	lazy.calls++;
	if (lazy.fail)
		return -1;
	for (; a < e; a += 4096)
		if (!lazy.backed[(a - (uintptr_t)lazy.base) / 4096]) {
			memset((void *)a, 0, 4096);
			lazy.backed[(a - (uintptr_t)lazy.base) / 4096] = 1;
		}
	return 0;
}

static unsigned lazy_backed_pages(void)
{
	unsigned n = 0;
	for (size_t i = 0; i < lazy.len / 4096; i++)
		n += lazy.backed[i];
	return n;
}

static void lazy_start(struct bfx *fx, int fresh)
{
	if (fresh) {
		lazy.base = fx->track;
		lazy.len = (balloon_track_bytes(MAX_PFN) + 4095) & ~(size_t)4095;
		assert_true(lazy.len / 4096 <= sizeof lazy.backed);
		memset(lazy.backed, 0, sizeof lazy.backed);
		memset(fx->track, 0xa5, lazy.len);
	}
	lazy.fail = 0;
	fx->setup.track_populate = lazy_populate;
	fx->setup.track_zeroed = fresh;
	assert_int_equal(balloon_init(&fx->b, &fx->setup), 0);
	check_all(fx);
}

static void reach(struct bfx *fx, uint64_t pages)
{
	fx->tr.num_pages = (uint32_t)pages;
	poll_n(fx, 20);
	assert_settled(fx, pages);
}

static void test_lazy_books(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	lazy_start(fx, 1);
	unsigned eager = lazy_backed_pages();
	size_t bitmap_bytes = 3 * BALLOON_CHUNK_BLOCKS * 2 * (PAGES_PER_BLOCK / 8);   /* 3 chunks */
	assert_true(eager >= 1 && eager * 4096 < bitmap_bytes / 4);
	reach(fx, 20 * PAGES_PER_BLOCK);
	/* 20 blocks lie in at most two chunks: two pages of bitmaps each */
	unsigned books = lazy_backed_pages() - eager;
	assert_true(books >= 2 && books <= 4);
	assert_int_equal(fx->b.books_pages, books);
	reach(fx, 4 * PAGES_PER_BLOCK);
	reach(fx, 0);

	/* Started again on the same books (as after a device reset): the
	 * backed chunks are cleared - a stale bit left in one would fail the
	 * books check - and the rest stays garbage and unread. */
	uint64_t w = 0;
	while (!bal_chunk_ready(&fx->b, w * 64))
		w += BALLOON_CHUNK_BLOCKS * (PAGES_PER_BLOCK / 64);
	fx->b.bitmap[w] = fx->b.heads[w] = ~0ull;
	lazy_start(fx, 0);
	assert_int_equal(fx->b.books_pages, books);
	reach(fx, 100 * PAGES_PER_BLOCK);
	reach(fx, 0);
	destroy(fx);
}

static void test_lazy_books_no_memory(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	lazy_start(fx, 1);
	uint64_t free0 = fx->mem.nfree;
	lazy.fail = 1;
	fx->tr.num_pages = 10 * PAGES_PER_BLOCK;
	poll_n(fx, 10);
	assert_settled(fx, 0);
	assert_int_equal(fx->mem.nballoon, 0);
	assert_int_equal(fx->mem.nfree, free0);         /* every frame taken went back */
	assert_true(host_klog_contains("no memory for the books of the 128 MiB at pfn"));
	assert_false(fx->b.mem_error);                   /* not an allocator fault: it tries again */
	assert_int_equal(balloon_state(&fx->b), BALLOON_SHORT);
	lazy.fail = 0;
	wait_ms(fx, 3000);
	assert_settled(fx, 10 * PAGES_PER_BLOCK);
	destroy(fx);
}

static void test_status_line(void **state)
{
	(void)state;
	struct bfx *fx = make(0, 1, FAKE_ACK);
	fx->tr.num_pages = 2 * PAGES_PER_BLOCK + 3;
	poll_n(fx, 5);
	char line[300];
	balloon_format_status(&fx->b, line, sizeof line);
	assert_non_null(strstr(line, "at target; actual 1027 pages (4 MiB), target 1027"));
	assert_non_null(strstr(line, "2 whole blocks + 3 pages in runs"));
	destroy(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_numbering),
		cmocka_unit_test(test_reporting_queue_either_convention),
		cmocka_unit_test(test_init_rejects_bad_setup),
		cmocka_unit_test(test_inflate_whole_blocks),
		cmocka_unit_test(test_many_in_flight_actual_follows_acks),
		cmocka_unit_test(test_deflate_tells_host_first_then_reuses),
		cmocka_unit_test(test_partial_targets_use_small_runs),
		cmocka_unit_test(test_compacts_when_blocks_are_fragmented),
		cmocka_unit_test(test_small_runs_when_blocks_cannot_be_made),
		cmocka_unit_test(test_absurd_target_clamped_once),
		cmocka_unit_test(test_max_pages_knob),
		cmocka_unit_test(test_unreachable_target_stable_and_quiet),
		cmocka_unit_test(test_host_stops_acking_inflate),
		cmocka_unit_test(test_host_stops_acking_deflate),
		cmocka_unit_test(test_config_generation_unsettled_for_a_while),
		cmocka_unit_test(test_config_generation_never_settles),
		cmocka_unit_test(test_flipping_target_no_flood),
		cmocka_unit_test(test_hostile_inflate_queue_stops_cleanly),
		cmocka_unit_test(test_hostile_deflate_len),
		cmocka_unit_test(test_allocator_double_hand_out_detected),
		cmocka_unit_test(test_stats_buffer_refilled),
		cmocka_unit_test(test_min_free_never_crossed),
		cmocka_unit_test(test_status_line),
		cmocka_unit_test(test_lazy_books),
		cmocka_unit_test(test_lazy_books_no_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
