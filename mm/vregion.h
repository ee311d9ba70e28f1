/*
 * vregion.h - a growable virtual region backed by movable frames: the newlib
 * heap behind _sbrk.
 *
 * Contract: the region is [base, base + size) of virtual space that nothing
 * else maps. vregion_sbrk(incr) moves the break like sbrk(2):
 *  - incr > 0: maps zeroed movable frames (owner = their virtual address, so
 *    the compactor can move them) up to the new break; all or nothing:
 *    MM_ENOMEM (break unchanged, no frame kept) if frames or table frames
 *    run out or the region is full.
 *  - incr < 0 (newlib's malloc_trim): unmaps the whole pages above the new
 *    break and frees their frames; MM_EINVAL if it would go below base.
 *  - incr == 0: just reports the break.
 * *old_brk receives the break before the call (sbrk's return value).
 */
#ifndef MM_VREGION_H
#define MM_VREGION_H

#include <stdint.h>
#include "mm/frame.h"
#include "mm/pgtable.h"

struct vregion {
	struct frame_alloc *fa;
	struct pgtable *pt;
	uint64_t base, limit;   /* virtual range */
	uint64_t brk;           /* current break */
	uint64_t mapped;        /* end of mapped pages, page aligned, >= brk */
	uint64_t pte_flags;
};

int vregion_init(struct vregion *r, struct frame_alloc *fa, struct pgtable *pt,
                 uint64_t base, uint64_t size);
int vregion_sbrk(struct vregion *r, int64_t incr, uint64_t *old_brk);
static inline uint64_t vregion_pages(const struct vregion *r)
{
	return (r->mapped - r->base) >> 12;
}

#endif
