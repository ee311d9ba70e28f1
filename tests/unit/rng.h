/*
 * rng.h - the tests' one pseudo-random generator: Marsaglia's xorshift64
 * (shifts 13, 7, 17), header-only.
 *
 * For: deterministic "random" choices in host tests, fakes, fuzz harnesses
 * and the in-guest self-tests (tests/guest/ include it as
 * "tests/unit/rng.h"), so a failure replays from its seed. Not for anything
 * that needs good statistics or secrecy.
 *
 * Contract: plain C with only <stdint.h> (it is compiled freestanding into
 * the kernel too); all state is the struct the caller owns, no globals. The
 * state must never be 0 (xorshift would stay 0): rng_seed maps a seed of 0
 * to RNG_DEFAULT_SEED, and RNG_INIT is for non-zero constants only. The
 * sequence for a given seed never changes: tests pin their seeds to it.
 */
#ifndef TESTS_RNG_H
#define TESTS_RNG_H

#include <stdint.h>

/* Marsaglia's example seed, for callers without a seed of their own. */
#define RNG_DEFAULT_SEED 88172645463325252ull

struct rng {
	uint64_t s;
};

/* A static initializer: struct rng r = RNG_INIT(0x1234); (non-zero) */
#define RNG_INIT(seed) { (seed) }

static inline void rng_seed(struct rng *r, uint64_t seed)
{
	r->s = seed ? seed : RNG_DEFAULT_SEED;
}

/* The next 64 bits of the sequence (never 0). */
static inline uint64_t rng_next(struct rng *r)
{
	uint64_t x = r->s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return r->s = x;
}

#endif
