/* test_cmdline.c - the command-line parser: values, errors, defaults kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "kernel/lib/cmdline.h"

static int flag, onoff;
static uint64_t num, size;
static char name[8];
static char last[256];
static int reports;

static const struct cmdline_opt opts[] = {
	{ "selftest", OPT_FLAG, &flag, sizeof flag, 0, 1, "flag", 0 },
	{ "feature", OPT_BOOL, &onoff, sizeof onoff, 0, 1, "bool", 0 },
	{ "count", OPT_U64, &num, sizeof num, 1, 100, "number", 0 },
	{ "balloon.max", OPT_SIZE, &size, sizeof size, 0, 1ull << 40, "size", 0 },
	{ "name", OPT_STRING, name, sizeof name, 0, 0, "string", 0 },
};
#define N (sizeof opts / sizeof opts[0])

static void report(const char *line) { reports++; snprintf(last, sizeof last, "%s", line); }

static int setup(void **state)
{
	flag = 0; onoff = 0; num = 7; size = 12345; strcpy(name, "dflt");
	reports = 0; last[0] = 0;
	return 0;
}

static void test_empty_and_null(void **state)
{
	assert_int_equal(cmdline_parse("", opts, N, report), 0);
	assert_int_equal(cmdline_parse(NULL, opts, N, report), 0);
	assert_int_equal(cmdline_parse("   \t \n", opts, N, report), 0);
	assert_int_equal(reports, 0);
	assert_int_equal(num, 7);
}

static void test_all_types(void **state)
{
	assert_int_equal(cmdline_parse(" selftest feature=off count=0x20 balloon.max=512M name=abc\n", opts, N, report), 0);
	assert_int_equal(flag, 1);
	assert_int_equal(onoff, 0);
	assert_int_equal(num, 32);
	assert_int_equal(size, 512ull << 20);
	assert_string_equal(name, "abc");
	assert_int_equal(cmdline_parse("feature", opts, N, report), 0);
	assert_int_equal(onoff, 1);
}

static void test_sizes(void **state)
{
	uint64_t v;
	assert_int_equal(cmdline_parse_size("0", &v), 0); assert_int_equal(v, 0);
	assert_int_equal(cmdline_parse_size("4096", &v), 0); assert_int_equal(v, 4096);
	assert_int_equal(cmdline_parse_size("2k", &v), 0); assert_int_equal(v, 2048);
	assert_int_equal(cmdline_parse_size("1G", &v), 0); assert_int_equal(v, 1ull << 30);
	assert_int_equal(cmdline_parse_size("3MiB", &v), 0); assert_int_equal(v, 3ull << 20);
	assert_int_equal(cmdline_parse_size("1T", &v), 0); assert_int_equal(v, 1ull << 40);
	assert_int_equal(cmdline_parse_size("", &v), -1);
	assert_int_equal(cmdline_parse_size("M", &v), -1);
	assert_int_equal(cmdline_parse_size("-1", &v), -1);
	assert_int_equal(cmdline_parse_size("12X", &v), -1);
	assert_int_equal(cmdline_parse_size("1.5G", &v), -1);
	assert_int_equal(cmdline_parse_size("99999999999999999999", &v), -1);  /* overflow */
	assert_int_equal(cmdline_parse_size("17179869184G", &v), -1);           /* 2^34 G overflows */
}

static void test_unknown_option_reported_and_rest_applied(void **state)
{
	assert_int_equal(cmdline_parse("bogus count=9 alsobogus=1", opts, N, report), 2);
	assert_int_equal(reports, 2);
	assert_non_null(strstr(last, "unknown option 'alsobogus'"));
	assert_int_equal(num, 9);
}

static void test_malformed_values_keep_defaults(void **state)
{
	assert_int_equal(cmdline_parse("count=abc", opts, N, report), 1);
	assert_non_null(strstr(last, "bad value 'abc' for 'count'"));
	assert_int_equal(cmdline_parse("count=101", opts, N, report), 1);
	assert_non_null(strstr(last, "out of range"));
	assert_int_equal(cmdline_parse("count=0", opts, N, report), 1);
	assert_int_equal(cmdline_parse("count=", opts, N, report), 1);
	assert_int_equal(cmdline_parse("count", opts, N, report), 1);
	assert_int_equal(cmdline_parse("count=5x", opts, N, report), 1);
	assert_int_equal(num, 7);
	assert_int_equal(cmdline_parse("balloon.max=lots", opts, N, report), 1);
	assert_non_null(strstr(last, "a size like 512M"));
	assert_int_equal(size, 12345);
	assert_int_equal(cmdline_parse("feature=maybe", opts, N, report), 1);
	assert_int_equal(onoff, 0);
	assert_int_equal(cmdline_parse("selftest=1", opts, N, report), 1);
	assert_int_equal(flag, 0);
	assert_int_equal(cmdline_parse("name=waytoolong", opts, N, report), 1);
	assert_string_equal(name, "dflt");
	assert_int_equal(cmdline_parse("name", opts, N, report), 1);
	assert_string_equal(name, "dflt");
}

static void test_overlong_word(void **state)
{
	char line[600];
	memset(line, 'a', sizeof line - 1);
	line[sizeof line - 1] = 0;
	assert_int_equal(cmdline_parse(line, opts, N, report), 1);
	assert_non_null(strstr(last, "too long"));
}

static void test_set_at_run_time(void **state)
{
	assert_int_equal(cmdline_set(opts, N, "count", "42", report), 0);
	assert_int_equal(num, 42);
	assert_int_equal(cmdline_set(opts, N, "count", "x", report), -1);
	assert_int_equal(num, 42);
	assert_int_equal(cmdline_set(opts, N, "nope", "1", report), -1);
	assert_non_null(strstr(last, "unknown option 'nope'"));
	assert_int_equal(cmdline_set(opts, N, "selftest", "1", report), -1);
	assert_non_null(strstr(last, "boot-time flag"));
}

static void test_format(void **state)
{
	char buf[32];
	size = 512ull << 20;
	cmdline_format(&opts[3], buf, sizeof buf);
	assert_string_equal(buf, "512M");
	size = 3ull << 30;
	cmdline_format(&opts[3], buf, sizeof buf);
	assert_string_equal(buf, "3G");
	size = 1000;
	cmdline_format(&opts[3], buf, sizeof buf);
	assert_string_equal(buf, "1000");
	onoff = 1;
	cmdline_format(&opts[1], buf, sizeof buf);
	assert_string_equal(buf, "on");
}

/* Console arguments (`compact N`): a whole number or nothing; "-1" used to
 * wrap to 2^64-1 through strtoull, a huge number to saturate. */
static void test_parse_number(void **state)
{
	(void)state;
	uint64_t v = 7;
	assert_int_equal(cmdline_parse_number("12", &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(cmdline_parse_number("0x10", &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(cmdline_parse_number("18446744073709551615", &v), 0);
	v = 7;
	assert_int_equal(cmdline_parse_number("-1", &v), -1);
	assert_int_equal(cmdline_parse_number("18446744073709551616", &v), -1);
	assert_int_equal(cmdline_parse_number("99999999999999999999999", &v), -1);
	assert_int_equal(cmdline_parse_number("12abc", &v), -1);
	assert_int_equal(cmdline_parse_number("", &v), -1);
	assert_int_equal(cmdline_parse_number(" 5", &v), -1);
	assert_int_equal(cmdline_parse_number("5M", &v), -1);
	assert_int_equal(v, 7);                    /* nothing changed on an error */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_empty_and_null, setup),
		cmocka_unit_test_setup(test_all_types, setup),
		cmocka_unit_test_setup(test_sizes, setup),
		cmocka_unit_test_setup(test_unknown_option_reported_and_rest_applied, setup),
		cmocka_unit_test_setup(test_malformed_values_keep_defaults, setup),
		cmocka_unit_test_setup(test_overlong_word, setup),
		cmocka_unit_test_setup(test_set_at_run_time, setup),
		cmocka_unit_test_setup(test_format, setup),
		cmocka_unit_test_setup(test_parse_number, setup),
	};
	return cmocka_run_group_tests_name("cmdline", tests, NULL, NULL);
}
