/*
 * fake_balloon_mem.h - a frame allocator for balloon tests that implements
 * struct balloon_mem_ops and checks the balloon's side of the contract:
 * every range given back must be exactly one range the balloon took (same
 * first frame and order, like mm/'s fa_balloon_return), still owned (no
 * double give, no foreign frames). Violations count in `errors` (tests
 * assert 0).
 *
 * Frames [base_pfn, base_pfn + npages) are managed; each is FREE, USED
 * (movable guest data the compactor may move), PINNED (unmovable) or
 * BALLOON. Hostile knobs make take_blocks hand out bad ranges.
 */
#ifndef FAKE_BALLOON_MEM_H
#define FAKE_BALLOON_MEM_H

#include <stdint.h>
#include "drivers/balloon.h"

enum { FM_FREE, FM_USED, FM_PINNED, FM_BALLOON };

struct fake_mem {
	uint64_t base_pfn, npages;
	uint8_t *st;
	uint8_t *taken_order;   /* per frame: order of the balloon range starting here, else 0xff */
	uint64_t nfree, nballoon;
	unsigned errors;
	unsigned take_blocks_calls, take_run_calls, compact_calls, give_calls;
	uint64_t blocks_taken, runs_taken, moved;
	/* hostile: the next take_blocks returns this PFN first (if != 0) */
	uint64_t bad_block_pfn;
};

extern const struct balloon_mem_ops fake_mem_ops;

void fake_mem_init(struct fake_mem *m, uint64_t base_pfn, uint64_t npages);
void fake_mem_destroy(struct fake_mem *m);
/* Mark frame `pfn` used (movable) or pinned; it must be free. 0 or -1. */
int fake_mem_alloc_at(struct fake_mem *m, uint64_t pfn, int pinned);
/* Allocate `n` frames anywhere (first fit), as the guest would; returns how many. */
uint64_t fake_mem_alloc_any(struct fake_mem *m, uint64_t n, int pinned);
/* Recount states and compare with the counters: 0 if consistent. */
int fake_mem_consistent(const struct fake_mem *m);

#endif
