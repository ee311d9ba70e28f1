/*
 * spec.c - parse the appliance's pattern spec (grammar in spec.h). Pure
 * logic: sizes through the command line's own parser, so "256M" means the
 * same everywhere.
 */
#include <stdio.h>
#include <string.h>
#include "app/spec.h"
#include "kernel/lib/cmdline.h"

#define SEPS ",;"   /* step separators */

const char *app_op_name(enum app_op op)
{
	switch (op) {
	case APP_OP_GROW:   return "grow";
	case APP_OP_SHRINK: return "shrink";
	case APP_OP_HOLD:   return "hold";
	case APP_OP_CHECK:  return "check";
	case APP_OP_FILL:   return "fill";
	}
	return "?";
}

int app_parse_duration(const char *s, uint64_t *ns)
{
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	uint64_t unit;
	if (!strcmp(p, "ms"))
		unit = 1000000ull;
	else if (!strcmp(p, "s") || !*p)
		unit = 1000000000ull;
	else if (!strcmp(p, "m"))
		unit = 60 * 1000000000ull;
	else if (!strcmp(p, "h"))
		unit = 3600 * 1000000000ull;
	else
		return -1;
	if (v > APP_HOLD_MAX_NS / unit)
		return -1;
	*ns = v * unit;
	return 0;
}

static int fail(char *why, size_t len, const char *fmt, const char *a)
{
	snprintf(why, len, fmt, a);
	return -1;
}

int app_spec_parse(const char *spec, struct app_program *out, char *why, size_t why_len)
{
	struct app_program p;
	memset(&p, 0, sizeof p);
	if (!spec)
		spec = "";
	if (strlen(spec) >= sizeof p.text)
		return fail(why, why_len, "%s", "longer than 127 characters");
	strcpy(p.text, spec);
	if (!*spec || !strcmp(spec, "none")) {
		*out = p;
		return 0;
	}

	/* Steps are separated by ',' or ';' - the latter because QEMU's option
	 * syntax splits `-fw_cfg ...,string=` at every comma (doubling them
	 * works too). strtok_r skips empty fields; do not let "grow:1M,,check"
	 * pass silently. */
	size_t len = strlen(spec);
	if (strchr(SEPS, spec[0]) || strchr(SEPS, spec[len - 1]) || strstr(spec, ",,") ||
	    strstr(spec, ";;") || strstr(spec, ",;") || strstr(spec, ";,"))
		return fail(why, why_len, "%s", "empty step (two separators, or one at an end)");
	char buf[APP_SPEC_MAX];
	strcpy(buf, spec);
	char *save = NULL;
	for (char *tok = strtok_r(buf, SEPS, &save); tok; tok = strtok_r(NULL, SEPS, &save)) {
		if (p.loop)
			return fail(why, why_len, "'loop' must be the last step (found '%s' after it)", tok);
		char *arg = strchr(tok, ':');
		if (arg)
			*arg++ = 0;
		if (!strcmp(tok, "loop")) {
			if (arg)
				return fail(why, why_len, "'%s' takes no argument", "loop");
			p.loop = 1;
			continue;
		}
		if (p.n == APP_MAX_STEPS)
			return fail(why, why_len, "more than %s steps", "16");
		struct app_step *st = &p.step[p.n];
		if (!strcmp(tok, "grow") || !strcmp(tok, "shrink")) {
			st->op = tok[0] == 'g' ? APP_OP_GROW : APP_OP_SHRINK;
			if (!arg || !*arg)
				return fail(why, why_len, "'%s' needs a size, like grow:64M", tok);
			if (st->op == APP_OP_SHRINK && !strcmp(arg, "all"))
				st->arg = APP_SHRINK_ALL;
			else if (cmdline_parse_size(arg, &st->arg) || st->arg == 0)
				return fail(why, why_len, "bad size '%s' (expected a size like 64M, above 0)", arg);
		} else if (!strcmp(tok, "hold")) {
			st->op = APP_OP_HOLD;
			if (!arg || app_parse_duration(arg, &st->arg))
				return fail(why, why_len, "bad duration '%s' (expected like 500ms, 5s, 2m, 1h)",
				            arg ? arg : "");
		} else if (!strcmp(tok, "check")) {
			st->op = APP_OP_CHECK;
			if (arg)
				return fail(why, why_len, "'%s' takes no argument", "check");
		} else if (!strcmp(tok, "fill")) {
			st->op = APP_OP_FILL;
			st->arg = 0;
			if (arg && cmdline_parse_size(arg, &st->arg))
				return fail(why, why_len, "bad reserve size '%s' for fill", arg);
		} else {
			return fail(why, why_len, "unknown step '%s' (grow, shrink, hold, check, fill, loop)", tok);
		}
		p.n++;
	}
	if (p.n == 0)
		return fail(why, why_len, "%s", p.loop ? "'loop' alone does nothing" : "no steps");
	*out = p;
	return 0;
}
