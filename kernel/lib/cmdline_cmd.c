/*
 * cmdline_cmd.c - the kernel's own command line: the options every module
 * registered (CMDLINE_* in any file, collected by the linker), parsed once at
 * boot, and the console's `set` command that lists or changes them at run
 * time. Kernel only: the host tests drive cmdline.c with their own tables.
 */
#include <stdio.h>
#include "kernel/lib/cmdline.h"
#include "kernel/lib/console.h"
#include "klog.h"
#include "kernel/lib/fmt.h"

int cmdline_error_count;

static void report_klog(const char *line) { klog("%s", line); }

int cmdline_boot_parse(const char *line)
{
	cmdline_error_count = cmdline_parse(line, __start_cmdline_opts,
	                                    (size_t)(__stop_cmdline_opts - __start_cmdline_opts),
	                                    report_klog);
	return cmdline_error_count;
}

static void report_line(const char *line) { kprintf("%s\n", line); }

static int cmd_set(int argc, char **argv)
{
	const struct cmdline_opt *o = __start_cmdline_opts;
	size_t n = (size_t)(__stop_cmdline_opts - __start_cmdline_opts);
	char buf[64];
	if (argc == 1) {
		for (size_t i = 0; i < n; i++) {
			cmdline_format(&o[i], buf, sizeof buf);
			kprintf("  %-22s %-12s %s\n", o[i].name, buf, o[i].help);
		}
		return 0;
	}
	if (argc != 3) {
		kprintf("usage: set [<option> <value>]\n");
		return 1;
	}
	return cmdline_set(o, n, argv[1], argv[2], report_line) ? 1 : 0;
}
CONSOLE_CMD("set", "set <option> <value>; no arguments: list options", cmd_set);
