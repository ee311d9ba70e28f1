/* test_app_spec.c - the appliance's pattern language and its checksummed fill. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "app/pattern.h"
#include "app/spec.h"

static void test_full_spec(void **state)
{
	struct app_program p;
	char why[128];
	assert_int_equal(app_spec_parse("grow:256M,hold:5s,shrink:128M,check,fill:32M,shrink:all,loop", &p, why, sizeof why), 0);
	assert_int_equal(p.n, 6);
	assert_true(p.loop);
	assert_int_equal(p.step[0].op, APP_OP_GROW);
	assert_int_equal(p.step[0].arg, 256ull << 20);
	assert_int_equal(p.step[1].op, APP_OP_HOLD);
	assert_int_equal(p.step[1].arg, 5ull * 1000000000ull);
	assert_int_equal(p.step[2].op, APP_OP_SHRINK);
	assert_int_equal(p.step[2].arg, 128ull << 20);
	assert_int_equal(p.step[3].op, APP_OP_CHECK);
	assert_int_equal(p.step[4].op, APP_OP_FILL);
	assert_int_equal(p.step[4].arg, 32ull << 20);
	assert_int_equal(p.step[5].arg, APP_SHRINK_ALL);
	assert_string_equal(p.text, "grow:256M,hold:5s,shrink:128M,check,fill:32M,shrink:all,loop");
}

/* ';' separates steps too: QEMU's -fw_cfg ...,string= splits at commas */
static void test_semicolons(void **state)
{
	struct app_program p;
	char why[128];
	assert_int_equal(app_spec_parse("grow:256M;hold:5s;shrink:all,loop", &p, why, sizeof why), 0);
	assert_int_equal(p.n, 3);
	assert_true(p.loop);
	assert_int_equal(p.step[2].arg, APP_SHRINK_ALL);
	assert_int_equal(app_spec_parse("grow:1M;;check", &p, why, sizeof why), -1);
	assert_non_null(strstr(why, "empty step"));
	assert_int_equal(app_spec_parse("grow:1M;", &p, why, sizeof why), -1);
	assert_int_equal(app_spec_parse(";grow:1M", &p, why, sizeof why), -1);
	assert_int_equal(app_spec_parse("grow:1M,;check", &p, why, sizeof why), -1);
}

static void test_empty_is_idle(void **state)
{
	struct app_program p;
	char why[128];
	assert_int_equal(app_spec_parse("", &p, why, sizeof why), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(app_spec_parse("none", &p, why, sizeof why), 0);
	assert_int_equal(p.n, 0);
}

static void test_errors_leave_output_alone(void **state)
{
	static const char *const bad[] = {
		"grow", "grow:", "grow:lots", "grow:0", "shrink:-1M", "hold:5x", "hold:", "frobnicate",
		"loop,grow:1M", "grow:1M,,check", "grow:1M,", ",grow:1M", "check:1M", "loop:3",
		"grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,"
		"grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,grow:1M,grow:1M",
		"hold:999999h",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct app_program p;
		memset(&p, 0x5a, sizeof p);
		char why[128] = "";
		if (app_spec_parse(bad[i], &p, why, sizeof why) != -1)
			fail_msg("'%s' was accepted", bad[i]);
		if (!why[0])
			fail_msg("'%s' rejected without a reason", bad[i]);
		for (size_t k = 0; k < sizeof p; k++)
			if (((unsigned char *)&p)[k] != 0x5a)
				fail_msg("'%s' changed the output on error", bad[i]);
	}
}

static void test_durations(void **state)
{
	uint64_t ns;
	assert_int_equal(app_parse_duration("500ms", &ns), 0); assert_int_equal(ns, 500000000ull);
	assert_int_equal(app_parse_duration("7", &ns), 0);     assert_int_equal(ns, 7000000000ull);
	assert_int_equal(app_parse_duration("2m", &ns), 0);    assert_int_equal(ns, 120000000000ull);
	assert_int_equal(app_parse_duration("1h", &ns), 0);    assert_int_equal(ns, 3600000000000ull);
	assert_int_equal(app_parse_duration("", &ns), -1);
	assert_int_equal(app_parse_duration("ms", &ns), -1);
	assert_int_equal(app_parse_duration("5 s", &ns), -1);
}

/* The fill is deterministic per (sequence, offset) and verify finds exactly
 * the words that changed. */
static void test_pattern_detects_one_flip(void **state)
{
	enum { BYTES = 64 * 1024 };
	uint8_t *a = aligned_alloc(4096, BYTES), *b = aligned_alloc(4096, BYTES);
	app_pattern_fill(a, BYTES, 7);
	app_pattern_fill(b, BYTES, 7);
	assert_memory_equal(a, b, BYTES);
	app_pattern_fill(b, BYTES, 8);
	assert_memory_not_equal(a, b, BYTES);
	struct app_mismatch m;
	assert_int_equal(app_pattern_verify(a, 0, BYTES, 7, &m), 0);
	a[12345] ^= 0x10;
	assert_int_equal(app_pattern_verify(a, 0, BYTES, 7, &m), 1);
	assert_int_equal(m.offset, 12345);
	assert_int_equal(m.expected ^ m.got, 0x10ull << (8 * (12345 % 8)));
	assert_int_equal(app_pattern_verify(a, 12352, BYTES - 12352, 7, &m), 0);   /* range after it */
	assert_int_equal(app_pattern_verify(a, 0, BYTES, 8, &m), BYTES / 8);       /* another chunk's pattern */
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_spec),
		cmocka_unit_test(test_semicolons),
		cmocka_unit_test(test_empty_is_idle),
		cmocka_unit_test(test_errors_leave_output_alone),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_pattern_detects_one_flip),
	};
	return cmocka_run_group_tests_name("app_spec", tests, NULL, NULL);
}
