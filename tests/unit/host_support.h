/*
 * host_support.h - what host unit tests get in place of kernel services:
 * a captured klog and a fake clock. Link tests/unit/host_support.c and
 * kernel/lib/klog.c into every unit test.
 */
#ifndef HOST_SUPPORT_H
#define HOST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

void host_clock_set(uint64_t ns);
void host_clock_advance(uint64_t ns);

/* klog capture: lines since the last reset, and the most recent one. */
void host_klog_reset(void);
unsigned host_klog_count(void);
const char *host_klog_last(void);
/* 1 if any captured line since the last reset contains `needle`. */
int host_klog_contains(const char *needle);
/* Set to 1 to echo captured lines to stderr while debugging a test. */
extern int host_klog_echo;

/* Zeroed, 4 KiB-aligned memory for a simulated guest, and its return. A
 * block returned is kept (a few, by size) and handed out again, zeroed, to
 * the next guest asking for that size: the fuzzers build a guest per input,
 * and fresh pages each time (ASan's quarantine) cost more than the input. */
void *host_keep_alloc(size_t bytes);
void host_keep_free(void *p, size_t bytes);

#endif
