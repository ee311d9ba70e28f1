/*
 * mmap_convert.c - UEFI memory map -> boot_info regions (contract in
 * mmap_convert.h).
 *
 * Regions are inserted one by one into the sorted output, merging with the
 * neighbours on the way, so the work needs no memory beyond `out` and copes
 * with firmware maps in any order. Descriptors are copied out of the map
 * with byte loads: the stride may leave them unaligned.
 */
#include "boot/mmap_convert.h"

#define PAGE_SHIFT 12

uint32_t mmap_convert_type(uint32_t efi_type)
{
	switch (efi_type) {
	case EFI_CONVENTIONAL_MEMORY:
		return BOOT_MEM_USABLE;
	case EFI_LOADER_CODE:
	case EFI_LOADER_DATA:
	case EFI_BOOT_SERVICES_CODE:
	case EFI_BOOT_SERVICES_DATA:
		return BOOT_MEM_RECLAIMABLE;
	case BOOT_EFI_TYPE_KERNEL:
		return BOOT_MEM_KERNEL;
	case BOOT_EFI_TYPE_BOOTINFO:
		return BOOT_MEM_BOOTINFO;
	case EFI_ACPI_RECLAIM_MEMORY:
		return BOOT_MEM_ACPI_RECLAIM;
	case EFI_ACPI_MEMORY_NVS:
		return BOOT_MEM_ACPI_NVS;
	case EFI_RUNTIME_SERVICES_CODE:
	case EFI_RUNTIME_SERVICES_DATA:
		return BOOT_MEM_EFI_RUNTIME;
	case EFI_MEMORY_MAPPED_IO:
	case EFI_MEMORY_MAPPED_IO_PORT_SPACE:
		return BOOT_MEM_MMIO;
	default:
		/* Reserved, unusable, PAL code, persistent memory, unaccepted
		 * memory and anything newer than this file: never touch it. */
		return BOOT_MEM_RESERVED;
	}
}

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Descriptor i of the map, fields at their EFI_MEMORY_DESCRIPTOR offsets. */
static void read_desc(const void *map, uint64_t desc_size, uint64_t i, struct mmap_efi_desc *d)
{
	const uint8_t *p = (const uint8_t *)map + i * desc_size;
	d->type = ld32(p + 0);
	d->phys_start = ld64(p + 8);
	d->num_pages = ld64(p + 24);
}

static uint64_t region_end(const struct boot_mem_region *r)
{
	return r->base + (r->pages << PAGE_SHIFT);
}

/* Can a and b (a directly below b, touching) become one region, and of
 * which type? `hard` also allows USABLE + RECLAIMABLE -> RECLAIMABLE. */
static int mergeable(uint32_t a, uint32_t b, int hard, uint32_t *type)
{
	if (a == b) {
		*type = a;
		return 1;
	}
	if (hard && ((a == BOOT_MEM_USABLE && b == BOOT_MEM_RECLAIMABLE) ||
	             (a == BOOT_MEM_RECLAIMABLE && b == BOOT_MEM_USABLE))) {
		*type = BOOT_MEM_RECLAIMABLE;
		return 1;
	}
	return 0;
}

/* One in-place pass merging touching neighbours; returns the new count. */
static uint32_t merge_pass(struct boot_mem_region *out, uint32_t n, int hard)
{
	uint32_t w = 0, type;
	for (uint32_t i = 0; i < n; i++) {
		struct boot_mem_region *prev = w ? &out[w - 1] : 0;
		if (prev && region_end(prev) == out[i].base &&
		    mergeable(prev->type, out[i].type, hard, &type)) {
			prev->pages += out[i].pages;
			prev->type = type;
		} else {
			out[w++] = out[i];
		}
	}
	return w;
}

static enum mmap_err insert(struct boot_mem_region *out, uint32_t *n, uint32_t max,
                            struct boot_mem_region r)
{
	uint64_t r_end = region_end(&r);
	uint32_t i = *n;

	/* Firmware maps are nearly always sorted: scanning from the top is O(1). */
	while (i > 0 && out[i - 1].base > r.base)
		i--;
	struct boot_mem_region *prev = i > 0 ? &out[i - 1] : 0;
	struct boot_mem_region *next = i < *n ? &out[i] : 0;
	if ((prev && region_end(prev) > r.base) || (next && r_end > next->base))
		return MMAP_ERR_OVERLAP;

	int join_prev = prev && region_end(prev) == r.base && prev->type == r.type;
	int join_next = next && r_end == next->base && next->type == r.type;
	if (join_prev && join_next) {
		prev->pages += r.pages + next->pages;
		for (uint32_t j = i; j + 1 < *n; j++)
			out[j] = out[j + 1];
		(*n)--;
		return MMAP_OK;
	}
	if (join_prev) {
		prev->pages += r.pages;
		return MMAP_OK;
	}
	if (join_next) {
		next->base = r.base;
		next->pages += r.pages;
		next->efi_type = r.efi_type;   /* the lowest piece names the region */
		return MMAP_OK;
	}
	if (*n == max) {
		uint32_t before = *n;
		*n = merge_pass(out, *n, 1);
		if (*n == before)
			return MMAP_ERR_TOO_MANY;
		/* Neighbours changed: place r again against the merged list. */
		return insert(out, n, max, r);
	}
	for (uint32_t j = *n; j > i; j--)
		out[j] = out[j - 1];
	out[i] = r;
	(*n)++;
	return MMAP_OK;
}

enum mmap_err mmap_convert(const void *map, uint64_t map_size, uint64_t desc_size,
                           struct boot_mem_region *out, uint32_t max, uint32_t *count)
{
	uint32_t n = 0;

	if (desc_size < sizeof(struct mmap_efi_desc))
		return MMAP_ERR_DESC_SIZE;
	for (uint64_t i = 0; i < map_size / desc_size; i++) {
		struct mmap_efi_desc d;
		read_desc(map, desc_size, i, &d);
		if (d.num_pages == 0)
			continue;
		if (d.phys_start & ((1u << PAGE_SHIFT) - 1))
			return MMAP_ERR_UNALIGNED;
		/* The end must be a representable address (<= 2^64 - 4 KiB). */
		if (d.num_pages > (UINT64_MAX - d.phys_start) >> PAGE_SHIFT)
			return MMAP_ERR_WRAP;
		struct boot_mem_region r = {
			.base = d.phys_start,
			.pages = d.num_pages,
			.type = mmap_convert_type(d.type),
			.efi_type = d.type,
		};
		enum mmap_err err = insert(out, &n, max, r);
		if (err)
			return err;
	}
	*count = n;
	return MMAP_OK;
}

uint64_t mmap_highest_end(const void *map, uint64_t map_size, uint64_t desc_size)
{
	uint64_t hi = 0;

	if (desc_size < sizeof(struct mmap_efi_desc))
		return 0;
	for (uint64_t i = 0; i < map_size / desc_size; i++) {
		struct mmap_efi_desc d;
		read_desc(map, desc_size, i, &d);
		if (d.num_pages > (UINT64_MAX - d.phys_start) >> PAGE_SHIFT)
			continue;
		uint64_t end = d.phys_start + (d.num_pages << PAGE_SHIFT);
		if (end > hi)
			hi = end;
	}
	return hi;
}

const char *mmap_strerror(enum mmap_err err)
{
	switch (err) {
	case MMAP_OK:            return "ok";
	case MMAP_ERR_DESC_SIZE: return "firmware descriptor size smaller than EFI_MEMORY_DESCRIPTOR";
	case MMAP_ERR_UNALIGNED: return "a memory map entry is not 4 KiB aligned";
	case MMAP_ERR_WRAP:      return "a memory map entry wraps past the end of the address space";
	case MMAP_ERR_OVERLAP:   return "two memory map entries overlap";
	case MMAP_ERR_TOO_MANY:  return "memory map has more regions than boot_info can hold (512)";
	default:                 return "unknown error";
	}
}
