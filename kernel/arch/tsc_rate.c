/*
 * tsc_rate.c - the clock's pure arithmetic (contract in time.h): the TSC
 * rate from a PIT interval, and from CPUID's leaves 0x15/0x16. Kept apart
 * from time.c, which touches the hardware, so the host tests link it alone.
 */
#include "kernel/arch/time.h"

#define PIT_HZ 1193182u

uint64_t tsc_hz_from_pit(uint64_t tsc_ticks, uint32_t pit_ticks)
{
	if (pit_ticks == 0)
		return 0;
	return (uint64_t)(((unsigned __int128)tsc_ticks * PIT_HZ) / pit_ticks);
}

uint64_t tsc_hz_from_cpuid(uint32_t max_leaf, const uint32_t l15[3], uint32_t l16_eax)
{
	/* leaf 0x15: TSC/crystal ratio ebx/eax, crystal Hz in ecx (0: unknown) */
	if (max_leaf >= 0x15 && l15[0] && l15[1] && l15[2])
		return (uint64_t)l15[2] * l15[1] / l15[0];
	/* leaf 0x16: processor base frequency in MHz (the TSC's on such CPUs) */
	if (max_leaf >= 0x16 && (l16_eax & 0xffff))
		return (uint64_t)(l16_eax & 0xffff) * 1000000u;
	return 0;
}
