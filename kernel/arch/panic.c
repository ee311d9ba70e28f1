/*
 * panic.c - fatal errors. Output goes straight to the serial port through a
 * static buffer: the heap or the console state may be what broke.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include "kernel/arch/arch.h"
#include "kernel/arch/panic.h"
#include "kernel/arch/power.h"
#include "kernel/arch/serial.h"
#include "hw/io.h"
#include "kernel/lib/fmt.h"

static const char *const exc_names[32] = {
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
	"invalid opcode", "device not available", "double fault", "coprocessor overrun",
	"invalid TSS", "segment not present", "stack fault", "general protection",
	"page fault", "reserved", "x87 FPU error", "alignment check", "machine check",
	"SIMD FP exception", "virtualization", "control protection",
};

static volatile int in_panic;

static void pr(const char *fmt, ...)
{
	static char buf[256];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	serial_puts(buf);
}

/* Kernel addresses only: a corrupt rbp must not fault inside the panic. */
static int plausible_frame(uint64_t rbp)
{
	return rbp >= 0xffff800000000000ull && (rbp & 7) == 0 && rbp < 0xfffffffffffff000ull;
}

static void backtrace(uint64_t rip, uint64_t rbp)
{
	pr("backtrace (addr2line -e build/kernel.elf ADDR):\n  %016lx\n", rip);
	for (int depth = 0; depth < 32 && plausible_frame(rbp); depth++) {
		uint64_t *frame = (uint64_t *)rbp;
		uint64_t ret = frame[1];
		if (ret < 0xffffffff80000000ull)
			break;
		pr("  %016lx\n", ret - 1);  /* -1: the call, not the instruction after it */
		if (frame[0] <= rbp)         /* frames grow upwards; anything else is a loop */
			break;
		rbp = frame[0];
	}
}

static void __attribute__((noreturn)) die(void)
{
	pr("system halted\n");
	power_fail_stop();
}

void panic(const char *fmt, ...)
{
	irq_disable();
	serial_sync();
	if (in_panic++) {
		serial_puts("\nPANIC (nested)\n");
		die();
	}
	static char msg[256];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	pr("\nPANIC: %s\n", msg);
	backtrace((uint64_t)__builtin_return_address(0), (uint64_t)__builtin_frame_address(0));
	die();
}

void panic_trap(struct trap_frame *tf)
{
	irq_disable();
	serial_sync();
	if (in_panic++) {
		serial_puts("\nPANIC (nested trap)\n");
		die();
	}
	unsigned v = tf->vector;
	pr("\nPANIC: CPU exception %u (%s), error code %#lx\n", v,
	   v < 32 && exc_names[v] ? exc_names[v] : "?", tf->error);
	pr("  RIP %016lx  CS %04lx  RFLAGS %016lx\n", tf->rip, tf->cs, tf->rflags);
	pr("  RSP %016lx  SS %04lx  CR2 %016lx  CR3 %016lx\n", tf->rsp, tf->ss, read_cr2(), read_cr3());
	pr("  RAX %016lx  RBX %016lx  RCX %016lx  RDX %016lx\n", tf->rax, tf->rbx, tf->rcx, tf->rdx);
	pr("  RSI %016lx  RDI %016lx  RBP %016lx  R8  %016lx\n", tf->rsi, tf->rdi, tf->rbp, tf->r8);
	pr("  R9  %016lx  R10 %016lx  R11 %016lx  R12 %016lx\n", tf->r9, tf->r10, tf->r11, tf->r12);
	pr("  R13 %016lx  R14 %016lx  R15 %016lx\n", tf->r13, tf->r14, tf->r15);
	if (v == VEC_PAGE_FAULT)
		pr("  page fault: %s %s address %016lx%s\n",
		   tf->error & 1 ? "protection violation on" : "not-present",
		   tf->error & 2 ? "write to" : (tf->error & 16 ? "fetch from" : "read from"),
		   read_cr2(), tf->error & 8 ? " (reserved bit set)" : "");
	backtrace(tf->rip, tf->rbp);
	die();
}
