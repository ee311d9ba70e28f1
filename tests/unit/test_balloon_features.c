/*
 * test_balloon_features.c - the balloon core's user features against fake
 * memory (tests/unit/fake_balloon_mem.c), simulated devices on the real
 * virtqueue code (tests/unit/fake_virtio_dev.c) and the real shrinker
 * registry (mm/shrinker.c): statistics, deflate on OOM, free page
 * reporting, the policy knobs (initial, max, min_free, rate) and reclaim
 * through shrinkers, lowest priority first.
 *
 * Every poll is followed by the same checks as test_balloon.c: the
 * balloon's invariants, the fake allocator's ownership errors, and the
 * host's view (PFN inflated twice, deflate of a PFN not in the balloon,
 * report of memory that is not isolated free memory).
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
#include "mm/shrinker.h"

#define BASE_PFN  1024u                 /* RAM starts at 4 MiB */
#define MEM_PAGES (128u * PAGES_PER_BLOCK)          /* 256 MiB */
#define MAX_PFN   (BASE_PFN + MEM_PAGES)
#define QSIZE     128u
#define RQSIZE    16u                   /* the fake device chains at most 16 segments */
#define MIB_PAGES 256u
#define RECLAIM_PAGES_SLACK 256u           /* one shrinker batch of overshoot */

enum { QI, QD, QS, QR, NQ };
#define F(bit) (1ull << (bit))
#define FEAT_BASE (F(VIRTIO_F_VERSION_1) | F(VIRTIO_BALLOON_F_STATS_VQ))

struct fx {
	struct fake_mem mem;
	struct balloon_mem_ops mops;
	struct {
		uint32_t num_pages;
		uint32_t actual;
		unsigned writes;
		unsigned relaxes;
		/* relax: complete held deflate elements after this many calls (0 = never) */
		unsigned ack_after;
		uint64_t give_calls_at_relax;  /* fake mem give_calls seen while waiting */
		int gave_while_waiting;
	} tr;
	struct virtq vq[NQ];
	struct fake_vq dev[NQ];
	void *ring[NQ];
	void *dma, *track;
	struct balloon b;
	struct balloon_setup setup;

	uint8_t host_map[MAX_PFN];
	uint64_t host_pages;
	unsigned host_errors;
	/* reporting, as the host saw it */
	unsigned reports, report_segs_max;
	uint64_t reported_blocks;
	uint64_t report_min_free_seen;     /* fewest free, non-isolated frames at a report */
	/* stats, last buffer */
	unsigned stats_seen, stats_n;
	uint16_t stat_tag[16];
	uint64_t stat_val[16];
	/* a host that reads only the head descriptor of a chain (Firecracker) */
	int head_only;
	unsigned max_nseg;
	/* OOM-in-poll probe */
	int oom_from_compact;
	uint64_t oom_in_poll_result;
};

/* ------------------------------------------------------------ transport */

static int tr_read(void *ctx, uint32_t *np)
{
	*np = ((struct fx *)ctx)->tr.num_pages;
	return 0;
}

static void tr_write(void *ctx, uint32_t actual)
{
	struct fx *x = ctx;
	x->tr.actual = actual;
	x->tr.writes++;
}

/* The OOM path's wait: time moves 1 ms per call; a host that acks late. */
static void tr_relax(void *ctx)
{
	struct fx *x = ctx;
	x->tr.relaxes++;
	host_clock_advance(NS_PER_MS);
	if (x->mem.give_calls != x->tr.give_calls_at_relax)
		x->tr.gave_while_waiting = 1;
	if (x->tr.ack_after && x->tr.relaxes >= x->tr.ack_after) {
		fake_vq_complete(&x->dev[QD], 1000);
		fake_vq_complete(&x->dev[QR], 1000);
	}
}

static const struct balloon_transport_ops tr_ops = {
	.read_num_pages = tr_read, .write_actual = tr_write, .relax = tr_relax,
};

/* ------------------------------------------------------------ reclaim: the real registry */

static uint64_t rc_count(void *ctx) { return shrinker_count_all(); }
static uint64_t rc_reclaim(void *ctx, uint64_t pages) { return shrinker_reclaim(pages); }
static const struct balloon_reclaim_ops rc_ops = { rc_count, rc_reclaim };

/* A cache holding `held` frames of fake memory, freed one by one. */
struct cache {
	struct fx *x;
	const char *name;
	uint64_t *pfns;
	uint64_t held, scans, freed;
	unsigned order_seen;           /* global call sequence number of the first scan */
};
static unsigned call_seq;

static uint64_t cache_count(void *ctx) { return ((struct cache *)ctx)->held; }

static uint64_t cache_scan(void *ctx, uint64_t pages)
{
	struct cache *c = ctx;
	uint64_t n = 0;
	if (!c->scans)
		c->order_seen = ++call_seq;
	c->scans++;
	while (n < pages && c->held) {
		assert_int_equal(fake_mem_free_at(&c->x->mem, c->pfns[--c->held]), 0);
		n++;
	}
	c->freed += n;
	return n;
}

static void cache_fill(struct cache *c, struct fx *x, const char *name, uint64_t pages)
{
	memset(c, 0, sizeof *c);
	c->x = x;
	c->name = name;
	c->pfns = calloc(pages, sizeof *c->pfns);
	for (uint64_t p = BASE_PFN; p < MAX_PFN && c->held < pages; p++)
		if (fake_mem_alloc_at(&x->mem, p, 0) == 0)
			c->pfns[c->held++] = p;
	assert_int_equal(c->held, pages);
}

/* ------------------------------------------------------------ host side */

static void host_err(struct fx *x, const char *what, uint64_t v)
{
	x->host_errors++;
	fprintf(stderr, "host: %s (0x%llx)\n", what, (unsigned long long)v);
}

static uint32_t host_elem(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct fx *x = ctx;
	int inflate = f == &x->dev[QI];
	if (e->nseg > x->max_nseg)
		x->max_nseg = e->nseg;
	for (unsigned s = 0; s < (x->head_only ? 1u : e->nseg); s++) {
		if (e->seg[s].writable || e->seg[s].len % 4 || e->seg[s].len > 1024)
			host_err(x, "bad inflate/deflate descriptor", s);
		const uint32_t *pfns = (const uint32_t *)(uintptr_t)e->seg[s].addr;
		for (uint32_t k = 0; k < e->seg[s].len / 4; k++) {
			uint64_t pfn = pfns[k];
			if (pfn < BASE_PFN || pfn >= MAX_PFN) {
				host_err(x, "PFN outside guest RAM", pfn);
				continue;
			}
			if (inflate == (int)x->host_map[pfn])
				host_err(x, inflate ? "PFN inflated twice" : "deflate of a PFN not in the balloon", pfn);
			x->host_map[pfn] = (uint8_t)inflate;
			x->host_pages += inflate ? 1 : -1;
		}
	}
	return 0;
}

static uint32_t host_stats(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct fx *x = ctx;
	x->stats_seen++;
	x->stats_n = 0;
	const uint8_t *p = (const uint8_t *)(uintptr_t)e->seg[0].addr;
	for (uint32_t off = 0; off + 10 <= e->seg[0].len && x->stats_n < 16; off += 10, x->stats_n++) {
		memcpy(&x->stat_tag[x->stats_n], p + off, 2);
		memcpy(&x->stat_val[x->stats_n], p + off + 2, 8);
	}
	return e->out_bytes;
}

static int stat_of(struct fx *x, unsigned tag, uint64_t *val)
{
	for (unsigned i = 0; i < x->stats_n; i++)
		if (x->stat_tag[i] == tag) {
			*val = x->stat_val[i];
			return 1;
		}
	return 0;
}

/* The host side of reporting: device-writable whole blocks of free memory
 * the guest took out of circulation (QEMU would discard them). */
static uint32_t host_report(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct fx *x = ctx;
	x->reports++;
	if (e->nseg > x->report_segs_max)
		x->report_segs_max = e->nseg;
	uint64_t free_avail = x->mem.nfree;      /* isolated blocks are not in it */
	if (free_avail < x->report_min_free_seen)
		x->report_min_free_seen = free_avail;
	for (unsigned s = 0; s < e->nseg; s++) {
		uint64_t addr = e->seg[s].addr, len = e->seg[s].len;
		if (!e->seg[s].writable)
			host_err(x, "report descriptor not device-writable", s);
		if (addr % (2u << 20) || len % (2u << 20) || !len)
			host_err(x, "report range not whole 2 MiB blocks", addr);
		for (uint64_t pfn = addr >> 12; pfn < (addr + len) >> 12; pfn++)
			if (pfn < BASE_PFN || pfn >= MAX_PFN || x->mem.st[pfn - BASE_PFN] != FM_ISOLATED) {
				host_err(x, "reported frame is not isolated free memory", pfn);
				break;
			}
		x->reported_blocks += len / (2u << 20);
	}
	return 0;
}

/* ------------------------------------------------------------ fixture */

struct opts {
	uint64_t features;        /* beyond VERSION_1 | STATS_VQ */
	uint64_t min_free;
	int reclaim;
	enum balloon_layout layout;
	struct balloon_params params;
};

static struct fx *make(const struct opts *o)
{
	struct fx *x = calloc(1, sizeof *x);
	assert_non_null(x);
	fake_mem_init(&x->mem, BASE_PFN, MEM_PAGES, 0);
	x->mops = fake_mem_ops;
	x->report_min_free_seen = UINT64_MAX;
	for (int q = 0; q < NQ; q++) {
		uint16_t n = q == QR ? RQSIZE : QSIZE;
		x->ring[q] = aligned_alloc(4096, (virtq_mem_size(n) + 4095) & ~4095ul);
		assert_int_equal(virtq_init(&x->vq[q], "q", (uint16_t)q, n, x->ring[q], (uintptr_t)x->ring[q],
		                            fake_vq_notify, &x->dev[q]), 0);
		fake_vq_attach(&x->dev[q], &x->vq[q], q == QS ? FAKE_HOLD : FAKE_ACK);
		x->dev[q].process_on_notify = 1;
		x->dev[q].on_elem = q == QS ? host_stats : q == QR ? host_report : host_elem;
		x->dev[q].ctx = x;
	}
	x->dma = aligned_alloc(4096, BALLOON_DMA_BYTES);
	x->track = aligned_alloc(4096, (balloon_track_bytes(MAX_PFN) + 4095) & ~4095ul);
	uint64_t feat = FEAT_BASE | o->features;
	x->setup = (struct balloon_setup){
		.tops = &tr_ops, .tctx = x, .mops = &x->mops, .mctx = &x->mem,
		.inflate_vq = &x->vq[QI], .deflate_vq = &x->vq[QD], .stats_vq = &x->vq[QS],
		.report_vq = (feat & F(VIRTIO_BALLOON_F_REPORTING)) ? &x->vq[QR] : NULL,
		.rops = o->reclaim ? &rc_ops : NULL, .rctx = NULL,
		.features = feat,
		.dma = x->dma, .dma_pa = (uintptr_t)x->dma, .dma_len = BALLOON_DMA_BYTES,
		.track = x->track, .track_len = balloon_track_bytes(MAX_PFN), .max_pfn = MAX_PFN,
		.layout = o->layout,
		.params = o->params,
	};
	x->setup.params.min_free_pages = o->min_free;
	host_clock_set(NS_PER_S);
	host_klog_reset();
	shrinker_reset();
	call_seq = 0;
	assert_int_equal(balloon_init(&x->b, &x->setup), 0);
	return x;
}

static void destroy(struct fx *x)
{
	for (int q = 0; q < NQ; q++)
		free(x->ring[q]);
	free(x->dma);
	free(x->track);
	fake_mem_destroy(&x->mem);
	free(x);
	shrinker_reset();
}

static void check_all(struct fx *x)
{
	char why[200];
	if (balloon_check(&x->b, why, sizeof why) != 0)
		fail_msg("balloon_check: %s", why);
	assert_int_equal(x->mem.errors, 0);
	assert_int_equal(x->host_errors, 0);
	assert_int_equal(fake_mem_consistent(&x->mem), 0);
	assert_int_equal(x->mem.nballoon, balloon_owned(&x->b));
	for (int q = 0; q < NQ; q++)
		assert_int_equal(x->dev[q].driver_errors, 0);
}

static void poll_n(struct fx *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		host_clock_advance(NS_PER_MS);
		balloon_poll(&x->b, clock_ns());
		check_all(x);
	}
}

static void wait_ms(struct fx *x, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 10) {
		host_clock_advance(9 * NS_PER_MS);
		poll_n(x, 1);
	}
}

static void assert_settled(struct fx *x, uint64_t pages)
{
	assert_int_equal(balloon_actual(&x->b), pages);
	assert_int_equal(x->tr.actual, pages);
	assert_int_equal(x->host_pages, pages);
	assert_int_equal(x->mem.nballoon, pages);
	assert_int_equal(x->b.inflating + x->b.deflating, 0);
}

/* Use every free frame (as an application would), pinned so nothing moves. */
static uint64_t use_all_free(struct fx *x)
{
	return fake_mem_alloc_any(&x->mem, x->mem.nfree, 1);
}

/* ------------------------------------------------------------ stats */

static void test_stats_every_tag_agrees_with_accounting(void **state)
{
	(void)state;
	struct opts o = { .reclaim = 1 };
	struct fx *x = make(&o);
	struct cache c;
	cache_fill(&c, x, "c", 3000);
	assert_true(shrinker_register("c", SHRINKER_PRIO_CACHE, cache_count, cache_scan, &c) > 0);
	poll_n(x, 1);
	assert_int_equal(x->stats_seen, 1);
	fake_vq_complete(&x->dev[QS], 1);     /* the host asks for fresh numbers */
	poll_n(x, 1);
	assert_int_equal(x->stats_seen, 2);
	assert_int_equal(x->stats_n, 10);
	uint64_t v;
	for (unsigned t = VIRTIO_BALLOON_S_SWAP_IN; t <= VIRTIO_BALLOON_S_MINFLT; t++) {
		assert_true(stat_of(x, t, &v));
		assert_int_equal(v, 0);            /* no swap, no page faults */
	}
	uint64_t freeb = x->mem.nfree * 4096;
	assert_true(stat_of(x, VIRTIO_BALLOON_S_MEMFREE, &v)); assert_int_equal(v, freeb);
	assert_true(stat_of(x, VIRTIO_BALLOON_S_MEMTOT, &v)); assert_int_equal(v, (uint64_t)MEM_PAGES * 4096);
	assert_true(stat_of(x, VIRTIO_BALLOON_S_CACHES, &v)); assert_int_equal(v, 3000ull * 4096);
	assert_true(stat_of(x, VIRTIO_BALLOON_S_AVAIL, &v)); assert_int_equal(v, freeb + 3000ull * 4096);
	/* no hugetlb pool: nothing allocated, nothing failed (sent, as Linux does) */
	assert_true(stat_of(x, VIRTIO_BALLOON_S_HTLB_PGALLOC, &v)); assert_int_equal(v, 0);
	assert_true(stat_of(x, VIRTIO_BALLOON_S_HTLB_PGFAIL, &v)); assert_int_equal(v, 0);
	/* the balloon and the cache change: the next buffer says so */
	x->tr.num_pages = 10 * PAGES_PER_BLOCK;
	poll_n(x, 5);
	cache_scan(&c, 1000);
	fake_vq_complete(&x->dev[QS], 1);
	poll_n(x, 1);
	assert_int_equal(x->dev[QS].nheld, 1);   /* exactly one buffer stays queued */
	assert_true(stat_of(x, VIRTIO_BALLOON_S_MEMFREE, &v));
	assert_int_equal(v, x->mem.nfree * 4096);
	assert_int_equal(v, (uint64_t)(MEM_PAGES - 10 * PAGES_PER_BLOCK - 2000) * 4096);
	assert_true(stat_of(x, VIRTIO_BALLOON_S_CACHES, &v)); assert_int_equal(v, 2000ull * 4096);
	/* Linux's convention: without DEFLATE_ON_OOM the balloon is not part of
	 * the total (libvirt shows this as the guest's memory) */
	assert_true(stat_of(x, VIRTIO_BALLOON_S_MEMTOT, &v));
	assert_int_equal(v, (uint64_t)(MEM_PAGES - 10 * PAGES_PER_BLOCK) * 4096);
	/* the console's copy is the same */
	struct virtio_balloon_stat st[BALLOON_STATS_MAX];
	unsigned n = balloon_stats_fill(&x->b, st, BALLOON_STATS_MAX);
	assert_int_equal(n, 10);
	assert_string_equal(balloon_stat_name(st[6].tag), "available-memory");
	assert_int_equal(st[6].val, x->mem.nfree * 4096 + 2000ull * 4096);
	free(c.pfns);
	destroy(x);

	/* with DEFLATE_ON_OOM the balloon is memory the guest can take back */
	struct opts d = { .features = F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) };
	x = make(&d);
	x->tr.num_pages = 10 * PAGES_PER_BLOCK;
	poll_n(x, 5);
	assert_settled(x, 10 * PAGES_PER_BLOCK);
	n = balloon_stats_fill(&x->b, st, BALLOON_STATS_MAX);
	assert_int_equal(st[5].tag, VIRTIO_BALLOON_S_MEMTOT);
	assert_int_equal(st[5].val, (uint64_t)MEM_PAGES * 4096);
	destroy(x);
}

/* ------------------------------------------------------------ deflate on OOM */

static struct fx *oom_setup(uint64_t features, unsigned balloon_blocks)
{
	struct opts o = { .features = features };
	struct fx *x = make(&o);
	x->tr.num_pages = balloon_blocks * PAGES_PER_BLOCK;
	poll_n(x, 10);
	assert_settled(x, balloon_blocks * PAGES_PER_BLOCK);
	use_all_free(x);
	assert_int_equal(x->mem.nfree, 0);
	host_klog_reset();
	return x;
}

static void test_oom_deflates_more_than_asked_and_tells_first(void **state)
{
	(void)state;
	struct fx *x = oom_setup(F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM), 40);
	/* the host acks only after 3 ms: nothing may come back before that */
	x->dev[QD].mode = FAKE_HOLD;
	x->tr.ack_after = 3;
	x->tr.give_calls_at_relax = x->mem.give_calls;
	uint64_t t0 = clock_ns();
	uint64_t got = balloon_oom(&x->b, 1);
	assert_int_equal(got, BALLOON_DEFAULT_OOM_PAGES);        /* 8 MiB, not 1 page */
	assert_int_equal(x->mem.nfree, BALLOON_DEFAULT_OOM_PAGES);
	assert_false(x->tr.gave_while_waiting);                  /* told first, used after the ack */
	assert_int_equal(x->tr.relaxes, 3);
	assert_true(clock_ns() - t0 <= 5 * NS_PER_MS);
	/* books: actual written inside the call */
	assert_int_equal(x->tr.actual, 40 * PAGES_PER_BLOCK - BALLOON_DEFAULT_OOM_PAGES);
	assert_int_equal(x->host_pages, 40 * PAGES_PER_BLOCK - BALLOON_DEFAULT_OOM_PAGES);
	check_all(x);
	assert_int_equal(x->b.oom_deflates, 1);
	assert_int_equal(host_klog_count(), 0);                  /* nothing logged in the OOM path */
	/* the next poll says what happened, once */
	x->dev[QD].mode = FAKE_ACK;
	poll_n(x, 2);
	assert_true(host_klog_contains("deflated on OOM: 8 MiB in 1 deflates"));
	/* a burst: the next failing allocations each get another 8 MiB */
	fake_mem_alloc_any(&x->mem, x->mem.nfree, 1);
	assert_int_equal(balloon_oom(&x->b, 512), BALLOON_DEFAULT_OOM_PAGES);
	assert_int_equal(balloon_actual(&x->b), 40 * PAGES_PER_BLOCK - 2 * BALLOON_DEFAULT_OOM_PAGES);
	/* a request larger than the chunk gets what it asked for */
	fake_mem_alloc_any(&x->mem, x->mem.nfree, 1);
	assert_int_equal(balloon_oom(&x->b, 5 * PAGES_PER_BLOCK), 5 * PAGES_PER_BLOCK);
	check_all(x);
	destroy(x);
}

static void test_oom_hold_until_host_changes_target(void **state)
{
	(void)state;
	struct fx *x = oom_setup(F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM), 40);
	assert_int_equal(balloon_oom(&x->b, 1), BALLOON_DEFAULT_OOM_PAGES);
	uint64_t held = 40 * PAGES_PER_BLOCK - BALLOON_DEFAULT_OOM_PAGES;
	/* the application frees what it took: free memory is back, but the
	 * balloon does not re-inflate into the same shortage */
	for (uint64_t p = BASE_PFN; p < MAX_PFN; p++)
		fake_mem_free_at(&x->mem, p);
	wait_ms(x, 10000);
	assert_settled(x, held);
	assert_int_equal(x->b.target, held);
	assert_int_equal(x->b.limit_reason, BLIM_OOM);
	char buf[1200];
	balloon_format_details(&x->b, buf, sizeof buf);
	assert_non_null(strstr(buf, "held since a deflate on OOM"));
	/* the host writing the same value again changes nothing ... */
	x->tr.num_pages = 40 * PAGES_PER_BLOCK;
	wait_ms(x, 100);
	assert_settled(x, held);
	/* ... a new value ends the hold */
	x->tr.num_pages = 45 * PAGES_PER_BLOCK;
	wait_ms(x, 100);
	assert_settled(x, 45 * PAGES_PER_BLOCK);
	assert_true(host_klog_contains("hold since the deflate on OOM ends"));
	/* from the guest's side, a new balloon.initial ends it too (before the
	 * host ever set a target) */
	destroy(x);
	struct opts o = { .features = F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM), .params = { .initial_pages = 20 * PAGES_PER_BLOCK } };
	x = make(&o);
	poll_n(x, 10);
	assert_settled(x, 20 * PAGES_PER_BLOCK);
	use_all_free(x);
	assert_int_equal(balloon_oom(&x->b, 1), BALLOON_DEFAULT_OOM_PAGES);
	for (uint64_t p = BASE_PFN; p < MAX_PFN; p++)
		fake_mem_free_at(&x->mem, p);
	wait_ms(x, 1000);
	assert_settled(x, 20 * PAGES_PER_BLOCK - BALLOON_DEFAULT_OOM_PAGES);
	struct balloon_params p = x->b.s.params;
	p.initial_pages = 30 * PAGES_PER_BLOCK;
	balloon_set_params(&x->b, &p);
	wait_ms(x, 100);
	assert_settled(x, 30 * PAGES_PER_BLOCK);
	destroy(x);
}

static void test_oom_without_feature_fails_cleanly(void **state)
{
	(void)state;
	struct fx *x = oom_setup(0, 40);
	assert_int_equal(balloon_oom(&x->b, 1), 0);
	assert_settled(x, 40 * PAGES_PER_BLOCK);
	assert_int_equal(x->mem.nfree, 0);
	assert_int_equal(x->tr.relaxes, 0);
	assert_int_equal(x->b.oom_capped, 0);
	wait_ms(x, 100);
	assert_settled(x, 40 * PAGES_PER_BLOCK);
	destroy(x);
}

static void test_oom_wait_is_bounded_and_not_repeated(void **state)
{
	(void)state;
	struct fx *x = oom_setup(F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM), 40);
	x->dev[QD].mode = FAKE_HOLD;              /* host sits on the deflate */
	uint64_t t0 = clock_ns();
	assert_int_equal(balloon_oom(&x->b, 1), 0);
	uint64_t waited = clock_ns() - t0;
	assert_true(waited >= 200 * NS_PER_MS && waited <= 202 * NS_PER_MS);
	assert_int_equal(x->mem.nfree, 0);        /* nothing reused before the ack */
	assert_int_equal(x->b.oom_timeouts, 1);
	/* the burst's next allocations do not wait again */
	t0 = clock_ns();
	assert_int_equal(balloon_oom(&x->b, 1), 0);
	assert_int_equal(clock_ns(), t0);
	assert_int_equal(x->b.oom_timeouts, 1);
	/* the balloon does not re-inflate while the deflate is out */
	poll_n(x, 50);
	assert_true(host_klog_contains("did not ack a deflate on OOM within 200 ms"));
	assert_int_equal(x->b.inflating, 0);
	/* the host acks: the frames come back through the poller */
	fake_vq_complete(&x->dev[QD], 100);
	poll_n(x, 2);
	assert_int_equal(x->mem.nfree, BALLOON_DEFAULT_OOM_PAGES);
	assert_settled(x, 40 * PAGES_PER_BLOCK - BALLOON_DEFAULT_OOM_PAGES);
	/* and the OOM path waits again when needed */
	x->dev[QD].mode = FAKE_ACK;
	fake_mem_alloc_any(&x->mem, x->mem.nfree, 1);
	assert_int_equal(balloon_oom(&x->b, 1), BALLOON_DEFAULT_OOM_PAGES);
	destroy(x);
}

/* Compaction that allocates (as the kernel's may): an OOM inside the
 * balloon's own poll must not touch the half-updated books. */
static unsigned probe_compact(void *ctx, unsigned want);
static struct fx *probe_fx;
static unsigned probe_compact(void *ctx, unsigned want)
{
	probe_fx->oom_from_compact++;
	probe_fx->oom_in_poll_result += balloon_oom(&probe_fx->b, 1);
	return fake_mem_ops.compact(ctx, want);
}

static void test_oom_inside_poll_refused(void **state)
{
	(void)state;
	struct opts o = { .features = F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) };
	struct fx *x = make(&o);
	x->mops.compact = probe_compact;
	probe_fx = x;
	x->tr.num_pages = 4 * PAGES_PER_BLOCK;
	poll_n(x, 5);
	for (uint64_t b = BASE_PFN + 4 * PAGES_PER_BLOCK; b < MAX_PFN; b += PAGES_PER_BLOCK)
		assert_int_equal(fake_mem_alloc_at(&x->mem, b + 7, 0), 0);
	x->tr.num_pages = 8 * PAGES_PER_BLOCK;
	poll_n(x, 5);
	assert_true(x->oom_from_compact >= 1);
	assert_int_equal(x->oom_in_poll_result, 0);
	assert_true(x->b.oom_refused >= 1);
	assert_settled(x, 8 * PAGES_PER_BLOCK);
	destroy(x);
}

/* ------------------------------------------------------------ free page reporting */

/* Write into blocks [first, first + n) and let go again: resident free blocks. */
static void touch_blocks(struct fx *x, uint64_t first, unsigned n, unsigned stride)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t b = BASE_PFN + (first + (uint64_t)i * stride) * PAGES_PER_BLOCK;
		for (uint64_t p = b; p < b + PAGES_PER_BLOCK; p++)
			assert_int_equal(fake_mem_alloc_at(&x->mem, p, 0), 0);
		for (uint64_t p = b; p < b + PAGES_PER_BLOCK; p++)
			assert_int_equal(fake_mem_free_at(&x->mem, p), 0);
	}
}

static void test_report_after_delay_merged_once(void **state)
{
	(void)state;
	struct opts o = { .features = F(VIRTIO_BALLOON_F_REPORTING), .min_free = 4 * PAGES_PER_BLOCK,
	                  .params = { .report_delay_ns = 2 * NS_PER_S } };
	struct fx *x = make(&o);
	poll_n(x, 5);
	assert_int_equal(x->reports, 0);          /* never-written memory is not reported */
	touch_blocks(x, 10, 20, 1);               /* 40 MiB in one run */
	wait_ms(x, 1900);
	assert_int_equal(x->reports, 0);          /* not before the delay */
	wait_ms(x, 200);
	assert_int_equal(x->reported_blocks, 20);
	assert_int_equal(x->reports, 1);
	assert_int_equal(x->report_segs_max, 1);  /* neighbours merged into one range */
	assert_int_equal(x->mem.reported_blocks, 20);
	assert_int_equal(x->mem.nisolated, 0); /* usable again after the ack */
	for (uint64_t b = 10; b < 30; b++)
		assert_true(fake_mem_block_flags(&x->mem, BASE_PFN + b * PAGES_PER_BLOCK) & FB_REPORTED);
	/* not reported twice */
	wait_ms(x, 10000);
	assert_int_equal(x->reported_blocks, 20);
	/* reported memory is immediately reusable; written again, it is reported again */
	touch_blocks(x, 12, 1, 1);
	wait_ms(x, 2100);
	assert_int_equal(x->reported_blocks, 21);
	assert_int_equal(x->b.rep.blocks, 21);
	destroy(x);
}

static void test_report_at_most_the_queue_and_above_min_free(void **state)
{
	(void)state;
	/* at most 28 blocks may be out of circulation at once */
	const uint64_t min_free = 100 * PAGES_PER_BLOCK;
	struct opts o = { .features = F(VIRTIO_BALLOON_F_REPORTING), .min_free = min_free };
	struct fx *x = make(&o);
	/* 40 blocks, none adjacent: 40 ranges, more than the 16 descriptors */
	touch_blocks(x, 0, 40, 3);
	wait_ms(x, 200);
	assert_int_equal(x->report_segs_max, RQSIZE);
	assert_int_equal(x->reports, 3);          /* 16 + 16 + 8 */
	assert_true(x->b.rep.put_back > 0);       /* what did not fit waited for the next round */
	assert_true(x->report_min_free_seen >= min_free);
	assert_int_equal(x->reported_blocks, 40);
	for (unsigned i = 0; i < 40; i++) {
		unsigned f = fake_mem_block_flags(&x->mem, BASE_PFN + (uint64_t)i * 3 * PAGES_PER_BLOCK);
		assert_int_equal(f & (FB_RESIDENT | FB_REPORTED), FB_REPORTED);
	}
	/* free memory at min_free: nothing is isolated at all */
	fake_mem_alloc_any(&x->mem, x->mem.nfree - min_free - PAGES_PER_BLOCK / 2, 1);
	touch_blocks(x, 127, 1, 1);
	unsigned before = x->reports;
	wait_ms(x, 200);
	assert_int_equal(x->reports, before);
	destroy(x);
}

static void test_report_blocks_back_on_oom_and_bad_isolate(void **state)
{
	(void)state;
	struct opts o = { .features = F(VIRTIO_BALLOON_F_REPORTING) };
	struct fx *x = make(&o);
	x->dev[QR].mode = FAKE_HOLD;
	touch_blocks(x, 0, 8, 1);
	wait_ms(x, 50);
	assert_true(x->b.rep.in_flight);
	assert_int_equal(x->mem.nisolated, 8 * PAGES_PER_BLOCK);
	/* a host that sits on it: one line, the blocks stay out of use */
	host_klog_reset();
	wait_ms(x, 6000);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("has not acked a free page report"));
	assert_int_equal(x->mem.nisolated, 8 * PAGES_PER_BLOCK);
	/* the allocator runs dry while they are out: the OOM path waits for
	 * the report's ack (bounded) and hands them back, even without
	 * DEFLATE_ON_OOM */
	x->tr.ack_after = 2;
	assert_int_equal(balloon_oom(&x->b, 1), 8 * PAGES_PER_BLOCK);
	assert_int_equal(x->mem.nisolated, 0);
	assert_int_equal(x->mem.reported_blocks, 8);
	check_all(x);
	/* an allocator that isolates a ballooned block is caught: reporting off */
	x->dev[QR].mode = FAKE_ACK;
	x->tr.num_pages = 2 * PAGES_PER_BLOCK;
	wait_ms(x, 50);
	assert_settled(x, 2 * PAGES_PER_BLOCK);
	uint64_t ballooned = 0;
	for (uint64_t p = BASE_PFN; p < MAX_PFN; p += PAGES_PER_BLOCK)
		if (balloon_has_pfn(&x->b, p)) {
			ballooned = p;
			break;
		}
	x->mem.bad_isolate_pfn = ballooned;
	touch_blocks(x, 40, 2, 1);
	unsigned before = x->reports;
	host_klog_reset();
	wait_ms(x, 100);
	assert_int_equal(x->reports, before);
	assert_true(host_klog_contains("isolated a bad block for reporting"));
	assert_true(host_klog_contains("in the balloon"));
	assert_null(x->b.s.report_vq);
	check_all(x);
	destroy(x);
}

/* ------------------------------------------------------------ knobs */

static void test_initial_balloon_until_host_sets_target(void **state)
{
	(void)state;
	struct opts o = { .params = { .initial_pages = 20 * PAGES_PER_BLOCK } };
	struct fx *x = make(&o);
	poll_n(x, 10);
	assert_settled(x, 20 * PAGES_PER_BLOCK);               /* without any host command */
	assert_true(host_klog_contains("(initial balloon)"));
	/* the host's first change takes over, even to a smaller size */
	x->tr.num_pages = 5 * PAGES_PER_BLOCK;
	poll_n(x, 10);
	assert_settled(x, 5 * PAGES_PER_BLOCK);
	x->tr.num_pages = 0;
	poll_n(x, 10);
	assert_settled(x, 0);                      /* initial no longer applies */
	destroy(x);

	/* a host target above initial from the start wins: max(initial, host) */
	x = make(&o);
	x->tr.num_pages = 30 * PAGES_PER_BLOCK;
	poll_n(x, 10);
	assert_settled(x, 30 * PAGES_PER_BLOCK);
	destroy(x);

	/* initial beyond what can be given: clamped with one line at start */
	struct opts big = { .min_free = 100 * PAGES_PER_BLOCK, .params = { .initial_pages = 200 * PAGES_PER_BLOCK } };
	x = make(&big);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("initial 400 MiB is more than can be given"));
	poll_n(x, 20);
	assert_settled(x, 28 * PAGES_PER_BLOCK);
	destroy(x);
}

/* What the kernel glue does after a device reset it confirmed: every frame
 * back to the allocator, fresh queues, the core started again. */
static void device_reset(struct fx *x)
{
	balloon_release_all(&x->b);
	for (int q = 0; q < NQ; q++) {
		uint16_t n = q == QR ? RQSIZE : QSIZE;
		assert_int_equal(virtq_init(&x->vq[q], "q", (uint16_t)q, n, x->ring[q], (uintptr_t)x->ring[q],
		                            fake_vq_notify, &x->dev[q]), 0);
		fake_vq_attach(&x->dev[q], &x->vq[q], q == QS ? FAKE_HOLD : FAKE_ACK);
		x->dev[q].process_on_notify = 1;
		x->dev[q].on_elem = q == QS ? host_stats : q == QR ? host_report : host_elem;
		x->dev[q].ctx = x;
	}
	memset(x->host_map, 0, sizeof x->host_map);   /* the reset device forgot its balloon */
	x->host_pages = 0;
	assert_int_equal(balloon_init(&x->b, &x->setup), 0);
}

/* A reset does not undo what the host decided: a host that has set its own
 * target keeps it (balloon.initial does not come back), and the hold after a
 * deflate on OOM stays until the host changes num_pages. */
static void test_reset_keeps_host_decisions(void **state)
{
	(void)state;
	struct opts o = { .features = F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM),
	                  .params = { .initial_pages = 20 * PAGES_PER_BLOCK } };
	struct fx *x = make(&o);
	poll_n(x, 10);
	assert_settled(x, 20 * PAGES_PER_BLOCK);
	x->tr.num_pages = 5 * PAGES_PER_BLOCK;     /* the host takes over, asking for less */
	poll_n(x, 10);
	assert_settled(x, 5 * PAGES_PER_BLOCK);
	device_reset(x);
	poll_n(x, 10);
	assert_settled(x, 5 * PAGES_PER_BLOCK);    /* not the initial 20 blocks again */
	check_all(x);

	x->tr.num_pages = 40 * PAGES_PER_BLOCK;
	poll_n(x, 10);
	assert_settled(x, 40 * PAGES_PER_BLOCK);
	use_all_free(x);
	assert_int_equal(balloon_oom(&x->b, 1), BALLOON_DEFAULT_OOM_PAGES);
	uint64_t held = 40 * PAGES_PER_BLOCK - BALLOON_DEFAULT_OOM_PAGES;
	for (uint64_t p = BASE_PFN; p < MAX_PFN; p++)
		fake_mem_free_at(&x->mem, p);
	device_reset(x);
	wait_ms(x, 1000);
	assert_settled(x, held);                  /* the OOM hold survived the reset */
	assert_int_equal(x->b.limit_reason, BLIM_OOM);
	x->tr.num_pages = 45 * PAGES_PER_BLOCK;   /* and a new host target still ends it */
	wait_ms(x, 100);
	assert_settled(x, 45 * PAGES_PER_BLOCK);
	check_all(x);
	destroy(x);
}

/* Element layout: the default chains two 1 KiB descriptors per 2 MiB block;
 * a host that reads only the head descriptor (Firecracker) then sees half of
 * each block. The single-descriptor layout keeps every element to one
 * descriptor, and such a host sees exactly what the guest gave. */
static void test_single_descriptor_layout(void **state)
{
	(void)state;
	struct opts chain = { 0 };
	struct fx *x = make(&chain);
	x->head_only = 1;
	x->tr.num_pages = 10 * PAGES_PER_BLOCK;
	poll_n(x, 10);
	assert_int_equal(balloon_actual(&x->b), 10 * PAGES_PER_BLOCK);
	assert_int_equal(x->max_nseg, 2);
	assert_int_equal(x->host_pages, 5 * PAGES_PER_BLOCK);      /* the head-only host saw half */
	destroy(x);

	struct opts single = { .layout = BALLOON_LAYOUT_SINGLE };
	x = make(&single);
	x->head_only = 1;
	x->tr.num_pages = 10 * PAGES_PER_BLOCK + 37;
	poll_n(x, 20);
	assert_settled(x, 10 * PAGES_PER_BLOCK + 37);
	assert_int_equal(x->max_nseg, 1);
	assert_int_equal(x->host_pages, 10 * PAGES_PER_BLOCK + 37);
	assert_int_equal(x->host_errors, 0);
	check_all(x);
	x->tr.num_pages = 3 * PAGES_PER_BLOCK;                      /* deflate in one-descriptor elements too */
	poll_n(x, 20);
	assert_settled(x, 3 * PAGES_PER_BLOCK);
	assert_int_equal(x->max_nseg, 1);
	assert_int_equal(x->host_pages, 3 * PAGES_PER_BLOCK);
	assert_int_equal(x->host_errors, 0);
	check_all(x);
	destroy(x);
}

/* Before a reset it chose (a healthy device): everything deflated, the host
 * told and acking, nothing left for release_all; a host that never acks
 * bounds the wait. */
static void test_drain_tells_the_host_first(void **state)
{
	(void)state;
	struct opts o = { 0 };
	struct fx *x = make(&o);
	x->tr.num_pages = 20 * PAGES_PER_BLOCK;
	poll_n(x, 10);
	assert_settled(x, 20 * PAGES_PER_BLOCK);
	assert_int_equal(balloon_drain(&x->b, 100 * NS_PER_MS), 0);
	assert_int_equal(x->host_pages, 0);               /* the host saw every deflate */
	assert_int_equal(x->tr.actual, 0);
	assert_int_equal(x->mem.nballoon, 0);
	assert_int_equal(x->host_errors, 0);
	check_all(x);
	assert_int_equal(balloon_release_all(&x->b), 0);
	destroy(x);

	x = make(&o);
	x->tr.num_pages = 20 * PAGES_PER_BLOCK;
	poll_n(x, 10);
	x->dev[QD].mode = FAKE_HOLD;                     /* never acks a deflate */
	uint64_t t0 = clock_ns();
	uint64_t left = balloon_drain(&x->b, 10 * NS_PER_MS);
	assert_int_equal(left, 20 * PAGES_PER_BLOCK);     /* in flight: still the balloon's */
	assert_true(clock_ns() - t0 <= 20 * NS_PER_MS);
	assert_int_equal(x->mem.nballoon, 20 * PAGES_PER_BLOCK);
	destroy(x);
}

static void test_rate_limit_whole_blocks_within_10_percent(void **state)
{
	(void)state;
	struct opts o = { .params = { .rate_pages_per_s = 20 * MIB_PAGES } };   /* 20 MiB/s */
	struct fx *x = make(&o);
	x->tr.num_pages = 100 * PAGES_PER_BLOCK;               /* 200 MiB */
	poll_n(x, 1);
	uint64_t a0 = balloon_actual(&x->b);
	for (unsigned i = 0; i < 5000; i++)        /* 5 s at 1 ms per poll */
		poll_n(x, 1);
	double mib_s = (double)(balloon_actual(&x->b) - a0) / MIB_PAGES / 5.0;
	assert_true(mib_s > 18.0 && mib_s < 22.0);
	assert_int_equal(x->b.runs_sent, 0);       /* credit never turned into small runs */
	char buf[1200];
	balloon_format_details(&x->b, buf, sizeof buf);
	assert_non_null(strstr(buf, "rate 20 MiB/s (limiting now)"));
	/* a guest the host did not run for 300 ms at a time keeps the rate */
	a0 = balloon_actual(&x->b);
	for (unsigned i = 0; i < 10; i++) {
		host_clock_advance(300 * NS_PER_MS);
		poll_n(x, 1);
	}
	mib_s = (double)(balloon_actual(&x->b) - a0) / MIB_PAGES / 3.0;
	assert_true(mib_s > 18.0 && mib_s < 22.0);
	/* idle time buys no burst: a new target starts with one block */
	x->tr.num_pages = (uint32_t)(balloon_actual(&x->b) / PAGES_PER_BLOCK * PAGES_PER_BLOCK);
	poll_n(x, 10);
	wait_ms(x, 10000);
	a0 = balloon_actual(&x->b);
	x->tr.num_pages = 100 * PAGES_PER_BLOCK;
	poll_n(x, 2);                              /* sent, then acked */
	assert_int_equal(balloon_actual(&x->b) - a0, PAGES_PER_BLOCK);
	/* deflation is not limited */
	x->tr.num_pages = 0;
	poll_n(x, 10);
	assert_settled(x, 0);
	/* changing the rate at run time: unlimited again */
	struct balloon_params p = x->b.s.params;
	p.rate_pages_per_s = 0;
	balloon_set_params(&x->b, &p);
	x->tr.num_pages = 100 * PAGES_PER_BLOCK;
	poll_n(x, 20);
	assert_settled(x, 100 * PAGES_PER_BLOCK);
	destroy(x);
}

static void test_max_and_min_free_at_run_time(void **state)
{
	(void)state;
	/* With DEFLATE_ON_OOM the guest may take balloon pages back for its own
	 * needs (the spec's "system stability"): lower knobs deflate at once. */
	struct opts o = { .min_free = 8 * PAGES_PER_BLOCK, .features = F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) };
	struct fx *x = make(&o);
	x->tr.num_pages = 100 * PAGES_PER_BLOCK;
	poll_n(x, 20);
	assert_settled(x, 100 * PAGES_PER_BLOCK);
	struct balloon_params p = x->b.s.params;
	p.max_pages = 30 * PAGES_PER_BLOCK;                    /* the host asks for more than max */
	assert_int_equal(balloon_set_params(&x->b, &p), 0);
	poll_n(x, 20);
	assert_settled(x, 30 * PAGES_PER_BLOCK);
	assert_int_equal(x->b.limit_reason, BLIM_MAX);
	p.max_pages = 0;
	p.min_free_pages = 120 * PAGES_PER_BLOCK;              /* keep 240 MiB free: 8 blocks left to give */
	balloon_set_params(&x->b, &p);
	poll_n(x, 20);
	assert_settled(x, 8 * PAGES_PER_BLOCK);
	assert_true(x->mem.nfree >= 120 * PAGES_PER_BLOCK);
	assert_int_equal(x->b.limit_reason, BLIM_MIN_FREE);
	/* absurd: one clear line, clamped, the balloon empties */
	host_klog_reset();
	p.min_free_pages = 1ull << 40;
	p.max_pages = 1ull << 40;
	assert_int_equal(balloon_set_params(&x->b, &p), 2);
	assert_int_equal(host_klog_count(), 2);
	assert_true(host_klog_contains("min_free 4294967296 MiB is more than the 256 MiB of RAM"));
	assert_true(host_klog_contains("max 4294967296 MiB is more than the 256 MiB of RAM"));
	poll_n(x, 20);
	assert_settled(x, 0);
	destroy(x);
}

/* Without DEFLATE_ON_OOM (and whatever MUST_TELL_HOST says) the spec lets
 * the guest use balloon pages only when num_pages falls below actual: a
 * lower max or a higher min_free stops the balloon growing, but does not
 * deflate what the host still asks for; the host's own lower targets are
 * then met down to the knob. */
static void test_knobs_do_not_deflate_what_the_host_asks_for(void **state)
{
	(void)state;
	struct opts o = { .min_free = 8 * PAGES_PER_BLOCK };
	struct fx *x = make(&o);
	x->tr.num_pages = 100 * PAGES_PER_BLOCK;
	poll_n(x, 20);
	assert_settled(x, 100 * PAGES_PER_BLOCK);
	struct balloon_params p = x->b.s.params;
	p.max_pages = 30 * PAGES_PER_BLOCK;
	balloon_set_params(&x->b, &p);
	poll_n(x, 20);
	assert_settled(x, 100 * PAGES_PER_BLOCK);            /* held: the host asks for 100 */
	assert_int_equal(x->b.limit_reason, BLIM_HELD_BY_HOST);
	char buf[1200];
	balloon_format_details(&x->b, buf, sizeof buf);
	assert_non_null(strstr(buf, "the host still asks for it"));
	x->tr.num_pages = 50 * PAGES_PER_BLOCK;               /* the host gives back 50 */
	poll_n(x, 20);
	assert_settled(x, 50 * PAGES_PER_BLOCK);
	x->tr.num_pages = 20 * PAGES_PER_BLOCK;               /* below max: the host rules again */
	poll_n(x, 20);
	assert_settled(x, 20 * PAGES_PER_BLOCK);
	assert_int_equal(x->b.limit_reason, BLIM_NONE);
	x->tr.num_pages = 100 * PAGES_PER_BLOCK;              /* growth stops at max */
	poll_n(x, 20);
	assert_settled(x, 30 * PAGES_PER_BLOCK);
	assert_int_equal(x->b.limit_reason, BLIM_MAX);
	check_all(x);
	destroy(x);
}

/* ------------------------------------------------------------ reclaim */

static void test_reclaim_lowest_priority_first_then_shortfall(void **state)
{
	(void)state;
	const uint64_t min_free = 4 * PAGES_PER_BLOCK;
	struct opts o = { .min_free = min_free, .reclaim = 1 };
	struct fx *x = make(&o);
	struct cache lo, mid, hi;
	cache_fill(&hi, x, "hi", 8 * PAGES_PER_BLOCK);         /* registered first, asked last */
	cache_fill(&lo, x, "lo", 8 * PAGES_PER_BLOCK);
	cache_fill(&mid, x, "mid", 8 * PAGES_PER_BLOCK);
	assert_true(shrinker_register("hi", SHRINKER_PRIO_COSTLY, cache_count, cache_scan, &hi) > 0);
	assert_true(shrinker_register("lo", SHRINKER_PRIO_CACHE, cache_count, cache_scan, &lo) > 0);
	assert_true(shrinker_register("mid", SHRINKER_PRIO_DEFAULT, cache_count, cache_scan, &mid) > 0);
	/* the rest of memory is used, except 10 blocks */
	fake_mem_alloc_any(&x->mem, x->mem.nfree - 10 * PAGES_PER_BLOCK, 1);
	/* 18 blocks wanted: 6 from free memory (10 - 4 kept), 12 from the caches */
	x->tr.num_pages = 18 * PAGES_PER_BLOCK;
	wait_ms(x, 2000);
	assert_settled(x, 18 * PAGES_PER_BLOCK);
	assert_int_equal(lo.held, 0);              /* cheapest emptied first */
	assert_true(lo.order_seen < mid.order_seen);
	assert_true(mid.freed >= 4 * PAGES_PER_BLOCK && mid.freed <= 4 * PAGES_PER_BLOCK + 2 * RECLAIM_PAGES_SLACK);
	assert_int_equal(hi.scans, 0);             /* never needed */
	assert_true(x->b.reclaimed >= 12 * PAGES_PER_BLOCK);
	assert_true(x->mem.nfree >= min_free);
	/* more than everything: the costly one gives too, then a shortfall */
	x->tr.num_pages = 60 * PAGES_PER_BLOCK;
	wait_ms(x, 3000);
	assert_int_equal(hi.held, 0);
	assert_true(hi.order_seen > mid.order_seen);
	assert_int_equal(balloon_state(&x->b), BALLOON_SHORT);
	assert_int_equal(x->b.short_reason, BSHORT_MIN_FREE);
	assert_true(host_klog_contains("shrinkers have nothing left"));
	assert_true(x->mem.nfree >= min_free);
	char buf[1200];
	balloon_format_details(&x->b, buf, sizeof buf);
	assert_non_null(strstr(buf, "shortfall: free memory is down to balloon.min_free"));
	free(lo.pfns); free(mid.pfns); free(hi.pfns);
	destroy(x);
}

static void test_console_details(void **state)
{
	(void)state;
	struct opts o = { .features = F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | F(VIRTIO_BALLOON_F_REPORTING),
	                  .min_free = 8 * PAGES_PER_BLOCK,
	                  .params = { .max_pages = 50 * PAGES_PER_BLOCK, .rate_pages_per_s = 256 * MIB_PAGES,
	                              .report_delay_ns = 2 * NS_PER_S } };
	struct fx *x = make(&o);
	x->tr.num_pages = 10 * PAGES_PER_BLOCK;
	wait_ms(x, 500);
	assert_settled(x, 10 * PAGES_PER_BLOCK);
	char buf[1200];
	balloon_format_details(&x->b, buf, sizeof buf);
	assert_non_null(strstr(buf, "target 20 MiB, actual 20 MiB, host asks 20 MiB"));
	assert_non_null(strstr(buf, "max 100 MiB, min-free 16 MiB, rate 256 MiB/s"));
	assert_non_null(strstr(buf, "report delay 2000 ms"));
	assert_non_null(strstr(buf, "inflight +0/-0 pages in 0 elements"));
	assert_non_null(strstr(buf, "inflated 5120 pages, deflated 0 pages"));
	assert_non_null(strstr(buf, "oom: deflate-on-oom; 0 deflates"));
	assert_non_null(strstr(buf, "reporting: on; 0 blocks"));
	assert_non_null(strstr(buf, "shortfall: none"));
	assert_null(strchr(buf + strlen(buf) - 1, '\n'));
	destroy(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_every_tag_agrees_with_accounting),
		cmocka_unit_test(test_oom_deflates_more_than_asked_and_tells_first),
		cmocka_unit_test(test_oom_hold_until_host_changes_target),
		cmocka_unit_test(test_oom_without_feature_fails_cleanly),
		cmocka_unit_test(test_oom_wait_is_bounded_and_not_repeated),
		cmocka_unit_test(test_oom_inside_poll_refused),
		cmocka_unit_test(test_report_after_delay_merged_once),
		cmocka_unit_test(test_report_at_most_the_queue_and_above_min_free),
		cmocka_unit_test(test_report_blocks_back_on_oom_and_bad_isolate),
		cmocka_unit_test(test_initial_balloon_until_host_sets_target),
		cmocka_unit_test(test_reset_keeps_host_decisions),
		cmocka_unit_test(test_single_descriptor_layout),
		cmocka_unit_test(test_drain_tells_the_host_first),
		cmocka_unit_test(test_rate_limit_whole_blocks_within_10_percent),
		cmocka_unit_test(test_max_and_min_free_at_run_time),
		cmocka_unit_test(test_knobs_do_not_deflate_what_the_host_asks_for),
		cmocka_unit_test(test_reclaim_lowest_priority_first_then_shortfall),
		cmocka_unit_test(test_console_details),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
