/*
 * test_shrinker.c - the shrinker registry: who is asked first, how much per
 * call, what happens to shrinkers that lie, and registration edge cases.
 *
 * Fake caches hold a number of pages and record every scan() call in one
 * shared log, so a test can assert the exact order and sizes of requests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "host_support.h"
#include "mm/shrinker.h"

struct fake {
	const char *tag;
	uint64_t pages;        /* what it holds */
	uint64_t extra;        /* added to what scan() claims (a liar) */
	uint64_t count_bonus;  /* added to what count() claims */
	int unregister_self;   /* scan() unregisters its own id */
	int reenter;           /* scan() calls shrinker_reclaim() (OOM path) */
	int id;
};

#define LOG_MAX 64
static struct { const char *tag; uint64_t asked; } calls[LOG_MAX];
static unsigned ncalls;
static uint64_t nested_result;

static uint64_t fake_count(void *ctx)
{
	struct fake *f = ctx;
	return f->pages + f->count_bonus;
}

static uint64_t fake_scan(void *ctx, uint64_t pages)
{
	struct fake *f = ctx;
	if (ncalls < LOG_MAX) {
		calls[ncalls].tag = f->tag;
		calls[ncalls].asked = pages;
	}
	ncalls++;
	if (f->reenter)
		nested_result = shrinker_reclaim(10);
	uint64_t n = pages < f->pages ? pages : f->pages;
	f->pages -= n;
	if (f->unregister_self)
		assert_int_equal(shrinker_unregister(f->id), 0);
	return n + f->extra;
}

static int reg(struct fake *f, int prio)
{
	f->id = shrinker_register(f->tag, prio, fake_count, fake_scan, f);
	assert_true(f->id > 0);
	return f->id;
}

static int setup(void **state)
{
	shrinker_reset();
	host_klog_reset();
	ncalls = 0;
	nested_result = 12345;
	memset(calls, 0, sizeof calls);
	return 0;
}

/* Lowest priority first; a higher one only when the lower cannot supply. */
static void test_order_by_priority(void **state)
{
	struct fake hi = { .tag = "hi", .pages = 1000 };
	struct fake lo = { .tag = "lo", .pages = 100 };
	struct fake mid = { .tag = "mid", .pages = 1000 };
	reg(&hi, 90);
	reg(&lo, 10);
	reg(&mid, 50);

	assert_int_equal(shrinker_reclaim(60), 60);
	assert_int_equal(ncalls, 1);
	assert_string_equal(calls[0].tag, "lo");
	assert_int_equal(calls[0].asked, 60);

	/* lo has 40 left: it gives them, mid supplies the rest; hi untouched. */
	assert_int_equal(shrinker_reclaim(100), 100);
	assert_int_equal(ncalls, 3);
	assert_string_equal(calls[1].tag, "lo");
	assert_int_equal(calls[1].asked, 40);
	assert_string_equal(calls[2].tag, "mid");
	assert_int_equal(calls[2].asked, 60);
	assert_int_equal(lo.pages, 0);
	assert_int_equal(mid.pages, 940);
	assert_int_equal(hi.pages, 1000);

	/* An empty shrinker (count 0) is not called at all. */
	assert_int_equal(shrinker_reclaim(5), 5);
	assert_int_equal(ncalls, 4);
	assert_string_equal(calls[3].tag, "mid");
}

/* Equal priorities: registration order. */
static void test_ties_in_registration_order(void **state)
{
	struct fake a = { .tag = "a", .pages = 10 };
	struct fake b = { .tag = "b", .pages = 10 };
	struct fake c = { .tag = "c", .pages = 10 };
	struct fake z = { .tag = "z", .pages = 10 };
	reg(&b, 20);
	reg(&z, 30);
	reg(&a, 20);
	reg(&c, 20);
	assert_int_equal(shrinker_reclaim(35), 35);
	assert_int_equal(ncalls, 4);
	assert_string_equal(calls[0].tag, "b");
	assert_string_equal(calls[1].tag, "a");
	assert_string_equal(calls[2].tag, "c");
	assert_string_equal(calls[3].tag, "z");
	assert_int_equal(calls[3].asked, 5);

	struct shrinker_info info[SHRINKER_MAX];
	assert_int_equal(shrinker_list(info, SHRINKER_MAX), 4);
	assert_string_equal(info[0].name, "b");
	assert_string_equal(info[1].name, "a");
	assert_string_equal(info[2].name, "c");
	assert_string_equal(info[3].name, "z");
	assert_int_equal(info[3].can_free, 5);
}

/* One call frees at most SHRINKER_BATCH pages; the caller loops. */
static void test_gradual_batches(void **state)
{
	struct fake big = { .tag = "big", .pages = 1000 };
	struct fake other = { .tag = "other", .pages = 1000 };
	reg(&big, 1);
	reg(&other, 2);
	uint64_t total = 0;
	unsigned rounds = 0;
	while (total < 900) {
		uint64_t got = shrinker_reclaim(900 - total);
		assert_true(got > 0);
		assert_true(got <= SHRINKER_BATCH);
		total += got;
		rounds++;
	}
	assert_int_equal(total, 900);
	assert_int_equal(rounds, (900 + SHRINKER_BATCH - 1) / SHRINKER_BATCH);
	for (unsigned i = 0; i < ncalls; i++) {
		assert_string_equal(calls[i].tag, "big");   /* never the higher priority */
		assert_true(calls[i].asked <= SHRINKER_BATCH);
	}
	assert_int_equal(big.pages, 100);
	assert_int_equal(other.pages, 1000);

	/* Small requests are not rounded up. */
	assert_int_equal(shrinker_reclaim(3), 3);
	assert_int_equal(calls[ncalls - 1].asked, 3);

	/* Nothing left anywhere: 0, the caller's cue to report a shortfall. */
	big.pages = 0;
	other.pages = 0;
	unsigned before = ncalls;
	assert_int_equal(shrinker_reclaim(100), 0);
	assert_int_equal(ncalls, before);

	struct shrinker_totals t;
	shrinker_get_totals(&t);
	assert_int_equal(t.pages_freed, 903);
	assert_int_equal(t.reclaim_calls, rounds + 2);
	assert_int_equal(shrinker_reclaim(0), 0);
	shrinker_get_totals(&t);
	assert_int_equal(t.reclaim_calls, rounds + 2);
}

/* A shrinker that claims more than asked is clamped and reported once. */
static void test_liar_more_than_asked(void **state)
{
	struct fake liar = { .tag = "liar", .pages = 1000, .extra = 50 };
	struct fake honest = { .tag = "honest", .pages = 1000 };
	reg(&liar, 1);
	reg(&honest, 2);
	assert_int_equal(shrinker_reclaim(100), 100);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("'liar' claims 150 pages freed when asked for 100"));
	assert_true(host_klog_contains("counted as 100"));
	/* It still counts for what it was asked, so honest was not asked. */
	assert_int_equal(ncalls, 1);

	assert_int_equal(shrinker_reclaim(100), 100);
	assert_int_equal(shrinker_reclaim(100), 100);
	assert_int_equal(host_klog_count(), 1);          /* once, not per call */

	struct shrinker_info info[SHRINKER_MAX];
	assert_int_equal(shrinker_list(info, SHRINKER_MAX), 2);
	assert_string_equal(info[0].name, "liar");
	assert_int_equal(info[0].bad_answers, 3);
	assert_int_equal(info[0].freed, 300);
	assert_int_equal(info[0].calls, 3);
	assert_int_equal(info[1].calls, 0);
}

/* A cache of whole pieces asked for less than a piece frees one piece:
 * counted in full, not a bad answer; more than a piece still is one. */
static uint64_t piece_scan(void *ctx, uint64_t pages)
{
	struct fake *f = ctx;
	uint64_t n = (pages + 15) / 16 * 16;    /* whole 16-page pieces, at least one */
	if (n > f->pages)
		n = f->pages;
	f->pages -= n;
	return n + f->extra;
}

static void test_unit_one_piece_when_asked_less(void **state)
{
	struct fake c = { .tag = "pieces", .pages = 160 };
	c.id = shrinker_register(c.tag, 1, fake_count, piece_scan, &c);
	assert_true(c.id > 0);
	assert_int_equal(shrinker_set_unit(c.id, 16), 0);
	assert_int_equal(shrinker_reclaim(1), 16);         /* an order-0 OOM gets a piece */
	assert_int_equal(shrinker_reclaim(10), 16);
	assert_int_equal(host_klog_count(), 0);
	struct shrinker_info info[SHRINKER_MAX];
	assert_int_equal(shrinker_list(info, SHRINKER_MAX), 1);
	assert_int_equal(info[0].bad_answers, 0);
	assert_int_equal(info[0].freed, 32);
	/* beyond its unit it is a liar again */
	c.extra = 20;
	assert_int_equal(shrinker_reclaim(10), 16);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("its unit 16"));
	/* the unit is checked */
	assert_int_equal(shrinker_set_unit(c.id, 0), -1);
	assert_int_equal(shrinker_set_unit(9999, 4), -1);
}

/* count() says more than it has, scan() returns more than count() said. */
static void test_liar_more_than_counted(void **state)
{
	struct fake liar = { .tag = "liar", .pages = 10, .extra = 1000 };
	struct fake next = { .tag = "next", .pages = 1000 };
	reg(&liar, 1);
	reg(&next, 2);
	/* count 10 -> asked 10, claims 1010: counted 10; next supplies 90. */
	assert_int_equal(shrinker_reclaim(100), 100);
	assert_int_equal(ncalls, 2);
	assert_int_equal(calls[0].asked, 10);
	assert_int_equal(calls[1].asked, 90);
	assert_true(host_klog_contains("its count said 10"));

	/* Inflated count: asked for more than it has, returns what it has. That
	 * is not a lie the registry can see: it just counts the pages. */
	struct fake inflated = { .tag = "inflated", .pages = 5, .count_bonus = 100 };
	reg(&inflated, 0);
	assert_int_equal(shrinker_reclaim(50), 50);
	assert_string_equal(calls[2].tag, "inflated");
	assert_int_equal(calls[2].asked, 50);
	/* liar is empty now (count 0): skipped; next supplies the other 45. */
	assert_int_equal(ncalls, 4);
	assert_string_equal(calls[3].tag, "next");
	assert_int_equal(calls[3].asked, 45);
}

static void test_unregister(void **state)
{
	struct fake a = { .tag = "a", .pages = 100 };
	struct fake b = { .tag = "b", .pages = 100 };
	reg(&a, 1);
	reg(&b, 2);
	assert_int_equal(shrinker_unregister(a.id), 0);
	assert_int_equal(shrinker_unregister(a.id), -1);   /* already gone */
	assert_int_equal(shrinker_unregister(0), -1);
	assert_int_equal(shrinker_unregister(-5), -1);
	assert_int_equal(shrinker_reclaim(10), 10);
	assert_string_equal(calls[0].tag, "b");
	assert_int_equal(a.pages, 100);
	struct shrinker_info info[SHRINKER_MAX];
	assert_int_equal(shrinker_list(info, SHRINKER_MAX), 1);

	/* A slot freed and reused: the old id must not remove the new owner. */
	struct fake c = { .tag = "c", .pages = 100 };
	reg(&c, 0);
	assert_true(c.id != a.id);
	assert_int_equal(shrinker_unregister(a.id), -1);
	assert_int_equal(shrinker_list(info, SHRINKER_MAX), 2);
}

/* A scan() that unregisters itself mid-walk: the walk goes on correctly. */
static void test_unregister_during_scan(void **state)
{
	struct fake a = { .tag = "a", .pages = 10, .unregister_self = 1 };
	struct fake b = { .tag = "b", .pages = 100 };
	reg(&a, 1);
	reg(&b, 2);
	assert_int_equal(shrinker_reclaim(30), 30);
	assert_int_equal(ncalls, 2);
	assert_string_equal(calls[1].tag, "b");
	assert_int_equal(calls[1].asked, 20);
	struct shrinker_info info[SHRINKER_MAX];
	assert_int_equal(shrinker_list(info, SHRINKER_MAX), 1);
	assert_int_equal(info[0].freed, 20);
}

/* An OOM path inside scan() calling reclaim again gets 0, no recursion. */
static void test_nested_reclaim_refused(void **state)
{
	struct fake a = { .tag = "a", .pages = 100, .reenter = 1 };
	reg(&a, 1);
	assert_int_equal(shrinker_reclaim(10), 10);
	assert_int_equal(nested_result, 0);
	assert_int_equal(ncalls, 1);
	struct shrinker_totals t;
	shrinker_get_totals(&t);
	assert_int_equal(t.nested, 1);
	/* And the registry is usable afterwards. */
	a.reenter = 0;
	assert_int_equal(shrinker_reclaim(10), 10);
}

static void test_register_errors_and_full_table(void **state)
{
	struct fake f[SHRINKER_MAX + 1];
	assert_int_equal(shrinker_register(NULL, 1, fake_count, fake_scan, NULL), -1);
	assert_int_equal(shrinker_register("", 1, fake_count, fake_scan, NULL), -1);
	assert_int_equal(shrinker_register("x", 1, NULL, fake_scan, NULL), -1);
	assert_int_equal(shrinker_register("x", 1, fake_count, NULL, NULL), -1);
	assert_int_equal(host_klog_count(), 4);
	for (int i = 0; i < SHRINKER_MAX; i++) {
		f[i] = (struct fake){ .tag = "f", .pages = 1 };
		reg(&f[i], i);
	}
	host_klog_reset();
	f[SHRINKER_MAX] = (struct fake){ .tag = "late", .pages = 1 };
	assert_int_equal(shrinker_register("late", 0, fake_count, fake_scan, &f[SHRINKER_MAX]), -1);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("table full"));
	/* Each of the 16 gives its one page, in priority order. */
	assert_int_equal(shrinker_count_all(), SHRINKER_MAX);
	assert_int_equal(shrinker_reclaim(100), SHRINKER_MAX);
	assert_int_equal(shrinker_count_all(), 0);
}

static void test_long_name_cut(void **state)
{
	struct fake a = { .tag = "a", .pages = 1 };
	int id = shrinker_register("a-name-that-is-much-longer-than-the-limit", 5, fake_count, fake_scan, &a);
	assert_true(id > 0);
	struct shrinker_info info[1];
	assert_int_equal(shrinker_list(info, 1), 1);
	assert_int_equal(strlen(info[0].name), SHRINKER_NAME_MAX - 1);
	assert_int_equal(strncmp(info[0].name, "a-name-that-is-much-longer", SHRINKER_NAME_MAX - 1), 0);
	assert_int_equal(info[0].id, id);
	assert_int_equal(info[0].priority, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_order_by_priority, setup),
		cmocka_unit_test_setup(test_ties_in_registration_order, setup),
		cmocka_unit_test_setup(test_gradual_batches, setup),
		cmocka_unit_test_setup(test_unit_one_piece_when_asked_less, setup),
		cmocka_unit_test_setup(test_liar_more_than_asked, setup),
		cmocka_unit_test_setup(test_liar_more_than_counted, setup),
		cmocka_unit_test_setup(test_unregister, setup),
		cmocka_unit_test_setup(test_unregister_during_scan, setup),
		cmocka_unit_test_setup(test_nested_reclaim_refused, setup),
		cmocka_unit_test_setup(test_register_errors_and_full_table, setup),
		cmocka_unit_test_setup(test_long_name_cut, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
