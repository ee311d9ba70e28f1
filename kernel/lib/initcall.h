/*
 * initcall.h - how a module joins the kernel without editing kernel/main.c.
 *
 * INITCALL(level, fn): int fn(void) runs once at boot, levels in ascending
 * order (within a level, link order). Return 0 on success; a non-zero return is
 * logged as "init: <name> failed (<rc>)" and boot continues without it: one
 * broken device must not take the kernel down.
 *
 * POLLER(fn): void fn(uint64_t now_ns) runs from the kernel's work loop on every
 * wake-up (timer tick, about every millisecond, or an interrupt). Pollers must
 * return quickly; long work is split into steps.
 */
#ifndef KERNEL_INITCALL_H
#define KERNEL_INITCALL_H

#include <stdint.h>

enum {
	INIT_MM      = 1,   /* frame allocator, page tables, heap */
	INIT_ARCH    = 2,   /* interrupts, timer */
	INIT_BUS     = 3,   /* PCI */
	INIT_DRIVER  = 4,   /* virtio devices */
	INIT_APP     = 5,   /* the appliance workload, console */
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
