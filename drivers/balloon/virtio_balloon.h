/*
 * virtio_balloon.h - the virtio balloon device in the kernel: finds the PCI
 * function, runs the transport's init order, sets up the queues the offered
 * features imply, and drives the core (balloon.h) from a POLLER every work
 * loop wake-up (about 1 ms), which also makes config changes take effect
 * within milliseconds. `balloon reset` on the console exercises the recovery
 * below on a healthy device.
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
 * What the core is bound to (kernel.c): memory through mm/'s public calls,
 * reclaim through the shrinker registry, the allocator's OOM notifier (deflate
 * on OOM, reported blocks handed back early). Before mm/ is up the device is
 * still brought up (DRIVER_OK, queues) and the balloon stays idle with one
 * line saying so. The knobs (balloon.* options) and the `balloon` command are
 * in balloon_cmd.c; what each knob means is struct balloon_params in
 * balloon.h.
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
	struct balloon *b;         /* the core (allocated once, reused by every re-init) */

	/* recovery (see the header comment) */
	int given_up;              /* left off for good (down_why says why) */
	const char *down_why;      /* why the transport is down, for the console */
	unsigned resets;           /* resets the device confirmed after boot */
	unsigned attempts;         /* bring-ups after a failure, of VIRTIO_BALLOON_MAX_ATTEMPTS */
	unsigned requested;        /* resets asked for (`balloon reset`), not counted as attempts */
	uint64_t reclaimed;        /* frames given back to the allocator after confirmed resets */
	uint64_t drained;          /* frames deflated (host told) before requested resets */
	uint64_t held_for_good;    /* frames kept because a reset was not confirmed */

	/* interrupts (see virtio_balloon.c), counted by the handlers */
	enum { VB_IRQ_POLL, VB_IRQ_MSIX, VB_IRQ_INTX } irq_mode;
	uint8_t intx_line;         /* INTx: the interrupt-line register's value */
	volatile uint64_t irq_config, irq_queue;
	volatile uint64_t config_irq_ns;   /* the last configuration interrupt */
	uint64_t config_seen_ns;   /* the poll that first saw it */
	uint64_t irq_to_poll_ns;   /* the last configuration interrupt -> that poll */

	/* the core's buffers: allocated once, reused by every re-init */
	void *dma;
	uint64_t dma_pa;
	void *track;
	size_t track_len;
	uint64_t max_pfn;             /* fixed at the first bring-up: the books' size */
};

#define VIRTIO_BALLOON_MAX_ATTEMPTS 3
#define VIRTIO_BALLOON_DRAIN_NS     (2000000000ull)   /* longest wait for deflate acks before a requested reset */

/* Boot's INIT_DRIVER initcall: find the device and bring it up. Host tests
 * call it on a simulated guest (tests/unit/fake_hostile_sys.h). */
int virtio_balloon_init(void);
#ifdef HOST_TEST
/* Host tests: forget the device and everything set up once, so the next
 * virtio_balloon_init starts a new guest (buffers are the caller's to free). */
void virtio_balloon_forget(void);
#endif

/* The one device (for self-tests and the console); NULL if none was found. */
struct virtio_balloon_dev *virtio_balloon_get(void);

/* The work loop's poller, for self-tests that drive the balloon themselves
 * (pollers do not run in self-test mode). */
void virtio_balloon_poll(uint64_t now);

/* Reset the device on request and bring it up again through the recovery
 * path (`balloon reset`, self-tests): the balloon is deflated first (the
 * host told, at most VIRTIO_BALLOON_DRAIN_NS), then reset. Does not use up
 * an attempt. 0 when the transport is up again afterwards, -1 otherwise (or
 * no device). */
int virtio_balloon_reset(void);

/* The allocator's OOM notifier (kernel.c registers it): deflate on OOM
 * through the core while the device runs (0 otherwise); the poller runs
 * next round to say what happened. Pages given back. */
uint64_t virtio_balloon_oom(uint64_t pages);

/* The names of the balloon feature bits set in `f` ("none" if none). */
void virtio_balloon_feature_names(uint64_t f, char *buf, size_t len);

#endif
