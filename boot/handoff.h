/*
 * handoff.h - leaving the firmware: the final memory map, ExitBootServices
 * and the jump into the kernel.
 *
 * map_alloc() sizes a pool buffer for the current map plus slack; it must run
 * before the final GetMemoryMap because allocating changes the map.
 * map_fetch() fills it. exit_boot_services() takes the map and calls
 * ExitBootServices with its key, taking the map again on a stale key
 * (EFI_INVALID_PARAMETER) up to a few times; it prints nothing, since output
 * can allocate and so invalidate the key. After it succeeded, no boot service
 * may be called: late_fail() reports on COM1 and powers off through runtime
 * services; jump_to_kernel() loads CR3 and enters the kernel with rdi = arg,
 * interrupts off, on the current (identity-mapped) stack realigned as if
 * reached by a call.
 */
#ifndef BOOT_HANDOFF_H
#define BOOT_HANDOFF_H

#include <efi.h>
#include <stdint.h>

struct efi_map {
	EFI_MEMORY_DESCRIPTOR *buf;
	UINTN cap;          /* bytes allocated */
	UINTN size;         /* bytes filled by the last GetMemoryMap */
	UINTN key, desc_size;
	UINT32 desc_version;
};

EFI_STATUS map_alloc(struct efi_map *m);
EFI_STATUS map_fetch(struct efi_map *m);
EFI_STATUS exit_boot_services(EFI_HANDLE image, struct efi_map *m);

void late_fail(const char *why) __attribute__((noreturn));
void jump_to_kernel(uint64_t pml4, uint64_t entry, uint64_t arg) __attribute__((noreturn));

#endif /* BOOT_HANDOFF_H */
