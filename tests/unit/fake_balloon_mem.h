/*
 * fake_balloon_mem.h - a frame allocator for balloon tests that implements
 * struct balloon_mem_ops and checks the balloon's side of the contract:
 * every range given back must be exactly one range the balloon took (same
 * first frame and order, like mm/'s fa_balloon_return), still owned (no
 * double give, no foreign frames). Violations count in `errors` (tests
 * assert 0).
 *
 * Frames [base_pfn, base_pfn + npages) are managed; each is FREE, USED
 * (movable guest data the compactor may move), PINNED (unmovable), BALLOON
 * or ISOLATED (free, out of circulation while reported; still counted free,
 * like mm/). Hostile knobs make take_blocks / report_isolate hand out bad
 * ranges.
 *
 * Free page reporting, like mm/'s residency: a block becomes resident when a
 * frame in it is allocated, non-resident when the balloon gives it back or
 * the host acked its report. report_pending counts wholly free, resident,
 * unreported blocks; report_done checks every block was isolated.
 */
#ifndef FAKE_BALLOON_MEM_H
#define FAKE_BALLOON_MEM_H

#include <stdint.h>
#include "drivers/balloon/balloon.h"

enum { FM_FREE, FM_USED, FM_PINNED, FM_BALLOON, FM_ISOLATED };
enum { FB_RESIDENT = 1, FB_REPORTED = 2, FB_ISOLATED = 4 };

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
	/* reporting */
	uint8_t *blk;               /* per block (from the first aligned one): FB_* */
	uint64_t nblk;
	unsigned isolate_calls, done_calls;
	uint64_t isolated_now, reported_blocks, unreported_returns;
	uint64_t bad_isolate_pfn;   /* hostile: the next isolate returns this PFN first */
};

extern const struct balloon_mem_ops fake_mem_ops;

void fake_mem_init(struct fake_mem *m, uint64_t base_pfn, uint64_t npages);
void fake_mem_destroy(struct fake_mem *m);
/* Mark frame `pfn` used (movable) or pinned; it must be free. 0 or -1. */
int fake_mem_alloc_at(struct fake_mem *m, uint64_t pfn, int pinned);
/* Allocate `n` frames anywhere (first fit), as the guest would; returns how many. */
uint64_t fake_mem_alloc_any(struct fake_mem *m, uint64_t n, int pinned);
/* Free a USED or PINNED frame (the guest let go of it). 0 or -1. */
int fake_mem_free_at(struct fake_mem *m, uint64_t pfn);
/* Block flags (FB_*) of the block holding pfn. */
unsigned fake_mem_block_flags(const struct fake_mem *m, uint64_t pfn);
/* Recount states and compare with the counters: 0 if consistent. */
int fake_mem_consistent(const struct fake_mem *m);

#endif
