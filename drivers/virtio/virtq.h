/*
 * virtq.h - a split virtqueue (virtio 1.x), driver side, independent of the
 * transport: the same code runs in the kernel and against the simulated
 * device of the host tests (tests/unit/fake_virtio_dev.c).
 *
 * Memory: the caller provides one zeroed, physically contiguous region of
 * virtq_mem_size(num) bytes (4 KiB aligned) with its physical address; the
 * descriptor table, avail ring and used ring are carved from it at
 * virtq_desc_pa/avail_pa/used_pa, which the transport hands to the device.
 *
 * Trust: the device can write anything into the shared rings at any time.
 * The driver never reads back descriptors (their state lives in a private
 * shadow), reads each device-written field once, and checks everything:
 *   - used idx moving backwards or further than the buffers in flight,
 *   - a used id out of range, not a chain head, or not in flight
 *     (already completed or never made available),
 *   - a used len larger than the chain can hold.
 * The first violation marks the queue broken (sticky) with one klog line;
 * afterwards add/get_used refuse to work, and every buffer still in flight
 * stays in flight: the device may still touch it, so its owner must not
 * reuse it (virtq_detach_unused is for after a device reset).
 * Where logging is not allowed (an allocator's OOM path, inside malloc), the
 * owner brackets its calls with virtq_quiet(vq, 1) / (vq, 0): a violation
 * found meanwhile is logged by the next call made while not quiet.
 *
 * Not thread-safe: one caller at a time (the kernel's work loop).
 * Feature support: no INDIRECT_DESC, no EVENT_IDX (notification suppression
 * through VRING_USED_F_NO_NOTIFY only), which is all the balloon needs.
 */
#ifndef DRIVERS_VIRTQ_H
#define DRIVERS_VIRTQ_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/virtio/ring.h"

/* Largest queue this driver uses; a device offering more is given this
 * (the driver may shrink queue_size). Power of two. */
#define VIRTQ_MAX_SIZE 256

/* One buffer of a chain: guest-physical address and length in bytes. */
struct virtq_buf {
	uint64_t addr;
	uint32_t len;
};

/* Driver-private state of one descriptor (the device cannot reach it). */
struct virtq_desc_state {
	void    *token;     /* heads in flight: the caller's cookie, else NULL */
	uint32_t in_len;    /* heads: sum of device-writable lengths */
	uint32_t out_len;   /* heads: sum of device-readable lengths */
	uint16_t next;      /* next in chain, or next free */
	uint16_t ndesc;     /* heads: descriptors in the chain */
	uint8_t  head;      /* 1 while this is the head of a chain in flight */
};

struct virtq {
	const char *name;             /* for log lines, e.g. "balloon-inflate" */
	uint16_t num;                 /* queue size, power of two */
	uint16_t index;               /* queue number on the device (for logs) */

	struct vring_desc  *desc;     /* shared with the device */
	struct vring_avail *avail;
	struct vring_used  *used;
	uint64_t desc_pa, avail_pa, used_pa;

	uint16_t free_head;           /* first free descriptor (shadow list) */
	uint16_t num_free;            /* descriptors on the free list */
	uint16_t avail_idx;           /* our copy of avail->idx */
	uint16_t last_used_idx;       /* next used entry to consume */
	uint16_t heads_in_flight;     /* chains made available, not yet used */
	uint16_t added_since_kick;
	int broken;                   /* sticky: see the header comment */
	int quiet;                    /* virtq_quiet: do not log now */
	int log_pending;              /* a line to log once not quiet */
	char why[176];                /* why it broke ("" while it works) */

	/* Transport hook: tell the device the queue has new buffers. */
	void (*notify)(void *ctx, uint16_t index);
	void *notify_ctx;

	struct virtq_desc_state st[VIRTQ_MAX_SIZE];
};

/* Bytes of ring memory a queue of `num` entries needs (desc + avail + used). */
size_t virtq_mem_size(uint16_t num);

/* Set up `vq` on zeroed ring memory `mem` (physical address `mem_pa`, 4 KiB
 * aligned). `num` must be a power of two in [1, VIRTQ_MAX_SIZE].
 * Returns 0, or -EINVAL (one log line) for a bad size or alignment. */
int virtq_init(struct virtq *vq, const char *name, uint16_t index, uint16_t num,
               void *mem, uint64_t mem_pa,
               void (*notify)(void *ctx, uint16_t index), void *notify_ctx);

/* Make one chain available: `n_out` device-readable buffers followed by
 * `n_in` device-writable ones. `token` (non-NULL) comes back from
 * virtq_get_used when the device is done with the chain.
 * Returns 0; -ENOSPC if fewer than n_out + n_in descriptors are free (the
 * queue is unchanged); -EINVAL for an empty chain, zero-length buffer or NULL
 * token; -EIO if the queue is broken. The device sees the chain at once, but
 * is only told so by virtq_kick. */
int virtq_add(struct virtq *vq, const struct virtq_buf *bufs,
              unsigned n_out, unsigned n_in, void *token);

/* Notify the device if buffers were added since the last kick and the device
 * did not ask to be left alone. Returns 1 if it notified. */
int virtq_kick(struct virtq *vq);

/* Take one completed chain: returns its token and stores the length the
 * device reported in *len (bytes written, or for read-only chains what the
 * device says it consumed). NULL when nothing is pending or the queue is (or
 * just became) broken. The chain's descriptors are free again on return. */
void *virtq_get_used(struct virtq *vq, uint32_t *len);

/* 1 if a used entry is waiting (cheap; does not validate). */
int virtq_has_used(const struct virtq *vq);

/* After the device was reset (it no longer touches the rings): take back one
 * chain that is still in flight; returns its token or NULL when none is left. */
void *virtq_detach_unused(struct virtq *vq);

static inline unsigned virtq_num_free(const struct virtq *vq) { return vq->num_free; }
static inline unsigned virtq_in_flight(const struct virtq *vq) { return vq->heads_in_flight; }
static inline int virtq_is_broken(const struct virtq *vq) { return vq->broken; }

/* Mark the queue broken from outside (e.g. the balloon found a device
 * answer that makes no sense at its level). One log line, sticky. */
void virtq_mark_broken(struct virtq *vq, const char *why);

/* While quiet, a violation is recorded but not logged; the line goes out
 * with the next virtq call made when not quiet (never lost, never twice). */
void virtq_quiet(struct virtq *vq, int on);

#endif /* DRIVERS_VIRTQ_H */
