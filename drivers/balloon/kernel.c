/*
 * kernel.c - the balloon core's memory seam (struct balloon_mem_ops, contract
 * in balloon.h) and reclaim seam bound to the kernel, through mm/'s public
 * calls only (mm/mm.h, mm/shrinker.h):
 *   take_blocks -> mm_take_free_blocks (resident free blocks first)
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

/* Frames at or above this are never handed to the balloon (the protocol
 * names 32-bit PFNs); the allocator knows nothing of that limit, so what it
 * gives above it goes straight back. */
static uint64_t limit_pfn = UINT64_MAX;

void balloon_kernel_limit_pfn(uint64_t pfn) { limit_pfn = pfn; }

static unsigned op_take_blocks(void *ctx, uint64_t *pfns, unsigned max)
{
	unsigned got = mm_take_free_blocks(pfns, max), n = 0;
	for (unsigned i = 0; i < got; i++) {
		if (pfns[i] + PAGES_PER_BLOCK <= limit_pfn)
			pfns[n++] = pfns[i];
		else
			mm_give_back(pfns[i], BLOCK_ORDER);
	}
	return n;
}

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

/* The allocator asks when it runs dry. Harmless while the device is down:
 * registered once, it does nothing until the core runs again. */
static uint64_t on_oom(void *ctx, unsigned order, enum block_kind kind)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	if (!d || !d->core_up || !d->transport_up)
		return 0;
	return balloon_oom(d->b, 1ull << order);
}

int balloon_kernel_register_oom(void) { return mm_add_oom_notifier(on_oom, NULL) == MM_OK ? 0 : -1; }

/* A block became free: free page reporting may have work, so the balloon's
 * poller runs in the next round instead of at the next interrupt (Linux's
 * page_reporting_notify_free does the same). */
static void on_free_block(void) { wake_at(0); }

void balloon_kernel_watch_free_blocks(void) { mm_on_free_block(on_free_block); }
