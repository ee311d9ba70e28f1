/*
 * console.c - serial console output and the command interpreter.
 */
#include <stdio.h>
#include <string.h>
#include "drivers/serial.h"
#include "kernel/cmdline.h"
#include "kernel/console.h"
#include "kernel/initcall.h"
#include "klog.h"

extern const struct console_cmd __start_console_cmds[], __stop_console_cmds[];

void console_init(void)
{
	serial_init();
}

void console_write(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
}

void console_write_raw(const char *s)
{
	console_write(s, strlen(s));
}

/* klog's sink: one line, stdout flushed first so lines never interleave. */
void klog_sink(const char *line)
{
	fflush(stdout);
	console_write(line, strlen(line));
	console_write("\n", 1);
}

static int split(char *line, char **argv, int max)
{
	int argc = 0;
	for (char *p = line; *p && argc < max;) {
		while (*p == ' ' || *p == '\t')
			*p++ = 0;
		if (!*p)
			break;
		argv[argc++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	return argc;
}

int console_exec(char *line)
{
	char *argv[16];
	int argc = split(line, argv, 16);
	if (argc == 0)
		return 0;
	for (const struct console_cmd *c = __start_console_cmds; c < __stop_console_cmds; c++)
		if (strcmp(c->name, argv[0]) == 0)
			return c->fn(argc, argv);
	printf("unknown command '%s' (try 'help')\n", argv[0]);
	return 1;
}

static int cmd_help(int argc, char **argv)
{
	for (const struct console_cmd *c = __start_console_cmds; c < __stop_console_cmds; c++)
		printf("  %-10s %s\n", c->name, c->help);
	return 0;
}
CONSOLE_CMD("help", "list commands", cmd_help);

static void report_line(const char *line) { printf("%s\n", line); }

static int cmd_set(int argc, char **argv)
{
	const struct cmdline_opt *o = __start_cmdline_opts;
	size_t n = (size_t)(__stop_cmdline_opts - __start_cmdline_opts);
	char buf[64];
	if (argc == 1) {
		for (size_t i = 0; i < n; i++) {
			cmdline_format(&o[i], buf, sizeof buf);
			printf("  %-22s %-12s %s\n", o[i].name, buf, o[i].help);
		}
		return 0;
	}
	if (argc != 3) {
		printf("usage: set [<option> <value>]\n");
		return 1;
	}
	return cmdline_set(o, n, argv[1], argv[2], report_line) ? 1 : 0;
}
CONSOLE_CMD("set", "set <option> <value>; no arguments: list options", cmd_set);

/* Line editing: printable characters, backspace, enter. */
static void console_poll(uint64_t now_ns)
{
	static char line[128];
	static size_t len;
	int c;
	while ((c = serial_getc()) >= 0) {
		if (c == '\r' || c == '\n') {
			console_write("\n", 1);
			line[len] = 0;
			len = 0;
			console_exec(line);
			printf("> ");
			fflush(stdout);
		} else if ((c == 0x7f || c == 0x08) && len > 0) {
			len--;
			console_write("\b \b", 3);
		} else if (c >= 0x20 && c < 0x7f && len + 1 < sizeof line) {
			line[len++] = (char)c;
			char ch = (char)c;
			console_write(&ch, 1);
		}
	}
}
POLLER(console_poll);
