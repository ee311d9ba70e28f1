/*
 * console.c - the serial console: the sink for klog lines and a line editor
 * that hands each finished line to the interpreter (kernel/lib/console.c).
 * The poller reads input without blocking, so the balloon keeps running
 * while a human types.
 */
#include <stdio.h>
#include <string.h>
#include "kernel/arch/serial.h"
#include "kernel/lib/console.h"
#include "kernel/lib/initcall.h"
#include "kernel/lib/wake.h"
#include "kernel/arch/irq.h"
#include "klog.h"
#include "kernel/lib/fmt.h"

/* The application writes through newlib's stdout, the kernel straight to
 * the serial ring; what the application left in stdout's buffer goes first,
 * so output keeps its order. Only once it has written: stdout's first use
 * sets newlib's stdio up (buffers, malloc), which boot need not pay for. */
static void flush_app_output(void)
{
	if (stdout->_flags)
		fflush(stdout);
}

/* klog's sink: one line. */
void klog_sink(const char *line)
{
	flush_app_output();
	serial_write(line, strlen(line));
	serial_write("\n", 1);
}

/* kprintf's. */
void kprintf_sink(const char *text)
{
	flush_app_output();
	serial_write(text, strlen(text));
}

/* Input on its interrupt (ISA IRQ 4 through the I/O APIC): the handler
 * only says the UART raised it; the work loop wakes and the poller reads.
 * Without the line the poller looks every POLL_FALLBACK_NS. */
#define POLL_FALLBACK_NS (10 * NS_PER_MS)
static int on_irq;

static int serial_irq(struct trap_frame *tf) { return serial_irq_pending(); }

static int console_irq_init(void)
{
	const char *why;
	if (irq_request_line(SERIAL_ISA_IRQ, serial_irq, &why) < 0) {
		klog("console: no serial interrupt (%s); polling input every %llu ms", why,
		     (unsigned long long)(POLL_FALLBACK_NS / NS_PER_MS));
		return 0;
	}
	serial_irq_enable(1);
	on_irq = 1;
	return 0;
}
INITCALL(INIT_DRIVER, console_irq_init);

/* Line editing: printable characters, backspace, enter. */
static void console_poll(uint64_t now_ns)
{
	static char line[128];
	static size_t len;
	int c;
	while ((c = serial_getc()) >= 0) {
		if (c == '\r' || c == '\n') {
			serial_write("\n", 1);
			line[len] = 0;
			len = 0;
			console_exec(line);
			kprintf("> ");
			fflush(stdout);
			/* the command may have given other pollers work (they ran
			 * before this one): one more round, at once (a timer for
			 * it would show up as a tick in an idle guest's uptime) */
			wake_at(0);
		} else if ((c == 0x7f || c == 0x08) && len > 0) {
			len--;
			serial_write("\b \b", 3);
		} else if (c >= 0x20 && c < 0x7f && len + 1 < sizeof line) {
			line[len++] = (char)c;
			char ch = (char)c;
			serial_write(&ch, 1);
		}
	}
	if (!on_irq)
		wake_in(now_ns, POLL_FALLBACK_NS);
}
POLLER(console_poll);
