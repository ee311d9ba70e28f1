/*
 * boot.h - the kernel's own copy of the loader's struct boot_info.
 * boot_info_save() copies it out of loader memory first thing, so that memory
 * can be reclaimed later; boot_info_get() returns the copy (NULL before).
 */
#ifndef KERNEL_BOOT_H
#define KERNEL_BOOT_H

#include "boot_info.h"

/* Returns 0, or -1 with a reason in *why if the structure is not one we know. */
int boot_info_save(const struct boot_info *from_loader, const char **why);
const struct boot_info *boot_info_get(void);

/* Summary for the banner: usable RAM (USABLE + RECLAIMABLE + BOOTINFO) in bytes. */
uint64_t boot_info_usable_bytes(const struct boot_info *bi);
const char *boot_mem_type_name(uint32_t type);

/* Physical memory below boot_info.max_phys through the direct map, for
 * reading firmware tables (ACPI lives in RAM the direct map covers); NULL
 * outside it. An acpi_map_fn (kernel/lib/acpi.h); ctx unused. */
const void *boot_map_acpi(void *ctx, uint64_t pa, uint64_t len);

#endif
