/* console.c - loader messages (contract in console.h). */
#include <efi.h>
#include <efilib.h>
#include "boot/console.h"
#include "hw/io.h"

#define COM1     0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20    /* transmit holding register empty */

static void vmsg(const CHAR16 *fmt, va_list ap)
{
	Print(L"loader: ");
	VPrint(fmt, ap);
	Print(L"\n");
}

void loader_msg(const CHAR16 *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

EFI_STATUS loader_fail(EFI_STATUS status, const CHAR16 *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	BS->Stall(LOADER_FAIL_STALL_US);
	return status;
}

static void serial_putc(char c)
{
	/* Bounded: a missing UART reads 0xff (THRE set) or never drains. */
	for (int i = 0; i < 100000 && !(inb(COM1_LSR) & LSR_THRE); i++)
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

void serial_puts(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			serial_putc('\r');
		serial_putc(*s);
	}
}
