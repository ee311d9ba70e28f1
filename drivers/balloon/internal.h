/*
 * internal.h - the balloon core's private state and the calls its files make
 * of each other. Only the core's files (drivers/balloon/) and its own white-box tests
 * include it; everyone else goes through balloon.h.
 *
 * Books: every balloon-owned frame is in exactly one place:
 *   - the bitmap (acked by the host on the inflate queue: "settled"),
 *   - an inflate element in flight (taken from the allocator, not yet acked),
 *   - a deflate element in flight (told to the host, not yet acked).
 * actual = settled + deflating: a frame leaves `actual` when the host acked
 * its deflate, and enters it when the host acked its inflate.
 * Ranges stay as the allocator gave them (a block, or a 2^k run): the heads
 * bitmap marks where each starts, so a range is found again, and given back,
 * whole. balloon_check() verifies all of this.
 *
 * Blocks isolated for free page reporting are not the balloon's: they stay
 * the allocator's free memory, only out of circulation until the host acks
 * the report (rep.pfns while rep.in_flight).
 *
 * Re-entry: balloon_oom() runs inside an allocation, which may happen inside
 * balloon_poll() itself (compaction, a shrinker, a log line growing the
 * heap). The books are half-updated there, so the OOM path refuses to run
 * while in_poll is set and returns 0: that allocation fails or is served by
 * the other notifiers.
 */
#ifndef DRIVERS_BALLOON_INTERNAL_H
#define DRIVERS_BALLOON_INTERNAL_H

#include "drivers/balloon/balloon.h"
#include "kclock.h"
#include "kernel/lib/rate.h"

#define DEFAULT_ACK_TIMEOUT_NS (5 * NS_PER_S)
#define DEFAULT_RETRY_NS       (1 * NS_PER_S)
#define DEFAULT_BATCH          16u
#define LOG_INTERVAL_NS        (1 * NS_PER_S)
#define DEFAULT_OOM_WAIT_NS    (200 * NS_PER_MS)
#define MAX_REPORT_DELAY_NS    (3600 * NS_PER_S)
#define RECLAIM_STEP           256u    /* pages asked of the shrinkers at least (their batch) */

enum balloon_elem_state { ELEM_FREE, ELEM_INFLATE, ELEM_DEFLATE };

struct balloon_run {
	uint64_t pfn;
	uint32_t count;
};

/* One element: the PFN array (in DMA memory) and a private copy of what it
 * carries (whole taken ranges: count is a power of two, aligned); the device
 * could overwrite the array, the copy is what counts. */
struct balloon_elem {
	uint8_t  state;                 /* enum balloon_elem_state */
	uint8_t  nruns;
	uint32_t pages;
	uint64_t lo, hi;                /* the runs lie in [lo, hi): one test rules most elements out */
	uint64_t submitted_ns;
	le32    *pfns;                  /* BALLOON_PAGES_PER_BLOCK entries, DMA */
	uint64_t pfns_pa;
	struct balloon_run runs[BALLOON_ELEM_RUNS];
};

enum balloon_report_state { REPORT_IDLE, REPORT_ARMED, REPORT_BUSY };

/* Free page reporting: one element in flight at most. */
struct balloon_report {
	uint8_t  state;               /* enum balloon_report_state */
	uint8_t  in_flight;           /* the element below is on the queue */
	uint64_t due_ns;              /* ARMED: report at this time */
	uint64_t submitted_ns;
	unsigned n;                   /* isolated blocks in flight */
	uint64_t pfns[BALLOON_REPORT_BLOCKS];
	uint64_t rounds, blocks, runs, put_back;
	int      stall_logged, broken_logged;
};

struct balloon {
	struct balloon_setup s;

	uint64_t *bitmap;          /* 1 = frame is in the balloon, acked */
	uint64_t *heads;           /* 1 = first frame of a range as taken */
	uint16_t *blk_count;       /* ballooned (acked) frames per 2 MiB block */
	uint64_t *ready;           /* NULL: bitmaps all backed; else a bit per chunk */
	uint64_t  nblocks;
	uint64_t  books_pages;     /* populated for the bitmaps (lazy books) */
	int       books_short;     /* this inflate round could not back a chunk's books */

	uint64_t settled;          /* frames in the bitmap */
	uint64_t block_runs;       /* settled ranges that are whole 2 MiB blocks */
	uint64_t inflating;        /* frames in inflate elements in flight */
	uint64_t deflating;        /* frames in deflate elements in flight */
	uint64_t deflate_cursor;   /* where the next whole-block search starts */

	struct balloon_elem elems[BALLOON_SLOTS];
	unsigned nfree_elems;

	uint32_t num_pages;        /* last value read from the device */
	int      have_num_pages;
	uint64_t target;           /* clamped */
	uint32_t actual_written;
	int      have_written;

	/* per-target progress */
	int      blocks_dry;       /* take_blocks gave less than asked (after compaction) */
	int      compact_tried;
	int      run_order_cap;    /* largest small-run order worth asking for, -1 none */
	int      short_of_memory;
	int      short_reported;
	int      done_reported;
	uint64_t retry_at_ns;

	int      stalled;
	uint64_t cfg_fail_since_ns; /* config reads failing since (0 = they work) */
	int      broken;
	int      mem_error;        /* memory ops returned garbage: inflate stopped */

	struct virtio_balloon_stat *stats;  /* DMA */
	uint64_t stats_pa;
	int      stats_queued;

	uint64_t blocks_sent, runs_sent, deflates_sent, acks;

	/* policy */
	int      host_set;          /* the host changed num_pages since boot: initial is off */
	int      have_first_np;
	uint32_t first_np;          /* num_pages at the first read */
	int      params_changed;    /* recompute the target at the next poll */
	enum balloon_limit_reason limit_reason;
	enum balloon_short_reason short_reason;
	struct rate_bucket rate;    /* inflation credit in pages (kernel/lib/rate.h) */
	int      rate_limited;      /* the last inflate step waited for credit */
	int      reclaim_dry;       /* the shrinkers gave nothing: not again before a retry */
	uint64_t reclaimed;         /* pages the shrinkers freed for the balloon */
	uint64_t target_at_ns;      /* when the current target was computed */
	int      await_first;       /* no element has gone out for it yet */
	uint64_t reaction_ns;       /* new target -> first element, for the last target */
	uint64_t reclaim_calls;

	int      released;          /* balloon_release_all ran: the next init keeps the host's decisions */

	/* deflate on OOM */
	int      in_poll, in_oom;
	int      oom_capped;        /* target held at oom_cap until the host changes num_pages */
	uint64_t oom_cap;
	int      oom_waiting;       /* an OOM deflate timed out; its acks are still out */
	uint64_t oom_calls, oom_deflates, oom_pages, oom_timeouts, oom_refused;
	uint64_t oom_logged;        /* oom_deflates already announced by a poll */
	uint64_t oom_timeouts_logged;

	/* totals */
	uint64_t pages_inflated, pages_deflated;   /* acked by the host */

	struct balloon_report rep;

	struct klog_limit lim_clamp, lim_target, lim_status, lim_stall, lim_mem, lim_oom, lim_rep;
};

/* ---- books.c: bitmaps and elements */

/* 1 if the bitmaps of pfn's chunk are backed: a chunk that is not holds no
 * ballooned frame, and its bitmaps must not be read (they are not mapped). */
static inline int bal_chunk_ready(const struct balloon *b, uint64_t pfn)
{
	uint64_t c = pfn / PAGES_PER_BLOCK / BALLOON_CHUNK_BLOCKS;
	return !b->ready || ((b->ready[c / 64] >> (c % 64)) & 1);
}

static inline int bit_test(const struct balloon *b, uint64_t pfn)
{
	return bal_chunk_ready(b, pfn) && ((b->bitmap[pfn / 64] >> (pfn % 64)) & 1);
}

static inline int head_test(const struct balloon *b, uint64_t pfn)
{
	return bal_chunk_ready(b, pfn) && ((b->heads[pfn / 64] >> (pfn % 64)) & 1);
}

/* log2 of a range's length (ranges are powers of two). */
static inline unsigned order_of(uint32_t count)
{
	unsigned k = 0;
	while ((1u << k) < count)
		k++;
	return k;
}

static inline int elem_busy(const struct balloon_elem *e)
{
	return e->state == ELEM_INFLATE || e->state == ELEM_DEFLATE;
}

/* Most PFNs one element carries: a whole block as a chain of two 1 KiB
 * descriptors, or one descriptor's worth (balloon.h: element layout). */
static inline uint32_t bal_elem_cap(const struct balloon *b)
{
	return b->s.layout == BALLOON_LAYOUT_SINGLE ? BALLOON_PFNS_PER_DESC : PAGES_PER_BLOCK;
}

uint32_t bal_run_len(const struct balloon *b, uint64_t pfn);
uint64_t bal_next_head(const struct balloon *b, uint64_t pfn, uint64_t end);
int bal_is_block_run(const struct balloon *b, uint64_t blk);
void bal_set_range(struct balloon *b, uint64_t pfn, uint32_t count);
void bal_clear_range(struct balloon *b, uint64_t pfn, uint32_t count);
struct balloon_elem *bal_elem_get(struct balloon *b);
void bal_elem_put(struct balloon *b, struct balloon_elem *e);
void bal_elem_add_run(struct balloon_elem *e, uint64_t pfn, uint32_t count);
void bal_fill_pfns(struct balloon_elem *e);
int bal_in_flight_overlap(const struct balloon *b, uint64_t pfn, uint32_t count);
int bal_elem_submit(struct balloon *b, struct virtq *vq, struct balloon_elem *e, int state, uint64_t now);
void bal_mem_error(struct balloon *b, const char *what, uint64_t pfn, uint32_t count);
/* 1: a range fresh from the allocator may go into an element (its chunk's
 * books are backed); 0: the allocator misbehaved (logged, inflate stopped;
 * the range is not ours to give back); -1: no memory for the chunk's
 * books (logged): the caller gives the range back. */
int bal_new_range_ok(struct balloon *b, uint64_t pfn, uint32_t count);
/* Lay the books out in b->s.track and clear them (what a reset left too):
 * with track_populate, back the counts and chunk bits first and clear only
 * the chunks backed before. -1 (logged) if that backing failed. */
int bal_books_init(struct balloon *b);

/* ---- policy.c: knobs, target, rate (pure) */

void bal_params_defaults(struct balloon_params *p);
int bal_params_clamp(struct balloon *b, struct balloon_params *q);
/* From num_pages and the knobs to the target; a new target starts afresh. */
void bal_compute_target(struct balloon *b);
/* Forget what the last attempt found dry (blocks, compaction, shrinkers,
 * run orders): a new target, or a retry after retry_ns, tries everything. */
void bal_attempt_reset(struct balloon *b);
uint64_t bal_rate_credit(struct balloon *b, uint64_t now);
void bal_rate_spend(struct balloon *b, uint64_t pages);

/* ---- balloon.c, inflate.c: acks and element traffic */

unsigned bal_reap(struct balloon *b, struct virtq *vq, int state);
void bal_write_actual(struct balloon *b);
void bal_inflate(struct balloon *b, uint64_t now, uint64_t need);
void bal_deflate(struct balloon *b, uint64_t now, uint64_t over);

/* ---- report.c, oom.c, stats.c */

unsigned bal_report_reap(struct balloon *b);
void bal_report_poll(struct balloon *b, uint64_t now);
void bal_oom_log(struct balloon *b);
void bal_stats_poll(struct balloon *b);

#endif /* DRIVERS_BALLOON_INTERNAL_H */
