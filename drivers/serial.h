/*
 * serial.h - 16550 UART on COM1 (0x3f8), 115200 8N1: the kernel's console.
 * serial_putc never blocks forever: if the transmitter never drains (no UART)
 * the character is dropped after a bounded wait.
 */
#ifndef DRIVERS_SERIAL_H
#define DRIVERS_SERIAL_H

void serial_init(void);
void serial_putc(char c);
/* Next received byte, or -1 if none is waiting. */
int serial_getc(void);

#endif
