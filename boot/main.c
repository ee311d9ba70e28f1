/*
 * main.c - the UEFI loader's flow: efi_main().
 *
 * Contract (the kernel's side is include/boot_info.h):
 *   1. print "loader: balloon-os UEFI loader";
 *   2. read \kernel.elf from the loader's own volume and validate it
 *      (boot/elf_check.c);
 *   3. take the command line from \cmdline.txt, overridden by the QEMU fw_cfg
 *      file opt/balloon/cmdline when present;
 *   4. copy the kernel into one contiguous BOOT_EFI_TYPE_KERNEL run, build
 *      boot_info and page tables in BOOT_EFI_TYPE_BOOTINFO memory;
 *   5. take the final memory map, ExitBootServices (retrying on a stale map
 *      key, printing nothing in between), convert the map, switch CR3 and
 *      jump to the ELF entry with rdi = HHDM address of boot_info.
 * Every failure before step 5 prints one "loader: ..." line, waits 3 s and
 * returns an error to the firmware (which then tries the next boot option).
 */
#include <efi.h>
#include <efilib.h>
#include <stddef.h>
#include "boot_info.h"
#include "hw/io.h"
#include "boot/console.h"
#include "boot/file.h"
#include "boot/elf_check.h"
#include "boot/cmdline_source.h"
#include "boot/platform.h"
#include "boot/handoff.h"
#include "boot/paging.h"
#include "boot/mmap_convert.h"

_Static_assert(sizeof(EFI_MEMORY_DESCRIPTOR) == sizeof(struct mmap_efi_desc), "descriptor layout");
_Static_assert(offsetof(EFI_MEMORY_DESCRIPTOR, PhysicalStart) == offsetof(struct mmap_efi_desc, phys_start), "descriptor layout");
_Static_assert(offsetof(EFI_MEMORY_DESCRIPTOR, NumberOfPages) == offsetof(struct mmap_efi_desc, num_pages), "descriptor layout");

#define PAGE_SIZE        4096ull
#define KERNEL_FILE_MAX  (128ull << 20)   /* symbols included; the span limit is separate */

#define MSR_EFER         0xC0000080u
#define EFER_NXE         (1ull << 11)

static uint64_t pages_of(uint64_t bytes)
{
	return (bytes + PAGE_SIZE - 1) / PAGE_SIZE;
}

/* ---------------------------------------------------------------- kernel file */

static EFI_STATUS read_kernel(EFI_FILE_HANDLE root, void **elf, UINT64 *size, struct elf_image *img)
{
	EFI_STATUS st = file_read_all(root, L"\\kernel.elf", KERNEL_FILE_MAX, elf, size);
	if (st == EFI_BAD_BUFFER_SIZE)
		return loader_fail(EFI_LOAD_ERROR, L"\\kernel.elf is larger than %d MiB",
		                   (int)(KERNEL_FILE_MAX >> 20));
	if (EFI_ERROR(st))
		return loader_fail(st, L"cannot open \\kernel.elf on the boot volume: %r", st);
	if (*size == 0)
		return loader_fail(EFI_LOAD_ERROR, L"\\kernel.elf on the boot volume is empty");

	enum elf_check_err err = elf_check(*elf, *size, img);
	if (err != ELF_OK)
		return loader_fail(EFI_LOAD_ERROR, L"\\kernel.elf is not a valid kernel: %a",
		                   elf_check_strerror(err));
	return EFI_SUCCESS;
}

/* ---------------------------------------------------------------- efi_main */

/* Everything load() takes from the firmware, so a failure can give it back:
 * the firmware goes on to other boot options with its memory intact. */
struct loader {
	EFI_FILE_HANDLE root;
	void *elf;
	UINT64 elf_size;
	struct efi_map map;
	EFI_PHYSICAL_ADDRESS info_phys, kernel_phys;
	UINTN info_alloc_pages, kernel_pages;
};

static void release(struct loader *l)
{
	if (l->elf)
		BS->FreePool(l->elf);
	if (l->map.buf)
		BS->FreePool(l->map.buf);
	if (l->info_alloc_pages)
		BS->FreePages(l->info_phys, l->info_alloc_pages);
	if (l->kernel_pages)
		BS->FreePages(l->kernel_phys, l->kernel_pages);
	if (l->root)
		l->root->Close(l->root);
}

/* Allocate boot_info + tables and the kernel run, below max_phys so the
 * kernel reaches all of it through the direct map. */
static EFI_STATUS allocate(struct loader *l, UINTN info_pages, UINTN kernel_pages, uint64_t max_phys)
{
	EFI_STATUS st;
	l->info_phys = max_phys - 1;
	st = BS->AllocatePages(AllocateMaxAddress, BOOT_EFI_TYPE_BOOTINFO, info_pages, &l->info_phys);
	if (EFI_ERROR(st))
		return loader_fail(st, L"cannot allocate %ld pages for boot_info and page tables: %r",
		                   (UINT64)info_pages, st);
	l->info_alloc_pages = info_pages;
	l->kernel_phys = max_phys - 1;
	st = BS->AllocatePages(AllocateMaxAddress, BOOT_EFI_TYPE_KERNEL, kernel_pages, &l->kernel_phys);
	if (EFI_ERROR(st))
		return loader_fail(st, L"cannot allocate %ld contiguous pages for the kernel: %r",
		                   (UINT64)kernel_pages, st);
	l->kernel_pages = kernel_pages;
	return EFI_SUCCESS;
}

/* The image: zero (.bss and gaps), then each segment's file bytes. */
static void copy_kernel(struct loader *l, const struct elf_image *img)
{
	uint8_t *dst = (uint8_t *)(uintptr_t)l->kernel_phys;
	SetMem(dst, l->kernel_pages * PAGE_SIZE, 0);
	for (uint32_t i = 0; i < img->nseg; i++)
		CopyMem(dst + (img->seg[i].vaddr - img->span_start),
		        (uint8_t *)l->elf + img->seg[i].offset, img->seg[i].filesz);
	BS->FreePool(l->elf);
	l->elf = NULL;
}

static void fill_boot_info(struct boot_info *bi, struct loader *l, const struct elf_image *img,
                           uint64_t max_phys, uint64_t tsc_entry)
{
	bi->magic = BOOT_INFO_MAGIC;
	bi->version = BOOT_INFO_VERSION;
	bi->size = sizeof *bi;
	bi->hhdm_base = BOOT_HHDM_BASE;
	bi->max_phys = max_phys;
	bi->kernel_phys = l->kernel_phys;
	bi->kernel_virt = img->span_start;
	bi->kernel_size = l->kernel_pages * PAGE_SIZE;
	bi->kernel_entry = img->entry;
	bi->acpi_rsdp = find_rsdp();
	bi->efi_system_table = (uint64_t)(uintptr_t)ST;
	bi->efi_runtime = (uint64_t)(uintptr_t)ST->RuntimeServices;
	bi->tsc_loader_entry = tsc_entry;
	cmdline_read(l->root, bi);
	bi->tsc_hz = measure_tsc_hz();
}

/* Everything up to the final memory map; on failure the caller releases. */
static EFI_STATUS prepare(EFI_HANDLE image, struct loader *l, struct elf_image *img,
                          uint64_t tsc_entry, int use_nx, struct boot_info **bip)
{
	EFI_STATUS st;

	if (cpu_la57_active())
		return loader_fail(EFI_UNSUPPORTED, L"5-level paging is active; this loader builds 4-level tables");
	st = file_open_boot_volume(image, &l->root);
	if (EFI_ERROR(st)) {
		l->root = NULL;
		return loader_fail(st, L"cannot open the boot volume: %r", st);
	}
	st = read_kernel(l->root, &l->elf, &l->elf_size, img);
	if (EFI_ERROR(st))
		return st;

	/* Sizes first: the direct map covers every address the map mentions. */
	st = map_alloc(&l->map);
	if (!EFI_ERROR(st))
		st = map_fetch(&l->map);
	if (EFI_ERROR(st))
		return loader_fail(st, L"cannot read the memory map: %r", st);
	uint64_t max_phys = paging_max_phys(mmap_highest_end(l->map.buf, l->map.size, l->map.desc_size));
	UINTN info_pages = pages_of(sizeof(struct boot_info));
	UINTN pt_pages = paging_tables_needed(max_phys, img);
	st = allocate(l, info_pages + pt_pages, (img->span_end - img->span_start) / PAGE_SIZE, max_phys);
	if (EFI_ERROR(st))
		return st;
	copy_kernel(l, img);

	struct boot_info *bi = (struct boot_info *)(uintptr_t)l->info_phys;
	SetMem(bi, info_pages * PAGE_SIZE, 0);
	fill_boot_info(bi, l, img, max_phys, tsc_entry);

	struct pt_pool pool = {
		.pages = (uint64_t *)(uintptr_t)(l->info_phys + info_pages * PAGE_SIZE),
		.total = (uint32_t)pt_pages,
	};
	enum paging_err perr = paging_build(&pool, max_phys, img, l->kernel_phys, use_nx, &bi->loader_pml4);
	if (perr != PAGING_OK)
		return loader_fail(EFI_LOAD_ERROR, L"cannot build page tables (error %d, %d tables)",
		                   (int)perr, (int)pt_pages);

	/* Dry run on the current map, so a map we cannot convert is reported
	 * here, while there is still a console, rather than after the exit. */
	st = map_fetch(&l->map);
	if (EFI_ERROR(st))
		return loader_fail(st, L"cannot read the memory map: %r", st);
	enum mmap_err merr = mmap_convert(l->map.buf, l->map.size, l->map.desc_size,
	                                  bi->mmap, BOOT_MMAP_MAX, &bi->mmap_count);
	if (merr != MMAP_OK)
		return loader_fail(EFI_LOAD_ERROR, L"cannot convert the memory map: %a", mmap_strerror(merr));

	loader_msg(L"kernel %ld KiB at phys 0x%lx, %ld map entries, max_phys %ld GiB, cmdline \"%a\"",
	           (UINT64)l->kernel_pages * 4, l->kernel_phys, (UINT64)bi->mmap_count,
	           max_phys >> 30, bi->cmdline);
	*bip = bi;
	return EFI_SUCCESS;
}

static EFI_STATUS load(EFI_HANDLE image, uint64_t tsc_entry)
{
	static struct loader l;
	static struct elf_image img;
	struct boot_info *bi = NULL;
	int use_nx = cpu_has_nx();

	EFI_STATUS st = prepare(image, &l, &img, tsc_entry, use_nx, &bi);
	if (!EFI_ERROR(st)) {
		l.root->Close(l.root);
		l.root = NULL;
		st = exit_boot_services(image, &l.map);
		if (EFI_ERROR(st))
			st = loader_fail(st, L"ExitBootServices failed: %r", st);
	}
	if (EFI_ERROR(st)) {
		release(&l);
		return st;
	}

	/* From here on: no firmware boot services, no console. */
	bi->tsc_exit_boot = rdtsc();
	enum mmap_err merr = mmap_convert(l.map.buf, l.map.size, l.map.desc_size,
	                                  bi->mmap, BOOT_MMAP_MAX, &bi->mmap_count);
	if (merr != MMAP_OK)
		late_fail(mmap_strerror(merr));
	if (use_nx)
		wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
	jump_to_kernel(bi->loader_pml4, img.entry, BOOT_HHDM_BASE + l.info_phys);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	uint64_t tsc_entry = rdtsc();

	InitializeLib(image, systab);
	/* The firmware watchdog would reset the machine after 5 min in the loader. */
	BS->SetWatchdogTimer(0, 0, 0, NULL);
	loader_msg(L"balloon-os UEFI loader");
	return load(image, tsc_entry);
}
