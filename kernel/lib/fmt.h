/*
 * fmt.h - the kernel's own printf formatting: integers, strings, characters
 * and pointers, no floating point, no locale, no allocation.
 *
 * Contract: kvsnprintf() writes at most n bytes, always NUL-terminated when
 * n > 0, and returns the length the whole result would have (C99 snprintf).
 * Conversions: d i u x X o c s p %, with the flags - 0 # + space, a width and
 * a precision (numbers or *), and the sizes hh h l ll z j t. Anything else
 * (a float, %n) is copied out as written, so a wrong format shows in the
 * output instead of reading arguments that are not there. %p prints 0x and
 * the hex digits (0x0 for NULL), %s of NULL prints (null).
 *
 * Why not newlib's vfprintf: the kernel formats log lines from everywhere,
 * the panic path and early boot included, and wants a formatter with no
 * floating point, locale, wide-character, reentrancy-structure or heap
 * paths in it: 250 lines it owns, instead of newlib's 20 KiB. klog, kprintf
 * and the kernel's string formatting use this, and their text goes to the
 * serial ring without newlib's stdio; the application (app/) keeps newlib's
 * printf. (Boot time under TCG: the banner no longer sets up newlib's stdio,
 * about 0.7 ms before the kernel is ready; the application's first printf
 * pays for that later.)
 *
 * Host tests (tests/unit/test_fmt.c) compare it with the host C library on
 * every conversion, flag, width and size.
 */
#ifndef KERNEL_LIB_FMT_H
#define KERNEL_LIB_FMT_H

#include <stdarg.h>
#include <stddef.h>

int kvsnprintf(char *buf, size_t n, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
int ksnprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* printf through kvsnprintf to the console: the kernel's console output. */
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Where kprintf's text goes: kernel/console.c in the kernel (after anything
 * the application left in stdout's buffer, then the serial ring: no newlib
 * stdio on the kernel's own path), tests/unit/host_support.c on the host. */
void kprintf_sink(const char *text);

#endif /* KERNEL_LIB_FMT_H */
