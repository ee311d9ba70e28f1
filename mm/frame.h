/*
 * frame.h - the physical frame allocator: every 4 KiB frame of RAM, grouped
 * in 2 MiB blocks that each serve one kind of allocation.
 *
 * Contract
 *  - fa_init() takes the boot memory map (struct boot_mem_region) and metadata
 *    memory the caller provides (fa_meta_bytes() says how much). USABLE RAM
 *    starts free; KERNEL, BOOTINFO, RECLAIMABLE and ACPI_RECLAIM RAM starts
 *    allocated as unmovable single frames (the caller frees what it reclaims
 *    with fa_free_range()); every other type is a hole the allocator never
 *    hands out and does not count.
 *  - A 2 MiB block is FREE, UNMOVABLE, MOVABLE, BALLOON (whole block given to
 *    the host) or ISOLATED (free, being reported to the host). Unmovable and
 *    movable frames never share a block, so kernel data cannot pin the blocks
 *    the compactor empties. Blocks with holes are unmovable.
 *  - fa_alloc(): unmovable power-of-two runs, order 0 (4 KiB) .. 9 (2 MiB),
 *    naturally aligned. fa_alloc_movable(): one 4 KiB frame reached through
 *    exactly one mapping, `owner_va`, which the compactor repoints when it
 *    moves the frame. fa_free() takes the order the frame was allocated with.
 *  - Every failure is a negative mm_err code, never a bogus frame number.
 *    Bad frees (double free, never allocated, inside a run, wrong order, out
 *    of range) change nothing, are counted and logged with one klog line.
 *  - Accounting always adds up: nr[FS_FREE] + nr[FS_KERNEL] + nr[FS_MOVABLE]
 *    + nr[FS_BALLOON] == total (fa_check() verifies this and much more).
 *  - Before failing, allocation calls the registered OOM notifiers (compaction,
 *    balloon deflate) and retries if one of them freed something.
 *  - Not thread safe: single core, callers serialize (no IRQ-context use).
 *
 * Metadata is sparse (struct fa_meta): it exists only for 128 MiB sections
 * that hold RAM, so holes in the memory map cost nothing and memory can be
 * hot-added far above boot RAM (fa_hot_add) at the cost of the sections it
 * touches. Everything that walks all blocks skips absent sections
 * (FA_FOR_EACH_BLOCK) without reading their metadata.
 *
 * Descriptor: 9 bytes per frame, in two arrays: one byte (state and order)
 * that every allocation and free touches, kept dense so it stays in cache
 * (256 KiB per GiB), and the owner mapping, read only for movable frames.
 * Only the first frame of a live allocation (its head) has a state other
 * than FS_FREE; the other frames of a run stay FS_FREE in their descriptor
 * and are known to be in use from the block's bitmap. So a 2 MiB allocation
 * writes one descriptor, not 512, and a free of a frame that is not the head
 * of a live allocation is always detected.
 *
 * Block choice (why it is fast and keeps fragmentation low): each kind has one
 * "current" block that 4 KiB allocations come from (a bitmap search in 8
 * words). When it runs out, the fullest partially used block of that kind
 * becomes current (partial blocks sit on 16 lists bucketed by free count, with
 * a bitmask of non-empty buckets, so this is O(1)); only when there is none is
 * a wholly free block taken, resident ones first. Sparse blocks therefore
 * drain, and wholly free blocks are found without scanning frames.
 */
#ifndef MM_FRAME_H
#define MM_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include "boot_info.h"
#include "mm/mm_err.h"
#include "units.h"

#define FA_MAX_ORDER      BLOCK_ORDER
#define FA_NBUCKETS       16                      /* partial-block lists per kind */
#define FA_BUCKET_SHIFT   5                       /* 512 / 16 = 32 free frames per bucket */
#define FA_MAX_NOTIFIERS  4
#define FA_NIL            0xffffffffu             /* "no block" in lists */
/* Metadata comes and goes in sections of 64 blocks (128 MiB, Linux's x86
 * section size): a section with no RAM in it costs no metadata at all. */
#define FA_SECTION_SHIFT  6
#define FA_SECTION_BLOCKS (1u << FA_SECTION_SHIFT)

/* Frame states. FS_REPORTED and FS_ABSENT only come out of fa_frame_info():
 * reported frames are free frames in a block the host was told about. */
enum frame_state {
	FS_FREE = 0,
	FS_KERNEL,      /* unmovable: kernel data, page tables, DMA, reserved at boot */
	FS_MOVABLE,     /* movable: reached only through its owner mapping */
	FS_BALLOON,     /* handed to the host by the balloon */
	FS_REPORTED,    /* free, in a block reported to the host (query only) */
	FS_ABSENT,      /* not RAM (hole in the memory map) */
	FS_COUNT
};

/* What a 2 MiB block is used for. UNMOVABLE/MOVABLE are 0/1: they index the
 * per-kind arrays below. */
enum block_kind {
	BK_UNMOVABLE = 0,
	BK_MOVABLE   = 1,
	BK_FREE,
	BK_BALLOON,
	BK_ISOLATED,
	BK_ABSENT,
};
#define FA_NKINDS 2

/* Block flags. */
#define BF_RESIDENT  0x01   /* may be resident on the host (written since boot or since it was given back) */
#define BF_REPORTED  0x02   /* free and reported to the host (free page reporting) */
#define BF_CURRENT   0x04   /* the current allocation block of its kind */
#define BF_HOLEY     0x08   /* has frames that are not RAM: can never be wholly free */
#define BF_OFFLINE   0x10   /* being taken out (hot remove): on no list, never current, never chosen */
#define BF_HOT       0x20   /* hot-added: holds movable memory only (Linux's ZONE_MOVABLE rule), so
                               it can always be emptied and given back; never lent to the balloon */

/* Frame descriptor byte: state (enum frame_state, FS_FREE unless the frame
 * is the head of a live allocation) and, for heads, the allocation order. */
static inline unsigned fd_state(uint8_t d) { return d & 7u; }
static inline unsigned fd_order(uint8_t d) { return (unsigned)d >> 3; }
static inline uint8_t fd_make(unsigned state, unsigned order) { return (uint8_t)(state | (order << 3)); }

struct mblock {
	uint64_t map[PAGES_PER_BLOCK / 64];  /* bit set = not free (allocated, ballooned or hole) */
	uint16_t nfree;         /* clear bits */
	uint16_t ncap;          /* frames that are RAM */
	uint8_t  kind;          /* enum block_kind */
	uint8_t  flags;         /* BF_* */
	uint8_t  list;          /* list the block is on, FA_LIST_NONE if none */
	uint8_t  hint;          /* words below this have no clear bit */
	uint32_t prev, next;    /* list neighbours (block indices), FA_NIL at the ends */
};

#define FA_LIST_NONE       0xff
#define FA_L_FREE_RES      0    /* wholly free, may be resident */
#define FA_L_FREE_NONRES   1    /* wholly free, not resident (never written, ballooned or reported) */
#define FA_L_FREE_HOT      2    /* wholly free, hot-added (BF_HOT): movable allocations only */
#define FA_L_PART_BASE     3
#define FA_L_PART(kind, bucket) (FA_L_PART_BASE + (kind) * FA_NBUCKETS + (bucket))
#define FA_NLISTS          (FA_L_PART_BASE + FA_NKINDS * FA_NBUCKETS)

struct fa_list { uint32_t head; uint32_t count; };

/* OOM notifier: asked to make at least `frames` frames free (the failed
 * request was 1 << order frames of `kind`); returns how many it freed. It may
 * allocate and free itself; nested OOM does not call notifiers again. */
typedef uint64_t (*fa_oom_fn)(void *ctx, unsigned order, enum block_kind kind);

/*
 * Where the metadata lives (fa_init_meta). Each array has room for
 * max_blocks blocks counted from base_pfn, but only the parts that belong to
 * present sections are ever read or written, so the arrays can be windows
 * of virtual address space that populate() backs on demand (the kernel's
 * "vmemmap") or plain buffers (populate NULL: everything is backed).
 * populate(ctx, p, bytes) must make [p, p + bytes) readable and writable,
 * keeping what pages there already hold; MM_OK or MM_ENOMEM.
 */
struct fa_meta {
	uint64_t      *owner;       /* max_blocks * 512 */
	uint8_t       *desc;        /* max_blocks * 512 */
	struct mblock *blocks;      /* max_blocks */
	uint32_t      *scratch;     /* max_blocks */
	uint8_t       *sections;    /* max_blocks / 64, rounded up: 1 = present */
	uint64_t       max_blocks;  /* < FA_NIL */
	int (*populate)(void *ctx, void *p, size_t bytes);
	/* Optional: give back the memory behind [p, p + bytes) (page aligned,
	 * no longer read): a section whose memory was all hot-removed returns
	 * its frame descriptors and owner words (98% of its metadata). */
	void (*depopulate)(void *ctx, void *p, size_t bytes);
	void *ctx;
	int defer;                  /* fa_init_meta brings no section online: fa_online_boot does */
};

struct frame_alloc {
	uint64_t base_pfn;          /* first frame of block 0 (block aligned) */
	uint32_t nblocks;           /* span: blocks below this may be present */
	uint32_t max_blocks;        /* room in the metadata arrays (hot add stops there) */
	uint8_t       *sections;    /* per section of the span: 1 = metadata present */
	struct fa_meta meta;
	const struct boot_mem_region *boot_map;  /* kept for sections brought online later */
	size_t boot_map_n;
	int boot_reclaimed;         /* loader/boot-services RAM is free from now on */
	uint64_t boot_reclaimed_frames; /* such RAM that came online free after that */
	uint32_t cur[FA_NKINDS];    /* current block per kind, FA_NIL if none */
	uint8_t       *desc;        /* per frame: fd_make(state, order) */
	uint64_t      *owner;       /* per frame: owner_va of a movable head (else stale) */
	struct mblock *blocks;
	uint32_t      *scratch;     /* nblocks entries for the compactor's sort */
	struct fa_list lists[FA_NLISTS];
	uint16_t part_mask[FA_NKINDS];  /* bit b set = partial list b of that kind non-empty */

	uint64_t total;             /* RAM frames managed */
	uint64_t nr[FS_BALLOON + 1];/* frames per state: FREE, KERNEL, MOVABLE, BALLOON */
	uint32_t nr_reported_blocks;
	uint32_t nr_isolated_blocks;
	uint64_t bad_frees;         /* rejected frees since init */
	uint64_t oom_calls;         /* times the notifiers were asked */

	struct { fa_oom_fn fn; void *ctx; } oom[FA_MAX_NOTIFIERS];
	/* Called (thread context, maybe with interrupts off) each time a block
	 * in use becomes wholly free and resident: what free page reporting
	 * waits for. Must only take note, never allocate or free. */
	void (*on_free_block)(void *ctx);
	void *on_free_block_ctx;
	unsigned noom;
	int in_oom;
};

/* ---- set-up ---- */

/* Bytes of metadata fa_init() needs for this memory map (0: no RAM in it). */
size_t fa_meta_bytes(const struct boot_mem_region *r, size_t n);
/* Build the allocator. `meta` must be 8-byte aligned and meta_bytes >= fa_meta_bytes().
 * Free RAM starts non-resident (never written by the guest). MM_EINVAL if the
 * map has no RAM or the metadata is too small. */
int fa_init(struct frame_alloc *fa, const struct boot_mem_region *r, size_t n,
            void *meta, size_t meta_bytes);
/* The same with metadata in struct fa_meta: only sections holding RAM get
 * (and are asked to populate) metadata; memory above can be hot-added later
 * up to meta->max_blocks. MM_ENOMEM if populate failed. */
int fa_init_meta(struct frame_alloc *fa, const struct boot_mem_region *r, size_t n,
                 const struct fa_meta *meta);
/* Bring sections of boot RAM in [pfn, pfn + count) online (metadata, free
 * lists), at most max_sections of them; *onlined says how many (0: nothing
 * left in that range). With meta->defer the kernel starts with what boot
 * needs and calls this from its work loop for the rest, so boot does not
 * grow with RAM. The map given to fa_init_meta must stay valid. */
int fa_online_boot(struct frame_alloc *fa, uint64_t pfn, uint64_t count, unsigned max_sections,
                   uint64_t *onlined);
/* From now on loader and boot-services RAM in sections still to come
 * online is free (the kernel reclaimed what was online). */
void fa_boot_reclaimed(struct frame_alloc *fa);
/* Metadata bytes the present sections of this map need with fa_init_meta
 * (pages counted whole per array and section: an upper bound). */
size_t fa_meta_bytes_sparse(const struct boot_mem_region *r, size_t n);
/* 1 for memory-map types the allocator manages as RAM (free or in use). */
int fa_region_is_ram(uint32_t type);
/* Most bytes of metadata one section can need (populate rounds to pages). */
size_t fa_section_meta_bound(void);
/* 1 if pfn is in a section whose metadata is present. */
int fa_pfn_present(const struct frame_alloc *fa, uint64_t pfn);
/* Take specific free frames as unmovable (e.g. the metadata itself). All or
 * nothing: MM_ESTATE if any frame is not free or sits in a movable block. */
int fa_claim_range(struct frame_alloc *fa, uint64_t pfn, uint64_t count);
/* Free every frame of [pfn, pfn+count) that is an order-0 unmovable frame
 * (reclaiming boot memory); returns how many frames were freed. */
uint64_t fa_free_range(struct frame_alloc *fa, uint64_t pfn, uint64_t count);

/* ---- allocation ---- */

int fa_alloc(struct frame_alloc *fa, unsigned order, uint64_t *pfn);
int fa_alloc_movable(struct frame_alloc *fa, uint64_t owner_va, uint64_t *pfn);
int fa_free(struct frame_alloc *fa, uint64_t pfn, unsigned order);
/* Smallest order holding `pages` frames: MM_EINVAL for 0 or more than 512. */
int fa_order_for_pages(uint64_t pages, unsigned *order);
/* Change the recorded mapping of a movable frame. */
int fa_set_owner(struct frame_alloc *fa, uint64_t pfn, uint64_t owner_va);
int fa_add_oom_notifier(struct frame_alloc *fa, fa_oom_fn fn, void *ctx);

/* ---- queries ---- */

struct frame_info {
	enum frame_state state;
	uint64_t head;          /* first frame of the allocation containing pfn (== pfn if free) */
	unsigned order;
	uint64_t owner_va;      /* movable frames */
	enum block_kind block_kind;
	unsigned block_flags;
};
int fa_frame_info(const struct frame_alloc *fa, uint64_t pfn, struct frame_info *out);
/* Wholly free blocks that an allocation or the balloon could take now. */
uint64_t fa_free_blocks(const struct frame_alloc *fa);
/* Free frames an allocation could take now: blocks isolated for a free page
 * report in flight are not counted (nobody may allocate them yet). */
uint64_t fa_free_pages(const struct frame_alloc *fa);
/* Verify every invariant (bitmaps, descriptors, lists, counters). MM_OK, or
 * MM_ESTATE with the first violation described in `why`. O(frames): tests. */
int fa_check(const struct frame_alloc *fa, char *why, size_t why_len);

/* ---- hot-plugged memory (hotplug.c) ---- */

/* Hand [pfn, pfn + count) to the allocator: whole blocks that hold no RAM
 * yet, at or above base_pfn, below max_blocks. They become free and not
 * resident (the host has not populated them). All or nothing: MM_EINVAL
 * (misaligned, empty), MM_ERANGE (outside what the metadata can cover),
 * MM_ESTATE (a block already holds RAM), MM_ENOMEM (no metadata memory). */
int fa_hot_add(struct frame_alloc *fa, uint64_t pfn, uint64_t count);
struct pgtable;
/* Take [pfn, pfn + count) out of the allocator, whole blocks: free blocks
 * are taken, movable blocks emptied first (each frame copied elsewhere and
 * its one mapping repointed through pt). All or nothing: MM_EBUSY (a block
 * is unmovable, lent, isolated or holds a frame that cannot move), MM_ENOMEM
 * (no room outside the range for the movable frames), MM_ESTATE (not all
 * online), MM_EINVAL/MM_ERANGE; frames already moved stay moved (harmless).
 * On success the range holds no RAM: not counted, never touched again.
 * *moved (may be NULL) gets the number of frames copied. */
int fa_hot_remove(struct frame_alloc *fa, struct pgtable *pt, uint64_t pfn, uint64_t count,
                  uint64_t *moved);

/* ---- balloon and free page reporting (frame_balloon.c) ---- */

/* Take up to n wholly free 2 MiB blocks for the balloon, resident first;
 * their first frame numbers go to pfns[]. Returns how many were taken. */
uint64_t fa_balloon_take_blocks(struct frame_alloc *fa, uint64_t n, uint64_t *pfns);
/* The same, resident_only: only blocks the host may back (written since boot
 * or since it last discarded them) - ballooning any other releases nothing. */
uint64_t fa_balloon_take_blocks_from(struct frame_alloc *fa, uint64_t n, uint64_t *pfns, int resident_only);
/* Take up to n free runs of 2^order frames (order < 9): from partially used
 * blocks (unmovable ones first, then movable ones fullest first); a wholly
 * free block is broken only when no partial block has such a run. */
uint64_t fa_balloon_take_runs(struct frame_alloc *fa, unsigned order, uint64_t n, uint64_t *pfns);
/* Give back what the balloon took (order 9 for a block). The frames are free
 * again and count as not resident: the host discarded them. */
int fa_balloon_return(struct frame_alloc *fa, uint64_t pfn, unsigned order);
/* Free page reporting: take up to max resident, unreported free blocks out
 * of circulation while the host is told about them, then put them back. */
uint64_t fa_report_isolate(struct frame_alloc *fa, uint64_t max, uint64_t *pfns);
int fa_report_done(struct frame_alloc *fa, const uint64_t *pfns, uint64_t n, int reported);

#endif
