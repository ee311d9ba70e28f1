/*
 * spec.h - the appliance's memory pattern: a comma list of steps.
 *
 *   grow:SIZE      allocate and fill chunks until SIZE more is held
 *   shrink:SIZE    free chunks (chosen pseudo-randomly) until SIZE less is held;
 *                  shrink:all frees everything
 *   hold:DURATION  keep what is held for a while (500ms, 5s, 2m, 1h; plain = s)
 *   check          verify every held byte (and the cache)
 *   fill[:RESERVE] allocate until only RESERVE is free (when the kernel can
 *                  tell), else until an allocation fails and then give RESERVE
 *                  back; plain fill: until an allocation fails (the OOM path)
 *   loop           start again from the first step (only as the last step)
 *
 * e.g. "grow:256M,hold:5s,shrink:128M,check,loop". Sizes take K/M/G/T
 * (binary, like the command line) and round up to whole chunks when run.
 *
 * Contract: app_spec_parse() fills *out only on success (0). On error it
 * returns -1, leaves *out unchanged and writes one reason (no newline) to
 * `why`. The empty string (or "none") is a valid, empty pattern: idle.
 */
#ifndef APP_SPEC_H
#define APP_SPEC_H

#include <stddef.h>
#include <stdint.h>

enum app_op { APP_OP_GROW, APP_OP_SHRINK, APP_OP_HOLD, APP_OP_CHECK, APP_OP_FILL };

#define APP_MAX_STEPS   16
#define APP_SPEC_MAX    128          /* characters, including the NUL */
#define APP_SHRINK_ALL  UINT64_MAX   /* shrink:all */
#define APP_HOLD_MAX_NS (7ull * 24 * 3600 * 1000000000ull)   /* a week */

struct app_step {
	enum app_op op;
	uint64_t arg;     /* bytes (grow, shrink, fill reserve) or ns (hold) */
};

struct app_program {
	struct app_step step[APP_MAX_STEPS];
	unsigned n;
	int loop;
	char text[APP_SPEC_MAX];   /* the spec as given, for status lines */
};

int app_spec_parse(const char *spec, struct app_program *out, char *why, size_t why_len);
/* "500ms", "5s", "2m", "1h", "7" (seconds) -> ns; 0 on success, -1 if malformed. */
int app_parse_duration(const char *s, uint64_t *ns);
const char *app_op_name(enum app_op op);

#endif
