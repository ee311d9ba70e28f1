/*
 * main.c - from the loader's jump to the work loop.
 *
 * Order matters: the console first (so everything after can complain), our
 * own descriptor tables next (the loader's live in memory mm/ will reclaim),
 * then a private copy of boot_info, the clock, the command line, and the
 * boot initcalls (memory, then the local APIC timer): with those the kernel
 * is ready - a workload can run, allocate, keep time and print. Then the
 * late initcalls hand the firmware's memory back and bring up what talks to
 * the host (interrupt lines, the PCI scan, the drivers) and the application,
 * and the clock's background checks are read. Two lines say how long each
 * part took, `boot: kernel ready` and `boot: ready` (everything up); then it
 * either runs the self-tests and powers off, or serves the console and the
 * pollers forever.
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

/* Where boot time goes: the slowest initcalls, printed with the ready lines
 * (so a slow driver is one look away, not a bisection). */
#define INIT_SLOWEST 4
struct slowest { const char *name; uint64_t ns; };
static struct slowest boot_slow[INIT_SLOWEST], late_slow[INIT_SLOWEST];

static void note_initcall_time(struct slowest *slow, const char *name, uint64_t ns)
{
	int i = INIT_SLOWEST - 1;
	if (ns <= slow[i].ns)
		return;
	for (; i > 0 && slow[i - 1].ns < ns; i--)
		slow[i] = slow[i - 1];
	slow[i].name = name;
	slow[i].ns = ns;
}

static void print_slowest(const struct slowest *slow)
{
	for (int i = 0; i < INIT_SLOWEST && slow[i].name; i++)
		kprintf(" %s %lu us", slow[i].name, slow[i].ns / 1000);
	kprintf("\n");
}

static void run_initcall(const struct initcall *c, struct slowest *slow)
{
	uint64_t t0 = clock_ns();
	int rc = c->fn();
	note_initcall_time(slow, c->name, clock_ns() - t0);
	if (rc)
		klog("init: %s failed (%d)", c->name, rc);
}

static void run_levels(int first, int last, struct slowest *slow)
{
	for (int level = first; level <= last; level++)
		for (const struct initcall *c = __start_initcalls; c < __stop_initcalls; c++)
			if (c->level == level)
				run_initcall(c, slow);
}

static uint64_t tsc_us(uint64_t ticks)
{
	return (uint64_t)(((unsigned __int128)ticks * 1000000u) / time_tsc_hz());
}

static uint64_t lapic_pa;
static volatile void *lapic_regs;      /* mapped in kmain, attached by lapic_initcall */

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

	/* Mapped before mm is up: mm then builds the mapping from its boot
	 * memory, and nothing on the way to ready allocates a frame (the first
	 * allocation's code costs ~0.4 ms under TCG, better paid after ready). */
	lapic_pa = lapic_enable();
	lapic_regs = mmio_map(lapic_pa, 4096);
	run_levels(INIT_MM, INIT_LATE_FIRST - 1, boot_slow);
	uint64_t tsc_kernel_ready = rdtsc(), late_t0 = clock_ns();
	run_levels(INIT_LATE_FIRST, INIT_LATE_LAST, late_slow);
	/* The clock's checks, which ran in the background during set-up; the
	 * lines below use the confirmed rate. */
	time_confirm();
	lapic_timer_calibrate();
	uint64_t tsc_ready = rdtsc(), late_ns = clock_ns() - late_t0;
	irq_enable();
	uint64_t exit_boot = bi->tsc_exit_boot;
	kprintf("boot: kernel ready %lu us after ExitBootServices (loader ran %lu us); slowest set-up:",
	        tsc_us(tsc_kernel_ready - exit_boot),
	        exit_boot > bi->tsc_loader_entry ? tsc_us(exit_boot - bi->tsc_loader_entry) : 0);
	print_slowest(boot_slow);
	kprintf("boot: ready %lu us after ExitBootServices (late set-up and clock check %lu us); slowest:",
	        tsc_us(tsc_ready - exit_boot), late_ns / 1000);
	print_slowest(late_slow);

	if (selftest_mode) {
		mm_online_all();        /* the tests count every frame */
		power_off(selftest_run());
	}
	work_loop();
}

/* The local APIC's registers need an uncached mapping, which arch/ leaves
 * to us: asked for in kmain before mm is up, so mm builds it with its own
 * tables from boot memory and boot allocates nothing before it is ready.
 * The timer is what the work loop sleeps on; without it the loop polls (one
 * line says so). */
static int lapic_initcall(void)
{
	if (!lapic_regs)        /* beyond what the loader mapped: now, with mm */
		lapic_regs = mmio_map(lapic_pa, 4096);
	int rc = lapic_attach(lapic_regs);
	if (rc)
		klog("lapic: registers cannot be mapped: no interrupts, the work loop polls");
	else if (opt_timer_off)
		klog("lapic: timer.off: the work loop polls instead of sleeping");
	else
		rc = lapic_timer_init();
	return rc;
}
INITCALL(INIT_ARCH, lapic_initcall);

/* The interrupt lines devices route through the I/O APIC (INTx, the serial
 * port): only drivers need them, so they come up after the kernel is ready,
 * before the bus and the drivers. Without them drivers fall back to polling,
 * one line each. */
static int irq_lines_initcall(void)
{
	const struct boot_info *bi = boot_info_get();
	const uint8_t *t;
	uint32_t len;
	const char *why;
	struct acpi_madt madt;
	if (opt_irq_poll) {
		klog("irq: irq.poll: no interrupt lines routed; devices without MSI-X are polled");
		return 0;
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
	return 0;
}
INITCALL(INIT_PLATFORM, irq_lines_initcall);
