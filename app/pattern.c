/*
 * pattern.c - fill and verify the appliance's memory (contract in pattern.h).
 * Pure logic. The loops are kept simple so the compiler keeps them tight:
 * under TCG every instruction in them counts.
 */
#include "app/pattern.h"

void app_pattern_fill(void *va, uint64_t bytes, uint64_t seq)
{
	uint64_t *w = va;
	uint64_t n = bytes / 8;
	for (uint64_t i = 0; i < n; i++)
		w[i] = app_pattern_word(seq, i);
}

uint64_t app_pattern_verify(const void *va, uint64_t off, uint64_t len, uint64_t seq,
                            struct app_mismatch *first)
{
	/* volatile: the memory may change under us (that is what we look for);
	 * the compiler must read each word exactly once, as written. */
	const volatile uint64_t *w = (const volatile uint64_t *)va;
	uint64_t bad = 0;
	uint64_t i = off / 8, end = (off + len) / 8;
	for (; i < end; i++) {
		uint64_t want = app_pattern_word(seq, i), got = w[i];
		if (got == want)
			continue;
		if (bad++ == 0 && first) {
			uint64_t diff = want ^ got;
			first->offset = i * 8 + (uint64_t)__builtin_ctzll(diff) / 8;  /* little endian */
			first->expected = want;
			first->got = got;
		}
	}
	return bad;
}
