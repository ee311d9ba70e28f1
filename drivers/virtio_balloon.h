/*
 * virtio_balloon.h - the virtio balloon device in the kernel: finds the PCI
 * function, runs the transport's init order, sets up the queues the offered
 * features imply, and drives the core (balloon.c) from a POLLER every work
 * loop wake-up (about 1 ms), which also makes config changes take effect
 * within milliseconds. Console: `balloon` (status, knobs, totals, OOM,
 * reporting, shortfall), `balloon check` (books), `balloon stats` (what the
 * stats queue carries).
 *
 * Kernel services it binds for the core: the allocator's OOM notifier
 * (mm_add_oom_notifier: deflate on OOM, early return of reported blocks),
 * the shrinker registry (kernel/shrinker.h: reclaim for the target, and the
 * stats' caches), and, when the bound memory ops do not bring their own,
 * free page reporting over mm/'s fa_report_isolate/fa_report_done.
 *
 * Memory seam: the balloon core needs an allocator (struct balloon_mem_ops,
 * contract in balloon.h). Memory setup binds one before INIT_DRIVER:
 *     virtio_balloon_bind_memory(&ops, ctx, max_pfn);
 * Without a binding the device is still brought up (DRIVER_OK, queues), and
 * the balloon stays idle with one log line saying so.
 *
 * Command line, also `set <name> <value>` at run time (applied at once):
 *   balloon.initial=SIZE    balloon at boot until the host sets a target
 *                           (max(initial, host num_pages) until the host
 *                           first changes num_pages; then the host's alone)
 *   balloon.max=SIZE        largest balloon (0 = no limit but min_free)
 *   balloon.min_free=SIZE   memory the balloon always leaves free (16M)
 *   balloon.rate=N          inflation limit in MiB/s (0 = unlimited)
 *   balloon.report_delay=MS free page reporting delay after frees (2000)
 * Values beyond RAM are clamped with one line (balloon_set_params).
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
	struct virtq inflate_vq, deflate_vq, stats_vq, report_vq;
	int has_stats;
	int has_report;
	int transport_up;          /* DRIVER_OK set, queues live */
	int core_up;               /* balloon core running */
	int needs_reset;           /* device asked for a reset: stopped */
	struct balloon b;
};

/* The one device (for self-tests and the console); NULL if none was found. */
struct virtio_balloon_dev *virtio_balloon_get(void);

/* The work loop's poller, for self-tests that drive the balloon themselves
 * (pollers do not run in self-test mode). */
void virtio_balloon_poll(uint64_t now);

#endif
