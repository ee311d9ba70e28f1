/*
 * initcall.h - how a module joins the kernel without editing kernel/main.c.
 *
 * INITCALL(level, fn): int fn(void) runs once, levels in ascending order
 * (within a level, link order). Return 0 on success; a non-zero return is
 * logged as "init: <name> failed (<rc>)" and boot continues without it: one
 * broken device must not take the kernel down. The first levels (INIT_MM,
 * INIT_ARCH) make the kernel ready (`boot: kernel ready`); the late ones
 * (INIT_PLATFORM up) bring up the devices and the application (`boot:
 * ready`). All run with interrupts off.
 *
 * POLLER(fn): void fn(uint64_t now_ns) runs from the kernel's work loop on every
 * wake-up (timer tick, about every millisecond, or an interrupt). Pollers must
 * return quickly; long work is split into steps.
 */
#ifndef KERNEL_INITCALL_H
#define KERNEL_INITCALL_H

#include <stdint.h>

enum {
	INIT_MM       = 1,  /* frame allocator, page tables, heap */
	INIT_ARCH     = 2,  /* the local APIC timer */
	INIT_PLATFORM = 3,  /* late: boot memory handed back, interrupt lines */
	INIT_BUS      = 4,  /* late: PCI */
	INIT_DRIVER   = 5,  /* late: virtio devices, the console's interrupt */
	INIT_APP      = 6,  /* late: the appliance workload */
	INIT_LATE_FIRST = INIT_PLATFORM,        /* the first level after kernel ready */
	INIT_LATE_LAST  = INIT_APP,
};

struct initcall { int level; const char *name; int (*fn)(void); };
struct poller   { const char *name; void (*fn)(uint64_t now_ns); };

#define INITCALL(level_, fn_) \
	static const struct initcall initcall_##fn_ \
	__attribute__((used, section("initcalls"), aligned(8))) = { level_, #fn_, fn_ }

#define POLLER(fn_) \
	static const struct poller poller_##fn_ \
	__attribute__((used, section("pollers"), aligned(8))) = { #fn_, fn_ }

#endif
