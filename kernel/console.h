/*
 * console.h - the serial console: output for printf/klog, and a line-based
 * command interpreter on input.
 *
 * Commands register from any file with CONSOLE_CMD(name, help, fn); fn gets
 * argc/argv (argv[0] is the command) and returns 0 or prints one clear error
 * line and returns non-zero. The console's poller reads input without
 * blocking, so the balloon keeps running while a human types.
 */
#ifndef KERNEL_CONSOLE_H
#define KERNEL_CONSOLE_H

#include <stddef.h>

struct console_cmd {
	const char *name;
	const char *help;
	int (*fn)(int argc, char **argv);
};

#define CONSOLE_CMD(name_, help_, fn_) \
	static const struct console_cmd console_cmd_##fn_ \
	__attribute__((used, section("console_cmds"), aligned(8))) = { name_, help_, fn_ }

void console_init(void);
void console_write(const char *s, size_t len);
/* No locks, no heap: for panic. */
void console_write_raw(const char *s);
/* Run one command line (also used by self-tests). Returns the command's result. */
int console_exec(char *line);

#endif
