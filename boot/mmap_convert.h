/*
 * mmap_convert.h - turn a UEFI memory map into boot_info's region list.
 *
 * Contract: mmap_convert() reads `map_size / desc_size` descriptors laid out
 * like EFI_MEMORY_DESCRIPTOR with a stride of desc_size bytes (the firmware
 * may use a stride larger than the struct; trailing bytes that do not form a
 * whole descriptor are ignored). It writes at most `max` regions to `out`,
 * sorted by base, non-overlapping, with empty descriptors dropped and
 * touching regions of the same boot_mem_type merged (a merged region keeps
 * the efi_type of its lowest piece). If that still needs more than `max`
 * regions it merges harder: a USABLE region touching a RECLAIMABLE one
 * becomes part of it (the kernel frees RECLAIMABLE memory later, so no RAM is
 * lost). If that is not enough, or a descriptor is malformed (unaligned,
 * wraps past 2^64, overlaps another), it fails and `*count` is undefined.
 *
 * Pure computation: it runs after ExitBootServices, so no firmware calls, no
 * allocation, no output. No EFI headers: tests/unit/test_mmap_convert.c
 * links it on the host.
 */
#ifndef BOOT_MMAP_CONVERT_H
#define BOOT_MMAP_CONVERT_H

#include <stdint.h>
#include "boot_info.h"

/* EFI memory types (UEFI 2.10, 7.2 "EFI_MEMORY_TYPE"). */
enum {
	EFI_RESERVED_MEMORY = 0,
	EFI_LOADER_CODE,
	EFI_LOADER_DATA,
	EFI_BOOT_SERVICES_CODE,
	EFI_BOOT_SERVICES_DATA,
	EFI_RUNTIME_SERVICES_CODE,
	EFI_RUNTIME_SERVICES_DATA,
	EFI_CONVENTIONAL_MEMORY,
	EFI_UNUSABLE_MEMORY,
	EFI_ACPI_RECLAIM_MEMORY,
	EFI_ACPI_MEMORY_NVS,
	EFI_MEMORY_MAPPED_IO,
	EFI_MEMORY_MAPPED_IO_PORT_SPACE,
	EFI_PAL_CODE,
	EFI_PERSISTENT_MEMORY,
};

/* Same layout as EFI_MEMORY_DESCRIPTOR (boot/main.c asserts it). */
struct mmap_efi_desc {
	uint32_t type;
	uint32_t pad;
	uint64_t phys_start;
	uint64_t virt_start;
	uint64_t num_pages;
	uint64_t attribute;
};

enum mmap_err {
	MMAP_OK = 0,
	MMAP_ERR_DESC_SIZE,     /* desc_size smaller than a descriptor */
	MMAP_ERR_UNALIGNED,     /* phys_start not 4 KiB aligned */
	MMAP_ERR_WRAP,          /* phys_start + pages * 4 KiB wraps past 2^64 */
	MMAP_ERR_OVERLAP,       /* two descriptors share addresses */
	MMAP_ERR_TOO_MANY,      /* more than `max` regions even after merging */
	MMAP_ERR_COUNT
};

/* The boot_mem_type an EFI memory type becomes (RESERVED if unknown). */
uint32_t mmap_convert_type(uint32_t efi_type);

enum mmap_err mmap_convert(const void *map, uint64_t map_size, uint64_t desc_size,
                           struct boot_mem_region *out, uint32_t max, uint32_t *count);

/* Highest end address (phys_start + pages * 4 KiB) of any descriptor, any
 * type; descriptors that wrap are ignored. 0 for an empty map. */
uint64_t mmap_highest_end(const void *map, uint64_t map_size, uint64_t desc_size);

const char *mmap_strerror(enum mmap_err err);

#endif /* BOOT_MMAP_CONVERT_H */
