/* time.c - see time.h. */
#include <stdint.h>
#include "hw/io.h"
#include "kclock.h"
#include "kernel/arch/time.h"
#include "klog.h"


static uint64_t tsc_hz, tsc_base;
static uint64_t ns_mult;   /* ns = ticks * ns_mult >> 32 */



static uint64_t cpuid_tsc_hz(void)
{
	uint32_t r0[4], r15[4] = { 0 }, r16[4] = { 0 };
	cpuid(0, 0, r0);
	if (r0[0] >= 0x15)
		cpuid(0x15, 0, r15);
	if (r0[0] >= 0x16)
		cpuid(0x16, 0, r16);
	uint32_t l15[3] = { r15[0], r15[1], r15[2] };
	return tsc_hz_from_cpuid(r0[0], l15, r16[0]);
}

/* PIT channel 2 as a one-shot, gated through port 0x61 (speaker off, no
 * IRQ); returns the gate's old value for the caller to put back, and in
 * *t_before the TSC just before the write that starts the count. */
static uint8_t pit_arm(uint16_t pit_ticks, uint64_t *t_before)
{
	uint8_t gate = inb(0x61);
	outb(0x61, (gate & ~0x02) | 0x01);     /* gate on, speaker off */
	outb(0x43, 0xb0);                      /* ch2, lo/hi, mode 0, binary */
	outb(0x42, pit_ticks & 0xff);
	*t_before = rdtsc();
	outb(0x42, pit_ticks >> 8);
	return gate;
}

/* TSC ticks while channel 2 runs down `pit_ticks`. Bounded by TSC time, not
 * by a count of port reads (each can cost microseconds under emulation): 0
 * if the PIT is absent or never counts within `tsc_limit` ticks. */
static uint64_t pit_measure(uint16_t pit_ticks, uint64_t tsc_limit)
{
	uint64_t before;
	uint8_t gate = pit_arm(pit_ticks, &before);
	uint64_t start = rdtsc();
	while (!(inb(0x61) & 0x20))
		if (rdtsc() - start > tsc_limit) {
			outb(0x61, gate);
			return 0;
		}
	uint64_t end = rdtsc();
	outb(0x61, gate);
	return end - start;
}

/* clock_ns() = ns_base + (rdtsc - tsc_base) scaled: a new rate starts from
 * now, so the clock never jumps back when the check corrects the rate. */
static uint64_t ns_base;

static void set_rate(uint64_t hz)
{
	uint64_t now = rdtsc();
	if (ns_mult)
		ns_base += (uint64_t)(((unsigned __int128)(now - tsc_base) * ns_mult) >> 32);
	tsc_base = now;
	tsc_hz = hz;
	ns_mult = (uint64_t)(((unsigned __int128)NS_PER_S << 32) / hz);
}

static int within_2pct(uint64_t a, uint64_t b)
{
	uint64_t d = a > b ? a - b : b - a;
	return d * 50 <= b;
}

/* Latch channel 2 and read how far it counted down from 0xffff; *t is the
 * TSC at the latch, known to within *err ticks (the bracket's half). */
static uint32_t pit_latch(uint64_t *t, uint64_t *err)
{
	uint64_t a = rdtsc();
	outb(0x43, 0x80);                      /* latch channel 2 */
	uint64_t b = rdtsc();
	uint32_t lo = inb(0x42), hi = inb(0x42);
	*t = a + (b - a) / 2;
	*err = (b - a) / 2 + 1;
	return 0xffffu - (hi << 8 | lo);
}

/* One PIT measurement over `span` TSC ticks (< 55 ms), read from the
 * latched count rather than by polling for expiry: each end is a port
 * access bracketed by TSC reads, and a loose bracket - the host held us up
 * inside the access, which under load stretched polled runs by 14-38% -
 * rejects the sample. 0 if rejected or the PIT did not count. */
static uint64_t pit_sample(uint64_t span)
{
	uint64_t before;
	uint8_t gate = pit_arm(0xffff, &before);
	uint64_t after = rdtsc();
	uint64_t t0 = before + (after - before) / 2, e0 = (after - before) / 2 + 1;
	while (rdtsc() - after < span)
		cpu_relax();
	uint64_t t1, e1;
	uint32_t elapsed = pit_latch(&t1, &e1);
	int out = inb(0x61) & 0x20;
	outb(0x61, gate);
	if (out || elapsed < 1193 || t1 <= t0 || (e0 + e1) * 1000 > t1 - t0)   /* 0.1% */
		return 0;
	return tsc_hz_from_pit(t1 - t0, elapsed);
}

static void sort3(uint64_t r[3])
{
	for (int i = 0; i < 2; i++)
		for (int j = i + 1; j < 3; j++)
			if (r[j] < r[i]) { uint64_t t = r[i]; r[i] = r[j]; r[j] = t; }
}

/* The median of three good 10 ms samples (at most 9 tries) when the rate
 * is roughly known (`guess`, for the span); else, or if the samples keep
 * being rejected, the median of three runs polled to expiry - unless the
 * first found no PIT at all, which more would only confirm slowly. 0: no
 * PIT. */
static uint64_t pit_calibrate(uint64_t guess, uint64_t limit)
{
	uint64_t r[3];
	int got = 0;
	for (int i = 0; guess && i < 9 && got < 3; i++) {
		uint64_t hz = pit_sample(guess / 100);
		if (hz)
			r[got++] = hz;
	}
	if (got == 3) {
		sort3(r);
		return r[1];
	}
	r[0] = tsc_hz_from_pit(pit_measure(11932, limit), 11932);
	if (!r[0])
		return 0;
	r[1] = tsc_hz_from_pit(pit_measure(11932, limit), 11932);
	r[2] = tsc_hz_from_pit(pit_measure(11932, limit), 11932);
	sort3(r);
	return r[1];
}

/* The PIT's check of the loader's figure, running while boot goes on
 * (time_init starts it, time_confirm reads it). */
static struct {
	int running;
	uint8_t gate;
	uint64_t t0, t0_err, limit, loader_hz;   /* start: t0 +- t0_err TSC ticks */
} check;

static int choose_rate(uint64_t pit_hz, uint64_t loader_tsc_hz, uint64_t cpuid_hz)
{
	uint64_t hz = pit_hz;
	if (hz >= 10000000ull && loader_tsc_hz >= 10000000ull && !within_2pct(hz, loader_tsc_hz))
		klog("time: PIT says %lu kHz, UEFI Stall says %lu kHz (>2%% apart); using the PIT",
		     hz / 1000, loader_tsc_hz / 1000);
	if (hz < 10000000ull) {
		if (loader_tsc_hz >= 10000000ull) {
			hz = loader_tsc_hz;
			klog("time: PIT calibration failed; using the loader's %lu kHz", hz / 1000);
		} else if (cpuid_hz >= 10000000ull) {
			hz = cpuid_hz;
			klog("time: PIT calibration failed; using CPUID's %lu kHz", hz / 1000);
		} else {
			set_rate(1000000000ull);
			klog("time: cannot calibrate the TSC (no PIT, no loader or CPUID figure); assuming 1 GHz");
			return -1;
		}
	}
	set_rate(hz);
	return 0;
}

int time_init(uint64_t loader_tsc_hz)
{
	/* A guess of the rate bounds each PIT run at ~100 ms of TSC time: the
	 * loader's figure, else CPUID's, else 4e9 ticks (1 s at 4 GHz). */
	uint64_t cpuid_hz = cpuid_tsc_hz();
	uint64_t guess = loader_tsc_hz >= 10000000ull ? loader_tsc_hz : cpuid_hz;
	uint64_t limit = guess ? guess / 10 : 4000000000ull;
	/* The loader measured the rate against UEFI's Stall over a longer time.
	 * Use it now and let the PIT check it in the background: channel 2
	 * counts down from its maximum (55 ms) while boot goes on, and
	 * time_confirm reads how far it got - boot does not wait for a figure it
	 * has. Without a loader figure, calibrate here. */
	if (loader_tsc_hz >= 10000000ull) {
		set_rate(loader_tsc_hz);
		uint64_t before;
		check.gate = pit_arm(0xffff, &before);
		uint64_t after = rdtsc();
		check.t0 = before + (after - before) / 2;
		check.t0_err = (after - before) / 2 + 1;
		check.limit = limit;
		check.loader_hz = loader_tsc_hz;
		check.running = 1;
		return 0;
	}
	return choose_rate(pit_calibrate(cpuid_hz, limit), 0, cpuid_hz);
}

int time_confirm(void)
{
	if (!check.running)
		return 0;
	check.running = 0;
	/* How far channel 2 got, at least 1 ms of PIT time (1193 ticks); boot
	 * has usually run longer. Each reading is bracketed by TSC reads; the
	 * tightest of three is kept, so a host that stalls us between the latch
	 * and the TSC read cannot skew the figure. */
	uint32_t elapsed = 0;
	uint64_t t1 = 0, t1_err = UINT64_MAX;
	int ran_out = 0;
	for (int got = 0; got < 3;) {
		uint64_t t, err;
		uint32_t e = pit_latch(&t, &err);
		if (inb(0x61) & 0x20) {            /* ran out: the count wrapped */
			ran_out = 1;
			break;
		}
		if (e < 1193 && t - check.t0 < check.limit / 10) {
			cpu_relax();
			continue;
		}
		if (err < t1_err) {
			t1 = t;
			t1_err = err;
			elapsed = e;
		}
		got++;
	}
	outb(0x61, check.gate);
	/* A figure measured now: the background run if it is good, else one
	 * fresh bracketed 10 ms sample (the count ran out on a slow boot, or
	 * the run was loose) - never a run polled to expiry, which a loaded
	 * host stretches (a CI run kept a loader figure 2.8% off that way). */
	uint64_t hz = 0;
	if (!ran_out && elapsed >= 1193 && t1 > check.t0 &&
	    (check.t0_err + t1_err) * 500 <= t1 - check.t0)    /* known to 0.2% */
		hz = tsc_hz_from_pit(t1 - check.t0, elapsed);
	int counted = ran_out || elapsed > 0;
	if (!hz && counted)
		hz = pit_sample(check.loader_hz / 100);
	if (hz && within_2pct(hz, check.loader_hz)) {
		set_rate(hz);       /* the PIT's figure, which the loader's confirms */
		return 0;
	}
	/* They disagree, or no sample was good: three good samples decide. */
	hz = counted ? pit_calibrate(check.loader_hz, check.limit) : 0;
	return choose_rate(hz, check.loader_hz, cpuid_tsc_hz());
}

uint64_t time_tsc_hz(void) { return tsc_hz; }

uint64_t time_pit_hz(void)
{
	return pit_calibrate(tsc_hz, tsc_hz / 10);
}

uint64_t tsc_to_ns(uint64_t ticks)
{
	return (uint64_t)(((unsigned __int128)ticks * ns_mult) >> 32);
}

uint64_t clock_ns(void)
{
	return ns_mult ? ns_base + tsc_to_ns(rdtsc() - tsc_base) : 0;
}

void udelay(uint64_t us)
{
	uint64_t end = clock_ns() + us * NS_PER_US;
	while (clock_ns() < end)
		cpu_relax();
}
