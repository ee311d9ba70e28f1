/*
 * units.h - one name per size: pages, 2 MiB blocks, binary units, and the
 * min/max helpers every module would otherwise write again.
 *
 * A page (also called a frame when it is physical memory) is 4 KiB. A block
 * is 2 MiB = 512 pages: the unit the allocator keeps movable and unmovable
 * memory apart in, the compactor empties, and the balloon hands to the host
 * (one huge page on a host backed by 2 MiB pages).
 */
#ifndef UNITS_H
#define UNITS_H

#include <stdint.h>

#define PAGE_SHIFT       12
#define PAGE_SIZE        (1ull << PAGE_SHIFT)
#define BLOCK_ORDER      9                               /* pages per block = 1 << 9 */
#define PAGES_PER_BLOCK  (1u << BLOCK_ORDER)
#define BLOCK_SHIFT      (PAGE_SHIFT + BLOCK_ORDER)
#define BLOCK_SIZE       (1ull << BLOCK_SHIFT)

#define KIB              (1ull << 10)
#define MIB              (1ull << 20)
#define GIB              (1ull << 30)
/* Pages to whole MiB (rounded down), for log lines. */
#define PAGES_TO_MIB(pages) ((uint64_t)(pages) >> (20 - PAGE_SHIFT))

static inline uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

#endif /* UNITS_H */
