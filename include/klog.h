/*
 * klog.h - one-line log messages from any module, kernel or host test.
 *
 * klog() formats one line (no trailing newline needed; one is added) and sends
 * it to the console. In the kernel it goes to the serial console; in host unit
 * tests (tests/unit/host_support.c) it is captured so a test can assert that a
 * misbehaving input produced exactly one clear line.
 *
 * klog_ratelimited() drops a message if the same call site logged within the
 * last `interval_ns`; it returns 1 if the line was printed. Use it for anything
 * a host can trigger repeatedly (bad targets, ring errors): no log floods.
 */
#ifndef KLOG_H
#define KLOG_H

#include <stdint.h>

void klog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct klog_limit { uint64_t last_ns; uint32_t suppressed; };
int klog_ratelimited(struct klog_limit *lim, uint64_t interval_ns, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* 1 if klog_ratelimited(lim, interval_ns, ...) would print now. For one-shot
 * lines (a status that must appear once per event): wait until this says yes
 * instead of having the line dropped. */
int klog_ready(const struct klog_limit *lim, uint64_t interval_ns);

/* Where finished lines go: kernel/console.c (serial) in the kernel,
 * tests/unit/host_support.c (a buffer the tests read) on the host. */
void klog_sink(const char *line);

#endif /* KLOG_H */
