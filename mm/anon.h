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
 *  - Nothing here has a fixed size. Each mapping's guard page carries a
 *    marker with the mapping's length in its page-table entry
 *    (pt_set_marker), so unmap checks the caller's (va, bytes) against the
 *    page tables instead of a table of mappings. Free virtual space is a
 *    sorted array of extents (merged on free) that lives at the start of the
 *    window itself and grows a page at a time (movable frames, like every
 *    other page of the window), up to ANON_TABLE_BYTES; only past that is a
 *    freed range dropped (leaked virtual space, never frames) with a line.
 */
#ifndef MM_ANON_H
#define MM_ANON_H

#include <stddef.h>
#include <stdint.h>
#include "mm/frame.h"
#include "mm/pgtable.h"
#include "klog.h"

/* The free-extent table's room at the window's start: 4 M extents, i.e.
 * millions of mappings before a freed range could ever be dropped. */
#define ANON_TABLE_BYTES  (64ull << 20)
/* Guard-page marker: the mapping's length in pages above a tag (bit 0, the
 * present bit, clear). */
#define ANON_GUARD_TAG    0x5a4ull

struct anon_extent { uint64_t va, len; };

/* Where the free-extent table lives when it is not at the window's start
 * (host tests: a reserved buffer whose pages populate() opens). */
struct anon_table {
	void *mem;
	int (*populate)(void *ctx, void *p, size_t bytes);
	void *ctx;
};

struct anon {
	struct frame_alloc *fa;
	struct pgtable *pt;
	uint64_t base, size;                     /* mappings: after the table's room */
	struct anon_extent *free;                /* sorted by va, disjoint, not adjacent */
	uint64_t nfree, cap;                     /* extents used, extents backed by pages */
	uint64_t dropped;                        /* virtual space lost to a full table */
	struct klog_limit lim_dropped;
	uint64_t nlive;                          /* mappings now */
	uint64_t pages;                          /* frames mapped now (table pages not counted) */
	uint64_t table_pages;                    /* frames backing the extent table */
	struct anon_table ext;                   /* .mem NULL: the table is at the window's start */
};

/* table NULL: the free-extent table takes the first ANON_TABLE_BYTES of the
 * window (the kernel: the window's addresses are pointers); else it lives in
 * table->mem (room for ANON_TABLE_BYTES) and the whole window maps. */
int anon_init(struct anon *a, struct frame_alloc *fa, struct pgtable *pt, uint64_t base, uint64_t size,
              const struct anon_table *table);
int anon_map(struct anon *a, uint64_t bytes, uint64_t *va);
int anon_unmap(struct anon *a, uint64_t va, uint64_t bytes);

#endif
