/*
 * app_tests.c - in-guest self-tests of the appliance workload and its cache
 * shrinker, on the kernel's real kmem_anon_map() memory. Each test uses an
 * instance of its own ("apptest"), never the kernel's workload, and frees
 * everything it took. Sizes stay small: the early heap is 8 MiB, and TCG is
 * slow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "app/app.h"
#include "kclock.h"
#include "kernel/lib/console.h"
#include "mm/kmem.h"
#include "kernel/lib/selftest.h"
#include "mm/shrinker.h"

static struct app t;

/* Run the instance's poller until it has nothing left to do now. */
static int run_until_idle(struct app *a, uint64_t budget)
{
	for (int i = 0; i < 100000; i++)
		if (!app_poll(a, clock_ns(), budget))
			return 0;
	return -1;
}

SELFTEST(app_grow_check_shrink)
{
	ST_ASSERT(app_init(&t, "apptest", 256 << 10, SHRINKER_PRIO_CACHE) == 0);
	ST_ASSERT(app_grow_now(&t, 4 << 20) == 4 << 20);
	ST_ASSERT(t.held.n == 16 && t.held.bytes == 4 << 20);
	/* Chunks hold different contents: sequence numbers differ. */
	ST_ASSERT(t.held.v[0].seq != t.held.v[1].seq);
	ST_ASSERT(*(uint64_t *)t.held.v[0].va != *(uint64_t *)t.held.v[1].va);
	ST_ASSERT(*(uint64_t *)t.held.v[0].va == app_pattern_word(t.held.v[0].seq, 0));

	struct app_check_result r;
	app_check_now(&t, &r);
	ST_ASSERT(r.corrupt_chunks == 0 && r.corrupt_words == 0);
	ST_ASSERT(r.bytes == 4 << 20 && r.pieces == 16);

	ST_ASSERT(app_shrink_now(&t, 2 << 20) == 2 << 20);
	ST_ASSERT(t.held.n == 8 && t.held.bytes == 2 << 20);
	app_check_now(&t, &r);
	ST_ASSERT(r.corrupt_chunks == 0 && r.bytes == 2 << 20);

	/* The same through the poller, in bounded steps, as the console does it. */
	app_cmd_grow(&t, 1 << 20);
	ST_ASSERT(run_until_idle(&t, 512 << 10) == 0);
	ST_ASSERT(t.held.bytes == 3 << 20 && t.prog_kind == APP_PROG_NONE);
	ST_ASSERT(app_start_check(&t) == 0);
	ST_ASSERT(app_start_check(&t) == -1);          /* one at a time */
	ST_ASSERT(run_until_idle(&t, 64 << 10) == 0);   /* many small steps */
	ST_ASSERT(t.last_check.bytes == 3 << 20 && t.last_check.corrupt_chunks == 0);
	app_cmd_shrink(&t, APP_SHRINK_ALL);
	ST_ASSERT(run_until_idle(&t, APP_POLL_BUDGET) == 0);
	ST_ASSERT(t.held.n == 0 && t.held.bytes == 0);

	/* A pattern: grow, check, shrink, check - then done. */
	char why[128];
	ST_ASSERT(app_set_pattern(&t, "grow:1M,check,shrink:512K,check", why, sizeof why) == 0);
	uint64_t checks = t.checks;
	ST_ASSERT(run_until_idle(&t, APP_POLL_BUDGET) == 0);
	ST_ASSERT(t.prog_kind == APP_PROG_NONE);
	ST_ASSERT(t.checks == checks + 2);
	ST_ASSERT(t.held.bytes == 512 << 10 && t.last_check.bytes == 512 << 10);
	ST_ASSERT(t.corrupt_chunks == 0 && t.alloc_failures == 0);

	char line[200];
	app_format_status(&t, line, sizeof line);
	ST_ASSERT(strstr(line, "apptest: held 0 MiB in 2 chunks, cache 0 MiB, verified ") == line);
	ST_ASSERT(strstr(line, " 0 corrupt, 0 alloc failures"));
	app_destroy(&t);
	return 0;
}

/* One flipped byte must be found exactly - chunk, offset, both words - by a
 * full check and by the incremental one; a page copied to the wrong place
 * (what a broken compactor would do) must be found too. */
SELFTEST(app_detects_corruption)
{
	ST_ASSERT(app_init(&t, "apptest", 256 << 10, SHRINKER_PRIO_CACHE) == 0);
	ST_ASSERT(app_grow_now(&t, 1 << 20) == 1 << 20);
	struct app_piece *p = &t.held.v[2];
	const uint64_t off = 12345;
	uint8_t saved = p->va[off];
	p->va[off] ^= 0x5a;

	struct app_check_result r;
	app_check_now(&t, &r);
	uint64_t want = app_pattern_word(p->seq, off / 8);
	if (r.corrupt_chunks != 1 || r.corrupt_words != 1 || !r.have_first)
		ST_FAIL("check found %llu chunks / %llu words", (unsigned long long)r.corrupt_chunks,
		        (unsigned long long)r.corrupt_words);
	ST_ASSERT(r.first_seq == p->seq && !r.first_in_cache);
	ST_ASSERT(r.first.offset == off);
	ST_ASSERT(r.first.expected == want);
	ST_ASSERT(r.first.got == (want ^ (0x5aull << (8 * (off % 8)))));
	ST_ASSERT(t.corrupt_chunks == 1);

	/* The incremental check with a small budget finds the same. */
	ST_ASSERT(app_start_check(&t) == 0);
	ST_ASSERT(run_until_idle(&t, 8 << 10) == 0);
	ST_ASSERT(t.last_check.corrupt_chunks == 1 && t.last_check.corrupt_words == 1);
	ST_ASSERT(t.last_check.first_seq == p->seq && t.last_check.first.offset == off);

	p->va[off] = saved;
	app_check_now(&t, &r);
	ST_ASSERT(r.corrupt_chunks == 0);

	/* Page 0 of chunk 0 copied over page 1 of chunk 1. */
	uint8_t *keep = malloc(PAGE_SIZE);
	ST_ASSERT(keep != NULL);
	uint8_t *dst = t.held.v[1].va + PAGE_SIZE;
	memcpy(keep, dst, PAGE_SIZE);
	memcpy(dst, t.held.v[0].va, PAGE_SIZE);
	app_check_now(&t, &r);
	memcpy(dst, keep, PAGE_SIZE);
	free(keep);
	ST_ASSERT(r.corrupt_chunks == 1 && r.corrupt_words == PAGE_SIZE / 8);
	ST_ASSERT(r.first_seq == t.held.v[1].seq && r.first.offset / PAGE_SIZE == 1);
	app_check_now(&t, &r);
	ST_ASSERT(r.corrupt_chunks == 0);
	app_destroy(&t);
	return 0;
}

static const struct shrinker_info *find_info(struct shrinker_info *info, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(info[i].name, name))
			return &info[i];
	return NULL;
}

/* The cache gives whole pieces back through the registry, never more than
 * asked, and waits before regrowing. Priority -1000: asked before anything
 * else the kernel registered, so the counts below are exact. */
SELFTEST(app_cache_shrinker)
{
	ST_ASSERT(app_init(&t, "apptest", 256 << 10, -1000) == 0);
	ST_ASSERT(t.shrinker_id > 0);
	app_set_cache_target(&t, 1 << 20);
	ST_ASSERT(run_until_idle(&t, APP_POLL_BUDGET) == 0);
	ST_ASSERT(t.cache.bytes == 1 << 20 && t.cache.n == 16);

	struct shrinker_info info[SHRINKER_MAX];
	size_t n = shrinker_list(info, SHRINKER_MAX);
	ST_ASSERT(n >= 1 && !strcmp(info[0].name, "apptest-cache"));
	ST_ASSERT(info[0].can_free == 256);

	ST_ASSERT(shrinker_reclaim(64) == 64);
	ST_ASSERT(t.cache.bytes == (1 << 20) - (256 << 10));
	ST_ASSERT(t.cache_given_pages == 64);
	/* Less than one piece: one piece (the cache's unit), not nothing - an
	 * order-0..3 allocation at OOM must get something back. */
	uint64_t before = t.cache.bytes;
	ST_ASSERT(shrinker_reclaim(10) == 16);
	ST_ASSERT(t.cache.bytes == before - (64 << 10));
	/* A big request takes the rest (176 pages) within one batch. */
	ST_ASSERT(shrinker_reclaim(100000) >= 176);
	ST_ASSERT(t.cache.bytes == 0 && t.cache_given_pages == 256);
	n = shrinker_list(info, SHRINKER_MAX);
	const struct shrinker_info *me = find_info(info, n, "apptest-cache");
	ST_ASSERT(me != NULL && me->freed == 256 && me->bad_answers == 0);

	/* No regrowth right after giving; after the delay, back to the target. */
	uint64_t now = clock_ns();
	app_poll(&t, now, APP_POLL_BUDGET);
	ST_ASSERT(t.cache.bytes == 0);
	for (int i = 0; i < 100 && app_poll(&t, now + APP_CACHE_REGROW_NS + NS_PER_S, APP_POLL_BUDGET); i++)
		;
	ST_ASSERT(t.cache.bytes == 1 << 20);
	struct app_check_result r;
	app_check_now(&t, &r);
	ST_ASSERT(r.corrupt_chunks == 0 && r.bytes == 1 << 20 && r.pieces == 16);

	/* A lower target trims at once. */
	app_set_cache_target(&t, 200 << 10);   /* rounds up to 4 pieces */
	app_poll(&t, clock_ns(), APP_POLL_BUDGET);
	ST_ASSERT(t.cache.bytes == 256 << 10);

	int id = t.shrinker_id;
	app_destroy(&t);
	ST_ASSERT(shrinker_unregister(id) == -1);   /* destroy unregistered it */
	n = shrinker_list(info, SHRINKER_MAX);
	ST_ASSERT(find_info(info, n, "apptest-cache") == NULL);
	return 0;
}

SELFTEST(app_bad_pattern_rejected)
{
	static const char *const bad[] = {
		"grow", "grow:", "grow:abc", "grow:0", "shrink:-1", "hold:5x", "hold:", "hold:99999h",
		"bogus:1", "loop", "grow:1M,loop,check", "grow:1M,,check", ",grow:1M", "grow:1M,",
		"check:1", "loop:2", "fill:xyz",
		"check,check,check,check,check,check,check,check,check,check,check,check,check,check,check,check,check",
	};
	struct app_program p;
	char why[128];
	memset(&p, 0, sizeof p);
	p.n = 99;   /* sentinel: a rejected spec must not touch *out */
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = 0;
		if (app_spec_parse(bad[i], &p, why, sizeof why) != -1)
			ST_FAIL("pattern '%s' was accepted", bad[i]);
		ST_ASSERT(why[0] != 0);
		ST_ASSERT(p.n == 99);
	}
	char longspec[200];
	memset(longspec, 'x', sizeof longspec - 1);
	longspec[sizeof longspec - 1] = 0;
	ST_ASSERT(app_spec_parse(longspec, &p, why, sizeof why) == -1);

	/* And the good ones mean what they say. */
	ST_ASSERT(app_spec_parse("grow:256M,hold:5s,shrink:128M,loop", &p, why, sizeof why) == 0);
	ST_ASSERT(p.n == 3 && p.loop == 1);
	ST_ASSERT(p.step[0].op == APP_OP_GROW && p.step[0].arg == 256ull << 20);
	ST_ASSERT(p.step[1].op == APP_OP_HOLD && p.step[1].arg == 5 * NS_PER_S);
	ST_ASSERT(p.step[2].op == APP_OP_SHRINK && p.step[2].arg == 128ull << 20);
	ST_ASSERT(app_spec_parse("fill:64M,check,hold:500ms,shrink:all", &p, why, sizeof why) == 0);
	ST_ASSERT(p.n == 4 && !p.loop && p.step[0].op == APP_OP_FILL && p.step[0].arg == 64ull << 20);
	ST_ASSERT(p.step[2].arg == 500 * NS_PER_MS && p.step[3].arg == APP_SHRINK_ALL);
	ST_ASSERT(app_spec_parse("", &p, why, sizeof why) == 0 && p.n == 0);

	/* A running pattern survives a bad replacement. */
	ST_ASSERT(app_init(&t, "apptest", 256 << 10, SHRINKER_PRIO_CACHE) == 0);
	ST_ASSERT(app_set_pattern(&t, "hold:1h,loop", why, sizeof why) == 0);
	ST_ASSERT(app_set_pattern(&t, "grow:lots", why, sizeof why) == -1);
	ST_ASSERT(t.prog_kind == APP_PROG_PATTERN && !strcmp(t.prog.text, "hold:1h,loop"));
	app_destroy(&t);

	/* The console says no, too (the kernel's own workload is untouched). */
	char c1[] = "app pattern grow:lots", c2[] = "app bogus", c3[] = "app grow 12Q", c4[] = "app";
	ST_ASSERT(console_exec(c1) != 0);
	ST_ASSERT(console_exec(c2) != 0);
	ST_ASSERT(console_exec(c3) != 0);
	ST_ASSERT(console_exec(c4) == 0);
	return 0;
}

/* fill:RESERVE with a kernel that reports free memory stops while RESERVE
 * is still free: here a fake report of 4 MiB minus what the instance holds. */
static int fake_free(uint64_t *bytes)
{
	*bytes = (4ull << 20) - t.held.bytes;
	return 0;
}

SELFTEST(app_fill_stops_at_reserve)
{
	ST_ASSERT(app_init(&t, "apptest", 256 << 10, SHRINKER_PRIO_CACHE) == 0);
	t.free_bytes = fake_free;
	app_cmd_fill(&t, 1 << 20);
	ST_ASSERT(run_until_idle(&t, APP_POLL_BUDGET) == 0);
	ST_ASSERT(t.prog_kind == APP_PROG_NONE);
	/* Stops once another 256 KiB chunk would leave less than 1 MiB free. */
	ST_ASSERT(t.held.bytes == 3 << 20 && t.held.n == 12);
	ST_ASSERT(t.alloc_failures == 0);
	struct app_check_result r;
	app_check_now(&t, &r);
	ST_ASSERT(r.corrupt_chunks == 0 && r.bytes == 3 << 20);
	app_destroy(&t);
	return 0;
}

/* An allocation that cannot succeed is a counted event, not a crash. */
SELFTEST(app_alloc_failure_is_clean)
{
	ST_ASSERT(app_init(&t, "apptest", 256 << 10, SHRINKER_PRIO_CACHE) == 0);
	ST_ASSERT(app_grow_now(&t, 512 << 10) == 512 << 10);
	t.chunk_bytes = 1ull << 40;   /* 1 TiB: more than any test VM has */
	app_cmd_grow(&t, 2ull << 40);
	ST_ASSERT(run_until_idle(&t, APP_POLL_BUDGET) == 0);
	ST_ASSERT(t.prog_kind == APP_PROG_NONE);
	ST_ASSERT(t.alloc_failures == 1);
	ST_ASSERT(t.held.n == 2 && t.held.bytes == 512 << 10);
	struct app_check_result r;
	app_check_now(&t, &r);
	ST_ASSERT(r.corrupt_chunks == 0 && r.bytes == 512 << 10);
	char line[200];
	app_format_status(&t, line, sizeof line);
	ST_ASSERT(strstr(line, ", 1 alloc failures") != NULL);
	app_destroy(&t);
	return 0;
}
