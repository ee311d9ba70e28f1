/*
 * kernel_cmd.c - the kernel's own console commands: `uptime`, `poweroff`.
 */
#include <stdio.h>
#include "kclock.h"
#include "kernel/arch/power.h"
#include "kernel/arch/time.h"
#include "kernel/lib/console.h"

static int cmd_uptime(int argc, char **argv)
{
	uint64_t ns = clock_ns();
	printf("up %lu.%03lu s, %lu timer ticks\n", ns / NS_PER_S, ns % NS_PER_S / NS_PER_MS, timer_ticks());
	return 0;
}
CONSOLE_CMD("uptime", "time since boot", cmd_uptime);

static int cmd_poweroff(int argc, char **argv)
{
	printf("powering off\n");
	power_off(1);
}
CONSOLE_CMD("poweroff", "power the machine off", cmd_poweroff);
