/*
 * virtio_balloon.h - the virtio balloon device in the kernel: finds the PCI
 * function, runs the transport's init order, sets up the queues the offered
 * features imply, and drives the core (balloon.c) from a POLLER every work
 * loop wake-up (about 1 ms), which also makes config changes take effect
 * within milliseconds. Console: `balloon` (status, recovery, knobs, totals,
 * OOM, reporting, shortfall), `balloon check` (books), `balloon stats` (what
 * the stats queue carries), `balloon reset` (reset the device and bring it
 * up again: exercises the recovery below on a healthy device).
 *
 * Recovery (the poller, every tick): vp_health() notices a device that needs
 * a reset, reset itself (DRIVER_OK gone) or was removed; balloon_state()
 * BALLOON_BROKEN a queue (or config space) the core stopped using. Either
 * way the device is reset with vp_reset(). Only if it confirms (status reads
 * back 0: it no longer touches anything it was given) does every frame the
 * balloon holds go back to the allocator (balloon_release_all); otherwise
 * they stay the balloon's for good, since the device might still write to
 * them. A device that needs a reset, reset itself or broke a queue is then
 * brought up again the way boot does it (features, interrupts, queues,
 * DRIVER_OK, balloon core), at most VIRTIO_BALLOON_MAX_ATTEMPTS times over
 * the kernel's life; a removed one is left off. One line per attempt, one
 * when giving up. Re-init costs no memory: ring memory (vp_setup_queue) and
 * the core's DMA and tracking buffers are reused, the OOM notifier is
 * registered once (and does nothing while the device is down).
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
#include "drivers/balloon/balloon.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtq.h"

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
	struct balloon b;

	/* recovery (see the header comment) */
	int given_up;              /* left off for good (down_why says why) */
	const char *down_why;      /* why the transport is down, for the console */
	unsigned resets;           /* resets the device confirmed after boot */
	unsigned attempts;         /* bring-ups after a failure, of VIRTIO_BALLOON_MAX_ATTEMPTS */
	unsigned requested;        /* resets asked for (`balloon reset`), not counted as attempts */
	uint64_t reclaimed;        /* frames given back to the allocator after confirmed resets */
	uint64_t held_for_good;    /* frames kept because a reset was not confirmed */

	/* the core's buffers: allocated once, reused by every re-init */
	void *dma;
	uint64_t dma_pa;
	void *track;
	size_t track_len;
};

#define VIRTIO_BALLOON_MAX_ATTEMPTS 3

/* The one device (for self-tests and the console); NULL if none was found. */
struct virtio_balloon_dev *virtio_balloon_get(void);

/* The work loop's poller, for self-tests that drive the balloon themselves
 * (pollers do not run in self-test mode). */
void virtio_balloon_poll(uint64_t now);

/* Reset the device on request and bring it up again through the recovery
 * path (`balloon reset`, self-tests). Does not use up an attempt. 0 when
 * the transport is up again afterwards, -1 otherwise (or no device). */
int virtio_balloon_reset(void);

#endif
