/*
 * serial.h - 16550 UART on COM1 (0x3f8), 115200 8N1: the kernel's console.
 *
 * Output never blocks forever: if the transmitter never drains (no UART) a
 * character is dropped after a bounded wait. serial_write turns "\n" into
 * "\r\n" and only buffers (a 64 KiB ring; a full ring is drained by the
 * writer: delayed, never lost); the work loop calls serial_drain, and
 * serial_sync (panic, power-off) flushes and makes all later output
 * synchronous. No heap, so panic and power-off can use it too.
 */
#ifndef KERNEL_ARCH_SERIAL_H
#define KERNEL_ARCH_SERIAL_H

#include <stddef.h>

void serial_init(void);
void serial_putc(char c);
void serial_write(const char *s, size_t len);
void serial_puts(const char *s);
/* Send up to max buffered characters; 1 if more are waiting. */
int serial_drain(size_t max);
/* Flush the buffer; every later write goes out before it returns. */
void serial_sync(void);
/* Next received byte, or -1 if none is waiting. */
int serial_getc(void);
/* Raise ISA IRQ 4 when a byte arrives (on = 1), or not. The line stays up
 * until every waiting byte was read. serial_irq_pending: the UART has an
 * interrupt pending (for a shared handler). */
void serial_irq_enable(int on);
int serial_irq_pending(void);
#define SERIAL_ISA_IRQ 4

#endif
