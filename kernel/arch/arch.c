/*
 * arch.c - GDT, TSS and IDT.
 *
 * The loader left us on UEFI's GDT, which lives in reclaimable memory: we
 * install our own before anything can reuse that memory. Double fault, NMI
 * and machine check run on their own IST stacks so that a kernel stack
 * overflow still produces a readable panic instead of a triple fault.
 */
#include <stdint.h>
#include <string.h>
#include "kernel/arch/arch.h"
#include "kernel/arch/panic.h"
#include "kernel/arch/time.h"
#include "klog.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, type_attr;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));

struct desc_ptr { uint16_t limit; uint64_t base; } __attribute__((packed));

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_TSS   0x18

static uint64_t gdt[5];
static struct tss tss;
static struct idt_gate idt[256];
static trap_handler_fn handlers[256];
static uint8_t ist_stacks[3][16384] __attribute__((aligned(16)));

extern const uint64_t trap_stubs[256];

static void gdt_init(void)
{
	gdt[0] = 0;
	gdt[1] = 0x00209a0000000000ull;  /* 64-bit code, present, ring 0 */
	gdt[2] = 0x0000920000000000ull;  /* data, present, writable */
	uint64_t base = (uint64_t)&tss, limit = sizeof tss - 1;
	gdt[3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
	         (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[4] = base >> 32;

	for (int i = 0; i < 3; i++)
		tss.ist[i] = (uint64_t)&ist_stacks[i][sizeof ist_stacks[i]];
	tss.iomap_base = sizeof tss;

	struct desc_ptr p = { sizeof gdt - 1, (uint64_t)gdt };
	__asm__ __volatile__(
		"lgdt %0\n\t"
		"mov %1, %%ds\n\t mov %1, %%es\n\t mov %1, %%ss\n\t"
		"xor %%eax, %%eax\n\t mov %%ax, %%fs\n\t mov %%ax, %%gs\n\t"
		"pushq %2\n\t lea 1f(%%rip), %%rax\n\t pushq %%rax\n\t lretq\n"
		"1:\n\t"
		"ltr %w3"
		:: "m"(p), "r"((uint64_t)SEL_KDATA), "i"(SEL_KCODE), "r"(SEL_TSS)
		: "rax", "memory");
}

static void idt_set(unsigned v, uint64_t handler, uint8_t ist)
{
	idt[v].off_lo = handler & 0xffff;
	idt[v].sel = SEL_KCODE;
	idt[v].ist = ist;
	idt[v].type_attr = 0x8e;   /* present, interrupt gate: IF cleared on entry */
	idt[v].off_mid = (handler >> 16) & 0xffff;
	idt[v].off_hi = handler >> 32;
	idt[v].zero = 0;
}

static void idt_init(void)
{
	for (unsigned v = 0; v < 256; v++)
		idt_set(v, trap_stubs[v], 0);
	idt_set(2, trap_stubs[2], 2);    /* NMI */
	idt_set(8, trap_stubs[8], 1);    /* double fault */
	idt_set(18, trap_stubs[18], 3);  /* machine check */
	struct desc_ptr p = { sizeof idt - 1, (uint64_t)idt };
	__asm__ __volatile__("lidt %0" :: "m"(p));
}

void arch_init(void)
{
	gdt_init();
	idt_init();
}

void trap_register(unsigned vector, trap_handler_fn fn)
{
	if (vector < 256)
		handlers[vector] = fn;
}

int irq_alloc_vector(trap_handler_fn fn)
{
	/* 0x30..0xef for devices; 0x20 is the timer, 0xff spurious. */
	for (unsigned v = 0x30; v < 0xf0; v++) {
		if (!handlers[v]) {
			handlers[v] = fn;
			return (int)v;
		}
	}
	return -1;
}

static volatile int irq_seen;

int irq_take_seen(void)
{
	int s = irq_seen;
	irq_seen = 0;
	return s;
}

void trap_dispatch(struct trap_frame *tf)
{
	unsigned v = tf->vector & 0xff;
	if (v >= 32)
		irq_seen = 1;
	if (handlers[v] && handlers[v](tf))
		return;
	if (v >= 32) {
		/* Nobody claimed it: still end it, or every interrupt of lower
		 * priority (the timer) stays blocked behind it. */
		lapic_eoi();
		static struct klog_limit lim;
		klog_ratelimited(&lim, 1000000000ull, "trap: unexpected interrupt vector %u", v);
		return;
	}
	panic_trap(tf);
}
