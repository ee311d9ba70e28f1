/*
 * balloon.h - the virtio balloon's core: policy and bookkeeping, independent
 * of PCI and of the page allocator, so it runs in host tests unchanged. Its
 * files: books.c (bitmaps, elements, self-check), policy.c (features, knobs,
 * target, rate bucket: pure), balloon.c (init, poll, acks), inflate.c
 * (inflate, deflate), report.c (free page reporting), oom.c (deflate on OOM),
 * stats.c (stats queue), show.c (status text); private state in internal.h.
 * The wire format is proto.h; the device shell virtio_balloon.c.
 *
 * It talks to three things, all given at balloon_init:
 *   - the device's queues: struct virtq (drivers/virtio/virtq.h) for inflate,
 *     deflate and (optionally) stats and free page reporting, already set
 *     up by the transport;
 *   - a transport ops struct: read num_pages (generation-stable), write
 *     actual, relax while the OOM path waits;
 *   - a memory ops struct: take/give frames from/to the allocator, isolate
 *     free blocks for reporting (contract below, bound to mm/ by the kernel
 *     glue), and optionally reclaim ops (the shrinkers).
 *
 * What it does (driven by balloon_poll(now), which never blocks):
 *   Target: the host's num_pages through the policy below; a clamp is
 *   logged once per new value, rate-limited.
 *   Inflate: whole free 2 MiB blocks first (compacting once per round when
 *   there are too few); each block is one element = a chain of two 1 KiB
 *   device-readable descriptors with its 512 le32 PFNs, so a host backed by
 *   2 MiB pages can drop the whole page. Only when blocks cannot meet the
 *   target, smaller naturally aligned runs (order <= 8) fill elements of up
 *   to 512 PFNs. Up to BALLOON_SLOTS elements are in flight at once.
 *   Deflate: small runs first (they release no whole host page anyway), then
 *   whole blocks; ranges go back exactly as they were taken, so when the
 *   target falls inside a block the whole block is deflated and the rest
 *   re-inflated as small runs. PFNs go on the deflate queue and the frames
 *   return to the allocator only after the host acked (tell-first even
 *   without MUST_TELL_HOST).
 *   actual (4 KiB pages) = acked inflated pages not yet deflate-acked; written
 *   once per poll when it changed, i.e. as batches are acked.
 *   Stats: one buffer stays queued; when the host returns it, it is refilled
 *   (every tag we can honestly know, sources in stats_fill()) and queued again.
 *
 * Policy (struct balloon_params, changeable at run time: balloon_set_params):
 *   Target = the host's num_pages, or max(initial, num_pages) while the host
 *   has not set a target yet (its first change of num_pages after boot takes
 *   over; like VirtualBox's default balloon, `initial` inflates without any
 *   host command). Then clamped to max_pages and to total - min_free, and,
 *   after a deflate on OOM, to what the balloon held then (below).
 *   Inflation is rate limited (rate_pages_per_s: a token bucket, whole
 *   blocks, starting with one block of credit and keeping at most a second
 *   of it while inflating; deflation never is, giving memory back to the
 *   guest is never slowed down).
 *   When the target needs more than free - min_free, the reclaim ops (the
 *   kernel's shrinkers, lowest priority first) are asked one batch per poll
 *   before the balloon reports a shortfall; compaction still only turns
 *   free memory into whole blocks.
 *
 * Deflate on OOM (DEFLATE_ON_OOM negotiated; balloon_oom() from the
 *   allocator's OOM notifier, synchronously inside an allocation): deflate
 *   at least oom_pages (default 8 MiB, so a burst of allocations does not pay
 *   one round trip each), tell the host, wait for its ack for at most
 *   oom_wait_ns (default 200 ms, spinning with tops->relax), then give the
 *   frames to the allocator and write actual. Rule against re-inflating into
 *   the same shortage (Linux's): the target is then capped at what the
 *   balloon still holds until the host *changes* num_pages (writing the same
 *   value again is invisible to a polling driver; a new balloon.initial
 *   counts as a change from the guest's side). If the host did not ack in
 *   time, the call gives up (returns what came back) and later OOM calls do
 *   not wait again until those acks arrive. Without the feature nothing is
 *   deflated: the allocation fails cleanly. Nothing is logged inside the OOM
 *   path (the allocator may be inside newlib's malloc): the next poll logs.
 *
 * Free page reporting (REPORTING negotiated, report_vq set, report mem ops
 *   present): report_delay_ns after the allocator first shows unreported
 *   resident free blocks, isolate up to BALLOON_REPORT_BLOCKS of them (never
 *   below min_free), merge neighbours into larger runs, and send one element
 *   of at most min(queue size, BALLOON_REPORT_DESCS) device-writable
 *   descriptors; on the ack they go back to the allocator as reported (not
 *   resident, contents undefined, usable at once) and the next round starts
 *   at once while blocks remain; then back to waiting. One element in flight
 *   at a time; blocks that did not fit in the descriptors go back unreported.
 *   The OOM path also takes an acked report back early (bounded wait, with
 *   or without DEFLATE_ON_OOM). A host that never acks keeps those blocks
 *   (at most 128 MiB) out of use: reusing them could lose data it discards.
 *   PAGE_POISON is declined (QEMU skips discarding when poison_val != 0).
 *
 * Ownership: a frame taken from memory ops belongs to the balloon until it
 * is given back. Frames in an element the device has not acked are never
 * given back (the device may still discard them); if the device breaks, they
 * stay owned until balloon_release_all after a device reset.
 *
 * Failure behaviour: every wait is bounded. A host that does not ack within
 * ack_timeout_ns gets one status line; the balloon then holds what is in
 * flight, sends nothing new, keeps actual stable, and resumes if acks come.
 * A target that cannot be met ends in one status line per target and a
 * stable actual; a new attempt is made silently every retry_ns. A broken
 * queue (see virtq.h), or a config space whose generation does not settle
 * for longer than ack_timeout_ns, stops the balloon with one line; frames
 * stay accounted for (nothing lost, nothing handed out twice).
 */
#ifndef DRIVERS_BALLOON_H
#define DRIVERS_BALLOON_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/balloon/proto.h"
#include "drivers/virtio/virtq.h"
#include "klog.h"
#include "units.h"

/* ---- sizes (pages and blocks: units.h) */
#define BALLOON_PFNS_PER_DESC   256u   /* 1 KiB of le32: what every host accepts in one descriptor */
#define BALLOON_MAX_RUN_ORDER   8u     /* small runs: at most half a block */
#define BALLOON_SLOTS           64u    /* elements in flight (both queues) */
#define BALLOON_ELEM_RUNS       32u    /* runs one small-run element may carry */
#define BALLOON_STATS_MAX       10u
#define BALLOON_REPORT_BLOCKS   64u    /* blocks isolated per report round (128 MiB) */
#define BALLOON_REPORT_DESCS    32u    /* descriptors per report element (QEMU's queue size) */
#define BALLOON_REPORT_RUN_BLOCKS 512u /* largest run in one descriptor (1 GiB: fits le32 len) */
#define BALLOON_DEFAULT_OOM_PAGES (4u * PAGES_PER_BLOCK)   /* 8 MiB */
#define BALLOON_SLOT_BYTES      (PAGES_PER_BLOCK * 4u)
/* DMA memory balloon_init needs: the PFN arrays, then the stats buffer. */
#define BALLOON_DMA_BYTES       (BALLOON_SLOTS * BALLOON_SLOT_BYTES + 4096u)

/* ---- queue numbering and features */

/* Queue indexes on the device; -1 = absent. QEMU, Linux and Firecracker number
 * queues consecutively from the *offered* features, skipping absent ones
 * (STATS + REPORTING without HINT: reporting is queue 3). `count` is how many
 * queues the device must have (cross-check against num_queues). */
struct balloon_vq_layout {
	int inflate, deflate, stats, free_page_hint, reporting;
	unsigned count;
};
void balloon_vq_layout(uint64_t offered, struct balloon_vq_layout *out);

/* The spec instead fixes the indexes (0 inflate, 1 deflate, 2 stats, 3 free
 * page hint, 4 reporting), and the virtio maintainers call consecutive
 * numbering out of spec; the two differ for reporting when hinting is not
 * offered (QEMU: 3, spec: 4). Do not guess: a queue that exists has a
 * nonzero size. Given the sizes the device shows at both candidate indexes,
 * the reporting queue's index (-1: none exists) and, in *convention, which
 * numbering the device follows. Both existing: the spec's, if the device has
 * more queues than its offered features imply (it then numbers by the spec's
 * slots), else the consecutive one. */
#define BALLOON_SPEC_VQ_REPORTING 4
int balloon_pick_reporting_vq(const struct balloon_vq_layout *l, unsigned num_queues,
                              uint16_t size_consecutive, uint16_t size_spec,
                              const char **convention);

/* The features this driver accepts out of `offered`: VERSION_1 (required: 0
 * is returned if it is missing), ACCESS_PLATFORM (the spec's SHOULD; see
 * proto.h), STATS_VQ, MUST_TELL_HOST (we always tell first, so accepting it
 * costs nothing), DEFLATE_ON_OOM, REPORTING.
 * Declined: FREE_PAGE_HINT (migration hinting, not implemented) and
 * PAGE_POISON (we do not poison freed pages; accepting it with a zero
 * poison_val would only restate that). */
uint64_t balloon_features_wanted(uint64_t offered);

/* ---- what the core needs from outside */

struct balloon_transport_ops {
	/* Read num_pages from device config between two equal config_generation
	 * values, retrying a bounded number of times. 0 and *num_pages on success;
	 * -1 if the generation never settled (the old target is kept). */
	int (*read_num_pages)(void *ctx, uint32_t *num_pages);
	/* Store `actual` (4 KiB pages) into device config with one 32-bit write. */
	void (*write_actual)(void *ctx, uint32_t actual);
	/* Optional: called in the OOM path's bounded wait for the host's ack
	 * (a pause instruction in the kernel; host tests move their clock). NULL:
	 * the OOM path does not wait, it only takes acks already there. */
	void (*relax)(void *ctx);
};

/*
 * Memory ops: the allocator seam. "PFN" = physical address >> 12. Every call
 * must return quickly (the balloon runs in the kernel's work loop).
 * Ownership: frames returned by take_blocks/take_run belong to the balloon
 * until give_back: the allocator must not hand them out, move them (the
 * compactor skips them), or count them in free_pages. The balloon never
 * touches their contents.
 */
struct balloon_mem_ops {
	/* Take up to `max` wholly free, 2 MiB aligned blocks (512 frames each).
	 * Store the first PFN of each (a multiple of 512) in pfns[0..n) and return
	 * n, 0 <= n <= max. Does not compact. Prefer blocks that may be resident
	 * on the host (ballooning a never-touched block releases nothing). */
	unsigned (*take_blocks)(void *ctx, uint64_t *pfns, unsigned max);

	/* Optional (NULL = no compactor). Try to produce `want` more wholly free
	 * blocks by moving movable frames; bounded work (a few ms), may stop early.
	 * Returns the number of wholly free blocks it produced; 0 means no
	 * progress, and the balloon does not ask again before retry_ns passed.
	 * Never moves balloon-owned frames. */
	unsigned (*compact)(void *ctx, unsigned want);

	/* Take one free, naturally aligned run of 2^order frames, order in
	 * [0, BALLOON_MAX_RUN_ORDER]. 0 and *pfn on success; -1 if there is no
	 * such run (nothing changed). */
	int (*take_run)(void *ctx, unsigned order, uint64_t *pfn);

	/* Give back one range exactly as it was taken: `pfn` and `order` of a
	 * block from take_blocks (order 9) or a run from take_run. Every frame in
	 * it is balloon-owned until this call; afterwards it is free and usable at
	 * once. Ranges are never split or merged by the balloon. Contents are
	 * undefined (the host may have discarded them: zero under QEMU), so the
	 * allocator should count them as not resident. Cannot fail. */
	void (*give_back)(void *ctx, uint64_t pfn, unsigned order);

	/* Frames free right now, balloon-owned frames not included. */
	uint64_t (*free_pages)(void *ctx);
	/* Frames the allocator manages (free + allocated + balloon-owned). */
	uint64_t (*total_pages)(void *ctx);

	/* Free page reporting, optional (all three or none):
	 * report_pending: wholly free, resident, unreported blocks right now (cheap).
	 * report_isolate: take up to `max` of them out of circulation (nobody may
	 *   allocate them while the host is told); first PFNs into pfns[], returns n.
	 * report_done: put isolated blocks back; reported = 1: the host was told,
	 *   so they are free, not resident, contents undefined; 0: as they were. */
	uint64_t (*report_pending)(void *ctx);
	unsigned (*report_isolate)(void *ctx, uint64_t *pfns, unsigned max);
	void (*report_done)(void *ctx, const uint64_t *pfns, unsigned n, int reported);
};

/* Memory the kernel could free on request (the shrinker registry,
 * mm/shrinker.h), optional. */
struct balloon_reclaim_ops {
	/* Pages the caches could free now (0 if none). */
	uint64_t (*count)(void *ctx);
	/* One gradual step: free up to `pages` (lowest priority first); returns
	 * pages freed to the allocator, 0 when nothing more can be freed. */
	uint64_t (*reclaim)(void *ctx, uint64_t pages);
};

struct balloon_params {
	uint64_t min_free_pages;  /* never take memory that would leave fewer free */
	uint64_t max_pages;       /* largest balloon; 0 = no limit beyond min_free */
	uint64_t ack_timeout_ns;  /* in-flight element older than this: host stalled (0 = 5 s) */
	uint64_t retry_ns;        /* after running short, try again after this (0 = 1 s) */
	unsigned batch;           /* elements submitted per poll at most (0 = 16) */
	uint64_t initial_pages;   /* balloon at boot, until the host sets a target (0 = none) */
	uint64_t rate_pages_per_s;/* inflation limit (0 = unlimited) */
	uint64_t report_delay_ns; /* free page reporting: wait after frees (0 = at once) */
	uint64_t oom_pages;       /* deflate at least this per OOM call (0 = 8 MiB) */
	uint64_t oom_wait_ns;     /* OOM path: longest wait for the host's ack (0 = 200 ms) */
};

/* How PFNs are laid out in the inflate and deflate queues' elements. Every
 * descriptor carries at most BALLOON_PFNS_PER_DESC (256) PFNs: Firecracker
 * and Cloud Hypervisor skip larger ones.
 *   CHAIN (default): a whole 2 MiB block is one element, a chain of two
 *     descriptors - what QEMU needs to release a whole huge page (it frees a
 *     host page only if one element carries all of its PFNs).
 *   SINGLE: every element is one descriptor of at most 256 PFNs (1 MiB), and
 *     inflation takes runs of at most 256 frames - for hosts that read only
 *     the head descriptor of a chain (Firecracker); a host backed by 2 MiB
 *     pages then cannot release whole pages. Chosen at bring-up
 *     (balloon.single_desc), not at run time: ranges held go back the way
 *     they went out. */
enum balloon_layout { BALLOON_LAYOUT_CHAIN, BALLOON_LAYOUT_SINGLE };

struct balloon_setup {
	const struct balloon_transport_ops *tops;
	void *tctx;
	const struct balloon_mem_ops *mops;
	void *mctx;
	struct virtq *inflate_vq, *deflate_vq;
	struct virtq *stats_vq;           /* NULL if STATS_VQ was not negotiated */
	struct virtq *report_vq;          /* NULL if REPORTING was not negotiated */
	const struct balloon_reclaim_ops *rops;  /* NULL: nothing to reclaim */
	void *rctx;
	uint64_t features;                /* negotiated */
	/* DMA memory (device-readable PFN arrays + stats), >= BALLOON_DMA_BYTES. */
	void *dma;
	uint64_t dma_pa;
	size_t dma_len;
	/* Private tracking memory (any kernel memory, backed or only reserved:
	 * track_populate), >= balloon_track_bytes(). */
	void *track;
	size_t track_len;
	int track_zeroed;                 /* 1: known all zero (fresh memory), not cleared again */
	/* NULL: all of track is backed. Else track is only reserved: the core
	 * backs its per-block counts at start and the bitmaps of a 128 MiB
	 * chunk (BALLOON_CHUNK_BLOCKS) when it first takes a frame there, by
	 * calling this (0 ok: the pages of [p, p + bytes) read as zero); what
	 * is never ballooned costs no memory - 128 bytes per 2 MiB otherwise,
	 * 128 MiB on a 1 TiB guest. */
	int (*track_populate)(void *ctx, void *p, size_t bytes);
	void *track_ctx;
	uint64_t max_pfn;                 /* PFNs the allocator can return are < this */
	enum balloon_layout layout;       /* element layout (above) */
	struct balloon_params params;
};

/* Bytes of tracking memory for frames [0, max_pfn): a bitmap of ballooned
 * frames, a bitmap of range starts (64 bytes each per 2 MiB), a count per
 * 2 MiB block, and a bit per chunk saying whether its bitmaps are backed
 * (see track_populate). */
#define BALLOON_CHUNK_BLOCKS 64       /* one page of each bitmap */
size_t balloon_track_bytes(uint64_t max_pfn);

/* ---- the core (its state is private: internal.h) */

struct balloon;

/* Why the balloon is not where the host wants it (console, tests). */
enum balloon_limit_reason {
	BLIM_NONE,
	BLIM_MAX,            /* target clamped by max_pages */
	BLIM_MIN_FREE,       /* target clamped by total - min_free */
	BLIM_OOM,            /* held since a deflate on OOM, until a new host target */
	BLIM_HELD_BY_HOST,   /* a knob asks for less, but the host still asks for it and
	                        DEFLATE_ON_OOM is not negotiated: no deflate (policy.c) */
};
enum balloon_short_reason {
	BSHORT_NONE,
	BSHORT_MIN_FREE,     /* free memory at min_free and the shrinkers gave nothing */
	BSHORT_NO_RUNS,      /* free memory exists but the allocator gave no run */
	BSHORT_ALLOC_ERROR,  /* the allocator returned a bad range: inflate stopped */
	BSHORT_BOOKS,        /* no memory to back the books of a chunk (lazy books) */
};

enum balloon_state {
	BALLOON_AT_TARGET,   /* actual == target, nothing in flight */
	BALLOON_INFLATING,
	BALLOON_DEFLATING,
	BALLOON_SHORT,       /* target cannot be met now; retrying quietly */
	BALLOON_STALLED,     /* host stopped acking; holding what is in flight */
	BALLOON_BROKEN,      /* a queue broke; stopped for good */
};

/* A snapshot of what the core knows, for the console, the kernel glue and
 * tests (all in 4 KiB pages unless named otherwise). */
struct balloon_status {
	enum balloon_state state;
	uint64_t target;           /* what the policy wants now */
	uint64_t actual;           /* as the device should see it */
	uint64_t owned;            /* every frame the balloon holds, acked or in flight */
	uint64_t inflating, deflating;
	uint32_t host_num_pages;   /* last num_pages read from the device */
	int      host_set;         /* the host changed num_pages since boot */
	int      actual_written;   /* `actual` was written to the device at least once */
	uint32_t actual_device;    /* the last value written */
	int      reporting;        /* free page reporting is running */
	uint64_t report_isolated;  /* pages isolated for a report in flight (not free to allocate) */
	uint64_t reclaimed;        /* pages the shrinkers freed for the balloon */
	uint64_t reaction_ns;      /* last new target: read -> its first element on a queue */
	enum balloon_limit_reason limit;
	enum balloon_short_reason shortfall;
};

/* Allocate a core's state, zeroed (the kernel: once, reused across
 * resets). NULL when out of memory. */
struct balloon *balloon_alloc(void);

/* Check the setup, carve the memory, queue the stats buffer. 0, or -1 with
 * one log line if the setup is unusable. `b` must be zeroed (balloon_alloc)
 * the first time; after balloon_release_all (a device reset) it keeps what
 * the host decided: whether it set its own target, and an OOM hold. */
int balloon_init(struct balloon *b, const struct balloon_setup *s);

/* Do one bounded step: reap acks, write actual, read the target, submit
 * more work. Call on every device interrupt (configuration change, used
 * buffers) and at the time balloon_next_poll() gives. */
void balloon_poll(struct balloon *b, uint64_t now_ns);

/* When the core must be polled again without an interrupt (clock_ns time),
 * or UINT64_MAX if only the device can give it work: now + BALLOON_BUSY_NS
 * while it has work to submit (inflate, deflate, a report round, the OOM
 * path's lines), otherwise its earliest timer (retry after a shortfall,
 * report delay, ack timeouts, a deferred status line). A driver without
 * interrupts polls every BALLOON_BUSY_NS instead. */
uint64_t balloon_next_poll(const struct balloon *b, uint64_t now_ns);
#define BALLOON_BUSY_NS (1000000ull)   /* 1 ms: the pace of the old tick */

/* Change the policy knobs at run time (min_free, max, initial, rate,
 * report delay, OOM sizes; timeouts and batch too). Absurd values are
 * clamped with one line each (min_free above RAM, max above RAM, initial
 * above what can be given); the target is recomputed at the next poll.
 * Setting initial_pages counts as a new target: it lifts an OOM hold.
 * Returns the number of values clamped. */
int balloon_set_params(struct balloon *b, const struct balloon_params *p);
/* The knobs in force (defaults filled in, clamps applied). */
const struct balloon_params *balloon_get_params(const struct balloon *b);

/* The allocator's OOM notifier (see the header comment): returns frames
 * given back to the allocator during this call (deflated or, with free page
 * reporting, reported blocks whose ack had arrived). Never logs. */
uint64_t balloon_oom(struct balloon *b, uint64_t pages_wanted);

/* Before a reset the driver chose to do on a healthy device: deflate
 * everything, telling the host first (as Linux does before it lets a device
 * go), waiting for its acks at most wait_ns (spinning with tops->relax; no
 * relax: only what is acked already). Returns the frames still held (0 when
 * the host acked everything). Never used when the device is broken: a reset
 * device forgets its balloon (actual reads 0 again), so balloon_release_all
 * may then hand the frames back without a deflate - there is nobody to tell. */
uint64_t balloon_drain(struct balloon *b, uint64_t wait_ns);

/* After the device was reset (it no longer uses our buffers): give every
 * balloon-owned frame back to the allocator, acked or in flight, and zero
 * the books. The balloon stays stopped. Returns the frames given back. */
uint64_t balloon_release_all(struct balloon *b);

enum balloon_state balloon_state(const struct balloon *b);
const char *balloon_state_name(enum balloon_state st);
void balloon_get_status(const struct balloon *b, struct balloon_status *st);
/* actual as the device should see it: acked inflated, not yet deflate-acked. */
uint64_t balloon_actual(const struct balloon *b);
/* Every frame the balloon owns (acked or in flight either way). */
uint64_t balloon_owned(const struct balloon *b);
/* Frames in elements the host has not acked yet (inflate + deflate). */
uint64_t balloon_in_flight(const struct balloon *b);
/* The target the policy computes now (pages), as balloon_poll uses it. */
uint64_t balloon_target(const struct balloon *b);

/* One status line (no newline) for the console and tests. */
void balloon_format_status(const struct balloon *b, char *buf, size_t len);
/* The console's detail lines (newline-separated, no trailing newline):
 * knobs, in flight, totals, OOM, reporting, limits and shortfall. */
void balloon_format_details(const struct balloon *b, char *buf, size_t len);
const char *balloon_limit_name(enum balloon_limit_reason r);
const char *balloon_short_name(enum balloon_short_reason r);

/* The statistics the driver would send now (tag, value in bytes or a count),
 * the same as on the stats queue; returns how many. */
unsigned balloon_stats_fill(const struct balloon *b, struct virtio_balloon_stat *out, unsigned max);
const char *balloon_stat_name(unsigned tag);

/* Check every internal invariant (bitmap vs counters vs elements, no overlap
 * between in-flight runs and ballooned frames, actual written). 0 if all
 * hold, else -1 with the first violation in `why`. For tests and self-tests. */
int balloon_check(const struct balloon *b, char *why, size_t len);

/* 1 if the frame is in the balloon (acked), for tests. */
int balloon_has_pfn(const struct balloon *b, uint64_t pfn);

#endif /* DRIVERS_BALLOON_H */
