/*
 * irq.c - the I/O APIC and shared interrupt lines; contract in irq.h.
 *
 * I/O APIC registers are reached through two windows: IOREGSEL (offset 0)
 * selects a register, IOWIN (offset 0x10) reads or writes it. Register 1 is
 * the version (bits 16-23: highest redirection entry); redirection entry n
 * is the pair 0x10 + 2n (low: vector, polarity, trigger, mask) and
 * 0x11 + 2n (high: destination APIC id in bits 24-31).
 */
#include <stddef.h>
#include "hw/io.h"
#include "kernel/arch/irq.h"
#include "kernel/arch/time.h"

enum { IOREGSEL = 0x00, IOWIN = 0x10, IOAPIC_VER = 0x01, IOAPIC_REDTBL = 0x10 };
#define RTE_ACTIVE_LOW (1u << 13)
#define RTE_LEVEL      (1u << 15)
#define RTE_MASKED     (1u << 16)

struct line {
	uint8_t  irq;              /* ISA number it was requested by */
	uint32_t gsi;
	int      level, active_low;
	int      vector;
	unsigned nfn;
	trap_handler_fn fn[IRQ_MAX_SHARERS];
	uint64_t count;
};

static volatile uint8_t *ioapic;
static uint32_t gsi_base, npins;
static struct acpi_madt madt;
static struct line lines[IRQ_MAX_LINES];
static unsigned nlines;

static uint32_t io_read(uint32_t reg)
{
	mmio_write32(ioapic + IOREGSEL, reg);
	return mmio_read32(ioapic + IOWIN);
}

static void io_write(uint32_t reg, uint32_t v)
{
	mmio_write32(ioapic + IOREGSEL, reg);
	mmio_write32(ioapic + IOWIN, v);
}

int irq_lines_init(const struct acpi_madt *m, volatile void *regs, const char **why)
{
	if (!m || !m->n_ioapic || !regs) {
		*why = !regs ? "I/O APIC registers not mapped" : "no I/O APIC in the MADT";
		return -1;
	}
	madt = *m;
	ioapic = regs;
	gsi_base = m->ioapic[0].gsi_base;
	uint32_t ver = io_read(IOAPIC_VER);
	npins = ((ver >> 16) & 0xff) + 1;
	if (ver == 0xffffffffu || npins < 16) {
		ioapic = NULL;
		*why = "I/O APIC does not answer";
		return -1;
	}
	for (uint32_t pin = 0; pin < npins; pin++)
		io_write(IOAPIC_REDTBL + 2 * pin, RTE_MASKED);
	return 0;
}

/* Every handler on the line is asked (shared INTx); then one EOI. */
static int line_dispatch(struct trap_frame *tf)
{
	for (unsigned i = 0; i < nlines; i++) {
		struct line *l = &lines[i];
		if (l->vector != (int)(tf->vector & 0xff))
			continue;
		l->count++;
		for (unsigned k = 0; k < l->nfn; k++)
			l->fn[k](tf);
		break;
	}
	lapic_eoi();
	return 1;
}

static struct line *find_line(uint8_t irq)
{
	for (unsigned i = 0; i < nlines; i++)
		if (lines[i].irq == irq)
			return &lines[i];
	return NULL;
}

static int request_line(uint8_t irq, trap_handler_fn fn, const char **why);

/* A driver that recovers asks again from the work loop, interrupts on: a
 * shared line may fire while its handler list grows, so the list changes
 * with them off. */
int irq_request_line(uint8_t irq, trap_handler_fn fn, const char **why)
{
	uint64_t flags = irq_save();
	int rc = request_line(irq, fn, why);
	irq_restore(flags);
	return rc;
}

static int request_line(uint8_t irq, trap_handler_fn fn, const char **why)
{
	if (!ioapic) {
		*why = "no I/O APIC";
		return -1;
	}
	struct line *l = find_line(irq);
	if (l) {
		if (l->nfn >= IRQ_MAX_SHARERS) {
			*why = "too many handlers on that line";
			return -1;
		}
		l->fn[l->nfn++] = fn;
		return l->vector;
	}
	struct acpi_irq_route r = acpi_isa_irq_route(&madt, irq);
	if (r.gsi < gsi_base || r.gsi - gsi_base >= npins) {
		*why = "its GSI is not on the I/O APIC";
		return -1;
	}
	if (nlines >= IRQ_MAX_LINES) {
		*why = "too many interrupt lines";
		return -1;
	}
	int vec = irq_alloc_vector(line_dispatch);
	if (vec < 0) {
		*why = "no free interrupt vector";
		return -1;
	}
	l = &lines[nlines++];
	*l = (struct line){ .irq = irq, .gsi = r.gsi, .level = r.level, .active_low = r.active_low,
	                    .vector = vec, .nfn = 1, .fn = { fn } };
	uint32_t pin = r.gsi - gsi_base;
	uint32_t lo = (uint32_t)vec | (r.active_low ? RTE_ACTIVE_LOW : 0) | (r.level ? RTE_LEVEL : 0);
	io_write(IOAPIC_REDTBL + 2 * pin + 1, lapic_id() << 24);
	io_write(IOAPIC_REDTBL + 2 * pin, lo);   /* unmasked last, with the handler in place */
	return vec;
}

int irq_line_info(uint8_t irq, struct irq_line_info *out)
{
	const struct line *l = find_line(irq);
	if (!l)
		return -1;
	*out = (struct irq_line_info){ l->gsi, l->level, l->active_low, l->vector, l->count };
	return 0;
}
