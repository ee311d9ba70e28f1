/*
 * core_tests.c - in-guest self-tests of the kernel core: traps, clock, the
 * newlib heap and formatting, the command interpreter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hw/io.h"
#include "kclock.h"
#include "kernel/arch/arch.h"
#include "kernel/lib/console.h"
#include "kernel/lib/selftest.h"
#include "kernel/arch/time.h"

static volatile int breakpoints;
static int on_breakpoint(struct trap_frame *tf) { breakpoints++; return 1; }

/* An int3 must reach our IDT, our handler, and come back with registers intact. */
SELFTEST(core_trap_roundtrip)
{
	trap_register(VEC_BREAKPOINT, on_breakpoint);
	uint64_t canary = 0x1234abcd5678ef00ull, out;
	__asm__ __volatile__("mov %1, %%r12\n\tint3\n\tmov %%r12, %0" : "=r"(out) : "r"(canary) : "r12", "memory");
	trap_register(VEC_BREAKPOINT, 0);
	ST_ASSERT(breakpoints == 1);
	ST_ASSERT(out == canary);
	return 0;
}

/* The TSC clock and the independent LAPIC timer must agree: a one-shot armed
 * for 5 ms fires once, not early, and a stopped timer stays silent (the
 * tickless loop sleeps on exactly this). */
SELFTEST(core_clock_and_timer)
{
	ST_ASSERT(time_tsc_hz() > 10000000ull);
	ST_ASSERT(lapic_timer_ok());
	for (int round = 0; round < 3; round++) {
		uint64_t t0 = clock_ns(), ticks0 = timer_ticks();
		lapic_timer_arm(5 * NS_PER_MS);
		while (timer_ticks() == ticks0 && clock_ns() - t0 < 500 * NS_PER_MS)
			cpu_relax();
		uint64_t us = (clock_ns() - t0) / NS_PER_US;
		/* Under TCG the two clocks drift a little: a 20% band. */
		if (timer_ticks() != ticks0 + 1 || us < 4000 || us > 100000)
			ST_FAIL("one-shot of 5 ms: %lu ticks after %lu us of TSC time",
			        (unsigned long)(timer_ticks() - ticks0), (unsigned long)us);
	}
	lapic_timer_arm(0);
	uint64_t t0 = clock_ns(), ticks0 = timer_ticks();
	while (clock_ns() - t0 < 20 * NS_PER_MS)
		cpu_relax();
	ST_ASSERT(timer_ticks() == ticks0);
	return 0;
}

/* The rate boot settled on (the loader's figure checked by the PIT in the
 * background, time_confirm) against a fresh PIT calibration: within 1%. */
SELFTEST(core_clock_rate_matches_pit)
{
	uint64_t pit = time_pit_hz();
	if (!pit)
		ST_SKIP("no PIT to check the clock against");
	uint64_t hz = time_tsc_hz(), d = hz > pit ? hz - pit : pit - hz;
	if (d * 100 > pit)
		ST_FAIL("clock runs at %lu kHz, the PIT says %lu kHz", (unsigned long)(hz / 1000),
		        (unsigned long)(pit / 1000));
	return 0;
}

SELFTEST(core_malloc)
{
	enum { N = 64 };
	uint8_t *p[N];
	for (int i = 0; i < N; i++) {
		size_t sz = 16u << (i % 12);
		p[i] = malloc(sz);
		ST_ASSERT(p[i] != NULL);
		memset(p[i], i, sz);
	}
	for (int i = 0; i < N; i++) {
		size_t sz = 16u << (i % 12);
		for (size_t j = 0; j < sz; j += 97)
			ST_ASSERT(p[i][j] == (uint8_t)i);
		free(p[i]);
	}
	return 0;
}

SELFTEST(core_printf_formats)
{
	char buf[64];
	snprintf(buf, sizeof buf, "%d %lx %.3f %s %zu", -42, 0xdeadbeefUL, 3.14159, "ok", (size_t)7);
	ST_ASSERT(strcmp(buf, "-42 deadbeef 3.142 ok 7") == 0);
	return 0;
}

SELFTEST(core_console_commands)
{
	char good[] = "uptime", bad[] = "no-such-command";
	ST_ASSERT(console_exec(good) == 0);
	ST_ASSERT(console_exec(bad) != 0);
	return 0;
}

/* Off by default: proves the harness sees a failing verdict. */
SELFTEST_OPT(deliberate_fail)
{
	ST_FAIL("this test fails on purpose (selftest.tests=...,deliberate_fail)");
}

/* Off by default: ends the boot with a page-fault panic, so the harness can
 * check the panic report (vector, CR2, registers, backtrace) and the verdict. */
SELFTEST_OPT(panic_pagefault)
{
	volatile uint64_t *bad = (volatile uint64_t *)0xffff9ffffdead000ull;  /* unmapped */
	*bad = 1;
	ST_FAIL("write to an unmapped address did not fault");
}
