/* fake_hostile_sys.c - a guest: memory, device, and the driver stack composed like the kernel; see the header. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_hostile_sys.h"
#include "host_support.h"
#include "kclock.h"
#include "klog.h"

/* ------------------------------------------------------------ transport ops */

static int read_num_pages(void *ctx, uint32_t *np)
{
	struct hsys *x = ctx;
	return vp_config_read(&x->vp, VIRTIO_BALLOON_CFG_NUM_PAGES, np, 4);
}

static void write_actual(void *ctx, uint32_t actual)
{
	struct hsys *x = ctx;
	vp_config_write32(&x->vp, VIRTIO_BALLOON_CFG_ACTUAL, actual);
}

/* The OOM path's wait: time passes and the host gets to run. */
static void relax(void *ctx)
{
	struct hsys *x = ctx;
	host_clock_advance(NS_PER_MS);
	if (!x->host_paused)
		hdev_run(&x->dev);
}

static const struct balloon_transport_ops transport_ops = {
	.read_num_pages = read_num_pages, .write_actual = write_actual, .relax = relax,
};

/* The allocator's OOM notifier, as the kernel registers it. */
static uint64_t oom(void *ctx, uint64_t pages)
{
	struct hsys *x = ctx;
	if (!x->core_up || !x->up)
		return 0;
	return balloon_oom(&x->b, pages);
}

/* ------------------------------------------------------------ the driver */

int hsys_bring_up(struct hsys *x)
{
	struct vp_dev *vp = &x->vp;
	x->up = x->core_up = 0;
	if (vp_begin(vp) != 0)
		return -1;
	x->offered = vp_device_features(vp);
	uint64_t wanted = balloon_features_wanted(x->offered);
	if (!wanted) {
		vp_fail(vp, "device does not offer VERSION_1 (features 0x%llx)", (unsigned long long)x->offered);
		return -1;
	}
	balloon_vq_layout(x->offered, &x->layout);
	if (x->layout.stats >= vp->num_queues)
		wanted &= ~(1ull << VIRTIO_BALLOON_F_STATS_VQ);
	if (vp_set_features(vp, wanted) != 0)
		return -1;
	if (vp_setup_queue(vp, (uint16_t)x->layout.inflate, &x->vq[HSYS_QI], "balloon-inflate", 128) != 0 ||
	    vp_setup_queue(vp, (uint16_t)x->layout.deflate, &x->vq[HSYS_QD], "balloon-deflate", 128) != 0) {
		vp_fail(vp, "inflate/deflate queues missing or unusable");
		return -1;
	}
	x->has_stats = 0;
	if (vp->features & (1ull << VIRTIO_BALLOON_F_STATS_VQ)) {
		int rc = vp_setup_queue(vp, (uint16_t)x->layout.stats, &x->vq[HSYS_QS], "balloon-stats", 8);
		if (rc == -ENOENT)
			klog("virtio-balloon: STATS_VQ offered but queue %d is absent; no statistics", x->layout.stats);
		else if (rc != 0)
			return -1;
		else
			x->has_stats = 1;
	}
	x->has_report = 0;
	if (vp->features & (1ull << VIRTIO_BALLOON_F_REPORTING)) {
		int rc = vp_setup_queue(vp, (uint16_t)x->layout.reporting, &x->vq[HSYS_QR], "balloon-report",
		                        BALLOON_REPORT_DESCS);
		if (rc == -ENOENT)
			klog("virtio-balloon: PAGE_REPORTING offered but queue %d is absent; no reporting",
			     x->layout.reporting);
		else if (rc != 0)
			return -1;
		else
			x->has_report = 1;
	}
	vp_driver_ok(vp);
	x->up = 1;
	struct balloon_setup s = {
		.tops = &transport_ops, .tctx = x,
		.mops = &fake_mem_ops, .mctx = &x->mem,
		.inflate_vq = &x->vq[HSYS_QI], .deflate_vq = &x->vq[HSYS_QD],
		.stats_vq = x->has_stats ? &x->vq[HSYS_QS] : NULL,
		.report_vq = x->has_report ? &x->vq[HSYS_QR] : NULL,
		.features = vp->features,
		.dma = x->dma, .dma_pa = (uintptr_t)x->dma, .dma_len = BALLOON_DMA_BYTES,
		.track = x->track, .track_len = x->track_len, .max_pfn = x->max_pfn,
		.params = x->params,
	};
	x->b_inited = x->core_up = balloon_init(&x->b, &s) == 0;
	return 0;
}

/* Reset the device; only if it confirmed may the balloon's frames go back. */
static void recover(struct hsys *x, int reinit)
{
	x->up = 0;
	if (vp_reset(&x->vp) != 0) {
		x->given_up = 1;     /* vp_reset said why; every frame stays the balloon's */
		return;
	}
	uint64_t back = x->core_up ? balloon_release_all(&x->b) : 0;
	x->core_up = 0;
	if (reinit && x->recoveries < HSYS_MAX_RECOVERIES) {
		x->recoveries++;
		klog("virtio-balloon: device reset, %llu pages back to the allocator; starting it again",
		     (unsigned long long)back);
		hsys_bring_up(x);
	} else {
		x->given_up = 1;
		klog("virtio-balloon: device reset, %llu pages back to the allocator; leaving it off",
		     (unsigned long long)back);
	}
}

void hsys_poll(struct hsys *x)
{
	if (!x->up)
		return;
	enum vp_health h = vp_health(&x->vp);
	if (h != VP_HEALTHY) {
		recover(x, h == VP_NEEDS_RESET || h == VP_LOST);
		return;
	}
	if (!x->core_up)
		return;
	balloon_poll(&x->b, clock_ns());
	if (balloon_state(&x->b) == BALLOON_BROKEN)
		recover(x, 0);
}

void hsys_tick(struct hsys *x)
{
	host_clock_advance(NS_PER_MS);
	if (!x->host_paused)
		hdev_run(&x->dev);
	hsys_poll(x);
	if (!x->app_paused)
		fake_mem_app_step(&x->mem, x->step++, x->app_check_every);
}

/* ------------------------------------------------------------ set-up */

int hsys_init(struct hsys *x, uint64_t base_pfn, uint64_t npages, uint64_t min_free, uint64_t seed)
{
	memset(x, 0, sizeof *x);
	fake_mem_init(&x->mem, base_pfn, npages, seed);
	fake_mem_touch_all(&x->mem);      /* a guest that has been running: every block was written */
	hdev_init(&x->dev, &x->mem, seed * 7 + 1);
	hdev_attach_vp(&x->dev, &x->vp, "virtio-balloon");
	x->max_pfn = base_pfn + npages;
	x->mem.oom = oom;
	x->mem.octx = x;
	x->params.min_free_pages = min_free;
	x->app_check_every = 32;
	x->dma = aligned_alloc(4096, BALLOON_DMA_BYTES);
	x->track_len = (balloon_track_bytes(x->max_pfn) + 4095) & ~(size_t)4095;
	x->track = aligned_alloc(4096, x->track_len);
	if (!x->mem.st || !x->dev.host || !x->dma || !x->track) {
		hsys_destroy(x);
		return -1;
	}
	return 0;
}

void hsys_destroy(struct hsys *x)
{
	hdev_destroy(&x->dev);
	fake_mem_destroy(&x->mem);
	free(x->dma);
	free(x->track);
	x->dma = x->track = NULL;
}

/* ------------------------------------------------------------ checks */

int hsys_check(struct hsys *x, char *why, size_t len)
{
	char b[200];
	if (x->b_inited && balloon_check(&x->b, b, sizeof b) != 0) {
		snprintf(why, len, "balloon_check: %s", b);
		return -1;
	}
	fake_mem_consistent(&x->mem);
	if (x->mem.errors) {
		snprintf(why, len, "memory: %s (%u errors)", x->mem.first_error, x->mem.errors);
		return -1;
	}
	if (x->dev.lied && x->dev.tolerate_lies)
		goto books;      /* see fake_hostile_dev.h: the device's view means nothing now */
	if (x->dev.protocol_errors) {
		snprintf(why, len, "device saw a driver error: %s", x->dev.first_error);
		return -1;
	}
	for (int q = 0; q < HD_NQ; q++)
		if (x->dev.vq[q].driver_errors) {
			snprintf(why, len, "queue %d: the device saw %u ring errors by the driver", q,
			         x->dev.vq[q].driver_errors);
			return -1;
		}
books:
	if (x->dev.pci.order_errors) {
		snprintf(why, len, "%u register order errors", x->dev.pci.order_errors);
		return -1;
	}
	/* isolated blocks are exactly the report in flight */
	uint64_t isolated = x->b_inited && x->b.rep.in_flight ? (uint64_t)x->b.rep.n * PAGES_PER_BLOCK : 0;
	if (x->mem.nisolated != isolated) {
		snprintf(why, len, "%llu frames isolated, the balloon reports %llu",
		         (unsigned long long)x->mem.nisolated, (unsigned long long)isolated);
		return -1;
	}
	/* the allocator's books and the balloon's agree on every frame */
	uint64_t owned = x->b_inited ? balloon_owned(&x->b) : 0;
	if (x->mem.nballoon != owned) {
		snprintf(why, len, "the allocator counts %llu balloon frames, the balloon owns %llu",
		         (unsigned long long)x->mem.nballoon, (unsigned long long)owned);
		return -1;
	}
	return 0;
}
