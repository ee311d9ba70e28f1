/* platform.c - facts about the machine the loader hands on (contract in platform.h). */
#include <efi.h>
#include <efilib.h>
#include "boot/platform.h"
#include "hw/io.h"

#define TSC_CAL_US 20000        /* 20 ms: 1/50 s */
#define CR4_LA57   (1ull << 12)

uint64_t find_rsdp(void)
{
	static const EFI_GUID acpi20 = ACPI_20_TABLE_GUID, acpi10 = ACPI_TABLE_GUID;
	uint64_t v1 = 0;
	for (UINTN i = 0; i < ST->NumberOfTableEntries; i++) {
		EFI_CONFIGURATION_TABLE *t = &ST->ConfigurationTable[i];
		if (!CompareMem(&t->VendorGuid, &acpi20, sizeof acpi20))
			return (uint64_t)(uintptr_t)t->VendorTable;
		if (!CompareMem(&t->VendorGuid, &acpi10, sizeof acpi10))
			v1 = (uint64_t)(uintptr_t)t->VendorTable;
	}
	return v1;
}

uint64_t measure_tsc_hz(void)
{
	uint64_t t0 = rdtsc();
	BS->Stall(TSC_CAL_US);
	uint64_t t1 = rdtsc();
	return (t1 - t0) * (1000000 / TSC_CAL_US);
}

int cpu_has_nx(void)
{
	uint32_t a, b, c, d;
	__asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0));
	if (a < 0x80000001u)
		return 0;
	__asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001u), "c"(0));
	return (d >> 20) & 1;
}

int cpu_la57_active(void)
{
	uint64_t cr4;
	__asm__ __volatile__("mov %%cr4, %0" : "=r"(cr4));
	return (cr4 & CR4_LA57) != 0;
}

