/* serial.c - see serial.h. */
#include "kernel/arch/serial.h"
#include "hw/io.h"

#define COM1 0x3f8
enum { THR = 0, RBR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5 };
#define IER_RX_AVAILABLE  0x01
#define IIR_NONE_PENDING  0x01
#define MCR_OUT2          0x08   /* gates the UART's interrupt onto the ISA line */
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY  0x20

void serial_init(void)
{
	outb(COM1 + IER, 0x00);          /* no interrupts until serial_irq_enable */
	outb(COM1 + LCR, 0x80);          /* DLAB on */
	outb(COM1 + DLL, 1);             /* 115200 baud */
	outb(COM1 + DLM, 0);
	outb(COM1 + LCR, 0x03);          /* 8N1, DLAB off */
	outb(COM1 + FCR, 0xc7);          /* FIFOs on and cleared */
	outb(COM1 + MCR, 0x03 | MCR_OUT2); /* DTR, RTS; OUT2 gates IRQ 4 on PC UARTs */
}

void serial_putc(char c)
{
	for (int spins = 0; spins < 100000; spins++) {
		if (inb(COM1 + LSR) & LSR_THR_EMPTY) {
			outb(COM1 + THR, (uint8_t)c);
			return;
		}
		cpu_relax();
	}
}

void serial_irq_enable(int on)
{
	outb(COM1 + IER, on ? IER_RX_AVAILABLE : 0);
}

int serial_irq_pending(void)
{
	return !(inb(COM1 + IIR) & IIR_NONE_PENDING);
}

int serial_getc(void)
{
	if (inb(COM1 + LSR) & LSR_DATA_READY)
		return inb(COM1 + RBR);
	return -1;
}

void serial_write(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
}

void serial_puts(const char *s)
{
	while (*s)
		serial_write(s++, 1);
}
