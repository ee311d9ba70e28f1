/*
 * app_main.c - the appliance in the kernel: its command-line options, the
 * poller that runs it, and the `app` console command. The engine is app.c.
 *
 * Options (also `set` at run time):
 *   app.pattern=SPEC  memory pattern (app/spec.h); default none: idle
 *   app.cache=SIZE    target of the shrinkable cache; default 0
 *   app.chunk=SIZE    allocation size, 4K..64M; default 2M
 * A malformed pattern is one line, ignored, and counts as a command-line
 * error (so a self-test boot fails its verdict).
 *
 * In self-test mode the poller does nothing: the tests drive instances of
 * their own (tests/guest/app_tests.c) and must not compete with a workload.
 */
#include <stdio.h>
#include <string.h>
#include "app/app.h"
#include "kernel/lib/cmdline.h"
#include "kernel/lib/console.h"
#include "kernel/lib/initcall.h"
#include "kernel/lib/selftest.h"
#include "kernel/lib/wake.h"
#include "mm/shrinker.h"
#include "klog.h"
#include "mm/mm.h"


static struct app the_app;
static int app_ready;

static char opt_pattern[APP_SPEC_MAX];
static char good_pattern[APP_SPEC_MAX];   /* the pattern in force, for `set` to fall back to */
static uint64_t opt_cache;
static uint64_t opt_chunk = APP_CHUNK_DEFAULT;

static int start_pattern(const char *spec)
{
	char why[160];
	if (app_set_pattern(&the_app, spec, why, sizeof why)) {
		klog("app: bad pattern '%s': %s; ignored", spec, why);
		return -1;
	}
	snprintf(good_pattern, sizeof good_pattern, "%s", spec);
	return 0;
}

static int on_pattern(void)
{
	if (!app_ready)
		return -1;
	if (start_pattern(opt_pattern)) {
		memcpy(opt_pattern, good_pattern, sizeof opt_pattern);
		return -1;
	}
	return 0;
}

static int on_cache(void)
{
	if (!app_ready)
		return -1;
	app_set_cache_target(&the_app, opt_cache);
	return 0;
}

static int on_chunk(void)
{
	return app_ready ? app_set_chunk(&the_app, opt_chunk) : -1;
}

/* These options act at once when `set` changes them. */
CMDLINE_STRING_ON_SET(app_pattern, "app.pattern", opt_pattern,
                      "app memory pattern, e.g. grow:256M,hold:5s,shrink:128M,loop", on_pattern);
CMDLINE_SIZE_ON_SET(app_cache, "app.cache", &opt_cache, 0, 1ull << 40,
                    "target size of the app's cache (gives memory back to shrinkers)", on_cache);
CMDLINE_SIZE_ON_SET(app_chunk, "app.chunk", &opt_chunk, APP_CHUNK_MIN, APP_CHUNK_MAX,
                    "size of each app allocation (4K..64M)", on_chunk);

/* Free memory from the frame allocator, for `app fill RESERVE`. */
static int kernel_free_bytes(uint64_t *bytes)
{
	if (!mm_ready())
		return -1;
	struct mm_stats s;
	mm_get_stats(&s);
	*bytes = s.free * PAGE_SIZE;
	return 0;
}

static int app_initcall(void)
{
	if (app_init(&the_app, "app", opt_chunk, SHRINKER_PRIO_CACHE))
		return -1;
	the_app.free_bytes = kernel_free_bytes;
	app_ready = 1;
	app_set_cache_target(&the_app, opt_cache);
	if (start_pattern(opt_pattern)) {
		cmdline_error_count++;
		opt_pattern[0] = 0;
	}
	if (selftest_mode && (opt_pattern[0] || opt_cache))
		klog("app: self-test mode: the workload stays idle");
	return 0;
}
INITCALL(INIT_APP, app_initcall);

/* Busy: every WAKE_BUSY_NS, a bounded slice each time, and one round more
 * after the last busy one (what it freed may be work for other pollers,
 * such as free page reporting, that ran before it). Idle: at its next
 * deadline only. */
static void app_poller(uint64_t now_ns)
{
	static int was_busy;
	if (!app_ready || selftest_mode)
		return;
	int busy = app_poll(&the_app, now_ns, APP_POLL_BUDGET);
	if (busy || was_busy)
		wake_in(now_ns, WAKE_BUSY_NS);
	else
		wake_at(app_next_deadline(&the_app, now_ns));
	was_busy = busy;
}
POLLER(app_poller);

/* ------------------------------------------------------------ `app` */

static int usage(void)
{
	printf("usage: app [grow SIZE | shrink SIZE|all | fill [RESERVE] | check | cache SIZE |"
	       " pattern [SPEC] | stop]\n");
	return 1;
}

static int size_arg(const char *s, uint64_t *v)
{
	if (cmdline_parse_size(s, v) == 0)
		return 0;
	printf("app: bad size '%s' (expected a size like 64M)\n", s);
	return -1;
}

static int cmd_app(int argc, char **argv)
{
	char line[240];
	uint64_t v = 0;
	if (!app_ready) {
		printf("app: not initialised\n");
		return 1;
	}
	if (argc == 1) {
		app_format_status(&the_app, line, sizeof line);
		printf("%s\n", line);
		app_format_activity(&the_app, line, sizeof line);
		printf("%s\n", line);
		return 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "grow") && argc == 3) {
		if (size_arg(argv[2], &v))
			return 1;
		if (v == 0) {
			printf("app: grow by 0 does nothing\n");
			return 1;
		}
		app_cmd_grow(&the_app, v);
	} else if (!strcmp(sub, "shrink") && argc == 3) {
		if (!strcmp(argv[2], "all"))
			v = APP_SHRINK_ALL;
		else if (size_arg(argv[2], &v))
			return 1;
		app_cmd_shrink(&the_app, v);
	} else if (!strcmp(sub, "fill") && argc <= 3) {
		if (argc == 3 && size_arg(argv[2], &v))
			return 1;
		app_cmd_fill(&the_app, v);
	} else if (!strcmp(sub, "check") && argc == 2) {
		if (app_start_check(&the_app)) {
			printf("app: check already running\n");
			return 1;
		}
	} else if (!strcmp(sub, "cache") && argc == 3) {
		if (size_arg(argv[2], &v))
			return 1;
		opt_cache = v;
		app_set_cache_target(&the_app, v);
		printf("app: cache target %llu MiB (now %llu MiB)\n",
		       (unsigned long long)(v >> 20), (unsigned long long)(the_app.cache.bytes >> 20));
	} else if (!strcmp(sub, "pattern") && argc == 2) {
		if (the_app.prog_kind == APP_PROG_PATTERN)
			printf("app: pattern '%s' running, step %u/%u\n", the_app.prog.text,
			       the_app.pc + 1, the_app.prog.n);
		else
			printf("app: no pattern running\n");
	} else if (!strcmp(sub, "pattern") && argc == 3) {
		if (start_pattern(argv[2]))
			return 1;
		snprintf(opt_pattern, sizeof opt_pattern, "%s", good_pattern);
	} else if (!strcmp(sub, "stop") && argc == 2) {
		app_stop(&the_app);
		good_pattern[0] = opt_pattern[0] = 0;
		printf("app: stopped; held %llu MiB in %lu chunks\n",
		       (unsigned long long)(the_app.held.bytes >> 20), (unsigned long)the_app.held.n);
	} else {
		return usage();
	}
	if (!strcmp(sub, "grow") || !strcmp(sub, "shrink") || !strcmp(sub, "fill"))
		good_pattern[0] = opt_pattern[0] = 0;   /* the command replaced it */
	if (selftest_mode && strcmp(sub, "cache") && strcmp(sub, "pattern"))
		printf("app: self-test mode: the workload is idle, so this waits\n");
	return 0;
}
CONSOLE_CMD("app", "the appliance workload: app [grow|shrink|fill|check|cache|pattern|stop]", cmd_app);
