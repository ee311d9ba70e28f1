/* power.c - see power.h. */
#include <stdint.h>
#include "boot_info.h"
#include "hw/io.h"
#include "kernel/lib/boot.h"
#include "kernel/arch/serial.h"
#include "kernel/arch/power.h"

#define ISA_DEBUG_EXIT_PORT 0xf4
#define EFI_RESET_SHUTDOWN 2
/* EFI_RUNTIME_SERVICES: 24-byte header, then 10 function pointers before ResetSystem. */
#define EFI_RT_RESET_SYSTEM_OFFSET (24 + 10 * 8)

typedef void (__attribute__((ms_abi)) *efi_reset_system_fn)(int type, uint64_t status,
                                                            uint64_t size, void *data);

void power_off(int pass)
{
	serial_sync();          /* everything printed so far goes out first */
	irq_disable();
	outl(ISA_DEBUG_EXIT_PORT, pass ? EXIT_CODE_PASS : EXIT_CODE_FAIL);

	/* Still here: no debug-exit device. Runtime services stay identity mapped. */
	const struct boot_info *bi = boot_info_get();
	if (bi && bi->efi_runtime) {
		const uint8_t *rt = (const uint8_t *)(BOOT_HHDM_BASE + bi->efi_runtime);
		efi_reset_system_fn reset = *(efi_reset_system_fn const *)(rt + EFI_RT_RESET_SYSTEM_OFFSET);
		if (reset)
			reset(EFI_RESET_SHUTDOWN, pass ? 0 : 1, 0, 0);
	}
	serial_puts("power: no way to power off; halted\n");
	for (;;)
		cpu_halt();
}

static int fail_powers_off;

void power_fail_powers_off(int on) { fail_powers_off = on; }

void power_fail_stop(void)
{
	if (fail_powers_off)
		power_off(0);
	for (;;) {
		irq_disable();
		cpu_halt();
	}
}
