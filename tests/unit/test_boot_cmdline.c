/*
 * test_boot_cmdline.c - boot/cmdline_text.c: what \cmdline.txt or the fw_cfg
 * blob becomes in boot_info->cmdline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/cmdline_text.h"

static char out[BOOT_CMDLINE_MAX];
static uint32_t out_len;
static uint64_t bad;

/* Clean an exact-size heap copy (ASan sees any over-read). */
static enum cmdline_text_err clean(const void *src, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, src, len);
	memset(out, 'Z', sizeof out);   /* stale contents must not leak through */
	enum cmdline_text_err err = cmdline_text_clean(copy, len, out, &out_len, &bad);
	free(copy);
	return err;
}

static enum cmdline_text_err clean_str(const char *s)
{
	return clean(s, strlen(s));
}

static void expect_ok(const char *in, const char *want)
{
	assert_int_equal(clean_str(in), CMDLINE_TEXT_OK);
	assert_string_equal(out, want);
	assert_int_equal(out_len, strlen(want));
}

static void test_plain_and_trim(void **state)
{
	(void)state;
	expect_ok("selftest", "selftest");
	expect_ok("selftest\n", "selftest");
	expect_ok("selftest\r\n", "selftest");
	expect_ok("  \t a=1 b=2 \n\n\n", "a=1 b=2");
	expect_ok("", "");
	expect_ok(" \r\n\t ", "");
}

static void test_inner_whitespace_becomes_spaces(void **state)
{
	(void)state;
	expect_ok("a=1\nb=2\r\nc\td", "a=1 b=2  c d");
}

static void test_nul_ends_input(void **state)
{
	(void)state;
	assert_int_equal(clean("hello\0garbage\x01", 14), CMDLINE_TEXT_OK);
	assert_string_equal(out, "hello");
	assert_int_equal(out_len, 5);
	assert_int_equal(clean("\0abc", 4), CMDLINE_TEXT_OK);
	assert_string_equal(out, "");
}

static void test_bom_skipped(void **state)
{
	(void)state;
	expect_ok("\xef\xbb\xbfselftest\n", "selftest");
	/* A BOM anywhere else is non-ASCII. */
	assert_int_equal(clean_str("a\xef\xbb\xbf"), CMDLINE_TEXT_BINARY);
}

static void test_binary_refused(void **state)
{
	(void)state;
	assert_int_equal(clean_str("abc\x01" "def"), CMDLINE_TEXT_BINARY);
	assert_int_equal(bad, 3);
	assert_string_equal(out, "");
	assert_int_equal(out_len, 0);
	assert_int_equal(clean_str("\x7f"), CMDLINE_TEXT_BINARY);
	assert_int_equal(clean_str("caf\xc3\xa9"), CMDLINE_TEXT_BINARY);
	assert_int_equal(bad, 3);
	assert_int_equal(clean_str("a\x1b[31m"), CMDLINE_TEXT_BINARY);
}

static void test_length_limit(void **state)
{
	(void)state;
	char buf[BOOT_CMDLINE_MAX + 8];
	memset(buf, 'x', sizeof buf);

	/* Exactly BOOT_CMDLINE_MAX - 1 bytes: fits, with its NUL. */
	assert_int_equal(clean(buf, BOOT_CMDLINE_MAX - 1), CMDLINE_TEXT_OK);
	assert_int_equal(out_len, BOOT_CMDLINE_MAX - 1);
	assert_int_equal(strlen(out), BOOT_CMDLINE_MAX - 1);

	/* Plus trailing newlines: still fits (they are trimmed first). */
	buf[BOOT_CMDLINE_MAX - 1] = '\r';
	buf[BOOT_CMDLINE_MAX] = '\n';
	assert_int_equal(clean(buf, BOOT_CMDLINE_MAX + 1), CMDLINE_TEXT_OK);
	assert_int_equal(out_len, BOOT_CMDLINE_MAX - 1);

	/* One byte more: refused, not truncated. */
	memset(buf, 'x', sizeof buf);
	assert_int_equal(clean(buf, BOOT_CMDLINE_MAX), CMDLINE_TEXT_TOO_LONG);
	assert_string_equal(out, "");
	assert_int_equal(out_len, 0);
	assert_int_equal(clean(buf, sizeof buf), CMDLINE_TEXT_TOO_LONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_trim),
		cmocka_unit_test(test_inner_whitespace_becomes_spaces),
		cmocka_unit_test(test_nul_ends_input),
		cmocka_unit_test(test_bom_skipped),
		cmocka_unit_test(test_binary_refused),
		cmocka_unit_test(test_length_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
