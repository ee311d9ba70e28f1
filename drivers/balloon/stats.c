/*
 * stats.c - the stats queue: one buffer stays queued; when the host returns it,
 * it is refilled with every figure we can honestly know and queued again.
 */
#include "drivers/balloon/internal.h"

/*
 * Every tag we can honestly know, in the kernel's own units and from the
 * same counters `mem` and `shrinkers` print:
 *   SWAP_IN, SWAP_OUT  0: there is no swap.
 *   MAJFLT, MINFLT     0: the kernel maps all memory up front and takes no
 *                      page faults (any #PF is a panic, kernel/arch/arch.c), so
 *                      whenever a buffer can be sent the count is 0.
 *   MEMFREE            free frames (mem_ops free_pages: the allocator's free
 *                      count; balloon frames and blocks isolated for a report
 *                      in flight excluded, reported blocks included).
 *   MEMTOT             Linux's convention, which host tools build on (libvirt
 *                      shows it as `available`; managers compute "used" as
 *                      MEMTOT - AVAIL): the frames the allocator manages
 *                      minus the ballooned ones (acked: `actual`), unless
 *                      DEFLATE_ON_OOM is negotiated - then the balloon is
 *                      memory the guest can take back, and stays counted.
 *   CACHES             what the shrinkers could free now (reclaim count).
 *   AVAIL              MEMFREE + CACHES: what an allocation could get without
 *                      touching the balloon.
 *   HTLB_PGALLOC/FAIL  0, and true: there is no hugetlb pool, so no huge page
 *                      was ever allocated or failed (Linux sends them too).
 */
unsigned balloon_stats_fill(const struct balloon *b, struct virtio_balloon_stat *out, unsigned max)
{
	uint64_t free = b->s.mops->free_pages(b->s.mctx);
	uint64_t total = b->s.mops->total_pages(b->s.mctx);
	uint64_t caches = b->s.rops ? b->s.rops->count(b->s.rctx) : 0;
	if (!((b->s.features >> VIRTIO_BALLOON_F_DEFLATE_ON_OOM) & 1))
		total -= min_u64(total, balloon_actual(b));
	const struct virtio_balloon_stat all[] = {
		{ VIRTIO_BALLOON_S_SWAP_IN, 0 },
		{ VIRTIO_BALLOON_S_SWAP_OUT, 0 },
		{ VIRTIO_BALLOON_S_MAJFLT, 0 },
		{ VIRTIO_BALLOON_S_MINFLT, 0 },
		{ VIRTIO_BALLOON_S_MEMFREE, free << 12 },
		{ VIRTIO_BALLOON_S_MEMTOT, total << 12 },
		{ VIRTIO_BALLOON_S_AVAIL, (free + caches) << 12 },
		{ VIRTIO_BALLOON_S_CACHES, caches << 12 },
		{ VIRTIO_BALLOON_S_HTLB_PGALLOC, 0 },
		{ VIRTIO_BALLOON_S_HTLB_PGFAIL, 0 },
	};
	unsigned n = 0;
	for (; n < max && n < sizeof all / sizeof all[0]; n++)
		out[n] = all[n];
	return n;
}

const char *balloon_stat_name(unsigned tag)
{
	static const char *const names[] = { "swap-in", "swap-out", "major-faults", "minor-faults",
	                                     "free-memory", "total-memory", "available-memory",
	                                     "disk-caches", "htlb-pgalloc", "htlb-pgfail" };
	return tag < sizeof names / sizeof names[0] ? names[tag] : "?";
}

static void stats_queue(struct balloon *b)
{
	unsigned n = balloon_stats_fill(b, b->stats, BALLOON_STATS_MAX);
	struct virtq_buf buf = { b->stats_pa, (uint32_t)(n * sizeof(struct virtio_balloon_stat)) };
	if (virtq_add(b->s.stats_vq, &buf, 1, 0, b->stats) == 0) {
		b->stats_queued = 1;
		virtq_kick(b->s.stats_vq);
	}
}

void bal_stats_poll(struct balloon *b)
{
	struct virtq *vq = b->s.stats_vq;
	if (!vq || virtq_is_broken(vq))
		return;   /* the virtq logged why; the balloon goes on without stats */
	void *tok;
	while ((tok = virtq_get_used(vq, NULL)) != NULL)
		b->stats_queued = 0;   /* the only token on this queue is b->stats */
	if (!b->stats_queued && !virtq_is_broken(vq))
		stats_queue(b);
}
