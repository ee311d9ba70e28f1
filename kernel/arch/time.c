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

/* One-shot on PIT channel 2 (gate through port 0x61, no IRQ): TSC ticks
 * while the counter runs down `pit_ticks`. Bounded by TSC time, not by a
 * count of port reads (each can cost microseconds under emulation): ~0 if
 * the PIT is absent or never counts within `tsc_limit` ticks. */
static uint64_t pit_measure(uint16_t pit_ticks, uint64_t tsc_limit)
{
	uint8_t gate = inb(0x61);
	outb(0x61, (gate & ~0x02) | 0x01);     /* gate on, speaker off */
	outb(0x43, 0xb0);                      /* ch2, lo/hi, mode 0, binary */
	outb(0x42, pit_ticks & 0xff);
	outb(0x42, pit_ticks >> 8);
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

static void set_rate(uint64_t hz)
{
	tsc_hz = hz;
	ns_mult = (uint64_t)(((unsigned __int128)NS_PER_S << 32) / hz);
}

static int within_2pct(uint64_t a, uint64_t b)
{
	uint64_t d = a > b ? a - b : b - a;
	return d * 50 <= b;
}

int time_init(uint64_t loader_tsc_hz)
{
	tsc_base = rdtsc();
	/* A guess of the rate bounds each 10 ms PIT run at ~100 ms of TSC time:
	 * the loader's figure, else CPUID's, else 4e9 ticks (1 s at 4 GHz). */
	uint64_t cpuid_hz = cpuid_tsc_hz();
	uint64_t guess = loader_tsc_hz >= 10000000ull ? loader_tsc_hz : cpuid_hz;
	uint64_t limit = guess ? guess / 10 : 4000000000ull;
	/* The loader measured the rate against UEFI's Stall over a longer
	 * time: a 1 ms PIT run that agrees with it (within 2%) confirms it, and
	 * boot does not wait 10 ms for a figure it has. Otherwise (no loader
	 * figure, or they disagree) take the median of three 10 ms PIT runs so
	 * a run stretched by the host does not skew the clock - unless the
	 * first run found no PIT at all, which more would only confirm slowly. */
	uint64_t hz = 0;
	if (loader_tsc_hz >= 10000000ull) {
		hz = tsc_hz_from_pit(pit_measure(1193, limit / 10), 1193);
		if (hz && within_2pct(hz, loader_tsc_hz)) {
			set_rate(loader_tsc_hz);
			return 0;
		}
	}
	hz = tsc_hz_from_pit(pit_measure(11932, limit), 11932);
	if (hz && (!loader_tsc_hz || !within_2pct(hz, loader_tsc_hz))) {
		uint64_t r[3] = { hz, tsc_hz_from_pit(pit_measure(11932, limit), 11932),
		                  tsc_hz_from_pit(pit_measure(11932, limit), 11932) };
		for (int i = 0; i < 2; i++)
			for (int j = i + 1; j < 3; j++)
				if (r[j] < r[i]) { uint64_t t = r[i]; r[i] = r[j]; r[j] = t; }
		hz = r[1];
		if (loader_tsc_hz && hz >= 10000000ull && !within_2pct(hz, loader_tsc_hz))
			klog("time: PIT says %lu kHz, UEFI Stall says %lu kHz (>2%% apart); using the PIT",
			     hz / 1000, loader_tsc_hz / 1000);
	}
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

uint64_t time_tsc_hz(void) { return tsc_hz; }

uint64_t tsc_to_ns(uint64_t ticks)
{
	return (uint64_t)(((unsigned __int128)ticks * ns_mult) >> 32);
}

uint64_t clock_ns(void)
{
	return ns_mult ? tsc_to_ns(rdtsc() - tsc_base) : 0;
}

void udelay(uint64_t us)
{
	uint64_t end = clock_ns() + us * NS_PER_US;
	while (clock_ns() < end)
		cpu_relax();
}
