/*
 * fake_hostile_sys.h - one whole guest for the hostile-device tests and the
 * fuzzers: memory with its running application (fake_balloon_mem.h), a
 * virtio-balloon device (fake_hostile_dev.h), and the driver stack under
 * test - drivers/virtio/virtio_pci.c, drivers/virtio/virtq.c, drivers/balloon/ - composed
 * the way the kernel's glue (drivers/balloon/virtio_balloon.c) composes them: the
 * same init order, queue layout from the offered features, balloon_init, a
 * poll every millisecond.
 *
 * Plus the recovery the transport offers (vp_health, vp_reset), which the
 * kernel glue does not do yet: a device that needs a reset, reset itself,
 * broke a ring or whose config never settles is reset; only when it
 * confirms the reset does the balloon give its frames back
 * (balloon_release_all); a device that asked for a reset or reset itself is
 * brought up again, at most HSYS_MAX_RECOVERIES times; otherwise it is left
 * off. One line per recovery.
 *
 * As in the kernel: free page reporting when negotiated (the memory's report
 * ops), deflate on OOM through the memory's OOM hook (the application runs
 * dry -> balloon_oom), whose bounded wait lets the device run (tops.relax).
 *
 * hsys_check() is every invariant at once (balloon books, frame owners,
 * device-side protocol, register order), with the first violation in `why`.
 */
#ifndef FAKE_HOSTILE_SYS_H
#define FAKE_HOSTILE_SYS_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/balloon/balloon.h"
#include "drivers/balloon/internal.h"   /* white-box: the tests read the core's books */
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtq.h"
#include "fake_hostile_dev.h"
#include "fake_balloon_mem.h"

#define HSYS_MAX_RECOVERIES 3

enum { HSYS_QI, HSYS_QD, HSYS_QS, HSYS_QR, HSYS_NQ };

struct hsys {
	struct fake_mem mem;
	struct hdev dev;

	/* the driver */
	struct vp_dev vp;
	uint64_t offered;
	struct balloon_vq_layout layout;
	struct virtq vq[HSYS_NQ];
	int has_stats, has_report, up, core_up, given_up;
	int b_inited;            /* a balloon_init succeeded: its books exist */
	unsigned recoveries;
	struct balloon b;
	struct balloon_params params;
	void *dma, *track;
	size_t track_len;
	uint64_t max_pfn;

	int host_paused;         /* the device does not run between polls */
	int app_paused;          /* the application does nothing between polls */
	unsigned app_check_every;/* application full check every N ticks (0 = never) */
	unsigned step;
};

/* Memory [base_pfn, base_pfn + npages), the device, buffers; nothing is
 * brought up yet (set hostile knobs first). 0, or -1 if out of memory. */
int hsys_init(struct hsys *x, uint64_t base_pfn, uint64_t npages, uint64_t min_free, uint64_t seed);
void hsys_destroy(struct hsys *x);

/* The kernel glue's bring-up. 0 if the transport came up (core_up says
 * whether the balloon runs), -1 if the device was refused (one line). */
int hsys_bring_up(struct hsys *x);
/* The glue's poller: health, then one balloon_poll, recovery when needed. */
void hsys_poll(struct hsys *x);
/* One millisecond: the device serves its queues, the driver polls, the
 * application does one step. No checks. */
void hsys_tick(struct hsys *x);

/* Every invariant: 0, or -1 with the first violation in why. */
int hsys_check(struct hsys *x, char *why, size_t len);

#endif
