/*
 * proto.h - the virtio balloon's wire format (virtio spec, "Traditional
 * Memory Balloon Device"): feature bits, config space, stats tags. Facts of
 * the protocol only; what this driver does with them is in balloon.h. Notes on
 * how hosts differ: ../shared/virtio-balloon-notes.md.
 */
#ifndef DRIVERS_BALLOON_PROTO_H
#define DRIVERS_BALLOON_PROTO_H

#include <stdint.h>
#include "drivers/virtio/ring.h"   /* le16, le32, le64 */

#define VIRTIO_ID_BALLOON                 5
#define VIRTIO_BALLOON_F_MUST_TELL_HOST   0
#define VIRTIO_BALLOON_F_STATS_VQ         1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM   2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT   3
#define VIRTIO_BALLOON_F_PAGE_POISON      4
#define VIRTIO_BALLOON_F_REPORTING        5
#define VIRTIO_F_VERSION_1                32
/* The device reaches memory through the platform's DMA translation (an
 * IOMMU, or memory encryption): QEMU with iommu_platform=on offers it and
 * refuses FEATURES_OK without it. The kernel enables no IOMMU, so DMA
 * addresses stay guest-physical and accepting it changes nothing else. */
#define VIRTIO_F_ACCESS_PLATFORM          33
#define VIRTIO_BALLOON_PFN_SHIFT          12

/* Device config space offsets (all le32). */
#define VIRTIO_BALLOON_CFG_NUM_PAGES      0
#define VIRTIO_BALLOON_CFG_ACTUAL         4
#define VIRTIO_BALLOON_CFG_FREE_PAGE_HINT_CMD_ID 8
#define VIRTIO_BALLOON_CFG_POISON_VAL     12

/* Stats tags. */
#define VIRTIO_BALLOON_S_SWAP_IN   0
#define VIRTIO_BALLOON_S_SWAP_OUT  1
#define VIRTIO_BALLOON_S_MAJFLT    2
#define VIRTIO_BALLOON_S_MINFLT    3
#define VIRTIO_BALLOON_S_MEMFREE   4
#define VIRTIO_BALLOON_S_MEMTOT    5
#define VIRTIO_BALLOON_S_AVAIL     6
#define VIRTIO_BALLOON_S_CACHES    7
#define VIRTIO_BALLOON_S_HTLB_PGALLOC 8
#define VIRTIO_BALLOON_S_HTLB_PGFAIL  9

struct virtio_balloon_stat {
	le16 tag;
	le64 val;
} __attribute__((packed));

/* PFNs are le32 in 4 KiB units: frames at or above 16 TiB cannot be named. */
#define BALLOON_MAX_PFN                   (1ull << 32)

#endif /* DRIVERS_BALLOON_PROTO_H */
