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
#include "klog.h"

/* klog's sink: one line, stdout flushed first so lines never interleave. */
void klog_sink(const char *line)
{
	fflush(stdout);
	serial_write(line, strlen(line));
	serial_write("\n", 1);
}

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
			printf("> ");
			fflush(stdout);
		} else if ((c == 0x7f || c == 0x08) && len > 0) {
			len--;
			serial_write("\b \b", 3);
		} else if (c >= 0x20 && c < 0x7f && len + 1 < sizeof line) {
			line[len++] = (char)c;
			char ch = (char)c;
			serial_write(&ch, 1);
		}
	}
}
POLLER(console_poll);
