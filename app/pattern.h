/*
 * pattern.h - the appliance's self-checking memory contents.
 *
 * Word i (8 bytes at offset 8*i) of the chunk with sequence number `seq`
 * holds app_pattern_word(seq, i): the splitmix64 finalizer of both. So every
 * word of every chunk differs from every other, a page that a compactor copied
 * to the wrong place, a stale copy, a zeroed page, or a single flipped bit
 * are all caught - and verification recomputes the pattern instead of
 * keeping a second copy of the memory.
 *
 * Contract: `bytes` and `off` are multiples of 8 (chunks are page-granular).
 * app_pattern_verify() checks [off, off + len) and returns the number of words
 * that differ; the first one's byte offset (of the first differing byte) and
 * both words go to *first.
 */
#ifndef APP_PATTERN_H
#define APP_PATTERN_H

#include <stdint.h>

static inline uint64_t app_pattern_word(uint64_t seq, uint64_t i)
{
	uint64_t z = seq * 0xd1b54a32d192ed03ull + i + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct app_mismatch {
	uint64_t offset;     /* byte offset in the chunk of the first bad byte */
	uint64_t expected;   /* the 8-byte word containing it, as it should be */
	uint64_t got;        /* ... and as it is */
};

void app_pattern_fill(void *va, uint64_t bytes, uint64_t seq);
uint64_t app_pattern_verify(const void *va, uint64_t off, uint64_t len, uint64_t seq,
                            struct app_mismatch *first);

#endif
