/*
 * platform.h - facts about the machine the loader hands on to the kernel.
 *
 * find_rsdp(): physical address of the ACPI RSDP from the UEFI configuration
 * table (ACPI 2.0 entry preferred, else 1.0), 0 if neither exists.
 * measure_tsc_hz(): TSC ticks per second, timed against BS->Stall(20 ms).
 * cpu_has_nx(): CPUID says the NX bit exists (EFER.NXE may be set).
 * cpu_la57_active(): the firmware runs 5-level paging (our tables are 4-level).
 * The first two need boot services.
 */
#ifndef BOOT_PLATFORM_H
#define BOOT_PLATFORM_H

#include <stdint.h>

uint64_t find_rsdp(void);
uint64_t measure_tsc_hz(void);
int cpu_has_nx(void);
int cpu_la57_active(void);

#endif /* BOOT_PLATFORM_H */
