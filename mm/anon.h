/*
 * anon.h - anonymous movable memory: page-granular, zeroed mappings backed by
 * movable frames, carved out of a virtual window and given back wherever they
 * lie (the logic behind kmem_anon_map / kmem_anon_unmap).
 *
 * Contract
 *  - anon_map(bytes): rounds up to pages, finds free virtual space first-fit
 *    (a guard page is left after each mapping so an overrun faults instead of
 *    corrupting a neighbour), maps zeroed movable frames owned by their
 *    address (so the compactor can move them). All or nothing: MM_ENOMEM with
 *    nothing kept if frames, table frames or virtual space run out;
 *    MM_EINVAL for 0 bytes.
 *  - anon_unmap(va, bytes) must name exactly one earlier mapping (same start,
 *    same rounded size); it unmaps, frees the frames and the virtual space.
 *    Anything else is MM_EINVAL and changes nothing.
 *  - Free virtual space is a sorted array of extents, merged on free; if it
 *    is full, a freed range is dropped (leaked virtual space, never frames)
 *    with one log line.
 */
#ifndef MM_ANON_H
#define MM_ANON_H

#include <stddef.h>
#include <stdint.h>
#include "mm/frame.h"
#include "mm/pgtable.h"
#include "klog.h"

#define ANON_EXTENTS 1024      /* free virtual extents (holes between live mappings) */
#define ANON_MAPS    16384     /* live mappings tracked for unmap checks: 32 GiB of 2 MiB chunks */

struct anon_extent { uint64_t va, len; };

struct anon {
	struct frame_alloc *fa;
	struct pgtable *pt;
	uint64_t base, size;
	struct anon_extent free[ANON_EXTENTS];   /* sorted by va, disjoint, not adjacent */
	uint64_t dropped;                        /* virtual space lost to a full table */
	struct klog_limit lim_dropped;
	unsigned nfree;
	struct anon_extent live[ANON_MAPS];      /* live mappings (unsorted) */
	unsigned nlive;
	uint64_t pages;                          /* frames mapped now */
};

int anon_init(struct anon *a, struct frame_alloc *fa, struct pgtable *pt, uint64_t base, uint64_t size);
int anon_map(struct anon *a, uint64_t bytes, uint64_t *va);
int anon_unmap(struct anon *a, uint64_t va, uint64_t bytes);

#endif
