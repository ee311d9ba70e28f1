/*
 * test_vmem.c - the virtio-mem core against a simulated device that answers
 * as QEMU does (tests/unit/fake_vmem.c, on the real virtqueue code) and an
 * allocator with block classes.
 *
 * Checked after every poll: the core's books (vmem_check), that memory the
 * allocator has is plugged on the device (unplugged memory is never used),
 * that the allocator's hot-plugged blocks are exactly the core's online
 * blocks, that every frame of data survives the moves, and that neither
 * fake saw a request it would refuse as a protocol error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/virtio_mem/vmem.h"
#include "drivers/virtio_mem/internal.h"   /* white-box: the tests read the books */
#include "fake_vmem.h"
#include "host_support.h"

#define REGION_ADDR (4 * GIB)
#define REGION      (1 * GIB)
#define RAM_END     (1 * GIB)
#define BOOT_FREE   (256 * MIB / PAGE_SIZE)
#define QSIZE       8u

struct fx {
	struct fake_vmem_dev dev;
	struct fake_vmem_mem mem;
	struct vmem_mem_ops mops;
	struct virtq vq;
	void *ring, *dma, *track;
	struct vmem v;
	struct vmem_setup s;
	int expect_driver_errors;
};

static struct fx *make_bs(uint64_t bs, uint64_t requested, struct vmem_params p)
{
	struct fx *fx = calloc(1, sizeof *fx);
	assert_non_null(fx);
	fv_dev_init(&fx->dev, REGION_ADDR, REGION, bs, REGION, requested);
	fv_mem_init(&fx->mem, RAM_END, BOOT_FREE, REGION_ADDR);
	fx->mops = fv_mem_ops;
	fx->ring = aligned_alloc(4096, (virtq_mem_size(QSIZE) + 4095) & ~4095ul);
	memset(fx->ring, 0, (virtq_mem_size(QSIZE) + 4095) & ~4095ul);
	assert_int_equal(virtq_init(&fx->vq, "vmem", 0, QSIZE, fx->ring, (uintptr_t)fx->ring, fake_vq_notify,
	                            &fx->dev.fq), 0);
	fv_dev_attach(&fx->dev, &fx->vq);
	fx->dma = aligned_alloc(64, 64);
	fx->track = calloc(1, 4096);
	fx->s = (struct vmem_setup){
		.tops = &fv_transport_ops, .tctx = &fx->dev, .mops = &fx->mops, .mctx = &fx->mem, .vq = &fx->vq,
		.features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE),
		.dma = fx->dma, .dma_pa = (uintptr_t)fx->dma, .dma_len = 64,
		.track = fx->track, .track_len = 4096, .max_phys = 1ull << 46, .params = p,
	};
	host_clock_set(NS_PER_S);
	host_klog_reset();
	return fx;
}

static struct fx *make(uint64_t requested, struct vmem_params p)
{
	struct fx *fx = make_bs(2 * MIB, requested, p);
	assert_int_equal(vmem_init(&fx->v, &fx->s), 0);
	return fx;
}

static void destroy(struct fx *fx)
{
	free(fx->ring);
	free(fx->dma);
	free(fx->track);
	free(fx);
}

static void check_all(struct fx *fx)
{
	char why[200];
	if (vmem_check(&fx->v, why, sizeof why) != 0)
		fail_msg("vmem_check: %s", why);
	assert_int_equal(fx->mem.errors, 0);
	assert_int_equal(fx->dev.fq.driver_errors, 0);
	if (!fx->expect_driver_errors)
		assert_int_equal(fx->dev.driver_errors, 0);
	assert_true(fv_mem_data_ok(&fx->mem));
	if (!fx->v.up)
		return;
	/* the allocator has exactly the online blocks, all of them plugged */
	unsigned sub = fx->v.sub;
	for (uint64_t i = 0; i < fx->v.nblocks; i++) {
		int online = vmem_block_online(&fx->v, i);
		for (unsigned j = 0; j < sub; j++) {
			const struct fv_block *b = &fx->mem.blk[i * sub + j];
			if (b->present != online)
				fail_msg("block %llu: allocator %d, books online %d", (unsigned long long)i, b->present, online);
		}
		if (online && !fx->dev.plugged[i])
			fail_msg("block %llu online but unplugged on the device", (unsigned long long)i);
		if (vmem_block_plugged(&fx->v, i) != fx->dev.plugged[i] && !fx->v.in_flight && !fx->v.broken &&
		    !fx->v.need_unplug_all)
			fail_msg("block %llu: books plugged %d, device %d", (unsigned long long)i,
			         vmem_block_plugged(&fx->v, i), fx->dev.plugged[i]);
	}
}

/* Poll every millisecond for `ms`. */
static void run(struct fx *fx, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		vmem_poll(&fx->v, clock_ns());
		check_all(fx);
		host_clock_advance(NS_PER_MS);
	}
}

static uint64_t plugged_mib(struct fx *fx) { return fx->v.n_plugged * fx->v.bs / MIB; }

/* ------------------------------------------------------------ plug */

static void test_plug_lowest_first_ranged(void **state)
{
	struct fx *fx = make(64 * MIB, (struct vmem_params){ 0 });
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 64);
	assert_int_equal(fx->dev.cfg.plugged_size, 64 * MIB);
	assert_int_equal(fx->dev.nlog, 1);   /* one ranged request */
	assert_int_equal(fx->dev.log[0].type, VIRTIO_MEM_REQ_PLUG);
	assert_int_equal(fx->dev.log[0].addr, REGION_ADDR);
	assert_int_equal(fx->dev.log[0].nb, 32);
	assert_int_equal(fv_mem_present(&fx->mem), 32);
	assert_int_equal(fv_mem_free(&fx->mem), BOOT_FREE + 32 * PAGES_PER_BLOCK);
	assert_int_equal(vmem_state(&fx->v), VMEM_AT_TARGET);
	/* grow: the next run starts after the plugged ones */
	fv_dev_request(&fx->dev, 100 * MIB);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 100);
	assert_int_equal(fx->dev.log[1].addr, REGION_ADDR + 64 * MIB);
	assert_int_equal(fx->dev.log[1].nb, 18);
	destroy(fx);
}

static void test_plug_split_at_max_request(void **state)
{
	struct fx *fx = make(0, (struct vmem_params){ 0 });
	fv_dev_request(&fx->dev, REGION);   /* 1 GiB: exactly one maximal request */
	run(fx, 3);
	assert_int_equal(plugged_mib(fx), 1024);
	assert_int_equal(fx->dev.reqs[VIRTIO_MEM_REQ_PLUG], 1);
	destroy(fx);
}

static void test_start_unplug_all(void **state)
{
	struct fx *fx = make_bs(2 * MIB, 32 * MIB, (struct vmem_params){ 0 });
	/* memory plugged before this kernel (a reboot) */
	for (unsigned i = 100; i < 110; i++)
		fx->dev.plugged[i] = 1;
	fx->dev.cfg.plugged_size = 10 * 2 * MIB;
	assert_int_equal(vmem_init(&fx->v, &fx->s), 0);
	assert_true(host_klog_contains("unplugging all first"));
	assert_int_equal(vmem_state(&fx->v), VMEM_STARTING);
	run(fx, 5);
	assert_int_equal(fx->dev.log[0].type, VIRTIO_MEM_REQ_UNPLUG_ALL);
	assert_int_equal(fx->dev.log[1].type, VIRTIO_MEM_REQ_PLUG);
	assert_int_equal(plugged_mib(fx), 32);
	assert_false(fx->dev.plugged[100]);
	destroy(fx);
}

/* ------------------------------------------------------------ unplug */

/* Plug n MiB, then give blocks classes. */
static struct fx *plugged_fx(uint64_t mib, struct vmem_params p)
{
	struct fx *fx = make(mib * MIB, p);
	run(fx, 3);
	assert_int_equal(plugged_mib(fx), mib);
	return fx;
}

#define BLK(i) (REGION_ADDR + (uint64_t)(i) * 2 * MIB)

static void test_unplug_order(void **state)
{
	struct fx *fx = plugged_fx(32, (struct vmem_params){ 0 });   /* 16 blocks */
	/* 0-3 unmovable, 4-7 movable with 100..400 used, 8-11 free not resident,
	 * 12-13 free resident, 14 ballooned, 15 isolated */
	for (int i = 0; i < 4; i++)
		fv_mem_set(&fx->mem, BLK(i), VMEM_BK_UNMOVABLE, 10, 1);
	for (int i = 4; i < 8; i++)
		fv_mem_set(&fx->mem, BLK(i), VMEM_BK_MOVABLE, PAGES_PER_BLOCK - 100 * (8 - i), 1);
	for (int i = 12; i < 14; i++)
		fv_mem_set(&fx->mem, BLK(i), VMEM_BK_FREE, PAGES_PER_BLOCK, 1);
	fv_mem_set(&fx->mem, BLK(14), VMEM_BK_BALLOON, 0, 0);
	fv_mem_set(&fx->mem, BLK(15), VMEM_BK_ISOLATED, PAGES_PER_BLOCK, 1);

	fv_dev_request(&fx->dev, 32 * MIB - 9 * 2 * MIB);   /* give back 9 blocks */
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 32 - 18);
	/* taken out in order: free resident (12, 13); the movable blocks the
	 * others can absorb (412+312+212+112 free frames: two of them), fewest
	 * used first: 7 (100), 6 (200); free not resident (8..11); then the
	 * other movable ones by fewest used: 5 (300) */
	static const int want[] = { 12, 13, 7, 6, 8, 9, 10, 11, 5 };
	assert_int_equal(fx->mem.nremove, 9);
	for (int i = 0; i < 9; i++)
		assert_int_equal(fx->mem.remove_order[i], BLK(want[i]) >> PAGE_SHIFT);
	/* grouped: 5-13 is one contiguous run */
	unsigned unplugs = 0;
	for (unsigned i = 0; i < fx->dev.nlog; i++)
		if (fx->dev.log[i].type == VIRTIO_MEM_REQ_UNPLUG) {
			unplugs++;
			assert_int_equal(fx->dev.log[i].addr, BLK(5));
			assert_int_equal(fx->dev.log[i].nb, 9);
		}
	assert_int_equal(unplugs, 1);
	assert_true(fx->mem.moved == 600);
	/* never unmovable, ballooned or isolated */
	for (int i = 0; i < 4; i++)
		assert_true(fx->dev.plugged[i]);
	assert_true(fx->dev.plugged[14] && fx->dev.plugged[15] && fx->dev.plugged[4]);

	/* asking for more than can be freed: a shortfall line naming why */
	host_klog_reset();
	fv_dev_request(&fx->dev, 0);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 12);   /* 0-3, 14, 15 stay */
	assert_int_equal(vmem_state(&fx->v), VMEM_SHORT);
	assert_true(host_klog_contains("cannot unplug 12 MiB more"));
	assert_true(host_klog_contains("unmovable"));
	unsigned lines = host_klog_count();
	run(fx, 3000);   /* quiet retries */
	assert_int_equal(host_klog_count(), lines);
	struct vmem_status st;
	vmem_get_status(&fx->v, &st);
	assert_int_equal(st.shortfall, 12 * MIB);
	assert_int_equal(st.short_reason, VSHORT_PINNED);
	destroy(fx);
}

static void test_unplug_ranges_grouped(void **state)
{
	struct fx *fx = plugged_fx(40, (struct vmem_params){ 0 });   /* 20 blocks, all free not resident */
	/* pin 5 and 12: the rest are three contiguous runs */
	fv_mem_set(&fx->mem, BLK(5), VMEM_BK_UNMOVABLE, 0, 1);
	fv_mem_set(&fx->mem, BLK(12), VMEM_BK_UNMOVABLE, 0, 1);
	fv_dev_request(&fx->dev, 4 * MIB);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 4);
	unsigned unplugs = 0;
	for (unsigned i = 0; i < fx->dev.nlog; i++)
		if (fx->dev.log[i].type == VIRTIO_MEM_REQ_UNPLUG)
			unplugs++;
	assert_int_equal(unplugs, 3);   /* 0-4, 6-11, 13-19 */
	assert_true(fx->dev.plugged[5] && fx->dev.plugged[12]);
	destroy(fx);
}

static void test_min_free(void **state)
{
	/* boot RAM has 8 MiB free; keep 16 MiB free */
	struct fx *fx = plugged_fx(64, (struct vmem_params){ .min_free_pages = 16 * MIB / PAGE_SIZE });
	fx->mem.boot_free = 8 * MIB / PAGE_SIZE;
	fv_dev_request(&fx->dev, 0);
	run(fx, 10);
	/* free = 8 + plugged; may unplug while free - 2 MiB >= 16 MiB */
	assert_int_equal(plugged_mib(fx), 8);
	assert_true(fv_mem_free(&fx->mem) >= 16 * MIB / PAGE_SIZE);
	assert_true(host_klog_contains("min_free"));
	assert_int_equal(vmem_state(&fx->v), VMEM_SHORT);
	/* lowering min_free lets it finish */
	struct vmem_params p = *vmem_get_params(&fx->v);
	p.min_free_pages = 0;
	vmem_set_params(&fx->v, &p);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 0);
	destroy(fx);
}

static void test_rate_limit(void **state)
{
	struct fx *fx = plugged_fx(400, (struct vmem_params){ .rate_blocks_per_s = 20 });   /* 200 blocks */
	fv_dev_request(&fx->dev, 0);
	run(fx, 1000);
	uint64_t gone = 200 - fx->v.n_plugged;
	assert_true(gone >= 18 && gone <= 23);   /* 1 to start + 20/s */
	assert_int_equal(vmem_state(&fx->v), VMEM_UNPLUGGING);
	assert_true(vmem_next_poll(&fx->v, clock_ns()) > clock_ns() + NS_PER_MS);   /* waits for credit */
	run(fx, 2000);
	gone = 200 - fx->v.n_plugged;
	assert_true(gone >= 58 && gone <= 63);
	destroy(fx);
}

static void test_no_room_to_move(void **state)
{
	struct fx *fx = plugged_fx(8, (struct vmem_params){ 0 });   /* 4 blocks, all nearly full movable */
	fx->mem.boot_free = 0;
	for (int i = 0; i < 4; i++)
		fv_mem_set(&fx->mem, BLK(i), VMEM_BK_MOVABLE, 2, 1);
	fv_dev_request(&fx->dev, 0);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 8);
	assert_true(host_klog_contains("no room to move"));
	struct vmem_status st;
	vmem_get_status(&fx->v, &st);
	assert_int_equal(st.short_reason, VSHORT_NO_ROOM);
	assert_int_equal(st.shortfall, 8 * MIB);
	/* room appears: it unplugs, moving every frame of data */
	fx->mem.boot_free = 4096;
	run(fx, 1100);
	assert_int_equal(plugged_mib(fx), 0);
	assert_int_equal(fx->mem.moved, 4 * (PAGES_PER_BLOCK - 2));
	destroy(fx);
}

/* ------------------------------------------------------------ block sizes */

static void test_block_size_1m_refused(void **state)
{
	struct fx *fx = make_bs(1 * MIB, 0, (struct vmem_params){ 0 });
	assert_int_equal(vmem_init(&fx->v, &fx->s), -1);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("smaller than the 2 MiB"));
	assert_int_equal(vmem_state(&fx->v), VMEM_OFF);
	vmem_poll(&fx->v, clock_ns());   /* harmless */
	assert_int_equal(fx->dev.nlog, 0);
	destroy(fx);
}

static void test_block_size_4m(void **state)
{
	struct fx *fx = make_bs(4 * MIB, 16 * MIB, (struct vmem_params){ 0 });
	assert_int_equal(vmem_init(&fx->v, &fx->s), 0);
	run(fx, 3);
	assert_int_equal(fx->v.n_plugged, 4);
	assert_int_equal(fv_mem_present(&fx->mem), 8);   /* two 2 MiB blocks each */
	/* device block 0: one half unmovable -> never chosen */
	fv_mem_set(&fx->mem, REGION_ADDR + 2 * MIB, VMEM_BK_UNMOVABLE, 0, 1);
	fv_dev_request(&fx->dev, 4 * MIB);
	run(fx, 3);
	assert_int_equal(fx->v.n_plugged, 1);
	assert_true(fx->dev.plugged[0]);
	destroy(fx);
}

/* ------------------------------------------------------------ hostile config */

static void refused(struct vmem_config c, const char *needle)
{
	struct fx *fx = make_bs(2 * MIB, 0, (struct vmem_params){ 0 });
	fx->dev.cfg = c;
	assert_int_equal(vmem_init(&fx->v, &fx->s), -1);
	assert_int_equal(host_klog_count(), 1);
	if (!host_klog_contains(needle))
		fail_msg("expected \"%s\", got \"%s\"", needle, host_klog_last());
	destroy(fx);
}

static void test_bad_config(void **state)
{
	struct vmem_config ok = { .block_size = 2 * MIB, .addr = REGION_ADDR, .region_size = REGION,
	                          .usable_region_size = REGION };
	struct vmem_config c = ok;
	c.block_size = 3 * MIB;
	refused(c, "not a power of two");
	c = ok;
	c.block_size = 0;
	refused(c, "not a power of two");
	c = ok;
	c.addr = REGION_ADDR + 1 * MIB;
	refused(c, "not aligned");
	c = ok;
	c.region_size = REGION + 4096;
	refused(c, "region size");
	c = ok;
	c.region_size = 0;
	refused(c, "region size");
	c = ok;
	c.addr = (1ull << 46) - REGION + 2 * MIB;
	refused(c, "beyond");
	c = ok;
	c.addr = UINT64_MAX - 2 * MIB + 1;
	refused(c, "beyond");   /* addr + size wraps */
	c = ok;
	c.addr = 0;
	refused(c, "overlaps memory");
}

static void test_bad_sizes_clamped(void **state)
{
	struct fx *fx = make_bs(2 * MIB, 0, (struct vmem_params){ 0 });
	fx->dev.cfg.usable_region_size = 2 * REGION;   /* beyond the region */
	fx->dev.cfg.requested_size = 3 * MIB;          /* not a multiple */
	assert_int_equal(vmem_init(&fx->v, &fx->s), 0);
	assert_true(host_klog_contains("larger than the 1024 MiB region"));
	assert_true(host_klog_contains("not a multiple"));
	run(fx, 3);
	assert_int_equal(plugged_mib(fx), 2);
	/* requested beyond usable */
	host_klog_reset();
	fx->dev.cfg.usable_region_size = 64 * MIB;
	fx->dev.cfg.requested_size = 512 * MIB;
	run(fx, 50);
	assert_int_equal(host_klog_count(), 1);   /* one line, not one per poll */
	assert_true(host_klog_contains("beyond the usable 64 MiB"));
	assert_int_equal(plugged_mib(fx), 64);
	destroy(fx);
}

static void test_fixed_config_change_stops(void **state)
{
	struct fx *fx = plugged_fx(8, (struct vmem_params){ 0 });
	host_klog_reset();
	fx->dev.cfg.addr += 1 * GIB;
	fv_dev_request(&fx->dev, 0);
	run(fx, 10);
	assert_int_equal(vmem_state(&fx->v), VMEM_BROKEN);
	assert_int_equal(host_klog_count(), 1);
	assert_int_equal(plugged_mib(fx), 8);   /* nothing given back behind its back */
	destroy(fx);
}

static void test_plugged_size_inconsistent(void **state)
{
	struct fx *fx = plugged_fx(8, (struct vmem_params){ 0 });
	fx->dev.lie_plugged = 100 * MIB;
	run(fx, 100);
	assert_true(host_klog_contains("device says 100 MiB plugged"));
	assert_int_equal(host_klog_count(), 1);
	assert_int_equal(plugged_mib(fx), 8);
	destroy(fx);
}

static void test_config_never_settles(void **state)
{
	struct fx *fx = plugged_fx(8, (struct vmem_params){ 0 });
	fx->dev.fail_reads = 1;
	host_klog_reset();
	run(fx, 4000);
	assert_int_equal(vmem_state(&fx->v), VMEM_AT_TARGET);   /* old config kept for a while */
	run(fx, 2000);
	assert_int_equal(vmem_state(&fx->v), VMEM_BROKEN);
	assert_int_equal(host_klog_count(), 1);
	destroy(fx);
}

/* ------------------------------------------------------------ hostile answers */

static void test_nack_holds_until_new_request(void **state)
{
	struct fx *fx = make(0, (struct vmem_params){ 0 });
	fv_dev_request(&fx->dev, 32 * MIB);
	fx->dev.force_type = VIRTIO_MEM_RESP_NACK;
	fx->dev.force_count = 1;
	run(fx, 100);
	assert_int_equal(plugged_mib(fx), 0);
	assert_int_equal(fx->dev.reqs[VIRTIO_MEM_REQ_PLUG], 1);   /* not retried */
	assert_int_equal(vmem_state(&fx->v), VMEM_HELD);
	assert_true(host_klog_contains("NACK"));
	fv_dev_request(&fx->dev, 16 * MIB);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 16);
	destroy(fx);
}

static void test_error_on_plug_and_unplug(void **state)
{
	struct fx *fx = plugged_fx(16, (struct vmem_params){ 0 });
	fx->dev.force_type = VIRTIO_MEM_RESP_ERROR;
	fx->dev.force_count = 1;
	fv_dev_request(&fx->dev, 32 * MIB);
	run(fx, 100);
	assert_int_equal(plugged_mib(fx), 16);
	assert_true(host_klog_contains("gave ERROR to PLUG"));
	assert_int_equal(vmem_state(&fx->v), VMEM_HELD);
	/* unplug refused: blocks back online, nothing lost */
	host_klog_reset();
	fx->dev.force_type = VIRTIO_MEM_RESP_ERROR;
	fx->dev.force_count = 1;
	fv_dev_request(&fx->dev, 0);
	run(fx, 100);
	assert_true(host_klog_contains("gave ERROR to UNPLUG"));
	assert_int_equal(plugged_mib(fx), 16);
	assert_int_equal(fx->v.n_online, 8);
	assert_int_equal(fv_mem_present(&fx->mem), 8);
	assert_int_equal(host_klog_count(), 1);
	fv_dev_request(&fx->dev, 2 * MIB);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 2);
	destroy(fx);
}

static void test_busy_retried_then_bounded(void **state)
{
	struct fx *fx = make(0, (struct vmem_params){ 0 });
	fx->dev.busy_next = 3;
	fv_dev_request(&fx->dev, 8 * MIB);
	run(fx, 200);   /* 10 + 20 + 40 ms of back-off */
	assert_int_equal(plugged_mib(fx), 8);
	assert_int_equal(fx->dev.reqs[VIRTIO_MEM_REQ_PLUG], 4);
	/* BUSY forever on unplug: bounded tries, blocks back online, quiet retries */
	host_klog_reset();
	fx->dev.busy_forever = 1;
	fv_dev_request(&fx->dev, 0);
	run(fx, 5000);
	assert_int_equal(plugged_mib(fx), 8);
	assert_int_equal(fx->v.n_online + (fx->v.batch_n - fx->v.batch_pos), 4);   /* online, or in a round */
	unsigned per_s = fx->dev.reqs[VIRTIO_MEM_REQ_UNPLUG];
	assert_true(per_s <= 5 * 8 + 8);   /* 8 tries per round, a round per ~2.3 s at most */
	assert_true(host_klog_count() <= 6);
	assert_true(host_klog_contains("busy for 8 answers to UNPLUG"));
	fx->dev.busy_forever = 0;
	run(fx, 3000);
	assert_int_equal(plugged_mib(fx), 0);
	destroy(fx);
}

static void test_busy_forever_at_start(void **state)
{
	struct fx *fx = make_bs(2 * MIB, 8 * MIB, (struct vmem_params){ 0 });
	fx->dev.plugged[3] = 1;
	fx->dev.cfg.plugged_size = 2 * MIB;
	fx->dev.busy_forever = 1;
	assert_int_equal(vmem_init(&fx->v, &fx->s), 0);
	run(fx, 5000);
	assert_int_equal(vmem_state(&fx->v), VMEM_STARTING);
	assert_int_equal(fx->dev.reqs[VIRTIO_MEM_REQ_PLUG], 0);   /* nothing before UNPLUG_ALL */
	assert_true(fx->dev.reqs[VIRTIO_MEM_REQ_UNPLUG_ALL] <= 48);
	fx->dev.busy_forever = 0;
	run(fx, 2000);
	assert_int_equal(plugged_mib(fx), 8);
	destroy(fx);
}

static void test_unknown_type_resolved_by_state(void **state)
{
	struct fx *fx = make(0, (struct vmem_params){ 0 });
	fv_dev_request(&fx->dev, 8 * MIB);
	/* the device plugs, but answers type 77: STATE says plugged -> online */
	fx->dev.force_type = -1;
	run(fx, 1);
	fv_dev_request(&fx->dev, 16 * MIB);
	fx->dev.force_type = 77;   /* answers only; the blocks are not plugged */
	fx->dev.force_count = 1;
	host_klog_reset();
	run(fx, 5);
	assert_true(host_klog_contains("answer type 77 to PLUG"));
	assert_int_equal(fx->dev.reqs[VIRTIO_MEM_REQ_STATE], 1);
	/* STATE said unplugged: treated as refused, held until a new request */
	assert_int_equal(plugged_mib(fx), 8);
	assert_int_equal(vmem_state(&fx->v), VMEM_HELD);
	fv_dev_request(&fx->dev, 12 * MIB);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 12);
	destroy(fx);
}

static void test_short_len_on_unplug(void **state)
{
	struct fx *fx = plugged_fx(16, (struct vmem_params){ 0 });
	fx->dev.force_len = 1;   /* the device unplugs, but reports 1 byte */
	fx->dev.force_len_count = 1;
	fv_dev_request(&fx->dev, 8 * MIB);
	host_klog_reset();
	run(fx, 5);
	assert_true(host_klog_contains("an answer of 1 bytes"));
	assert_int_equal(plugged_mib(fx), 8);   /* STATE: unplugged -> applied */
	assert_int_equal(fv_mem_present(&fx->mem), 4);
	destroy(fx);
}

static void test_state_unanswerable_stops(void **state)
{
	struct fx *fx = plugged_fx(16, (struct vmem_params){ 0 });
	fx->dev.force_type = 9;   /* every answer unknown, STATE too */
	fv_dev_request(&fx->dev, 8 * MIB);
	host_klog_reset();
	run(fx, 20);
	assert_int_equal(vmem_state(&fx->v), VMEM_BROKEN);
	assert_int_equal(host_klog_count(), 2);   /* the unknown answer, then the stop */
	/* the blocks of the UNPLUG stay offline (the device may have them), the rest online */
	assert_int_equal(fx->v.n_plugged, 8);
	assert_int_equal(fx->v.n_online, 4);
	destroy(fx);
}

static void test_hot_add_refused_goes_back(void **state)
{
	struct fx *fx = make(0, (struct vmem_params){ 0 });
	fx->mem.fail_add = VMEM_MEM_RANGE;
	fv_dev_request(&fx->dev, 16 * MIB);
	run(fx, 10);
	assert_true(host_klog_contains("refused 16 MiB of plugged memory"));
	assert_int_equal(fx->v.n_plugged, 0);   /* given back to the host */
	assert_int_equal(fx->dev.cfg.plugged_size, 0);
	assert_int_equal(fx->dev.reqs[VIRTIO_MEM_REQ_PLUG], 1);
	assert_int_equal(vmem_state(&fx->v), VMEM_HELD);
	fx->mem.fail_add = 0;
	fv_dev_request(&fx->dev, 8 * MIB);
	run(fx, 5);
	assert_int_equal(plugged_mib(fx), 8);
	destroy(fx);
}

static void test_stall(void **state)
{
	struct fx *fx = make(0, (struct vmem_params){ 0 });
	fx->dev.fq.mode = FAKE_DROP;
	fv_dev_request(&fx->dev, 8 * MIB);
	host_klog_reset();
	run(fx, 6000);
	assert_int_equal(vmem_state(&fx->v), VMEM_STALLED);
	assert_int_equal(host_klog_count(), 1);
	assert_int_equal(fx->dev.fq.popped, 1);   /* nothing new sent */
	assert_int_equal(plugged_mib(fx), 0);
	destroy(fx);
}

static void test_status_text(void **state)
{
	struct fx *fx = plugged_fx(16, (struct vmem_params){ 0 });
	char buf[1024];
	vmem_format_status(&fx->v, buf, sizeof buf);
	assert_non_null(strstr(buf, "plugged 16 MiB"));
	assert_non_null(strstr(buf, "8 free not resident"));
	assert_non_null(strstr(buf, "PLUG 16 MiB"));
	destroy(fx);
}

int main(void)
{
	host_klog_echo = getenv("KLOG") != NULL;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plug_lowest_first_ranged),
		cmocka_unit_test(test_plug_split_at_max_request),
		cmocka_unit_test(test_start_unplug_all),
		cmocka_unit_test(test_unplug_order),
		cmocka_unit_test(test_unplug_ranges_grouped),
		cmocka_unit_test(test_min_free),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_no_room_to_move),
		cmocka_unit_test(test_block_size_1m_refused),
		cmocka_unit_test(test_block_size_4m),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_bad_sizes_clamped),
		cmocka_unit_test(test_fixed_config_change_stops),
		cmocka_unit_test(test_plugged_size_inconsistent),
		cmocka_unit_test(test_config_never_settles),
		cmocka_unit_test(test_nack_holds_until_new_request),
		cmocka_unit_test(test_error_on_plug_and_unplug),
		cmocka_unit_test(test_busy_retried_then_bounded),
		cmocka_unit_test(test_busy_forever_at_start),
		cmocka_unit_test(test_unknown_type_resolved_by_state),
		cmocka_unit_test(test_short_len_on_unplug),
		cmocka_unit_test(test_state_unanswerable_stops),
		cmocka_unit_test(test_hot_add_refused_goes_back),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_status_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
