/*
 * selftest.h - in-guest self-tests, run when the command line says `selftest`.
 *
 *   SELFTEST(name) { ...; ST_ASSERT(x == 1); return 0; }
 *
 * registers a test (a linker-section entry, so any file can add one). A test
 * returns 0 to pass; ST_ASSERT / ST_FAIL print the reason and return 1. The
 * runner (kernel/lib/selftest.c) prints one line per test and a closing
 * "N passed, N failed" line and returns the verdict; kernel/main.c then leaves
 * QEMU through isa-debug-exit (or powers off through UEFI) with it.
 *
 * SELFTEST_OPT(name) registers a test that runs only when named on the command
 * line (selftest=default,name): the deliberately failing test uses it.
 *
 * ST_SKIP("why") ends a test that cannot run on this machine (a device it
 * needs is absent): "selftest: SKIP name (why)", counted as skipped - never
 * as passed, and not as failed either.
 */
#ifndef KERNEL_SELFTEST_H
#define KERNEL_SELFTEST_H

#include <stdio.h>

struct selftest { const char *name; int (*fn)(void); unsigned off_by_default; };

#define SELFTEST_DEFINE_(name_, off_) \
	static int selftest_fn_##name_(void); \
	static const struct selftest selftest_##name_ \
	__attribute__((used, section("selftests"), aligned(8))) = { #name_, selftest_fn_##name_, off_ }; \
	static int selftest_fn_##name_(void)

#define SELFTEST(name_)     SELFTEST_DEFINE_(name_, 0)
#define SELFTEST_OPT(name_) SELFTEST_DEFINE_(name_, 1)

#define ST_FAIL(...) do { \
	printf("    %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); \
	return 1; } while (0)

/* `selftest` on the command line: self-test boot mode (modules keep their
 * workloads idle in it). */
extern int selftest_mode;

/* Run the chosen tests; 1 if every one passed (and at least one ran), else 0. */
int selftest_run(void);

#define ST_SKIPPED 2
extern const char *selftest_skip_reason;
#define ST_SKIP(why_) do { selftest_skip_reason = (why_); return ST_SKIPPED; } while (0)

#define ST_ASSERT(cond) do { if (!(cond)) ST_FAIL("assertion failed: %s", #cond); } while (0)

#endif
