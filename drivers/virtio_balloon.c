/*
 * virtio_balloon.c - bind the balloon core to the virtio-pci transport and
 * the kernel; see virtio_balloon.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kernel/cmdline.h"
#include "kernel/console.h"
#include "kernel/initcall.h"
#include "kernel/kmem.h"
#include "klog.h"
#include "virtio_balloon.h"
#include "virtio_pci_hw.h"

static struct virtio_balloon_dev vb;
static int found;

static const struct balloon_mem_ops *mem_ops;
static void *mem_ctx;
static uint64_t mem_max_pfn;

static uint64_t opt_min_free = 16ull << 20;
static uint64_t opt_max;
CMDLINE_SIZE(balloon_min_free, "balloon.min_free", &opt_min_free, 0, 1ull << 40,
             "memory the balloon always leaves free");
CMDLINE_SIZE(balloon_max, "balloon.max", &opt_max, 0, 1ull << 40,
             "largest balloon (0 = only min_free limits it)");

void virtio_balloon_bind_memory(const struct balloon_mem_ops *ops, void *ctx, uint64_t max_pfn)
{
	mem_ops = ops;
	mem_ctx = ctx;
	mem_max_pfn = max_pfn;
}

struct virtio_balloon_dev *virtio_balloon_get(void) { return found ? &vb : NULL; }

/* ---- transport ops for the core */

static int read_num_pages(void *ctx, uint32_t *np)
{
	struct virtio_balloon_dev *d = ctx;
	return vp_config_read(&d->vp, VIRTIO_BALLOON_CFG_NUM_PAGES, np, 4);
}

static void write_actual(void *ctx, uint32_t actual)
{
	struct virtio_balloon_dev *d = ctx;
	vp_config_write32(&d->vp, VIRTIO_BALLOON_CFG_ACTUAL, actual);
}

static const struct balloon_transport_ops transport_ops = { read_num_pages, write_actual };

/* ---- bring-up */

static int setup_queues(struct virtio_balloon_dev *d)
{
	const struct balloon_vq_layout *l = &d->layout;
	if (vp_setup_queue(&d->vp, (uint16_t)l->inflate, &d->inflate_vq, "balloon-inflate", 128) != 0 ||
	    vp_setup_queue(&d->vp, (uint16_t)l->deflate, &d->deflate_vq, "balloon-deflate", 128) != 0) {
		vp_fail(&d->vp, "inflate/deflate queues missing or unusable");
		return -1;
	}
	if (d->vp.features & (1ull << VIRTIO_BALLOON_F_STATS_VQ)) {
		int rc = vp_setup_queue(&d->vp, (uint16_t)l->stats, &d->stats_vq, "balloon-stats", 8);
		if (rc == -ENOENT)
			klog("virtio-balloon: STATS_VQ offered but queue %d is absent; no statistics", l->stats);
		else if (rc != 0)
			return -1;
		else
			d->has_stats = 1;
	}
	return 0;
}

/* drivers/balloon_early_mem.c: bring-up only, see there */
extern int balloon_earlymem;
const struct balloon_mem_ops *balloon_early_mem(void **ctx, uint64_t *max_pfn);

static void start_core(struct virtio_balloon_dev *d)
{
	if (!mem_ops && balloon_earlymem)
		mem_ops = balloon_early_mem(&mem_ctx, &mem_max_pfn);
	if (!mem_ops) {
		klog("virtio-balloon: no memory allocator bound; device ready, balloon idle");
		return;
	}
	uint64_t dma_pa, track_pa;
	size_t track_pages = (balloon_track_bytes(mem_max_pfn) + PAGE_SIZE - 1) / PAGE_SIZE;
	void *dma = dma_alloc_pages(BALLOON_DMA_BYTES / PAGE_SIZE, &dma_pa);
	void *track = dma_alloc_pages(track_pages, &track_pa);
	if (!dma || !track) {
		klog("virtio-balloon: no memory for %u + %zu pages of buffers; balloon idle",
		     (unsigned)(BALLOON_DMA_BYTES / PAGE_SIZE), track_pages);
		return;
	}
	struct balloon_setup s = {
		.tops = &transport_ops, .tctx = d,
		.mops = mem_ops, .mctx = mem_ctx,
		.inflate_vq = &d->inflate_vq, .deflate_vq = &d->deflate_vq,
		.stats_vq = d->has_stats ? &d->stats_vq : NULL,
		.features = d->vp.features,
		.dma = dma, .dma_pa = dma_pa, .dma_len = BALLOON_DMA_BYTES,
		.track = track, .track_len = track_pages * PAGE_SIZE, .max_pfn = mem_max_pfn,
		.params = { .min_free_pages = opt_min_free / PAGE_SIZE, .max_pages = opt_max / PAGE_SIZE },
	};
	if (balloon_init(&d->b, &s) == 0)
		d->core_up = 1;
}

static int virtio_balloon_init(void)
{
	struct virtio_balloon_dev *d = &vb;
	const struct pci_dev *pd = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_BALLOON, 0);
	if (!pd)
		pd = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_TRANS_BALLOON, 0);
	if (!pd) {
		klog("virtio-balloon: no device");
		return 0;
	}
	found = 1;
	d->pd = pd;
	if (vp_hw_attach(&d->vp, pd, "virtio-balloon") != 0 || vp_begin(&d->vp) != 0)
		return -1;
	d->offered = vp_device_features(&d->vp);
	uint64_t wanted = balloon_features_wanted(d->offered);
	if (!wanted) {
		vp_fail(&d->vp, "device does not offer VERSION_1 (features 0x%llx)",
		        (unsigned long long)d->offered);
		return -1;
	}
	balloon_vq_layout(d->offered, &d->layout);
	if (d->vp.num_queues < d->layout.count)
		klog("virtio-balloon: device has %u queues, its features imply %u; using what exists",
		     d->vp.num_queues, d->layout.count);
	if (d->layout.stats >= d->vp.num_queues)
		wanted &= ~(1ull << VIRTIO_BALLOON_F_STATS_VQ);
	if (vp_set_features(&d->vp, wanted) != 0 || setup_queues(d) != 0)
		return -1;
	vp_driver_ok(&d->vp);
	d->transport_up = 1;
	const struct pci_bar *bar = &pd->bar[d->vp.r[VP_COMMON].bar];
	klog("virtio-balloon: %02x:%02x.%u %s, BAR%u %#llx, features 0x%llx of 0x%llx, "
	     "queues inflate %u/%u deflate %u/%u stats %s",
	     pd->bus, pd->dev, pd->fn, pd->device >= VIRTIO_PCI_MODERN_BASE ? "modern" : "transitional",
	     d->vp.r[VP_COMMON].bar, (unsigned long long)bar->addr, (unsigned long long)d->vp.features,
	     (unsigned long long)d->offered, d->layout.inflate, d->inflate_vq.num, d->layout.deflate,
	     d->deflate_vq.num, d->has_stats ? "yes" : "no");
	start_core(d);
	return 0;
}
INITCALL(INIT_DRIVER, virtio_balloon_init);

static void virtio_balloon_poll(uint64_t now)
{
	struct virtio_balloon_dev *d = &vb;
	if (!d->transport_up)
		return;
	if (vp_status(&d->vp) & VIRTIO_CONFIG_S_NEEDS_RESET) {
		klog("virtio-balloon: device needs a reset; stopped (holding %llu pages)",
		     (unsigned long long)(d->core_up ? balloon_owned(&d->b) : 0));
		d->needs_reset = 1;
		d->transport_up = 0;
		return;
	}
	if (d->core_up)
		balloon_poll(&d->b, now);
}
POLLER(virtio_balloon_poll);

static int cmd_balloon(int argc, char **argv)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	if (!d) {
		printf("balloon: no device\n");
		return 1;
	}
	if (argc > 1 && !strcmp(argv[1], "check")) {
		char why[160];
		if (!d->core_up) {
			printf("balloon: core not running\n");
			return 1;
		}
		if (balloon_check(&d->b, why, sizeof why) != 0) {
			printf("balloon: check FAILED: %s\n", why);
			return 1;
		}
		printf("balloon: books consistent\n");
		return 0;
	}
	printf("virtio-balloon: %s, status 0x%x, features 0x%llx\n",
	       d->transport_up ? "up" : d->needs_reset ? "needs reset" : "down", vp_status(&d->vp),
	       (unsigned long long)d->vp.features);
	if (!d->core_up) {
		printf("balloon: idle (no allocator bound)\n");
		return 0;
	}
	char line[320];
	balloon_format_status(&d->b, line, sizeof line);
	printf("%s\n", line);
	return 0;
}
CONSOLE_CMD("balloon", "balloon status; `balloon check` verifies its books", cmd_balloon);
