/*
 * virtio_balloon.h - the virtio balloon device in the kernel: finds the PCI
 * function, runs the transport's init order, sets up the queues the offered
 * features imply, and drives the core (balloon.c) from a POLLER every work
 * loop wake-up (about 1 ms), which also makes config changes take effect
 * within milliseconds. Console: `balloon` (status), `balloon check`.
 *
 * Memory seam: the balloon core needs an allocator (struct balloon_mem_ops,
 * contract in balloon.h). Memory setup binds one before INIT_DRIVER:
 *     virtio_balloon_bind_memory(&ops, ctx, max_pfn);
 * Without a binding the device is still brought up (DRIVER_OK, queues), and
 * the balloon stays idle with one log line saying so.
 *
 * Command line: balloon.min_free=SIZE (memory kept free, default 16M),
 * balloon.max=SIZE (largest balloon, default 0 = no limit).
 */
#ifndef DRIVERS_VIRTIO_BALLOON_H
#define DRIVERS_VIRTIO_BALLOON_H

#include <stdint.h>
#include "balloon.h"
#include "pci.h"
#include "virtio_pci.h"
#include "virtq.h"

void virtio_balloon_bind_memory(const struct balloon_mem_ops *ops, void *ctx, uint64_t max_pfn);

struct virtio_balloon_dev {
	const struct pci_dev *pd;
	struct vp_dev vp;
	uint64_t offered;
	struct balloon_vq_layout layout;
	struct virtq inflate_vq, deflate_vq, stats_vq;
	int has_stats;
	int transport_up;          /* DRIVER_OK set, queues live */
	int core_up;               /* balloon core running */
	int needs_reset;           /* device asked for a reset: stopped */
	struct balloon b;
};

/* The one device (for self-tests and the console); NULL if none was found. */
struct virtio_balloon_dev *virtio_balloon_get(void);

#endif
