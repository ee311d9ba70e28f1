/*
 * arch.h - x86-64 CPU setup: descriptor tables, trap frames, interrupt
 * registration.
 *
 * Contract: arch_init() installs our GDT (kernel code/data + TSS with separate
 * IST stacks for #DF, NMI and #MC, so a blown kernel stack still gives a panic
 * report) and an IDT whose 256 entries all reach trap_dispatch(). Exceptions
 * with no registered handler panic with the full register dump; IRQ vectors
 * call the handler registered with irq_register().
 */
#ifndef KERNEL_ARCH_H
#define KERNEL_ARCH_H

#include <stdint.h>

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;   /* pushed by the CPU */
};

#define VEC_BREAKPOINT 3
#define VEC_PAGE_FAULT 14
#define VEC_TIMER      0x20
#define VEC_SPURIOUS   0xff

void arch_init(void);

/* Handlers return 1 if they handled the trap (execution resumes). */
typedef int (*trap_handler_fn)(struct trap_frame *tf);
void trap_register(unsigned vector, trap_handler_fn fn);

/* First free vector for device interrupts (MSI-X) and an allocator for them. */
int irq_alloc_vector(trap_handler_fn fn);

/* 1 if an interrupt (vector >= 32) arrived since the last call, and forget
 * it. The work loop asks with interrupts off right before it halts, so an
 * interrupt that came while the pollers ran is not slept through. */
int irq_take_seen(void);

#endif
