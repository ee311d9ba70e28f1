/*
 * kclock.h - monotonic time for every module.
 *
 * clock_ns() is nanoseconds since boot, never goes backwards. In the kernel it
 * comes from the calibrated TSC (kernel/arch/time.c); in host unit tests from a
 * fake clock the test moves by hand (host_clock_set/host_clock_advance in
 * tests/unit/host_support.h), so timeouts and rate limits are tested without
 * sleeping.
 */
#ifndef KCLOCK_H
#define KCLOCK_H

#include <stdint.h>

uint64_t clock_ns(void);

#define NS_PER_US UINT64_C(1000)
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S  UINT64_C(1000000000)

#endif /* KCLOCK_H */
