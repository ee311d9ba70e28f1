/*
 * console.c - the command registry's interpreter and its two built-in
 * command, `help` (see console.h). No device here: input arrives from
 * kernel/console.c, output goes through stdio.
 */
#include <stdio.h>
#include <string.h>
#include "kernel/lib/console.h"
#include "kernel/lib/fmt.h"

extern const struct console_cmd __start_console_cmds[], __stop_console_cmds[];

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
	kprintf("unknown command '%s' (try 'help')\n", argv[0]);
	return 1;
}

static int cmd_help(int argc, char **argv)
{
	for (const struct console_cmd *c = __start_console_cmds; c < __stop_console_cmds; c++)
		kprintf("  %-10s %s\n", c->name, c->help);
	return 0;
}
CONSOLE_CMD("help", "list commands", cmd_help);
