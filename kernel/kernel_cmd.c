/*
 * kernel_cmd.c - the kernel's own console commands: `uptime`, `poweroff`.
 */
#include <stdio.h>
#include "kclock.h"
#include "kernel/arch/power.h"
#include "kernel/arch/time.h"
#include "kernel/lib/console.h"
#include "kernel/lib/wake.h"

static int cmd_uptime(int argc, char **argv)
{
	uint64_t ns = clock_ns();
	uint64_t due = wake_last_deadline();
	printf("up %lu.%03lu s, %lu timer ticks, %llu wake-ups", ns / NS_PER_S, ns % NS_PER_S / NS_PER_MS,
	       timer_ticks(), (unsigned long long)wake_sleeps());
	if (due == WAKE_NEVER)
		printf("; sleeping until an interrupt\n");
	else
		printf("; next deadline in %lld ms\n", (long long)((int64_t)(due - ns) / (int64_t)NS_PER_MS));
	return 0;
}
CONSOLE_CMD("uptime", "time since boot", cmd_uptime);

static int cmd_poweroff(int argc, char **argv)
{
	printf("powering off\n");
	power_off(1);
}
CONSOLE_CMD("poweroff", "power the machine off", cmd_poweroff);
