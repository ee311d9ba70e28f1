/*
 * kernel_cmd.c - the kernel's own console commands (`uptime`, `poweroff`) and
 * options (`irq.poll`, `timer.off`, `console.sync`: see kernel.h).
 */
#include <stdio.h>
#include "kclock.h"
#include "kernel/arch/power.h"
#include "kernel/arch/time.h"
#include "kernel/lib/console.h"
#include "kernel/lib/cmdline.h"
#include "kernel/lib/wake.h"
#include "kernel/kernel.h"
#include "kernel/lib/fmt.h"

int opt_irq_poll, opt_timer_off;
CMDLINE_FLAG(irq_poll, "irq.poll", &opt_irq_poll, "route no interrupt lines: devices without MSI-X are polled");
CMDLINE_FLAG(timer_off, "timer.off", &opt_timer_off, "no LAPIC timer: the work loop polls instead of sleeping");
int opt_console_sync;
CMDLINE_FLAG(console_sync, "console.sync", &opt_console_sync,
             "write console output at once, not from the work loop (to see the last line before a hang)");

static int cmd_uptime(int argc, char **argv)
{
	uint64_t ns = clock_ns();
	uint64_t due = wake_last_deadline();
	kprintf("up %lu.%03lu s, %lu timer ticks, %llu wake-ups", ns / NS_PER_S, ns % NS_PER_S / NS_PER_MS,
	       timer_ticks(), (unsigned long long)wake_sleeps());
	if (due == WAKE_NEVER)
		kprintf("; sleeping until an interrupt\n");
	else
		kprintf("; next deadline in %lld ms\n", (long long)((int64_t)(due - ns) / (int64_t)NS_PER_MS));
	return 0;
}
CONSOLE_CMD("uptime", "time since boot", cmd_uptime);

static int cmd_poweroff(int argc, char **argv)
{
	kprintf("powering off\n");
	power_off(1);
}
CONSOLE_CMD("poweroff", "power the machine off", cmd_poweroff);
