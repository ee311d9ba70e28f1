/*
 * metrics.c - snapshot and format the allocator's numbers. O(blocks).
 */
#include <stdio.h>
#include <string.h>
#include "mm/metrics.h"
#include "mm/frame_internal.h"
#include "kernel/lib/fmt.h"

void fa_stats(const struct frame_alloc *fa, struct mm_stats *s)
{
	memset(s, 0, sizeof *s);
	s->total = fa->total;
	s->isolated = (uint64_t)fa->nr_isolated_blocks * PAGES_PER_BLOCK;
	s->free = fa_free_pages(fa);
	s->kernel = fa->nr[FS_KERNEL];
	s->movable = fa->nr[FS_MOVABLE];
	s->balloon = fa->nr[FS_BALLOON];
	s->reported = (uint64_t)fa->nr_reported_blocks * PAGES_PER_BLOCK;
	s->bad_frees = fa->bad_frees;
	FA_FOR_EACH_BLOCK(fa, b) {
		const struct mblock *blk = &fa->blocks[b];
		if (blk->kind == BK_ABSENT)
			continue;
		s->blocks_total++;
		if (blk->kind == BK_ISOLATED)
			continue;   /* neither free nor in use until the host acks */
		if (blk->nfree == PAGES_PER_BLOCK) {
			/* BK_FREE, or a current block that emptied */
			s->blocks_free++;
			if (blk->flags & BF_RESIDENT)
				s->blocks_free_resident++;
			continue;
		}
		switch (blk->kind) {
		case BK_UNMOVABLE: s->blocks_unmovable++; break;
		case BK_MOVABLE:   s->blocks_movable++;   break;
		case BK_BALLOON:   s->blocks_balloon++;   break;
		default: break;
		}
	}
	s->free_in_blocks = s->blocks_free * PAGES_PER_BLOCK;
	s->whole_permille = s->free ? (unsigned)(s->free_in_blocks * 1000 / s->free) : 1000;
}

#define MIB_OF(pages) ((unsigned long long)PAGES_TO_MIB(pages))

int mm_stats_format(const struct mm_stats *s, char *buf, size_t len)
{
	return ksnprintf(buf, len,
		"mem: total %llu MiB, free %llu MiB (%llu MiB in whole 2 MiB blocks, %u.%u%%), "
		"kernel %llu MiB, movable %llu MiB, balloon %llu MiB, reported %llu MiB, being reported %llu MiB\n"
		"blocks: %llu total, %llu free (%llu resident), %llu unmovable, %llu movable, "
		"%llu balloon; bad frees %llu\n",
		MIB_OF(s->total), MIB_OF(s->free), MIB_OF(s->free_in_blocks),
		s->whole_permille / 10, s->whole_permille % 10,
		MIB_OF(s->kernel), MIB_OF(s->movable), MIB_OF(s->balloon), MIB_OF(s->reported),
		MIB_OF(s->isolated),
		(unsigned long long)s->blocks_total, (unsigned long long)s->blocks_free,
		(unsigned long long)s->blocks_free_resident, (unsigned long long)s->blocks_unmovable,
		(unsigned long long)s->blocks_movable, (unsigned long long)s->blocks_balloon,
		(unsigned long long)s->bad_frees);
}
