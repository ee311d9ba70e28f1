/*
 * selftest.c - the self-test boot mode (see selftest.h).
 *
 * `selftest` on the command line runs the tests chosen by `selftest.tests`
 * (default: every test not marked off-by-default; a comma list of names, where
 * `default` stands for that set), one line each, then the closing line and the
 * verdict for the caller (kernel/main.c powers off with it). A name that matches no test is itself a failure:
 * a typo must not turn into a silent pass. A test that skips (ST_SKIP: what it
 * needs is not there) counts neither way.
 */
#include <stdio.h>
#include <string.h>
#include "kclock.h"
#include "kernel/lib/cmdline.h"
#include "kernel/lib/selftest.h"
#include "kernel/lib/fmt.h"

extern const struct selftest __start_selftests[], __stop_selftests[];

int selftest_mode;
const char *selftest_skip_reason;
static char selftest_list[256] = "default";
CMDLINE_FLAG(selftest, "selftest", &selftest_mode, "run the in-guest self-tests and power off with the verdict");
CMDLINE_STRING(selftest_tests, "selftest.tests", selftest_list, "comma list of tests; 'default' = all default-on tests");

static int in_list(const char *name, int off_by_default)
{
	char buf[sizeof selftest_list];
	strcpy(buf, selftest_list);
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, name) || (!strcmp(tok, "default") && !off_by_default))
			return 1;
	}
	return 0;
}

int selftest_run(void)
{
	unsigned passed = 0, failed = 0, skipped = 0;
	const struct selftest *t;

	kprintf("selftest: running tests '%s'\n", selftest_list);
	if (cmdline_error_count) {
		kprintf("selftest: FAIL cmdline (%d error%s on the command line, see above)\n",
		       cmdline_error_count, cmdline_error_count == 1 ? "" : "s");
		failed++;
	}
	/* Every requested name must exist. */
	char buf[sizeof selftest_list];
	strcpy(buf, selftest_list);
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "default"))
			continue;
		for (t = __start_selftests; t < __stop_selftests; t++)
			if (!strcmp(t->name, tok))
				break;
		if (t == __stop_selftests) {
			kprintf("selftest: FAIL %s (no test by that name)\n", tok);
			failed++;
		}
	}
	for (t = __start_selftests; t < __stop_selftests; t++) {
		if (!in_list(t->name, t->off_by_default))
			continue;
		uint64_t start = clock_ns();
		selftest_skip_reason = NULL;
		int rc = t->fn();
		uint64_t ms = (clock_ns() - start) / NS_PER_MS;
		fflush(stdout);
		if (rc == ST_SKIPPED) {
			kprintf("selftest: SKIP %s (%s)\n", t->name, selftest_skip_reason ? selftest_skip_reason : "?");
			skipped++;
			continue;
		}
		kprintf("selftest: %s %s (%llu ms)\n", rc ? "FAIL" : "PASS", t->name, (unsigned long long)ms);
		if (rc)
			failed++;
		else
			passed++;
	}
	if (skipped)
		kprintf("selftest: %u passed, %u failed, %u skipped\n", passed, failed, skipped);
	else
		kprintf("selftest: %u passed, %u failed\n", passed, failed);
	fflush(stdout);
	return failed == 0 && passed > 0;
}
