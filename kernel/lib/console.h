/*
 * console.h - the console's command registry and interpreter.
 *
 * Commands register from any file with CONSOLE_CMD(name, help, fn); fn gets
 * argc/argv (argv[0] is the command) and returns 0, or prints one clear error
 * line and returns non-zero. Each module keeps its commands and options in one
 * companion file (mm/mm_cmd.c, drivers/balloon/balloon_cmd.c, app/app_main.c).
 *
 * console_exec() splits a line and runs the command it names; it owns no
 * device (kernel/console.c reads the serial port and calls it), so self-tests
 * drive it directly. Built-in: `help`; `set` lives with the options
 * (kernel/lib/cmdline_cmd.c).
 */
#ifndef KERNEL_LIB_CONSOLE_H
#define KERNEL_LIB_CONSOLE_H

struct console_cmd {
	const char *name;
	const char *help;
	int (*fn)(int argc, char **argv);
};

#define CONSOLE_CMD(name_, help_, fn_) \
	static const struct console_cmd console_cmd_##fn_ \
	__attribute__((used, section("console_cmds"), aligned(8))) = { name_, help_, fn_ }

/* Run one command line (modified in place). Returns the command's result;
 * 1 (with one line) for an unknown command, 0 for an empty line. */
int console_exec(char *line);

#endif
