/*
 * fake_hostile_mem.h - guest memory for the hostile-device tests and the
 * fuzzers: a frame allocator behind struct balloon_mem_ops that checks the
 * ownership of every frame, and a small application that holds frames with
 * checksummed contents while the balloon and a (hostile) device run.
 *
 * Every frame has one owner: FREE, APP (the application's data), PINNED
 * (kernel memory), BALLOON (taken by take_blocks/take_run, not given back)
 * or ISOLATED (a free block taken out for free page reporting).
 * One 64-bit word stands for each frame's contents: the application writes a
 * tag it can recompute, the device overwrites it with HM_POISON when it
 * discards the frame (what a host does with an inflated page).
 *
 * What counts as an error (errors++, the first one kept in first_error):
 *   - give_back of a range not taken exactly like this, or of a frame the
 *     balloon does not own (given back twice, or never taken);
 *   - give_back of a frame the device may still use (device_holds says so:
 *     inflated and not deflate-acked, or in an inflate element not yet
 *     popped) - the balloon must keep such frames until a reset;
 *   - report_done of a block that is not isolated, or while the device may
 *     still write it;
 *   - the device discarding a frame the balloon does not own, or writing a
 *     reported frame that is not isolated;
 *   - the application finding a frame whose contents changed (corrupt).
 * "No frame lost or handed out twice" is then: errors == 0, and at the end
 * nballoon == nisolated == 0 with free + app + pinned == npages.
 *
 * Free page reporting: report_pending/isolate/done over wholly free blocks
 * not reported since they were last used. Deflate on OOM: when the
 * application finds no free frame it calls `oom` (the balloon's OOM path)
 * once per allocation and tries again.
 */
#ifndef FAKE_HOSTILE_MEM_H
#define FAKE_HOSTILE_MEM_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/balloon/balloon.h"
#include "rng.h"

enum { HM_FREE, HM_APP, HM_PINNED, HM_BALLOON, HM_ISOLATED };

#define HM_POISON 0xdeadbeefdeadbeefull
#define HM_NO_APP UINT32_MAX

struct hm_app_frame {
	uint64_t pfn;
	uint64_t tag;           /* what the frame's word must hold */
};

struct hmem {
	uint64_t base_pfn, npages;
	uint8_t  *st;           /* owner per frame (HM_*) */
	uint8_t  *order;        /* balloon range starting here: its order, else 0xff */
	uint64_t *word;         /* contents */
	uint32_t *app_idx;      /* index into app[] of the frame's holder, else HM_NO_APP */
	uint64_t nfree, napp, npinned, nballoon, nisolated;
	uint8_t  *reported;     /* per block from first_block: reported and untouched since */
	uint64_t first_blk, nblocks;

	/* the device's view, for the "may still use" check (NULL: never) */
	int (*device_holds)(void *ctx, uint64_t pfn, uint64_t count);
	void *dctx;
	int compact_enabled;    /* 1: ops.compact moves application frames */
	int pack;               /* 1: the application allocates next-fit (packed), 0: at random places */
	uint64_t cursor;
	int bad_isolate;        /* hostile: report_isolate slips in a balloon block once */
	/* the allocator's OOM notifier (NULL: none): pages it gave back */
	uint64_t (*oom)(void *ctx, uint64_t pages);
	void *octx;

	/* the application */
	struct hm_app_frame *app;
	size_t app_n, app_cap;
	uint64_t app_seq, app_allocs, app_frees, app_checks, app_corrupt;
	struct rng rng;          /* the application's placement choices */

	/* what happened */
	unsigned errors;
	char first_error[200];
	uint64_t take_calls, give_calls, frames_taken, frames_given, compact_calls, moved, discards;
	uint64_t isolated_blocks, reported_blocks, unreported_blocks, report_writes;
	uint64_t oom_calls, oom_pages, app_alloc_failures;
};

extern const struct balloon_mem_ops hmem_ops;          /* no free page reporting */
extern const struct balloon_mem_ops hmem_report_ops;   /* with it */

/* Frames [base_pfn, base_pfn + npages); all free. */
void hmem_init(struct hmem *m, uint64_t base_pfn, uint64_t npages, uint64_t seed);
void hmem_destroy(struct hmem *m);

/* Pin `n` frames (kernel memory), one every `stride` frames from the start:
 * with stride 512 + k every 2 MiB block gets one, so none is wholly free. */
uint64_t hmem_pin_spread(struct hmem *m, uint64_t n, uint64_t stride);

/* The device discarded frame `pfn` (host side of an inflate). */
void hmem_device_discard(struct hmem *m, uint64_t pfn);
/* The device wrote (discarded) frame `pfn` of a report element. */
void hmem_device_report(struct hmem *m, uint64_t pfn);

/* The application: allocate up to n frames (pseudo-random places) and write
 * their tags; free n random ones; verify every frame it holds (returns the
 * number found corrupt, also added to app_corrupt and errors). */
uint64_t hmem_app_alloc(struct hmem *m, uint64_t n);
uint64_t hmem_app_free(struct hmem *m, uint64_t n);
uint64_t hmem_app_check(struct hmem *m);
/* One step of a running application: a few frames in, a few out, and every
 * `check_every` steps a full check. */
void hmem_app_step(struct hmem *m, unsigned step, unsigned check_every);

/* Recount owners against the counters: 0 if they agree, else -1 (error). */
int hmem_consistent(struct hmem *m);
/* 1 if frame `pfn` is balloon-owned. */
int hmem_is_balloon(const struct hmem *m, uint64_t pfn);

#endif
