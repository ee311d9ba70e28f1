/*
 * cmdline.c - command-line parsing (contract in cmdline.h). Pure logic: the
 * host unit tests drive it with their own option tables.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/lib/cmdline.h"
#include "kernel/lib/fmt.h"

static void reportf(cmdline_report_fn report, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reportf(cmdline_report_fn report, const char *fmt, ...)
{
	char line[200];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (report)
		report(line);
}

/* Digits only (decimal or 0x hex), no sign, no overflow. */
static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	uint64_t v = 0;
	const char *p = s;
	for (;; p++) {
		int d;
		if (*p >= '0' && *p <= '9') d = *p - '0';
		else if (base == 16 && isxdigit((unsigned char)*p)) d = tolower((unsigned char)*p) - 'a' + 10;
		else break;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (p == s)
		return -1;
	*end = p;
	*out = v;
	return 0;
}

int cmdline_parse_number(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	if (parse_u64(s, &end, &v) || *end)
		return -1;
	*out = v;
	return 0;
}

int cmdline_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	if (parse_u64(s, &end, &v))
		return -1;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: return -1;
	}
	if (shift && (*end == 'i' || *end == 'I'))   /* accept 512MiB too */
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "1", "on", "yes", "true" };
	static const char *const no[] = { "0", "off", "no", "false" };
	for (unsigned i = 0; i < 4; i++) {
		if (!strcmp(s, yes[i])) { *out = 1; return 0; }
		if (!strcmp(s, no[i])) { *out = 0; return 0; }
	}
	return -1;
}

static const struct cmdline_opt *find(const struct cmdline_opt *opts, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(opts[i].name, name))
			return &opts[i];
	return NULL;
}

/* Check and store one value; on any error nothing is stored. */
static int apply(const struct cmdline_opt *o, const char *value, cmdline_report_fn report)
{
	switch (o->type) {
	case OPT_FLAG:
		if (value) {
			reportf(report, "cmdline: option '%s' takes no value (got '%s'); ignored", o->name, value);
			return -1;
		}
		*(int *)o->var = 1;
		return 0;
	case OPT_BOOL: {
		int b = 1;
		if (value && parse_bool(value, &b)) {
			reportf(report, "cmdline: bad value '%s' for '%s': expected on or off; kept default", value, o->name);
			return -1;
		}
		*(int *)o->var = b;
		return 0;
	}
	case OPT_U64:
	case OPT_SIZE: {
		uint64_t v;
		const char *end;
		int bad = !value || !*value;
		if (!bad && o->type == OPT_SIZE)
			bad = cmdline_parse_size(value, &v) != 0;
		else if (!bad)
			bad = parse_u64(value, &end, &v) != 0 || *end != 0;
		if (bad) {
			reportf(report, "cmdline: bad value '%s' for '%s': expected %s; kept default",
			        value ? value : "", o->name,
			        o->type == OPT_SIZE ? "a size like 512M" : "a number");
			return -1;
		}
		if (v < o->min || v > o->max) {
			reportf(report, "cmdline: value '%s' for '%s' out of range [%llu, %llu]; kept default",
			        value, o->name, (unsigned long long)o->min, (unsigned long long)o->max);
			return -1;
		}
		*(uint64_t *)o->var = v;
		return 0;
	}
	case OPT_STRING: {
		if (!value) {
			reportf(report, "cmdline: option '%s' needs a value (%s=...); kept default", o->name, o->name);
			return -1;
		}
		size_t len = strlen(value);
		if (len + 1 > o->var_size) {
			reportf(report, "cmdline: value for '%s' longer than %zu characters; kept default",
			        o->name, o->var_size - 1);
			return -1;
		}
		memcpy(o->var, value, len + 1);
		return 0;
	}
	}
	return -1;
}

int cmdline_parse(const char *line, const struct cmdline_opt *opts, size_t n,
                  cmdline_report_fn report)
{
	int errors = 0;
	const char *p = line ? line : "";
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		char word[256];
		size_t len = (size_t)(p - start);
		if (len >= sizeof word) {
			reportf(report, "cmdline: word of %zu characters is too long; ignored", len);
			errors++;
			continue;
		}
		memcpy(word, start, len);
		word[len] = 0;
		char *eq = strchr(word, '=');
		const char *value = NULL;
		if (eq) {
			*eq = 0;
			value = eq + 1;
		}
		const struct cmdline_opt *o = find(opts, n, word);
		if (!o) {
			reportf(report, "cmdline: unknown option '%s'; ignored", word);
			errors++;
			continue;
		}
		if (apply(o, value, report))
			errors++;
	}
	return errors;
}

int cmdline_set(const struct cmdline_opt *opts, size_t n, const char *name,
                const char *value, cmdline_report_fn report)
{
	const struct cmdline_opt *o = find(opts, n, name);
	if (!o) {
		reportf(report, "set: unknown option '%s' (try 'set' for the list)", name);
		return -1;
	}
	if (o->type == OPT_FLAG) {
		reportf(report, "set: '%s' is a boot-time flag and cannot be changed at run time", name);
		return -1;
	}
	if (apply(o, value, report))
		return -1;
	if (o->on_set && o->on_set()) {
		reportf(report, "set: '%s' accepted but could not take effect now", name);
		return -1;
	}
	return 0;
}

void cmdline_format(const struct cmdline_opt *o, char *buf, size_t len)
{
	switch (o->type) {
	case OPT_FLAG:
	case OPT_BOOL:
		ksnprintf(buf, len, "%s", *(int *)o->var ? "on" : "off");
		break;
	case OPT_U64:
		ksnprintf(buf, len, "%llu", (unsigned long long)*(uint64_t *)o->var);
		break;
	case OPT_SIZE: {
		uint64_t v = *(uint64_t *)o->var;
		if (v && !(v & ((1ull << 30) - 1))) ksnprintf(buf, len, "%lluG", (unsigned long long)(v >> 30));
		else if (v && !(v & ((1ull << 20) - 1))) ksnprintf(buf, len, "%lluM", (unsigned long long)(v >> 20));
		else if (v && !(v & ((1ull << 10) - 1))) ksnprintf(buf, len, "%lluK", (unsigned long long)(v >> 10));
		else ksnprintf(buf, len, "%llu", (unsigned long long)v);
		break;
	}
	case OPT_STRING:
		ksnprintf(buf, len, "%s", (const char *)o->var);
		break;
	}
}
