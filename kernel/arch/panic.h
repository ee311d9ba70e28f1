/*
 * panic.h - the end of the line: print why, where, the registers and a
 * frame-pointer backtrace on the serial console, then stop. In self-test mode
 * the machine powers off with the failure verdict, so a test boot never hangs
 * on a panic. Addresses resolve with `addr2line -e build/kernel.elf ADDR`.
 */
#ifndef KERNEL_PANIC_H
#define KERNEL_PANIC_H

struct trap_frame;

void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void panic_trap(struct trap_frame *tf) __attribute__((noreturn));

#define KASSERT(cond) do { if (!(cond)) panic("assertion failed: %s at %s:%d", #cond, __FILE__, __LINE__); } while (0)

#endif
