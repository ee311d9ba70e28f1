/* handoff.c - leaving the firmware for the kernel (contract in handoff.h). */
#include <efi.h>
#include <efilib.h>
#include "boot/handoff.h"
#include "boot/console.h"
#include "hw/io.h"

#define MMAP_SLACK 64       /* spare descriptors: the map grows as we allocate */
#define EBS_TRIES  4

/* Size the buffer for the current map plus slack: it must exist before the
 * final GetMemoryMap because allocating changes the map. */
EFI_STATUS map_alloc(struct efi_map *m)
{
	UINTN size = 0, key, dsize = 0;
	UINT32 dver;
	EFI_STATUS st = BS->GetMemoryMap(&size, NULL, &key, &dsize, &dver);
	if (st != EFI_BUFFER_TOO_SMALL)
		return EFI_ERROR(st) ? st : EFI_DEVICE_ERROR;
	if (dsize < sizeof(EFI_MEMORY_DESCRIPTOR))
		return EFI_INCOMPATIBLE_VERSION;
	m->cap = size + MMAP_SLACK * dsize;
	return BS->AllocatePool(EfiLoaderData, m->cap, (void **)&m->buf);
}

EFI_STATUS map_fetch(struct efi_map *m)
{
	m->size = m->cap;
	return BS->GetMemoryMap(&m->size, m->buf, &m->key, &m->desc_size, &m->desc_version);
}

/* Final map + ExitBootServices. Nothing may print in here. */
EFI_STATUS exit_boot_services(EFI_HANDLE image, struct efi_map *m)
{
	EFI_STATUS st = EFI_SUCCESS;
	for (int i = 0; i < EBS_TRIES; i++) {
		st = map_fetch(m);
		if (st == EFI_BUFFER_TOO_SMALL) {
			/* Memory allocation stays legal even after a failed EBS. */
			BS->FreePool(m->buf);
			m->buf = NULL;
			m->cap = m->size + MMAP_SLACK * m->desc_size;
			st = BS->AllocatePool(EfiLoaderData, m->cap, (void **)&m->buf);
			if (EFI_ERROR(st))
				return st;
			continue;
		}
		if (EFI_ERROR(st))
			return st;
		st = BS->ExitBootServices(image, m->key);
		if (st != EFI_INVALID_PARAMETER)   /* stale key: take the map again */
			return st;
	}
	return st;
}

/* ---------------------------------------------------------------- after the firmware */

static void __attribute__((noreturn)) halt_forever(void)
{
	for (;;) {
		irq_disable();
		cpu_halt();
	}
}

/* Only reachable if the final map differs from the checked one in a way
 * conversion rejects: no console is left, so say it on COM1 and power off. */
void late_fail(const char *why)
{
	serial_puts("loader: after ExitBootServices: ");
	serial_puts(why);
	serial_puts("; powering off\n");
	ST->RuntimeServices->ResetSystem(EfiResetShutdown, EFI_LOAD_ERROR, 0, NULL);
	halt_forever();
}

/* New tables, a 16-byte aligned stack as if reached by `call`, rdi = arg. */
void jump_to_kernel(uint64_t pml4, uint64_t entry, uint64_t arg)
{
	__asm__ __volatile__(
		"cli\n\t"
		"cld\n\t"
		"mov %%rax, %%cr3\n\t"
		"and $-16, %%rsp\n\t"
		"xor %%ebp, %%ebp\n\t"
		"push %%rbp\n\t"          /* return address 0: ends backtraces */
		"jmp *%%rcx\n\t"
		:: "a"(pml4), "c"(entry), "D"(arg) : "memory");
	__builtin_unreachable();
}

