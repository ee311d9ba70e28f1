/* hostile_fixture.c - the hostile suites' shared cmocka fixture; see the header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "hostile_fixture.h"
#include "host_support.h"
#include "kclock.h"

/* The guest of the running case, for hfx_teardown. */
static struct hsys *current;
/* application allocations when the failure was injected */
static uint64_t app_allocs_at_failure;

struct hsys *hfx_new(uint64_t seed)
{
	struct hsys *x = calloc(1, sizeof *x);
	assert_non_null(x);
	current = x;
	assert_int_equal(hsys_init(x, HFX_BASE_PFN, HFX_NPAGES, HFX_MIN_FREE, seed), 0);
	return x;
}

void hfx_destroy(struct hsys *x)
{
	hsys_destroy(x);
	free(x);
	current = NULL;
}

int hfx_teardown(void **state)
{
	(void)state;
	if (current)
		hfx_destroy(current);
	return 0;
}

void hfx_start(struct hsys *x)
{
	(void)x;
	host_clock_set(NS_PER_S);
	host_klog_reset();
	host_klog_echo = getenv("KLOG_ECHO") != NULL;   /* KLOG_ECHO=1 build/unit/test_hostile_device */
}

void hfx_check(struct hsys *x)
{
	char why[300];
	if (hsys_check(x, why, sizeof why) != 0)
		fail_msg("%s", why);
}

void hfx_tick(struct hsys *x)
{
	hsys_tick(x);
	hfx_check(x);
}

void hfx_ticks(struct hsys *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		hfx_tick(x);
}

void hfx_wait_ms(struct hsys *x, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 10) {
		host_clock_advance(9 * NS_PER_MS);
		hfx_tick(x);
	}
}

static int settled(struct hsys *x, uint64_t pages, int host_too)
{
	return hsys_core_up(x) && balloon_state(x->b) == BALLOON_AT_TARGET && balloon_actual(x->b) == pages &&
	       hdev_actual(&x->dev) == pages && (!host_too || hdev_host_pages(&x->dev) == pages);
}

void hfx_settle(struct hsys *x, uint64_t pages, int host_too)
{
	for (unsigned i = 0; i < 3000; i++) {
		hfx_tick(x);
		if (settled(x, pages, host_too))
			return;
	}
	fail_msg("not settled at %llu pages: actual %llu, device actual %u, host %llu, state %s",
	         (unsigned long long)pages, (unsigned long long)balloon_actual(x->b), hdev_actual(&x->dev),
	         (unsigned long long)hdev_host_pages(&x->dev), balloon_state_name(balloon_state(x->b)));
}

void hfx_log_has(const char *needle)
{
	if (!host_klog_contains(needle))
		fail_msg("no log line contains '%s' (last: '%s')", needle, host_klog_last());
}

void hfx_mark_failure(struct hsys *x) { app_allocs_at_failure = x->mem.app_allocs; }

void hfx_assert_app_kept_running(struct hsys *x)
{
	hfx_ticks(x, 256);                  /* and keeps running from here */
	assert_true(x->mem.app_allocs > app_allocs_at_failure + 100);
	assert_int_equal(fake_mem_app_check(&x->mem), 0);
}

void hfx_assert_app_uses_all_free(struct hsys *x)
{
	assert_int_equal(fake_mem_app_check(&x->mem), 0);
	uint64_t nfree = x->mem.nfree;
	assert_int_equal(fake_mem_app_alloc(&x->mem, nfree), nfree);
	assert_int_equal(x->mem.nfree, 0);
	assert_int_equal(fake_mem_app_check(&x->mem), 0);
	fake_mem_app_free(&x->mem, nfree);
	assert_int_equal(x->mem.errors, 0);
}
