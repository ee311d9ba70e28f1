/*
 * lapic.c - local APIC: the one-shot timer that wakes the work loop at its
 * next deadline (no periodic tick: an idle guest is not woken), and EOI.
 * The registers are MMIO: the caller maps them (kernel/main.c, through mm/)
 * and hands them in, so arch/ needs nothing from mm/.
 * The legacy 8259 PICs are masked: every interrupt we use arrives through the
 * local APIC (timer, MSI-X).
 */
#include <stdint.h>
#include "hw/io.h"
#include "kclock.h"
#include "kernel/arch/arch.h"
#include "kernel/arch/time.h"
#include "klog.h"

#define IA32_APIC_BASE 0x1b
enum { LAPIC_EOI = 0xb0, LAPIC_SVR = 0xf0, LAPIC_LVT_TIMER = 0x320,
       LAPIC_TIMER_INIT = 0x380, LAPIC_TIMER_CUR = 0x390, LAPIC_TIMER_DIV = 0x3e0 };

#define LVT_MASKED (1u << 16)

static volatile uint8_t *lapic;
static volatile uint64_t ticks;
static uint64_t counts_per_ms;   /* timer counts (divided by 16) per millisecond; 0 = no timer */

static void lapic_write(unsigned reg, uint32_t v) { mmio_write32(lapic + reg, v); }
static uint32_t lapic_read(unsigned reg) { return mmio_read32(lapic + reg); }

void lapic_eoi(void)
{
	if (lapic)
		lapic_write(LAPIC_EOI, 0);
}

uint64_t timer_ticks(void) { return ticks; }

uint32_t lapic_id(void) { return lapic ? lapic_read(0x20) >> 24 : 0; }

static int timer_irq(struct trap_frame *tf)
{
	ticks++;
	lapic_eoi();
	return 1;
}

static int spurious_irq(struct trap_frame *tf) { return 1; }

uint64_t lapic_enable(void)
{
	outb(0x21, 0xff);   /* mask both 8259s */
	outb(0xa1, 0xff);
	uint64_t base = rdmsr(IA32_APIC_BASE);
	wrmsr(IA32_APIC_BASE, base | (1u << 11));   /* globally enabled */
	return base & 0xffffff000ull;
}

int lapic_attach(volatile void *regs)
{
	lapic = regs;
	if (!lapic)
		return -1;
	trap_register(VEC_SPURIOUS, spurious_irq);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);   /* software-enabled */
	return 0;
}

/* The timer's rate, measured against the TSC while boot goes on:
 * lapic_timer_init starts a masked one-shot from the top (divide by 16),
 * lapic_timer_calibrate reads how far it counted - tens of thousands of
 * counts per millisecond on any real bus clock, so after the millisecond or
 * more boot takes the rate is good to a fraction of a percent, and a
 * wake-up that comes a little early or late costs nothing (the loop goes by
 * TSC deadlines and re-arms). */
static uint64_t cal_t0;

int lapic_timer_init(void)
{
	if (!lapic)
		return -1;
	trap_register(VEC_TIMER, timer_irq);
	lapic_write(LAPIC_TIMER_DIV, 0x3);
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);    /* masked one-shot */
	lapic_write(LAPIC_TIMER_INIT, 0xffffffffu);
	cal_t0 = rdtsc();
	return 0;
}

int lapic_timer_calibrate(void)
{
	if (!lapic || !cal_t0)
		return -1;
	uint64_t ns;
	while ((ns = tsc_to_ns(rdtsc() - cal_t0)) < 1000000u)    /* at least 1 ms */
		cpu_relax();
	uint32_t counted = 0xffffffffu - lapic_read(LAPIC_TIMER_CUR);
	lapic_write(LAPIC_TIMER_INIT, 0);
	cal_t0 = 0;
	if (counted < 100) {
		klog("lapic: timer does not count; the work loop polls instead of sleeping");
		return -1;
	}
	counts_per_ms = (uint64_t)(((unsigned __int128)counted * 1000000u) / ns);
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER);     /* one-shot, unmasked; idle until armed */
	return 0;
}

int lapic_timer_ok(void) { return counts_per_ms != 0; }

void lapic_timer_arm(uint64_t ns)
{
	if (!counts_per_ms)
		return;
	/* 0 stops it; otherwise at least one count, at most what 32 bits hold
	 * (a minute or more: the loop simply re-arms when it wakes early). */
	uint64_t c = ns ? (uint64_t)(((unsigned __int128)ns * counts_per_ms) / 1000000u) : 0;
	if (ns && c == 0)
		c = 1;
	if (c > 0xffffffffu)
		c = 0xffffffffu;
	lapic_write(LAPIC_TIMER_INIT, (uint32_t)c);
}
