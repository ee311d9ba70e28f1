/*
 * rate.h - a token bucket for "at most R units per second" (the balloon's
 * inflation limit, virtio-mem's unplug limit). Pure and header-only: no
 * clock of its own, the caller passes clock_ns() values.
 *
 * Tokens are kept in nano-units (units x 1e9), so no fraction of a unit is
 * lost between polls however close together they are. A bucket that was
 * forgotten (rate_forget, or never used) starts again with `start` units of
 * credit: the caller forgets it whenever it has nothing to do, so idle time
 * buys no burst. While in use, up to `burst` units are kept (polls are not
 * evenly spaced, and a guest the host did not run for a while catches up
 * instead of falling behind the rate it was given); a gap counts for at
 * most 4 s. A clock going backwards restarts the bucket.
 */
#ifndef KERNEL_LIB_RATE_H
#define KERNEL_LIB_RATE_H

#include <stdint.h>
#include "kclock.h"
#include "units.h"

struct rate_bucket {
	uint64_t tokens;    /* credit in nano-units */
	uint64_t last_ns;   /* 0 = forgotten: the next credit call starts it */
};

static inline void rate_forget(struct rate_bucket *rb) { rb->last_ns = 0; }

/* Credit in whole units at `now` for `rate` units per second (rate 0:
 * unlimited, UINT64_MAX). */
static inline uint64_t rate_credit(struct rate_bucket *rb, uint64_t rate, uint64_t now,
                                   uint64_t start, uint64_t burst)
{
	if (!rate)
		return UINT64_MAX;
	if (!rb->last_ns || now < rb->last_ns) {
		rb->last_ns = now ? now : 1;
		rb->tokens = start * NS_PER_S;
	}
	uint64_t dt = min_u64(now - rb->last_ns, 4 * NS_PER_S);
	rb->last_ns = now;
	rb->tokens = min_u64(rb->tokens + rate * dt, max_u64(burst, start) * NS_PER_S);
	return rb->tokens / NS_PER_S;
}

/* Spend `units` of credit (never below zero). */
static inline void rate_spend(struct rate_bucket *rb, uint64_t rate, uint64_t units)
{
	if (!rate)
		return;
	uint64_t cost = units * NS_PER_S;
	rb->tokens = rb->tokens > cost ? rb->tokens - cost : 0;
}

#endif /* KERNEL_LIB_RATE_H */
