/*
 * compact.h - turn scattered free movable memory into whole free 2 MiB blocks.
 *
 * Contract: compact() empties the sparsest movable blocks into the densest
 * ones until at least `want_free_blocks` wholly free blocks exist
 * (fa_free_blocks()) or nothing more can move. For each movable frame moved:
 * allocate a frame in a denser movable block, copy 4 KiB through the page
 * table's phys_to_virt hook, repoint the frame's one mapping with pt_remap
 * (which flushes its TLB entry), then free the source. Unmovable frames are
 * never touched: they live in other blocks. A movable frame whose mapping no
 * longer points at it is left in place and counted in `frames_failed` (its
 * block then stays in use); a block holding frames that cannot move (balloon
 * runs) is not chosen as a source.
 *
 * Blocks are ordered exactly by used frames (counting sort into the
 * allocator's scratch array); a source is only started when the denser
 * blocks have room for all of its frames, so no copy is wasted on a block
 * that would not end up free. With all frames movable this frees exactly
 * P - ceil(U / 512) blocks out of P partially used ones holding U frames.
 *
 * The caller makes sure nothing writes movable memory while this runs
 * (single core: do not run it from an interrupt handler).
 */
#ifndef MM_COMPACT_H
#define MM_COMPACT_H

#include <stdint.h>
#include "mm/frame.h"
#include "mm/pgtable.h"

enum compact_stop {
	COMPACT_REACHED = 0,     /* want_free_blocks free blocks exist */
	COMPACT_EXHAUSTED,       /* nothing more can be freed by moving */
	COMPACT_BUDGET,          /* stopped at max_moves; call again to go on */
};

struct compact_result {
	uint64_t frames_moved;
	uint64_t frames_failed;      /* mapping did not point back: left in place */
	uint64_t blocks_freed;
	uint64_t free_blocks_before;
	uint64_t free_blocks_after;
	uint64_t ns;                 /* clock_ns() time taken */
	enum compact_stop stop;
};

/* max_moves bounds the work (frames copied) of one call, 0 = no bound; a
 * source block is only started if it fits in what is left of the budget. */
int compact(struct frame_alloc *fa, struct pgtable *pt, uint64_t want_free_blocks,
            uint64_t max_moves, struct compact_result *res);

#endif
