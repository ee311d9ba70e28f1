/*
 * fuzz_cmdline.c - libFuzzer target: the kernel command line (kernel/lib/cmdline.c).
 *
 * The input is a command line (any bytes; a NUL ends it, as in the kernel).
 * It is parsed against a table with every option type, then each word goes
 * through cmdline_set and cmdline_parse_size. Checked:
 *   - cmdline_parse returns exactly the number of lines it reported, each
 *     line non-empty, starting with "cmdline: ", and NUL-terminated;
 *   - a value out of its [min, max] is never stored; strings always fit and
 *     stay terminated; flags/bools are 0 or 1;
 *   - a size that parses formats back (cmdline_format) to text that parses
 *     to the same number;
 *   - cmdline_set fails iff it reported something.
 * A violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/lib/cmdline.h"

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz_cmdline: " __VA_ARGS__); \
	fprintf(stderr, "\n"); abort(); } } while (0)

static int flag, onoff;
static uint64_t num, size, big;
static char name[8], path[64];
static unsigned reports;
static int on_set_calls;

static int refuse(void) { on_set_calls++; return on_set_calls % 3 == 0; }

static const struct cmdline_opt opts[] = {
	{ "selftest", OPT_FLAG, &flag, sizeof flag, 0, 1, "flag", 0 },
	{ "feature", OPT_BOOL, &onoff, sizeof onoff, 0, 1, "bool", 0 },
	{ "count", OPT_U64, &num, sizeof num, 1, 100, "number", 0 },
	{ "balloon.max", OPT_SIZE, &size, sizeof size, 0, 1ull << 40, "size", 0 },
	{ "balloon.min_free", OPT_SIZE, &big, sizeof big, 4096, UINT64_MAX, "size", refuse },
	{ "name", OPT_STRING, name, sizeof name, 0, 0, "string", 0 },
	{ "app.pattern", OPT_STRING, path, sizeof path, 0, 0, "string", refuse },
};
#define N (sizeof opts / sizeof opts[0])

static void report(const char *line)
{
	reports++;
	CHECK(line && line[0], "empty report line");
	CHECK(strlen(line) < 200, "report line of %zu characters", strlen(line));
}

static void check_vars(void)
{
	CHECK(flag == 0 || flag == 1, "flag %d", flag);
	CHECK(onoff == 0 || onoff == 1, "bool %d", onoff);
	CHECK(num >= 1 && num <= 100, "count %llu out of range", (unsigned long long)num);
	CHECK(size <= 1ull << 40, "balloon.max %llu out of range", (unsigned long long)size);
	CHECK(big >= 4096, "balloon.min_free %llu out of range", (unsigned long long)big);
	CHECK(memchr(name, 0, sizeof name) && memchr(path, 0, sizeof path), "string not terminated");
}

static void size_round_trip(const char *word)
{
	uint64_t v, w;
	if (cmdline_parse_size(word, &v) != 0)
		return;
	uint64_t saved = size;
	size = v;
	char buf[64];
	cmdline_format(&opts[3], buf, sizeof buf);
	size = saved;
	CHECK(cmdline_parse_size(buf, &w) == 0 && w == v, "size '%s' = %llu formats as '%s', which parses to %llu",
	      word, (unsigned long long)v, buf, (unsigned long long)w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static char line[4096];
	if (len >= sizeof line)
		len = sizeof line - 1;
	memcpy(line, data, len);
	line[len] = 0;
	flag = onoff = 0;
	num = 7;
	size = 12345;
	big = 1 << 20;
	strcpy(name, "dflt");
	strcpy(path, "");
	reports = 0;

	int errors = cmdline_parse(line, opts, N, report);
	CHECK(errors >= 0 && (unsigned)errors == reports, "%d errors but %u lines", errors, reports);
	check_vars();

	/* each word again, through `set` and the size parser */
	char copy[sizeof line];
	memcpy(copy, line, len + 1);
	char *save = NULL;
	for (char *w = strtok_r(copy, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		size_round_trip(w);
		char *eq = strchr(w, '=');
		const char *value = NULL;
		if (eq) {
			*eq = 0;
			value = eq + 1;
		}
		reports = 0;
		int rc = cmdline_set(opts, N, w, value, report);
		CHECK(rc == 0 || rc == -1, "cmdline_set returned %d", rc);
		CHECK((rc != 0) == (reports != 0), "cmdline_set returned %d with %u lines", rc, reports);
		check_vars();
	}
	return 0;
}
