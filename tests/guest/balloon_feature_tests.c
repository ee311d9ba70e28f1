/*
 * balloon_feature_tests.c - in-guest self-tests of the balloon's user
 * features on the real device and the kernel's own allocator:
 *   balloon_features_negotiated  only features we implement are accepted,
 *                                and the queues they imply are live;
 *   balloon_stats_agree          the statistics say what mm/ and the
 *                                shrinker registry say;
 *   balloon_shrinker_order       (opt-in: selftest.tests=balloon_shrinker_order)
 *                                a target beyond free memory is met by the
 *                                shrinkers, lowest priority first, through a
 *                                real inflation the device acks.
 * Pollers do not run in self-test mode: the last test drives the balloon
 * with virtio_balloon_poll() itself, and puts every knob back.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "drivers/balloon/virtio_balloon.h"
#include "kclock.h"
#include "mm/kmem.h"
#include "kernel/lib/selftest.h"
#include "mm/shrinker.h"
#include "mm/mm.h"

SELFTEST(balloon_features_negotiated)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	ST_ASSERT(d != NULL && d->transport_up);
	uint64_t f = d->vp.features;
	ST_ASSERT((f & ~d->offered) == 0);
	ST_ASSERT(!(f & (1ull << VIRTIO_BALLOON_F_PAGE_POISON)));     /* we never poison */
	ST_ASSERT(!(f & (1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT)));
	/* offered and usable means taken */
	if (d->offered & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM))
		ST_ASSERT(f & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	int rep = !!(f & (1ull << VIRTIO_BALLOON_F_REPORTING));
	if (d->offered & (1ull << VIRTIO_BALLOON_F_REPORTING))
		ST_ASSERT(rep);
	ST_ASSERT(rep == d->has_report);
	if (rep) {
		/* the device sees the reporting queue enabled at our ring */
		d->vp.io->write(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SELECT, 2, (uint32_t)d->layout.reporting);
		ST_ASSERT(d->vp.io->read(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 1);
		uint64_t desc = d->vp.io->read(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_DESCLO, 4) |
		                (uint64_t)d->vp.io->read(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_DESCHI, 4) << 32;
		ST_ASSERT(desc == d->report_vq.desc_pa);
		ST_ASSERT(d->core_up);
		struct balloon_status st;
		balloon_get_status(d->b, &st);
		ST_ASSERT(st.reporting);
	}
	return 0;
}

SELFTEST(balloon_stats_agree)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	ST_ASSERT(d != NULL && d->core_up);
	struct virtio_balloon_stat st[BALLOON_STATS_MAX];
	struct mm_stats ms;
	unsigned n = balloon_stats_fill(d->b, st, BALLOON_STATS_MAX);
	uint64_t caches = shrinker_count_all();
	mm_get_stats(&ms);
	uint64_t seen = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t v = st[i].val;
		seen |= 1ull << st[i].tag;
		switch (st[i].tag) {
		case VIRTIO_BALLOON_S_MEMFREE: ST_ASSERT(v == ms.free * PAGE_SIZE); break;
		case VIRTIO_BALLOON_S_MEMTOT:   /* Linux's convention: see drivers/balloon/stats.c */
			ST_ASSERT(v == (ms.total - (d->vp.features & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) ? 0 :
			                             balloon_actual(d->b))) * PAGE_SIZE);
			break;
		case VIRTIO_BALLOON_S_CACHES:  ST_ASSERT(v == caches * PAGE_SIZE); break;
		case VIRTIO_BALLOON_S_AVAIL:   ST_ASSERT(v == (ms.free + caches) * PAGE_SIZE); break;
		default:                       ST_ASSERT(v == 0); break;   /* swap, faults */
		}
	}
	ST_ASSERT(seen == 0x3ff);   /* tags 0..9; hugetlb 0, as Linux sends when it has none */
	return 0;
}

/* ---- shrinker order */

#define PIECE      (64u << 10)
#define CACHE_SIZE (16u << 20)
#define NPIECES    (CACHE_SIZE / PIECE)

struct tcache {
	const char *name;
	void *piece[NPIECES];
	unsigned n;
	unsigned first_call;     /* sequence number of the first scan, 0 = never */
	uint64_t freed;
};
static struct tcache lo, hi;
static unsigned seq;

static uint64_t tc_count(void *ctx) { return ((struct tcache *)ctx)->n * (uint64_t)(PIECE / PAGE_SIZE); }

static uint64_t tc_scan(void *ctx, uint64_t pages)
{
	struct tcache *c = ctx;
	uint64_t got = 0;
	if (!c->first_call)
		c->first_call = ++seq;
	while (c->n && got + PIECE / PAGE_SIZE <= pages) {
		kmem_anon_unmap(c->piece[--c->n], PIECE);
		got += PIECE / PAGE_SIZE;
	}
	c->freed += got;
	return got;
}

static void tc_drop(struct tcache *c)
{
	while (c->n)
		kmem_anon_unmap(c->piece[--c->n], PIECE);
}

static int tc_fill(struct tcache *c, const char *name)
{
	memset(c, 0, sizeof *c);
	c->name = name;
	for (; c->n < NPIECES; c->n++) {
		c->piece[c->n] = kmem_anon_map(PIECE);
		if (!c->piece[c->n])
			return -1;
		memset(c->piece[c->n], 0x5a, PIECE);
	}
	return 0;
}

/* Poll the balloon until actual == pages or `ms` pass; 0 if reached. */
static int poll_until_actual(struct virtio_balloon_dev *d, uint64_t pages, unsigned ms)
{
	uint64_t end = clock_ns() + ms * NS_PER_MS;
	while (clock_ns() < end) {
		virtio_balloon_poll(clock_ns());
		if (balloon_actual(d->b) == pages && balloon_in_flight(d->b) == 0)
			return 0;
		__asm__ __volatile__("pause");
	}
	return -1;
}

SELFTEST_OPT(balloon_shrinker_order)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	ST_ASSERT(d != NULL && d->core_up && balloon_actual(d->b) == 0);
	ST_ASSERT(tc_fill(&hi, "test-hi") == 0 && tc_fill(&lo, "test-lo") == 0);
	int id_hi = shrinker_register("test-hi", 80, tc_count, tc_scan, &hi);
	int id_lo = shrinker_register("test-lo", 20, tc_count, tc_scan, &lo);
	ST_ASSERT(id_hi > 0 && id_lo > 0);

	/* Free memory covers 4 MiB of a 24 MiB balloon; the other 20 MiB must
	 * come from the caches: all of test-lo (16), then some of test-hi. */
	struct balloon_params saved = *balloon_get_params(d->b), p = saved;
	uint64_t free = mm_free_pages();
	p.min_free_pages = free - (4u << 20) / PAGE_SIZE;
	p.initial_pages = (24u << 20) / PAGE_SIZE;
	p.rate_pages_per_s = 0;
	balloon_set_params(d->b, &p);
	int reached = poll_until_actual(d, p.initial_pages, 20000);
	struct balloon_status st;
	balloon_get_status(d->b, &st);
	uint64_t reclaimed = st.reclaimed;
	printf("balloon-test: shrinker calls: test-lo first at #%u (%llu pages), test-hi first at #%u "
	       "(%llu pages); balloon %llu MiB, reclaimed %llu pages\n", lo.first_call,
	       (unsigned long long)lo.freed, hi.first_call, (unsigned long long)hi.freed,
	       (unsigned long long)(balloon_actual(d->b) >> 8), (unsigned long long)reclaimed);

	/* put everything back before judging */
	balloon_set_params(d->b, &saved);
	int back = poll_until_actual(d, 0, 20000);
	shrinker_unregister(id_hi);
	shrinker_unregister(id_lo);
	tc_drop(&lo);
	tc_drop(&hi);

	ST_ASSERT(reached == 0);
	ST_ASSERT(back == 0);
	ST_ASSERT(lo.first_call == 1 && hi.first_call == 2);     /* lowest priority first */
	ST_ASSERT(lo.freed == CACHE_SIZE / PAGE_SIZE);           /* emptied before hi was asked */
	ST_ASSERT(hi.freed > 0 && hi.freed <= (8u << 20) / PAGE_SIZE);   /* only what was missing */
	ST_ASSERT(reclaimed == lo.freed + hi.freed);
	char why[160];
	if (balloon_check(d->b, why, sizeof why))
		ST_FAIL("balloon books: %s", why);
	return 0;
}
