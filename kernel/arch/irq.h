/*
 * irq.h - device interrupt lines: ISA and PCI INTx through the I/O APIC.
 *
 * irq_lines_init() runs once at boot with the firmware's MADT and the first
 * I/O APIC's registers, mapped uncached by the caller (kernel/main.c: arch/
 * maps nothing itself). It masks every pin. irq_request_line() then routes
 * an ISA IRQ number - which is also what firmware writes into a PCI
 * function's interrupt-line register when it assigns the PIRQ routing - to
 * a vector on this CPU, with the polarity and trigger the MADT's overrides
 * give it, and adds `fn` to that line's handlers.
 *
 * Lines are shared (PCI INTx is level-triggered and several functions may
 * sit on one): every handler on the line is called for each interrupt and
 * returns 1 if its device had raised it; the line then gets its EOI here, so
 * handlers must not send one. A level-triggered handler must silence its
 * device (virtio: read the ISR byte) or the line fires again at once.
 *
 * Failure: -1 with a reason in *why (no I/O APIC, the GSI is not on it, no
 * free vector or handler slot). Nothing is half-routed: a pin is unmasked
 * only once its handler is in place.
 */
#ifndef KERNEL_ARCH_IRQ_H
#define KERNEL_ARCH_IRQ_H

#include <stdint.h>
#include "kernel/arch/arch.h"
#include "kernel/lib/acpi.h"

#define IRQ_MAX_LINES    8
#define IRQ_MAX_SHARERS  4

int irq_lines_init(const struct acpi_madt *madt, volatile void *ioapic_regs, const char **why);

/* Route ISA IRQ `irq` and add `fn` to it. The CPU vector (>= 0), or -1 and *why. */
int irq_request_line(uint8_t irq, trap_handler_fn fn, const char **why);

/* What a line looks like, for the console: GSI, level, active low, vector,
 * interrupts taken. 0, or -1 if `irq` is not routed. */
struct irq_line_info { uint32_t gsi; int level, active_low, vector; uint64_t count; };
int irq_line_info(uint8_t irq, struct irq_line_info *out);

#endif /* KERNEL_ARCH_IRQ_H */
