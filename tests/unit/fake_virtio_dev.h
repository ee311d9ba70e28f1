/*
 * fake_virtio_dev.h - a simulated virtio device for host unit tests: it
 * plays the device side of one split virtqueue on the driver's ring memory
 * (host tests use phys == virt, so ring and buffer addresses are pointers).
 *
 * Modes: ACK (complete each chain as soon as it is popped), HOLD (pop and
 * keep chains until the test completes them, in any order), DROP (pop and
 * never complete: a host that stopped acking). A per-element callback sees
 * every popped chain (and may write into device-writable buffers, returning
 * the used len). Hostile helpers write arbitrary used entries / indexes.
 *
 * The fake checks the *driver*: descriptor indexes in range, no loops,
 * readable before writable, avail idx not running ahead by more than the
 * queue size, no head made available twice. Each violation increments
 * driver_errors and is printed; tests assert it stays 0.
 */
#ifndef FAKE_VIRTIO_DEV_H
#define FAKE_VIRTIO_DEV_H

#include <stdint.h>
#include "drivers/virtio/virtq.h"

#define FAKE_MAX_SEGS 16

enum fake_mode { FAKE_ACK, FAKE_HOLD, FAKE_DROP };

struct fake_seg {
	uint64_t addr;
	uint32_t len;
	int      writable;
};

struct fake_elem {
	uint16_t head;
	unsigned nseg;
	struct fake_seg seg[FAKE_MAX_SEGS];
	uint32_t out_bytes, in_bytes;
	uint32_t used_len;      /* what the device will report */
};

struct fake_vq;
/* Called for each popped chain; returns the used len to report. */
typedef uint32_t (*fake_elem_fn)(struct fake_vq *f, struct fake_elem *e, void *ctx);

struct fake_vq {
	struct vring_desc  *desc;
	struct vring_avail *avail;
	struct vring_used  *used;
	uint16_t num;

	enum fake_mode mode;
	int process_on_notify;  /* notify() pops (and in ACK mode completes) at once */
	fake_elem_fn on_elem;
	void *ctx;

	uint16_t last_avail;    /* next avail entry to pop */
	uint16_t used_idx;      /* our copy of used->idx */
	unsigned nheld;

	unsigned notifies, popped, completed;
	unsigned driver_errors;

	uint8_t  outstanding[VIRTQ_MAX_SIZE]; /* heads popped, not completed */
	/* Last, and not zeroed by fake_vq_clear (70 KiB; only [0, nheld) is ever read). */
	struct fake_elem held[VIRTQ_MAX_SIZE]; /* HOLD/DROP: popped, not completed */
};

/* A fresh fake_vq: every field zero but held[] (never read past nheld). */
void fake_vq_clear(struct fake_vq *f);

/* Attach to the rings of an initialised driver queue. */
void fake_vq_attach(struct fake_vq *f, const struct virtq *vq, enum fake_mode mode);
/* Use as the virtq's notify callback (ctx = the struct fake_vq). */
void fake_vq_notify(void *ctx, uint16_t index);
/* Pop every available chain; ACK completes them, HOLD/DROP keep them.
 * Returns how many were popped. */
unsigned fake_vq_process(struct fake_vq *f);
/* Complete up to n held chains, oldest first. Returns how many. */
unsigned fake_vq_complete(struct fake_vq *f, unsigned n);
/* Complete the held chain at position i (out-of-order completion). */
void fake_vq_complete_at(struct fake_vq *f, unsigned i);
/* Hostile: append a used entry with any id/len and publish it. */
void fake_vq_push_raw(struct fake_vq *f, uint32_t id, uint32_t len);
/* Hostile: set used->idx to anything. */
void fake_vq_set_used_idx(struct fake_vq *f, uint16_t idx);
/* Ask the driver not to notify (VRING_USED_F_NO_NOTIFY). */
void fake_vq_set_no_notify(struct fake_vq *f, int on);

#endif
