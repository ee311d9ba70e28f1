/*
 * test_time.c - the clock's pure arithmetic: TSC rate from a PIT interval,
 * and from CPUID's leaves (the fallback when the PIT does not count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "kernel/arch/time.h"

static void test_from_pit(void **state)
{
	(void)state;
	assert_int_equal(tsc_hz_from_pit(0, 0), 0);                    /* no PIT */
	assert_int_equal(tsc_hz_from_pit(30000000ull, 11932), 2999954743ull);  /* ~3 GHz over 10 ms */
}

static void test_from_cpuid(void **state)
{
	(void)state;
	const uint32_t none[3] = { 0, 0, 0 };
	assert_int_equal(tsc_hz_from_cpuid(0x0d, none, 0), 0);             /* leaves absent */
	const uint32_t l15[3] = { 2, 216, 24000000 };                       /* 24 MHz crystal x 108 */
	assert_int_equal(tsc_hz_from_cpuid(0x16, l15, 2600), 2592000000ull);
	const uint32_t no_crystal[3] = { 2, 216, 0 };                       /* crystal unknown: use 0x16 */
	assert_int_equal(tsc_hz_from_cpuid(0x16, no_crystal, 2600), 2600000000ull);
	assert_int_equal(tsc_hz_from_cpuid(0x15, no_crystal, 2600), 0);     /* 0x16 not there */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_pit),
		cmocka_unit_test(test_from_cpuid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
