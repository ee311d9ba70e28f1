/*
 * virtio_ring.h - the split virtqueue as the device sees it (virtio 1.x,
 * "Split Virtqueues"): the layout in shared memory, nothing else.
 *
 * All fields are little-endian on the wire. x86-64 is little-endian, so the
 * le16/le32/le64 types are plain integers; the names document what the
 * device sees. Names follow Linux's include/uapi/linux/virtio_ring.h.
 */
#ifndef DRIVERS_VIRTIO_RING_H
#define DRIVERS_VIRTIO_RING_H

#include <stdint.h>

typedef uint16_t le16;
typedef uint32_t le32;
typedef uint64_t le64;

#define VRING_DESC_F_NEXT      1   /* the chain continues in `next` */
#define VRING_DESC_F_WRITE     2   /* device-writable (else device-readable) */
#define VRING_DESC_F_INDIRECT  4   /* not used by this driver */

#define VRING_USED_F_NO_NOTIFY  1  /* device: "don't kick me" (a hint) */
#define VRING_AVAIL_F_NO_INTERRUPT 1 /* driver: "don't interrupt me" (a hint) */

/* Alignment the spec requires of each part (2.7 "Virtqueue alignment"). */
#define VRING_DESC_ALIGN  16
#define VRING_AVAIL_ALIGN 2
#define VRING_USED_ALIGN  4

struct vring_desc {
	le64 addr;    /* guest-physical address of the buffer */
	le32 len;     /* bytes */
	le16 flags;   /* VRING_DESC_F_* */
	le16 next;    /* index of the next descriptor if F_NEXT */
};

struct vring_avail {
	le16 flags;   /* VRING_AVAIL_F_* */
	le16 idx;     /* where the driver puts the next entry (free-running) */
	le16 ring[];  /* num heads, then le16 used_event (EVENT_IDX only) */
};

struct vring_used_elem {
	le32 id;      /* head of the completed chain */
	le32 len;     /* bytes the device wrote into the chain */
};

struct vring_used {
	le16 flags;   /* VRING_USED_F_* */
	le16 idx;     /* where the device puts the next entry (free-running) */
	struct vring_used_elem ring[]; /* num entries, then le16 avail_event */
};

_Static_assert(sizeof(struct vring_desc) == 16, "vring_desc layout");
_Static_assert(sizeof(struct vring_used_elem) == 8, "vring_used_elem layout");

#endif /* DRIVERS_VIRTIO_RING_H */
