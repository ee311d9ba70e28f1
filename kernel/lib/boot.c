/* boot.c - see boot.h. Pure logic: also built into the host unit tests. */
#include <string.h>
#include "kernel/lib/boot.h"

static struct boot_info saved;
static int have_saved;

int boot_info_save(const struct boot_info *bi, const char **why)
{
	if (!bi) { *why = "no boot_info pointer"; return -1; }
	if (bi->magic != BOOT_INFO_MAGIC) { *why = "bad magic (not loaded by our loader?)"; return -1; }
	if (bi->version != BOOT_INFO_VERSION) { *why = "version mismatch between loader and kernel"; return -1; }
	if (bi->size != sizeof *bi) { *why = "size mismatch between loader and kernel"; return -1; }
	if (bi->mmap_count == 0 || bi->mmap_count > BOOT_MMAP_MAX) { *why = "memory map count out of range"; return -1; }
	if (bi->cmdline_len >= BOOT_CMDLINE_MAX || bi->cmdline[bi->cmdline_len] != 0) {
		*why = "command line not terminated"; return -1;
	}
	for (uint32_t i = 0; i < bi->mmap_count; i++) {
		const struct boot_mem_region *r = &bi->mmap[i];
		if (r->type == 0 || r->type >= BOOT_MEM_TYPE_COUNT || (r->base & 0xfff) ||
		    r->pages > (UINT64_MAX - r->base) / 4096) {
			*why = "malformed memory map entry"; return -1;
		}
		if (i && r->base < bi->mmap[i - 1].base + bi->mmap[i - 1].pages * 4096) {
			*why = "memory map not sorted or overlapping"; return -1;
		}
	}
	memcpy(&saved, bi, sizeof saved);
	have_saved = 1;
	return 0;
}

const struct boot_info *boot_info_get(void)
{
	return have_saved ? &saved : NULL;
}

uint64_t boot_info_usable_bytes(const struct boot_info *bi)
{
	uint64_t pages = 0;
	for (uint32_t i = 0; i < bi->mmap_count; i++) {
		uint32_t t = bi->mmap[i].type;
		if (t == BOOT_MEM_USABLE || t == BOOT_MEM_RECLAIMABLE || t == BOOT_MEM_BOOTINFO)
			pages += bi->mmap[i].pages;
	}
	return pages * 4096;
}

const char *boot_mem_type_name(uint32_t type)
{
	static const char *const names[BOOT_MEM_TYPE_COUNT] = {
		"?", "usable", "reclaimable", "kernel", "bootinfo", "acpi-reclaim",
		"acpi-nvs", "efi-runtime", "mmio", "reserved",
	};
	return type < BOOT_MEM_TYPE_COUNT ? names[type] : "?";
}

const void *boot_map_acpi(void *ctx, uint64_t pa, uint64_t len)
{
	const struct boot_info *bi = boot_info_get();
	if (!bi || pa + len > bi->max_phys || pa + len < pa)
		return NULL;
	return (const void *)(uintptr_t)(BOOT_HHDM_BASE + pa);
}
