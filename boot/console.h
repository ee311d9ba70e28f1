/*
 * console.h - how the loader talks to a human.
 *
 * Before ExitBootServices everything goes through the firmware console
 * (ConOut; OVMF mirrors it to the serial port). Every message is one line
 * starting with "loader: ". A fatal error prints its line, waits
 * LOADER_FAIL_STALL_US so a person at a screen can read it, and hands an
 * error status back to the firmware: the loader never hangs.
 *
 * After ExitBootServices the firmware console is gone; serial_puts() writes
 * straight to COM1 for the one failure that can still happen there.
 */
#ifndef BOOT_CONSOLE_H
#define BOOT_CONSOLE_H

#include <efi.h>

#define LOADER_FAIL_STALL_US 3000000

/* Print one line (fmt is a gnu-efi Print format: %a ASCII, %s CHAR16, %r status). */
void loader_msg(const CHAR16 *fmt, ...);

/* loader_msg(), wait ~3 s, return `status` (for `return loader_fail(...)`). */
EFI_STATUS loader_fail(EFI_STATUS status, const CHAR16 *fmt, ...);

/* COM1, polled, bounded waits: usable with no firmware at all. */
void serial_puts(const char *s);

#endif /* BOOT_CONSOLE_H */
