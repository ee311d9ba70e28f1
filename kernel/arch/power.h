/*
 * power.h - leaving the machine.
 *
 * power_off(status) ends the VM with a verdict: under QEMU the isa-debug-exit
 * device (port 0xf4) makes QEMU exit with (code << 1) | 1, so the two codes
 * below give exit status 33 (pass) and 35 (fail); without that device, UEFI
 * ResetSystem(EfiResetShutdown) powers off, and if even that returns we halt.
 */
#ifndef KERNEL_POWER_H
#define KERNEL_POWER_H

#define EXIT_CODE_PASS 0x10   /* QEMU exit status 33 */
#define EXIT_CODE_FAIL 0x11   /* QEMU exit status 35 */

void power_off(int pass) __attribute__((noreturn));
/* After a panic: power off failing if power_fail_powers_off(1) was called (the
 * self-test boot does, so a test boot never hangs), otherwise halt for a human. */
void power_fail_stop(void) __attribute__((noreturn));
void power_fail_powers_off(int on);

#endif
