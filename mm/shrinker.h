/*
 * shrinker.h - caches that give memory back when the kernel needs it.
 *
 * A cache (or the appliance) registers a shrinker: count(ctx) says how many
 * 4 KiB pages it could free right now, scan(ctx, pages) frees up to `pages`
 * and returns how many it freed (to the frame allocator, for real). When free
 * memory cannot meet a need - the balloon's target, an allocation slow path -
 * the caller asks shrinker_reclaim() and then retries its own work.
 *
 * Contract
 *  - Order: ascending priority. A LOW priority means "cheap to lose" (a clean
 *    cache that can be rebuilt) and is asked FIRST; equal priorities are asked
 *    in registration order. A higher-priority shrinker is asked only when the
 *    lower ones could not supply the batch.
 *  - Gradual: one shrinker_reclaim(wanted) call frees at most
 *    min(wanted, SHRINKER_BATCH) pages and asks each shrinker at most once,
 *    for at most what its count() offered. The caller interleaves its own
 *    work (compaction, the virtqueue) and calls again; a return of 0 means no
 *    shrinker can give anything now, which is when the caller reports a
 *    shortfall.
 *  - Units: a cache that frees whole pieces (the appliance's are 16 pages)
 *    declares its piece with shrinker_set_unit(). Asked for less than one
 *    piece it frees one piece - an allocation at OOM that needs one page must
 *    not get nothing while megabytes are reclaimable - so up to max(asked,
 *    unit) pages count as an honest answer.
 *  - Answers are not trusted: a scan() that claims more than that (which
 *    also covers "more than its count() said") is clamped, counted in its
 *    stats, and reported with one klog line per shrinker (not per call: a
 *    broken cache must not flood the console).
 *  - Callbacks may allocate memory and may register or unregister shrinkers,
 *    themselves included. A shrinker_reclaim() nested inside a callback (an
 *    allocation's OOM path calling back in) returns 0 at once: no recursion.
 *  - A fixed table of SHRINKER_MAX entries, no heap; the name is copied.
 *  - Single core, callers serialize; not for interrupt context.
 */
#ifndef KERNEL_SHRINKER_H
#define KERNEL_SHRINKER_H

#include <stddef.h>
#include <stdint.h>

#define SHRINKER_MAX       16
#define SHRINKER_NAME_MAX  24     /* including the NUL; longer names are cut */
#define SHRINKER_BATCH     256    /* pages (1 MiB) freed at most per reclaim call */

/* Suggested priorities: lower is asked first. */
#define SHRINKER_PRIO_CACHE    10   /* clean caches: contents can be rebuilt */
#define SHRINKER_PRIO_DEFAULT  50
#define SHRINKER_PRIO_COSTLY   90   /* giving memory back hurts (working sets) */

typedef uint64_t (*shrinker_count_fn)(void *ctx);
typedef uint64_t (*shrinker_scan_fn)(void *ctx, uint64_t pages);

/* Returns an id > 0 for shrinker_unregister(), or -1 (one klog line) if the
 * table is full or an argument is missing. */
int shrinker_register(const char *name, int priority, shrinker_count_fn count,
                      shrinker_scan_fn scan, void *ctx);
/* 0, or -1 if no shrinker has that id (already gone). */
int shrinker_unregister(int id);
/* The smallest amount (pages) the shrinker frees at once (1 by default);
 * 0, or -1 if no shrinker has that id or pages is 0. */
int shrinker_set_unit(int id, uint64_t pages);

/* Ask the shrinkers for pages (see the contract); returns pages freed. */
uint64_t shrinker_reclaim(uint64_t pages_wanted);

/* Sum of every shrinker's count(): what reclaim could get at most right now. */
uint64_t shrinker_count_all(void);

/* A snapshot of one shrinker, in the order reclaim asks them. */
struct shrinker_info {
	int id;
	int priority;
	char name[SHRINKER_NAME_MAX];
	uint64_t can_free;     /* its count() now */
	uint64_t calls;        /* scan() calls */
	uint64_t freed;        /* pages freed (after clamping) */
	uint64_t bad_answers;  /* scans that claimed more than asked */
};
/* Fills up to `max` entries; returns how many shrinkers are registered. */
size_t shrinker_list(struct shrinker_info *out, size_t max);

struct shrinker_totals {
	uint64_t reclaim_calls;   /* shrinker_reclaim() calls with pages_wanted > 0 */
	uint64_t pages_wanted;    /* sum of min(wanted, SHRINKER_BATCH) over those calls */
	uint64_t pages_freed;
	uint64_t nested;          /* calls refused because a reclaim was running */
};
void shrinker_get_totals(struct shrinker_totals *t);

#ifdef HOST_TEST
/* Forget every shrinker and statistic (host tests only). */
void shrinker_reset(void);
#endif

#endif
