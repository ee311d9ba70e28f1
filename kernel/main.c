/*
 * main.c - from the loader's jump to the work loop.
 *
 * Order matters: the console first (so everything after can complain), our
 * own descriptor tables next (the loader's live in memory mm/ will reclaim),
 * then a private copy of boot_info, the clock, the command line, and the
 * modules' initcalls by level. After that the kernel is "ready": it either runs
 * the self-tests and powers off, or serves the console and the pollers forever.
 */
#include <stdio.h>
#include <string.h>
#include "boot_info.h"
#include "hw/io.h"
#include "kclock.h"
#include "kernel/arch/arch.h"
#include "kernel/lib/boot.h"
#include "kernel/lib/cmdline.h"
#include "kernel/lib/console.h"
#include "kernel/lib/initcall.h"
#include "kernel/arch/panic.h"
#include "kernel/arch/power.h"
#include "kernel/arch/serial.h"
#include "kernel/arch/time.h"
#include "kernel/lib/selftest.h"
#include "kernel/lib/wake.h"
#include "kernel/lib/acpi.h"
#include "kernel/arch/irq.h"
#include "kernel/kernel.h"
#include "mm/kmem.h"
#include "mm/mm.h"
#include "klog.h"
#include "kernel/lib/fmt.h"

#define KERNEL_VERSION "0.1"

extern const struct initcall __start_initcalls[], __stop_initcalls[];
extern const struct poller __start_pollers[], __stop_pollers[];
static uint64_t boot_ready_ns_after_exit;

static void print_banner(const struct boot_info *bi)
{
	uint64_t by_type[BOOT_MEM_TYPE_COUNT] = { 0 };
	for (uint32_t i = 0; i < bi->mmap_count; i++)
		by_type[bi->mmap[i].type] += bi->mmap[i].pages * 4096;
	kprintf("\nballoon-os %s: x86-64 unikernel with a 2 MiB-block virtio balloon\n", KERNEL_VERSION);
	kprintf("memory: %lu MiB usable, %u regions (", boot_info_usable_bytes(bi) >> 20, bi->mmap_count);
	const char *sep = "";
	for (uint32_t t = 1; t < BOOT_MEM_TYPE_COUNT; t++) {
		if (!by_type[t] || t == BOOT_MEM_MMIO)
			continue;
		kprintf("%s%s %lu KiB", sep, boot_mem_type_name(t), by_type[t] >> 10);
		sep = ", ";
	}
	kprintf(")\n");
	kprintf("kernel: %lu KiB at phys %#lx; TSC %lu MHz; ACPI RSDP %#lx\n",
	       bi->kernel_size >> 10, bi->kernel_phys, time_tsc_hz() / 1000000, bi->acpi_rsdp);
	static const char *const src[] = { "none", "cmdline.txt", "fw_cfg" };
	kprintf("cmdline (%s): '%s'\n", bi->cmdline_source < 3 ? src[bi->cmdline_source] : "?", bi->cmdline);
}

/* Where boot time goes: the slowest initcalls, printed with the ready line
 * (so a slow driver is one look away, not a bisection). */
#define INIT_SLOWEST 4
static struct { const char *name; uint64_t ns; } init_slow[INIT_SLOWEST];

static void note_initcall_time(const char *name, uint64_t ns)
{
	int i = INIT_SLOWEST - 1;
	if (ns <= init_slow[i].ns)
		return;
	for (; i > 0 && init_slow[i - 1].ns < ns; i--)
		init_slow[i] = init_slow[i - 1];
	init_slow[i].name = name;
	init_slow[i].ns = ns;
}

static void run_initcalls(void)
{
	for (int level = INIT_MM; level <= INIT_APP; level++)
		for (const struct initcall *c = __start_initcalls; c < __stop_initcalls; c++)
			if (c->level == level) {
				uint64_t t0 = clock_ns();
				int rc = c->fn();
				note_initcall_time(c->name, clock_ns() - t0);
				if (rc)
					klog("init: %s failed (%d)", c->name, rc);
			}
}

/*
 * The work loop: run every poller, then sleep until the earliest deadline
 * they asked for (kernel/lib/wake.h) or an interrupt. No periodic tick: with
 * nothing due and every device on interrupts, the CPU stays in hlt.
 * Without a working timer it never sleeps past a deadline: it spins with
 * pause instead (and says so once, at boot).
 */
#define CONSOLE_SLICE_NS 1000000ull

static void __attribute__((noreturn)) work_loop(void)
{
	kprintf("> ");
	fflush(stdout);
	for (;;) {
		uint64_t now = clock_ns();
		for (const struct poller *p = __start_pollers; p < __stop_pollers; p++)
			p->fn(now);
		fflush(stdout);
		/* Console output goes out here, in slices of about a millisecond,
		 * so a burst of logging never holds the pollers up for long. */
		uint64_t t_out = clock_ns();
		while (serial_drain(256))
			if (clock_ns() - t_out > CONSOLE_SLICE_NS) {
				wake_at(0);
				break;
			}
		uint64_t due = wake_take();
		irq_disable();
		/* An interrupt while the pollers ran: its poller may not have seen
		 * it yet, so go round again instead of sleeping through it. */
		if (irq_take_seen() || due <= clock_ns()) {
			irq_enable();
			continue;
		}
		if (!lapic_timer_ok() && due != WAKE_NEVER) {
			irq_enable();
			while (clock_ns() < due && !irq_take_seen())
				cpu_relax();
			continue;
		}
		lapic_timer_arm(due == WAKE_NEVER ? 0 : due - clock_ns());
		wake_count_sleep();
		/* sti;hlt is atomic: an interrupt between them still wakes the hlt. */
		__asm__ __volatile__("sti; hlt" ::: "memory");
	}
}

void kmain(const struct boot_info *bi_loader)
{
	serial_init();
	arch_init();
	const char *why;
	if (boot_info_save(bi_loader, &why)) {
		serial_puts("\nballoon-os: cannot start: boot_info from the loader is unusable: ");
		serial_puts(why);
		serial_puts("\n");
		power_off(0);
	}
	const struct boot_info *bi = boot_info_get();
	time_init(bi->tsc_hz);

	cmdline_boot_parse(bi->cmdline);
	if (opt_console_sync)
		serial_sync();
	power_fail_powers_off(selftest_mode);
	print_banner(bi);
	if (cmdline_error_count)
		kprintf("cmdline: %d error%s above; those options keep their defaults\n",
		       cmdline_error_count, cmdline_error_count == 1 ? "" : "s");

	run_initcalls();
	/* The clock checks that ran in the background during set-up. */
	time_confirm();
	lapic_timer_calibrate();
	irq_enable();

	uint64_t hz = time_tsc_hz();
	boot_ready_ns_after_exit = (uint64_t)(((unsigned __int128)(rdtsc() - bi->tsc_exit_boot) * 1000000000u) / hz);
	uint64_t loader_ns = bi->tsc_exit_boot > bi->tsc_loader_entry ?
		(uint64_t)(((unsigned __int128)(bi->tsc_exit_boot - bi->tsc_loader_entry) * 1000000000u) / hz) : 0;
	kprintf("boot: ready %lu us after ExitBootServices (loader ran %lu us); slowest set-up:",
	       boot_ready_ns_after_exit / 1000, loader_ns / 1000);
	for (int i = 0; i < INIT_SLOWEST && init_slow[i].name; i++)
		kprintf(" %s %lu us", init_slow[i].name, init_slow[i].ns / 1000);
	kprintf("\n");

	if (selftest_mode) {
		mm_online_all();        /* the tests count every frame */
		power_off(selftest_run());
	}
	work_loop();
}

/* After mm (INIT_MM): the local APIC's and the I/O APIC's registers need
 * uncached mappings, which arch/ leaves to us. The timer first (the work
 * loop sleeps on it), then the interrupt lines devices route through the
 * I/O APIC (INTx, the serial port). Either may be missing: the loop then
 * polls, and drivers fall back to polling with one line each. */
static int platform_initcall(void)
{
	int rc = lapic_attach(mmio_map(lapic_enable(), 4096));
	if (rc)
		klog("lapic: registers cannot be mapped: no interrupts, the work loop polls");
	else if (opt_timer_off)
		klog("lapic: timer.off: the work loop polls instead of sleeping");
	else
		rc = lapic_timer_init();
	const struct boot_info *bi = boot_info_get();
	const uint8_t *t;
	uint32_t len;
	const char *why;
	struct acpi_madt madt;
	if (opt_irq_poll) {
		klog("irq: irq.poll: no interrupt lines routed; devices without MSI-X are polled");
		return rc;
	}
	if (acpi_find_table(bi->acpi_rsdp, "APIC", boot_map_acpi, NULL, &t, &len, &why) != ACPI_FOUND ||
	    acpi_parse_madt(t, len, &madt, &why) != 0 ||
	    irq_lines_init(&madt, mmio_map(madt.ioapic[0].pa, 4096), &why) != 0) {
		klog("irq: no interrupt lines (%s): devices without MSI-X are polled", why);
		return -1;
	}
	klog("irq: I/O APIC %u at %#llx, GSI %u+, %u ISA overrides",
	     madt.ioapic[0].id, (unsigned long long)madt.ioapic[0].pa, madt.ioapic[0].gsi_base,
	     madt.n_override);
	return rc;
}
INITCALL(INIT_ARCH, platform_initcall);
