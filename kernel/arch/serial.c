/* serial.c - see serial.h. */
#include "kernel/arch/serial.h"
#include <string.h>
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

/*
 * Output is buffered: each character the UART takes is a port write that an
 * emulator handles one by one (~6 us each under TCG), so a kernel printing
 * synchronously would spend its boot, and any busy moment, waiting for the
 * console. serial_write only appends to a ring (interrupts off around it:
 * an interrupt handler may log too); the work loop drains it in bounded
 * slices (serial_drain). If the ring is full, the writer drains it itself:
 * output is delayed, never lost. serial_sync (panic, power-off) empties the
 * ring and makes every later write synchronous.
 */
#define RING 65536
static char ring[RING];
static uint32_t r_head, r_tail;     /* bytes [tail, head) wait, indices mod RING */
static int sync_mode;

static size_t drain_locked(size_t max)
{
	size_t n = 0;
	while (r_tail != r_head && n < max) {
		serial_putc(ring[r_tail % RING]);
		r_tail++;
		n++;
	}
	return n;
}

static void put_locked(char c)
{
	if (r_head - r_tail == RING)
		drain_locked(RING / 4);
	ring[r_head % RING] = c;
	r_head++;
}

void serial_write(const char *s, size_t len)
{
	if (sync_mode) {
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '\n')
				serial_putc('\r');
			serial_putc(s[i]);
		}
		return;
	}
	uint64_t flags = irq_save();
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			put_locked('\r');
		put_locked(s[i]);
	}
	irq_restore(flags);
}

void serial_puts(const char *s)
{
	serial_write(s, strlen(s));
}

int serial_drain(size_t max)
{
	uint64_t flags = irq_save();
	drain_locked(max);
	int more = r_tail != r_head;
	irq_restore(flags);
	return more;
}

void serial_sync(void)
{
	uint64_t flags = irq_save();
	drain_locked(RING);
	sync_mode = 1;
	irq_restore(flags);
}
