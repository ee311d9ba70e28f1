/*
 * balloon_ops.c - the balloon driver's memory seam (struct balloon_mem_ops,
 * drivers/balloon.h) bound to the kernel's frame allocator:
 *   take_blocks -> fa_balloon_take_blocks (resident free blocks first)
 *   compact     -> mm_compact, bounded to MM_BALLOON_COMPACT_BUDGET frames
 *   take_run    -> fa_balloon_take_runs, one run
 *   give_back   -> fa_balloon_return (frames come back free, not resident)
 *   free_pages / total_pages -> the allocator's counters
 *   report_*    -> fa_report_isolate / fa_report_done (free page reporting)
 * The kernel glue passes &mm_balloon_mem_ops with ctx NULL, and
 * mm_max_pfn() as max_pfn.
 */
#include "drivers/balloon.h"
#include "klog.h"
#include "mm/mm.h"
#include "mm/mm_kernel.h"

static unsigned op_take_blocks(void *ctx, uint64_t *pfns, unsigned max)
{
	return mmk.ready ? (unsigned)fa_balloon_take_blocks(&mmk.fa, max, pfns) : 0;
}

static unsigned op_compact(void *ctx, unsigned want)
{
	struct compact_result res;
	if (!mmk.ready || mm_compact(fa_free_blocks(&mmk.fa) + want, MM_BALLOON_COMPACT_BUDGET, &res) != MM_OK)
		return 0;
	return (unsigned)res.blocks_freed;
}

static int op_take_run(void *ctx, unsigned order, uint64_t *pfn)
{
	if (!mmk.ready || order > BALLOON_MAX_RUN_ORDER)
		return -1;
	return fa_balloon_take_runs(&mmk.fa, order, 1, pfn) == 1 ? 0 : -1;
}

static void op_give_back(void *ctx, uint64_t pfn, unsigned order)
{
	if (mmk.ready)
		fa_balloon_return(&mmk.fa, pfn, order);   /* logs a bad range itself */
}

/* Free page reporting: wholly free, resident, unreported blocks. */
static uint64_t op_report_pending(void *ctx)
{
	return mmk.ready ? mmk.fa.lists[FA_L_FREE_RES].count : 0;
}

static unsigned op_report_isolate(void *ctx, uint64_t *pfns, unsigned max)
{
	return mmk.ready ? (unsigned)fa_report_isolate(&mmk.fa, max, pfns) : 0;
}

static void op_report_done(void *ctx, const uint64_t *pfns, unsigned n, int reported)
{
	if (mmk.ready)
		fa_report_done(&mmk.fa, pfns, n, reported);   /* logs a bad block itself */
}

static uint64_t op_free_pages(void *ctx) { return mmk.ready ? mmk.fa.nr[FS_FREE] : 0; }
static uint64_t op_total_pages(void *ctx) { return mmk.ready ? mmk.fa.total : 0; }

const struct balloon_mem_ops mm_balloon_mem_ops = {
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

/* Bind before the driver starts (INIT_DRIVER): the balloon then takes and
 * returns real frames from the first target on. */
#include "drivers/virtio_balloon.h"
#include "kernel/initcall.h"

static int mm_balloon_bind(void)
{
	if (!mmk.ready)
		return -1;
	virtio_balloon_bind_memory(&mm_balloon_mem_ops, NULL, mm_max_pfn());
	return 0;
}
INITCALL(INIT_ARCH, mm_balloon_bind);
