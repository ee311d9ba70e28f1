/*
 * kernel.c - the balloon core's memory seam (struct balloon_mem_ops, contract
 * in balloon.h) and reclaim seam bound to the kernel, through mm/'s public
 * calls only (mm/mm.h, mm/shrinker.h):
 *   take_blocks -> mm_take_free_blocks: resident free blocks, then compaction,
 *                  then blocks the host does not back (below)
 *   compact     -> mm_compact_blocks (bounded work)
 *   take_run    -> mm_take_run, orders up to BALLOON_MAX_RUN_ORDER
 *   give_back   -> mm_give_back (frames come back free, not resident)
 *   free_pages / total_pages -> mm_free_pages / mm_total_pages
 *   report_*    -> mm_report_pending / _isolate / _done
 *   reclaim     -> the shrinker registry (what the caches can free)
 * and the allocator's OOM notifier for deflate on OOM (and reported blocks
 * handed back early).
 * ctx is unused (NULL): there is one allocator.
 */
#include "drivers/balloon/kernel.h"
#include "drivers/balloon/virtio_balloon.h"
#include "mm/mm.h"
#include "mm/shrinker.h"
#include "kernel/lib/wake.h"
#include "kclock.h"

/* Frames at or above this are never handed to the balloon (the protocol
 * names 32-bit PFNs); the allocator knows nothing of that limit, so what it
 * gives above it goes straight back. */
static uint64_t limit_pfn = UINT64_MAX;

void balloon_kernel_limit_pfn(uint64_t pfn) { limit_pfn = pfn; }

/* Keep the blocks below the protocol's limit, give the others back. */
static unsigned below_limit(uint64_t *pfns, unsigned got)
{
	unsigned n = 0;
	for (unsigned i = 0; i < got; i++) {
		if (pfns[i] + PAGES_PER_BLOCK <= limit_pfn)
			pfns[n++] = pfns[i];
		else
			mm_give_back(pfns[i], BLOCK_ORDER);
	}
	return n;
}

/*
 * Release what the host backs first. A block the guest never wrote (or that
 * the host already discarded) costs the host nothing: ballooning it gives
 * the host nothing back. So: resident free blocks; when they run short,
 * compaction, which turns the free frames of partly used movable blocks
 * (resident: they were written) into more resident free blocks; blocks the
 * host does not back only when neither helps. Compaction is bounded
 * (COMPACT_ROUNDS calls of MM_LEND_COMPACT_BUDGET frames per take); once it
 * frees nothing it is not tried again for COMPACT_REST_NS, and only then are
 * non-resident blocks taken. A take that compaction could not fill yet comes
 * back short, and the next poll goes on.
 */
#define COMPACT_REST_NS (1000 * NS_PER_MS)
#define COMPACT_ROUNDS  8   /* bounded compaction calls per take (each MM_LEND_COMPACT_BUDGET frames) */
static uint64_t compact_rest_until;
static uint64_t blocks_compacted;

static unsigned op_take_blocks(void *ctx, uint64_t *pfns, unsigned max)
{
	unsigned got = below_limit(pfns, mm_take_free_blocks(pfns, max, 1));
	for (unsigned round = 0; got < max && round < COMPACT_ROUNDS && clock_ns() >= compact_rest_until;
	     round++) {
		unsigned freed = mm_compact_blocks(max - got);
		blocks_compacted += freed;
		got += below_limit(pfns + got, mm_take_free_blocks(pfns + got, max - got, 1));
		if (!freed)
			compact_rest_until = clock_ns() + COMPACT_REST_NS;
	}
	if (got < max && clock_ns() < compact_rest_until)   /* compaction no longer helps */
		got += below_limit(pfns + got, mm_take_free_blocks(pfns + got, max - got, 0));
	return got;
}

uint64_t balloon_kernel_blocks_compacted(void) { return blocks_compacted; }

static unsigned op_compact(void *ctx, unsigned want) { return mm_compact_blocks(want); }

static int op_take_run(void *ctx, unsigned order, uint64_t *pfn)
{
	if (order > BALLOON_MAX_RUN_ORDER || mm_take_run(order, pfn) != MM_OK)
		return -1;
	if (*pfn + (1ull << order) > limit_pfn) {
		mm_give_back(*pfn, order);
		return -1;
	}
	return 0;
}

static void op_give_back(void *ctx, uint64_t pfn, unsigned order) { mm_give_back(pfn, order); }
static uint64_t op_free_pages(void *ctx) { return mm_free_pages(); }
static uint64_t op_total_pages(void *ctx) { return mm_total_pages(); }
static uint64_t op_report_pending(void *ctx) { return mm_report_pending(); }

static unsigned op_report_isolate(void *ctx, uint64_t *pfns, unsigned max)
{
	return mm_report_isolate(pfns, max);
}

static void op_report_done(void *ctx, const uint64_t *pfns, unsigned n, int reported)
{
	mm_report_done(pfns, n, reported);
}

const struct balloon_mem_ops balloon_kernel_mem_ops = {
	.take_blocks = op_take_blocks,
	.compact = op_compact,
	.take_run = op_take_run,
	.give_back = op_give_back,
	.free_pages = op_free_pages,
	.total_pages = op_total_pages,
	.report_pending = op_report_pending,
	.report_isolate = op_report_isolate,
	.report_done = op_report_done,
};

static uint64_t rc_count(void *ctx) { return shrinker_count_all(); }
static uint64_t rc_reclaim(void *ctx, uint64_t pages) { return shrinker_reclaim(pages); }

const struct balloon_reclaim_ops balloon_kernel_reclaim_ops = { rc_count, rc_reclaim };

uint64_t balloon_kernel_max_pfn(void) { return mm_max_pfn(); }

/* The allocator asks when it runs dry (virtio_balloon_oom). Harmless while
 * the device is down: registered once, it does nothing until the core runs
 * again. */
static uint64_t on_oom(void *ctx, unsigned order, enum block_kind kind)
{
	return virtio_balloon_oom(1ull << order);
}

int balloon_kernel_register_oom(void) { return mm_add_oom_notifier(on_oom, NULL) == MM_OK ? 0 : -1; }

/* A block became free: free page reporting may have work, so the balloon's
 * poller runs in the next round instead of at the next interrupt (Linux's
 * page_reporting_notify_free does the same). */
static void on_free_block(void) { wake_at(0); }

void balloon_kernel_watch_free_blocks(void) { mm_on_free_block(on_free_block); }
