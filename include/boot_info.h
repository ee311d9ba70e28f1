/*
 * boot_info.h - the one structure the UEFI loader hands to the kernel.
 *
 * Contract: the loader (boot/) fills exactly one struct boot_info in memory of
 * type BOOT_EFI_TYPE_BOOTINFO, then jumps to the kernel's ELF entry with
 *   rdi = HHDM-virtual address of the struct boot_info
 * on page tables that map
 *   - all physical memory [0, max_phys) identity  (so the jump and UEFI runtime
 *     services keep working) and at BOOT_HHDM_BASE + phys (the "direct map"),
 *     with 2 MiB pages, write-back;
 *   - the kernel's PT_LOAD segments at their link addresses, 4 KiB pages.
 * Interrupts are off, EFER.NXE is set, boot services are gone.
 *
 * Every address in here is PHYSICAL unless the name says _virt. The kernel must
 * copy what it needs before it reuses BOOT_MEM_BOOTINFO memory.
 *
 * Both sides include this file: no pointers, only fixed-width integers, so the
 * layout is the same for the EFI loader (-fpic, ms_abi calls) and the kernel.
 */
#ifndef BOOT_INFO_H
#define BOOT_INFO_H

#include <stdint.h>

#define BOOT_INFO_MAGIC   0x314e4f4f4c4c4142ull /* "BALLOON1" little-endian */
#define BOOT_INFO_VERSION 1

#define BOOT_HHDM_BASE    0xffff800000000000ull /* direct map of physical memory */
#define BOOT_KERNEL_BASE  0xffffffff80000000ull /* lowest legal kernel link address */

#define BOOT_CMDLINE_MAX  1024  /* bytes, including the terminating NUL */
#define BOOT_MMAP_MAX     512   /* regions; the loader merges neighbours to fit */

/* Memory types the loader allocates with, from the range UEFI reserves for OS
 * loaders, so the final memory map tells kernel pages from boot_info pages. */
#define BOOT_EFI_TYPE_KERNEL   0x80000001u
#define BOOT_EFI_TYPE_BOOTINFO 0x80000002u

/* What a physical region is, from the kernel's point of view. The loader maps
 * EFI memory types to these (boot/mmap_convert.c) so the kernel needs no EFI. */
enum boot_mem_type {
	BOOT_MEM_USABLE = 1,     /* free RAM */
	BOOT_MEM_RECLAIMABLE,    /* EFI boot services / loader code+data: free RAM
	                            once the kernel left the loader's stack */
	BOOT_MEM_KERNEL,         /* the kernel image (PT_LOAD segments, .bss included) */
	BOOT_MEM_BOOTINFO,       /* boot_info + loader page tables: free RAM once the
	                            kernel copied boot_info and switched to its own tables */
	BOOT_MEM_ACPI_RECLAIM,   /* ACPI tables: free RAM after the tables were parsed */
	BOOT_MEM_ACPI_NVS,       /* keep forever */
	BOOT_MEM_EFI_RUNTIME,    /* runtime services code/data: keep, identity-mapped */
	BOOT_MEM_MMIO,           /* device memory; map uncached */
	BOOT_MEM_RESERVED,       /* anything else: never touch */
	BOOT_MEM_TYPE_COUNT
};

struct boot_mem_region {
	uint64_t base;      /* physical, 4 KiB aligned */
	uint64_t pages;     /* 4 KiB pages */
	uint32_t type;      /* enum boot_mem_type */
	uint32_t efi_type;  /* the UEFI memory type it came from (diagnostics) */
};

enum boot_cmdline_source {
	BOOT_CMDLINE_NONE = 0,   /* no command line anywhere: kernel defaults */
	BOOT_CMDLINE_FILE,       /* \cmdline.txt on the loader's volume */
	BOOT_CMDLINE_FWCFG,      /* QEMU fw_cfg file opt/balloon/cmdline (overrides) */
};

struct boot_info {
	uint64_t magic;              /* BOOT_INFO_MAGIC */
	uint32_t version;            /* BOOT_INFO_VERSION */
	uint32_t size;               /* sizeof(struct boot_info) as the loader saw it */

	uint64_t hhdm_base;          /* BOOT_HHDM_BASE: virt = phys + hhdm_base */
	uint64_t max_phys;           /* end of the identity/direct map */
	uint64_t loader_pml4;        /* physical address of the loader's PML4 */

	uint64_t kernel_phys;        /* physical base of the contiguous kernel image */
	uint64_t kernel_virt;        /* its link address (lowest PT_LOAD vaddr) */
	uint64_t kernel_size;        /* bytes, page aligned, .bss included */
	uint64_t kernel_entry;       /* virtual entry point */

	uint64_t acpi_rsdp;          /* RSDP (ACPI 2.0 preferred), 0 if none */
	uint64_t efi_system_table;   /* EFI_SYSTEM_TABLE, 0 if none */
	uint64_t efi_runtime;        /* EFI_RUNTIME_SERVICES (ResetSystem), 0 if none */

	uint64_t tsc_loader_entry;   /* rdtsc when efi_main started */
	uint64_t tsc_exit_boot;      /* rdtsc right after ExitBootServices succeeded */
	uint64_t tsc_hz;             /* TSC rate measured by the loader with BS->Stall, 0 if unknown */

	uint32_t cmdline_source;     /* enum boot_cmdline_source */
	uint32_t cmdline_len;        /* strlen(cmdline) */
	char     cmdline[BOOT_CMDLINE_MAX];

	uint32_t mmap_count;         /* entries used in mmap[], sorted by base, no overlaps */
	uint32_t mmap_reserved0;
	struct boot_mem_region mmap[BOOT_MMAP_MAX];
};

#endif /* BOOT_INFO_H */
