/*
 * metrics.h - memory and fragmentation numbers, for the console and the
 * balloon's statistics queue.
 *
 * Contract: fa_stats() is a consistent snapshot in frames (4 KiB) and blocks
 * (2 MiB). free is what an allocation could get now: reported frames
 * included, frames isolated for a free page report in flight not (nobody may
 * allocate them until the host acks); free + isolated + kernel + movable +
 * balloon == total. free_in_blocks counts free frames that lie in wholly free
 * blocks (the memory the balloon can hand over as 2 MiB ranges);
 * whole_permille = 1000 * free_in_blocks / free (1000 when nothing is free).
 * mm_stats_format() writes a few human-readable lines.
 */
#ifndef MM_METRICS_H
#define MM_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "mm/frame.h"

struct mm_stats {
	uint64_t total;              /* frames of RAM managed */
	uint64_t free;
	uint64_t free_in_blocks;
	uint64_t kernel;             /* unmovable frames in use */
	uint64_t movable;
	uint64_t balloon;
	uint64_t reported;           /* free frames the host was told about */
	uint64_t isolated;           /* out for a free page report in flight: not free */
	uint64_t blocks_total;       /* blocks with any RAM */
	uint64_t blocks_free;
	uint64_t blocks_free_resident;
	uint64_t blocks_unmovable;
	uint64_t blocks_movable;
	uint64_t blocks_balloon;
	uint64_t bad_frees;
	unsigned whole_permille;
};

void fa_stats(const struct frame_alloc *fa, struct mm_stats *s);
/* Returns the length written (like snprintf, truncated to len). */
int mm_stats_format(const struct mm_stats *s, char *buf, size_t len);

#endif
