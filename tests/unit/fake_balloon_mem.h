/*
 * fake_balloon_mem.h - the tests' one guest memory behind struct
 * balloon_mem_ops (fake_mem_ops): a frame allocator that checks the
 * ownership of every frame, for the plain balloon tests (test_balloon*.c)
 * and, with its hostile knobs, device hooks and running application, for
 * the hostile-device suite and the fuzzers (fake_hostile_*.c).
 *
 * Frames [base_pfn, base_pfn + npages) are managed. Every frame has one
 * owner: FREE, USED (movable guest data the compactor may move; the
 * application's frames are USED), PINNED (kernel memory), BALLOON (taken by
 * take_blocks/take_run, not given back) or ISOLATED (a free block taken out
 * for free page reporting; counted in nisolated, not in nfree). One 64-bit
 * word stands for each frame's contents: the application writes a tag it can
 * recompute, the device overwrites it with FM_POISON when it discards the
 * frame (what a host does with an inflated page).
 *
 * What counts as an error (errors++, the first one kept in first_error and
 * every one printed to stderr; tests assert errors == 0):
 *   - give_back of a range not taken exactly like this (same first frame and
 *     order, like mm/'s fa_balloon_return), or of a frame the balloon does
 *     not own (given back twice, or never taken);
 *   - give_back of a frame the device may still use (device_holds says so)
 *     - the balloon must keep such frames until a reset;
 *   - take_run of an order above BALLOON_MAX_RUN_ORDER;
 *   - report_done of a block that is not isolated, or while the device may
 *     still write it;
 *   - the device discarding a frame the balloon does not own, or writing a
 *     reported frame that is not isolated;
 *   - the application finding a frame whose contents changed (corrupt);
 *   - counters that disagree with the owners (fake_mem_consistent).
 *
 * Free page reporting, like mm/'s residency: a block becomes resident when
 * a frame in it is written (allocated, or a compaction destination), non-
 * resident when the balloon gives it back whole or the host acked its
 * report. A fresh fake_mem is never-written memory (nothing resident);
 * fake_mem_touch_all makes it a guest that has run a while. report_pending
 * counts wholly free, resident, unreported blocks; report_isolate hands them
 * out from the top down (not in address order, as a free list would);
 * report_done checks every block was isolated.
 *
 * Hostile knobs (an allocator with bugs): bad_block_pfn slips a PFN into the
 * next take_blocks (first), bad_isolate_pfn into the next report_isolate (at
 * place bad_isolate_at of its list). With device_holds set (the hostile
 * device wires it), give_back/report_done check the device no longer uses
 * the frames; with oom set, the application calls it when it runs dry (the
 * balloon's deflate on OOM), once per allocation, and tries again.
 */
#ifndef FAKE_BALLOON_MEM_H
#define FAKE_BALLOON_MEM_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/balloon/balloon.h"
#include "rng.h"

enum { FM_FREE, FM_USED, FM_PINNED, FM_BALLOON, FM_ISOLATED };
enum { FB_RESIDENT = 1, FB_REPORTED = 2, FB_ISOLATED = 4 };

#define FM_POISON 0xdeadbeefdeadbeefull
#define FM_NO_APP UINT32_MAX

struct fm_app_frame {
	uint64_t pfn;
	uint64_t tag;           /* what the frame's word must hold */
};

struct fake_mem {
	uint64_t base_pfn, npages;
	uint8_t  *st;           /* owner per frame (FM_*) */
	uint8_t  *taken_order;  /* per frame: order of the balloon range starting here, else 0xff */
	uint64_t *word;         /* contents per frame */
	uint32_t *app_idx;      /* per frame: index into app[] of its holder, else FM_NO_APP */
	uint8_t  *blk;          /* per block, indexed by pfn / PAGES_PER_BLOCK: FB_* */
	uint64_t nblk;
	uint64_t nfree, nused, npinned, nballoon, nisolated;

	/* hostile knobs; a PFN of 0 = off, each fires once */
	uint64_t bad_block_pfn;     /* the next take_blocks returns this PFN first */
	uint64_t bad_isolate_pfn;   /* the next report_isolate returns this PFN ... */
	unsigned bad_isolate_at;    /* ... at this place of its list (0 = first) */
	int no_compact;             /* ops.compact does nothing */

	/* the device's view, for the "may still use" check (NULL: never) */
	int (*device_holds)(void *ctx, uint64_t pfn, uint64_t count);
	void *dctx;
	/* the allocator's OOM notifier (NULL: none): pages it gave back */
	uint64_t (*oom)(void *ctx, uint64_t pages);
	void *octx;

	/* the application */
	struct fm_app_frame *app;
	size_t app_n, app_cap;
	int pack;               /* 1: it allocates next-fit (packed), 0: at random places */
	uint64_t cursor;
	struct rng rng;         /* its random choices */
	uint64_t app_seq, app_allocs, app_frees, app_checks, app_corrupt, app_alloc_failures;

	/* what happened */
	unsigned errors;
	char first_error[200];
	unsigned take_blocks_calls, take_run_calls, compact_calls, give_calls, isolate_calls, done_calls;
	uint64_t blocks_taken, runs_taken, frames_taken, frames_given, moved, discards;
	uint64_t isolated_blocks, reported_blocks, unreported_blocks, report_writes;
	uint64_t oom_calls, oom_pages;
};

/* With free page reporting; a test wanting none copies it and clears the three. */
extern const struct balloon_mem_ops fake_mem_ops;

/* Frames [base_pfn, base_pfn + npages), all free and never written; `seed`
 * drives the application (0: RNG_DEFAULT_SEED). st == NULL: out of memory. */
void fake_mem_init(struct fake_mem *m, uint64_t base_pfn, uint64_t npages, uint64_t seed);
void fake_mem_destroy(struct fake_mem *m);
/* Every block resident, as in a guest that has been running. */
void fake_mem_touch_all(struct fake_mem *m);

/* Mark frame `pfn` used (movable) or pinned; it must be free. 0 or -1. */
int fake_mem_alloc_at(struct fake_mem *m, uint64_t pfn, int pinned);
/* Allocate `n` frames anywhere (first fit), as the guest would; returns how many. */
uint64_t fake_mem_alloc_any(struct fake_mem *m, uint64_t n, int pinned);
/* Free a USED or PINNED frame the application does not hold. 0 or -1. */
int fake_mem_free_at(struct fake_mem *m, uint64_t pfn);
/* Block flags (FB_*) of the block holding pfn. */
unsigned fake_mem_block_flags(const struct fake_mem *m, uint64_t pfn);
/* The lowest block the balloon took whole, 0 if none. */
uint64_t fake_mem_balloon_block(const struct fake_mem *m);
/* Recount owners against the counters: 0 if they agree, else -1 (an error). */
int fake_mem_consistent(struct fake_mem *m);

/* The device discarded frame `pfn` (host side of an inflate). */
void fake_mem_device_discard(struct fake_mem *m, uint64_t pfn);
/* The device wrote (discarded) frame `pfn` of a report element. */
void fake_mem_device_report(struct fake_mem *m, uint64_t pfn);

/* The application: allocate up to n frames (packed or at pseudo-random
 * places) and write their tags; free n random ones (checking each); verify
 * every frame it holds (returns the number found corrupt, also added to
 * app_corrupt and errors). */
uint64_t fake_mem_app_alloc(struct fake_mem *m, uint64_t n);
uint64_t fake_mem_app_free(struct fake_mem *m, uint64_t n);
uint64_t fake_mem_app_check(struct fake_mem *m);
/* One step of a running application: a few frames in, a few out, and every
 * `check_every` steps a full check. */
void fake_mem_app_step(struct fake_mem *m, unsigned step, unsigned check_every);

#endif
