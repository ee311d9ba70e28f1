/*
 * cmdline.h - the kernel command line: `name`, `name=value`, space separated.
 *
 * Options are declared where they are used (CMDLINE_OPT_* in any file) and
 * collected from a linker section; the parser itself takes an explicit table
 * so the host tests drive it directly.
 *
 * Contract: cmdline_parse() never stops at an error and never changes a
 * variable from a malformed value: each unknown option or bad value yields one
 * clear line through the `report` callback, the option keeps its default, and
 * the return value is the number of errors. cmdline_set() is the same check
 * for one name/value pair (the console's `set` command).
 *
 * Values: OPT_FLAG takes no value (`selftest`), OPT_BOOL takes on/off/1/0/
 * yes/no/true/false, OPT_U64 a decimal or 0x number, OPT_SIZE a number with an
 * optional K/M/G/T suffix (binary units; plain numbers are bytes), OPT_STRING
 * anything up to the variable's size. Numbers are checked against [min, max].
 */
#ifndef KERNEL_CMDLINE_H
#define KERNEL_CMDLINE_H

#include <stddef.h>
#include <stdint.h>

enum cmdline_type { OPT_FLAG, OPT_BOOL, OPT_U64, OPT_SIZE, OPT_STRING };

struct cmdline_opt {
	const char *name;
	enum cmdline_type type;
	void *var;          /* int for FLAG/BOOL, uint64_t for U64/SIZE, char[] for STRING */
	size_t var_size;    /* STRING: buffer size including NUL */
	uint64_t min, max;  /* U64/SIZE: inclusive bounds */
	const char *help;
	int (*on_set)(void); /* optional: called after a run-time `set` changed it */
};

typedef void (*cmdline_report_fn)(const char *line);

int cmdline_parse(const char *line, const struct cmdline_opt *opts, size_t n,
                  cmdline_report_fn report);
int cmdline_set(const struct cmdline_opt *opts, size_t n, const char *name,
                const char *value, cmdline_report_fn report);
/* Format the current value of `o` into buf (for `set` with no value and help). */
void cmdline_format(const struct cmdline_opt *o, char *buf, size_t len);
/* Parse a size like 512M; 0 on success, -1 if malformed or out of range. */
int cmdline_parse_size(const char *s, uint64_t *out);
/* Parse a whole string as a number (decimal or 0x hex; no sign, no suffix,
 * no overflow); 0 on success, -1 if malformed. For console arguments too. */
int cmdline_parse_number(const char *s, uint64_t *out);

/* Registration from any kernel file. */
#define CMDLINE_OPT_(id_, name_, type_, var_, size_, min_, max_, help_) \
	CMDLINE_OPT_ON_SET(id_, name_, type_, var_, size_, min_, max_, help_, 0)
#define CMDLINE_FLAG(id_, name_, var_, help_) CMDLINE_OPT_(id_, name_, OPT_FLAG, var_, sizeof(int), 0, 1, help_)
#define CMDLINE_BOOL(id_, name_, var_, help_) CMDLINE_OPT_(id_, name_, OPT_BOOL, var_, sizeof(int), 0, 1, help_)
#define CMDLINE_U64(id_, name_, var_, min_, max_, help_)  CMDLINE_OPT_(id_, name_, OPT_U64, var_, sizeof(uint64_t), min_, max_, help_)
#define CMDLINE_SIZE(id_, name_, var_, min_, max_, help_) CMDLINE_OPT_(id_, name_, OPT_SIZE, var_, sizeof(uint64_t), min_, max_, help_)
#define CMDLINE_STRING(id_, name_, var_, help_) CMDLINE_OPT_(id_, name_, OPT_STRING, var_, sizeof(var_), 0, 0, help_)

/* Options may register an on-set hook: fn_ runs after `set` changed the value
 * at run time (returning non-zero makes `set` say it could not take effect). */
#define CMDLINE_OPT_ON_SET(id_, name_, type_, var_, size_, min_, max_, help_, on_set_) \
	static const struct cmdline_opt cmdline_opt_##id_ \
	__attribute__((used, section("cmdline_opts"), aligned(8))) = \
	{ name_, type_, var_, size_, min_, max_, help_, on_set_ }
#define CMDLINE_SIZE_ON_SET(id_, name_, var_, min_, max_, help_, on_set_) \
	CMDLINE_OPT_ON_SET(id_, name_, OPT_SIZE, var_, sizeof(uint64_t), min_, max_, help_, on_set_)
#define CMDLINE_U64_ON_SET(id_, name_, var_, min_, max_, help_, on_set_) \
	CMDLINE_OPT_ON_SET(id_, name_, OPT_U64, var_, sizeof(uint64_t), min_, max_, help_, on_set_)
#define CMDLINE_STRING_ON_SET(id_, name_, var_, help_, on_set_) \
	CMDLINE_OPT_ON_SET(id_, name_, OPT_STRING, var_, sizeof(var_), 0, 0, help_, on_set_)

/* ---- the kernel's own command line (kernel/lib/cmdline_cmd.c, kernel only) */

/* Every option registered with CMDLINE_* in the kernel, collected by the linker. */
extern const struct cmdline_opt __start_cmdline_opts[], __stop_cmdline_opts[];

/* Errors on the boot command line, plus values a module rejected later when it
 * first used them (app.pattern); a self-test boot fails while it is non-zero. */
extern int cmdline_error_count;

/* Parse the boot command line against the registered options, one klog line
 * per error; sets and returns cmdline_error_count. */
int cmdline_boot_parse(const char *line);

#endif
