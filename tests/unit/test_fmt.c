/*
 * test_fmt.c - kvsnprintf (kernel/lib/fmt.c) against the host C library:
 * every integer conversion with every combination of flags, widths,
 * precisions and sizes over edge values; strings, characters, pointers,
 * star arguments; truncation at every buffer size; and what it does
 * differently on purpose (NULL pointers, conversions it does not know).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "kernel/lib/fmt.h"

#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
#pragma GCC diagnostic ignored "-Wformat"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
#pragma GCC diagnostic ignored "-Wformat-overflow"

static unsigned compared;

/* Both formatters, one format and its arguments: the same text and length. */
#define SAME(fmtstr, ...) do { \
	char want[512], got[512]; \
	int wn = snprintf(want, sizeof want, fmtstr, __VA_ARGS__); \
	int gn = ksnprintf(got, sizeof got, fmtstr, __VA_ARGS__); \
	if (wn != gn || strcmp(want, got) != 0) \
		fail_msg("format \"%s\": libc \"%s\" (%d), ours \"%s\" (%d)", fmtstr, want, wn, got, gn); \
	compared++; \
} while (0)

static const char *const flag_sets[] = { "", "-", "0", "#", "+", " ", "-#", "0#", "+0", " 0", "-+", "-0", "#+ 0-" };
static const char *const widths[] = { "", "1", "5", "24" };
static const char *const precs[] = { "", ".", ".0", ".1", ".4", ".30" };

static void build(char *f, size_t n, const char *flags, const char *w, const char *p, const char *size, char conv)
{
	snprintf(f, n, "[%%%s%s%s%s%c]", flags, w, p, size, conv);
}

static void test_integers(void **state)
{
	(void)state;
	static const long long sv[] = { 0, 1, -1, 7, 8, 42, -42, 255, 4096, INT_MAX, INT_MIN,
	                                LLONG_MAX, LLONG_MIN, 0x7fffffffffLL, -1234567890123LL };
	static const char convs[] = "diuxXo";
	char f[64];
	for (size_t fi = 0; fi < sizeof flag_sets / sizeof *flag_sets; fi++)
		for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
			for (size_t pi = 0; pi < sizeof precs / sizeof *precs; pi++)
				for (const char *c = convs; *c; c++)
					for (size_t vi = 0; vi < sizeof sv / sizeof *sv; vi++) {
						long long v = sv[vi];
/* one size: the format with that length modifier, the value cast to its type */
#define SIZED(mod, val) do { \
	build(f, sizeof f, flag_sets[fi], widths[wi], precs[pi], mod, *c); \
	SAME(f, val); \
} while (0)
						SIZED("ll", v);
						SIZED("l", (long)v);
						SIZED("", (int)v);
						SIZED("h", (int)v);
						SIZED("hh", (int)v);
						SIZED("z", (size_t)v);
						SIZED("j", (intmax_t)v);
						SIZED("t", (ptrdiff_t)v);
#undef SIZED
					}
	assert_true(compared > 10000);
}

static void test_strings_chars_pointers(void **state)
{
	(void)state;
	static const char *const strs[] = { "", "a", "balloon", "a string longer than twenty-four characters" };
	static const char *const sflags[] = { "", "-" };
	char f[64];
	for (size_t fi = 0; fi < 2; fi++)
		for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
			for (size_t pi = 0; pi < sizeof precs / sizeof *precs; pi++)
				for (size_t si = 0; si < sizeof strs / sizeof *strs; si++) {
					build(f, sizeof f, sflags[fi], widths[wi], precs[pi], "", 's');
					SAME(f, strs[si]);
				}
	for (size_t fi = 0; fi < 2; fi++)
		for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
			build(f, sizeof f, sflags[fi], widths[wi], "", "", 'c');
			SAME(f, 'x');
			build(f, sizeof f, sflags[fi], widths[wi], "", "", 'p');
			SAME(f, (void *)f);
			SAME(f, (void *)(uintptr_t)0xffffffff80001000ull);
		}
	SAME("%% %d%%", 5);
	SAME("%*d|%-*d|%*d", 6, 42, 6, 42, -6, 42);
	SAME("%.*s|%.*s|%.*d", 3, "balloon", -1, "balloon", 5, 42);
	SAME("%s=%llu %s %#llx %u/%u %016lx", "total", 1024ull, "x", 0xdeadull, 3u, 4u, 0xabcUL);
	SAME("plain text, no conversions%s", "");
}

/* What it does differently from glibc, on purpose (fmt.h). */
static void test_documented_differences(void **state)
{
	(void)state;
	char b[64];
	assert_int_equal(ksnprintf(b, sizeof b, "%p", (void *)0), 3);
	assert_string_equal(b, "0x0");                     /* glibc: (nil) */
	ksnprintf(b, sizeof b, "[%5p]", (void *)0);
	assert_string_equal(b, "[  0x0]");
	ksnprintf(b, sizeof b, "%s", (const char *)NULL);
	assert_string_equal(b, "(null)");
	/* unknown conversions are shown, and take no argument */
	ksnprintf(b, sizeof b, "a %f b %d", 7);
	assert_string_equal(b, "a %f b 7");
	ksnprintf(b, sizeof b, "%5.2Lf|%n|%d", 9);
	assert_string_equal(b, "%5.2Lf|%n|9");
	/* a format that ends inside a conversion */
	assert_int_equal(ksnprintf(b, sizeof b, "50%"), 3);
	assert_string_equal(b, "50%");
	assert_int_equal(ksnprintf(b, sizeof b, "x%-0"), 4);
	assert_string_equal(b, "x%-0");
}

/* Every buffer size: the output is the full text cut to n - 1 bytes, always
 * terminated, nothing written past n, and the full length returned. */
static void test_truncation(void **state)
{
	(void)state;
	const char *fmt = "mm: %llu MiB managed, %s, %#x, %-6d|";
	char full[128];
	int len = snprintf(full, sizeof full, fmt, 1017ull, "ok", 0xbeef, -3);
	for (size_t n = 0; n <= (size_t)len + 2; n++) {
		char b[160];
		memset(b, 0x5a, sizeof b);
		int r = ksnprintf(b, n, fmt, 1017ull, "ok", 0xbeef, -3);
		assert_int_equal(r, len);
		if (n) {
			size_t keep = n - 1 < (size_t)len ? n - 1 : (size_t)len;
			assert_memory_equal(b, full, keep);
			assert_int_equal(b[keep], '\0');
		}
		for (size_t i = n; i < sizeof b; i++)
			assert_int_equal((unsigned char)b[i], 0x5a);
	}
	assert_int_equal(ksnprintf(NULL, 0, "%d", 12345), 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_strings_chars_pointers),
		cmocka_unit_test(test_documented_differences),
		cmocka_unit_test(test_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
