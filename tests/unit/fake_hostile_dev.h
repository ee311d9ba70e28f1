/*
 * fake_hostile_dev.h - a whole simulated virtio-balloon PCI device, well
 * behaved until a test (or a fuzzer) makes it hostile.
 *
 * Registers are tests/unit/fake_virtio_pci.c (struct fake_vpci is the first
 * member, so the vp_dev's ctx works for both); each queue the driver enables
 * is served by tests/unit/fake_virtio_dev.c on the rings at the addresses the
 * driver programmed. On top of that it keeps the host's view of the balloon:
 *   - inflate: each PFN must be in guest RAM and not already inflated; the
 *     frame is discarded (its contents poisoned in struct fake_mem);
 *   - deflate: each PFN must be inflated; it stays "deflating" until the
 *     element is completed, and only then may the guest reuse it;
 *   - reporting: each range must be whole isolated 2 MiB blocks of guest
 *     RAM, in device-writable descriptors; the device writes (poisons) them
 *     and may keep writing until it completes the element;
 *   - a reset the device confirmed forgets everything (the driver may take
 *     all its buffers back); a reset that never completes, or a device that
 *     disappeared, keeps it (the driver must not).
 * hdev_holds() is that view for fake_mem's "may the device still use it" check,
 * including PFNs in inflate elements made available but not yet popped.
 * Driver mistakes are counted in protocol_errors (first in first_error).
 * Interrupts: used buffers published set the ISR's queue bit, a new target
 * or DEVICE_NEEDS_RESET its config bit (the guest delivers them on INTx).
 *
 * Hostile knobs: per-queue modes (ACK / HOLD / DROP), raw used entries
 * through vq[], a target that changes on every read, config generation that
 * never settles, DEVICE_NEEDS_RESET (once, or again after every init), a
 * device that resets itself, one that reads all ones, reset never completing,
 * scribbling on the PFN arrays, plus fake_vpci's (FEATURES_OK refused, queue
 * sizes, notify offsets).
 */
#ifndef FAKE_HOSTILE_DEV_H
#define FAKE_HOSTILE_DEV_H

#include <stdint.h>
#include "drivers/virtio/virtio_pci.h"
#include "fake_balloon_mem.h"
#include "fake_virtio_dev.h"
#include "fake_virtio_pci.h"
#include "rng.h"

/* Queue indexes with QEMU's default features (stats, no hinting); with
 * PAGE_REPORTING the reporting queue follows (hdev_queue(d, HD_ROLE_REPORT)). */
enum { HD_INFLATE, HD_DEFLATE, HD_STATS, HD_NQ = 5 };
enum { HD_ROLE_INFLATE, HD_ROLE_DEFLATE, HD_ROLE_STATS, HD_ROLE_HINT, HD_ROLE_REPORT, HD_ROLE_NONE };
enum { HOST_NONE, HOST_INFLATED, HOST_DEFLATING, HOST_REPORTING };

#define HD_MAX_DMA 64

struct hdev {
	struct fake_vpci pci;            /* must stay first: vp->ctx points at the hdev */
	int attached[HD_NQ];
	uint8_t role[HD_NQ];             /* HD_ROLE_* of each queue, from the offered features */
	enum fake_mode mode[HD_NQ];      /* applied when a queue is attached (and by hdev_set_mode) */
	int process_on_notify;           /* serve a queue as soon as it is kicked (default 1) */

	/* host view of guest RAM [base_pfn, end_pfn) */
	struct fake_mem *mem;
	uint64_t base_pfn, end_pfn;
	uint8_t *host;                   /* HOST_* per frame */
	uint64_t host_inflated;
	unsigned protocol_errors;
	char first_error[200];

	/* hostile knobs */
	int flip_target;                 /* num_pages changes on every read */
	int needs_reset_every_init;      /* raise NEEDS_RESET again after each DRIVER_OK */
	int gone;                        /* every read returns all ones, writes are lost */
	int reset_stuck;                 /* a reset is ignored: status keeps its value */
	int scribble_pfns;               /* overwrite PFN arrays once done with them */
	/* A device that publishes completions it never did (raw used entries,
	 * used index moves) may use memory behind the driver's back; no driver
	 * can prevent that. With tolerate_lies (the fuzzer), once it lied, the
	 * checks that rely on the device's honesty are off: "may still use",
	 * discards, and protocol errors seen by the device. */
	int tolerate_lies;
	int lied;
	struct rng rng;
	/* Register reads the test (fuzzer) overrides: called with the value the
	 * device would return; status bits can only be added (a reset that the
	 * device did not do never reads as done). */
	uint32_t (*read_hook)(void *ctx, enum vp_region_id r, uint32_t off, unsigned w, uint32_t v);
	void *hook_ctx;
	uint64_t ns_per_read;            /* every register read takes this long (host clock) */

	/* observations */
	unsigned resets, resets_confirmed, driver_oks;
	unsigned stats_seen, elems_seen[2], reports_seen;
	unsigned config_reads;

	void *dma[HD_MAX_DMA];           /* ring memory (host_keep_alloc) */
	size_t dma_bytes[HD_MAX_DMA];
	unsigned ndma;

	/* last: 360 KiB, cleared queue by queue (fake_vq_clear), not by memset */
	struct fake_vq vq[HD_NQ];
};

extern const struct vp_io hdev_io;

/* A QEMU-like balloon (VERSION_1, STATS_VQ, PAGE_POISON offered; queues of
 * 128) over guest RAM [mem->base_pfn, + mem->npages). Wires mem->device_holds. */
void hdev_init(struct hdev *d, struct fake_mem *mem, uint64_t seed);
void hdev_destroy(struct hdev *d);
/* A vp_dev wired to the device, regions as QEMU lays them out. */
void hdev_attach_vp(struct hdev *d, struct vp_dev *vp, const char *name);

void hdev_set_target(struct hdev *d, uint32_t num_pages);
uint32_t hdev_actual(const struct hdev *d);
void hdev_set_mode(struct hdev *d, int q, enum fake_mode mode);
/* Index of the queue with this role (HD_ROLE_*), -1 if the features have none. */
int hdev_queue(const struct hdev *d, int role);

/* Serve every live queue once (as the host would between two guest polls). */
void hdev_run(struct hdev *d);
/* Complete up to n held elements of queue q, oldest first (updates the host view). */
unsigned hdev_complete(struct hdev *d, int q, unsigned n);
/* Publish a used entry: for an element the device holds this is its
 * completion (any len); for any other id it is a lie (lied = 1). */
void hdev_push_raw(struct hdev *d, int q, uint32_t id, uint32_t len);
/* Move the used index anywhere (a lie). */
void hdev_set_used_idx(struct hdev *d, int q, uint16_t idx);
/* Raise DEVICE_NEEDS_RESET now. */
void hdev_raise_needs_reset(struct hdev *d);
/* The device resets itself (status 0, queues gone, like a host-side reset). */
void hdev_self_reset(struct hdev *d);

/* fake_mem's device_holds callback: 1 if any frame of the range may still be used. */
int hdev_holds(void *ctx, uint64_t pfn, uint64_t count);
/* Frames the host currently considers in the balloon (inflated or deflating). */
uint64_t hdev_host_pages(const struct hdev *d);

#endif
