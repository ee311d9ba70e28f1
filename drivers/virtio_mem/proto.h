/*
 * proto.h - virtio-mem's wire format (virtio spec 1.2, "Memory Device";
 * Linux include/uapi/linux/virtio_mem.h, checked field by field): feature
 * bits, config space layout, the request and response of its one queue.
 * Facts of the protocol only; what this driver does with them is vmem.h.
 */
#ifndef DRIVERS_VIRTIO_MEM_PROTO_H
#define DRIVERS_VIRTIO_MEM_PROTO_H

#include <stdint.h>
#include "drivers/virtio/ring.h"   /* le16, le64 */

#define VIRTIO_ID_MEM                        24
/* Transport feature bits (the same numbers as drivers/balloon/proto.h). */
#ifndef VIRTIO_F_VERSION_1
#define VIRTIO_F_VERSION_1                   32
#define VIRTIO_F_ACCESS_PLATFORM             33
#endif
/* node_id is an ACPI proximity domain (we have one node: ignored). */
#define VIRTIO_MEM_F_ACPI_PXM                0
/* The host refuses guest access to unplugged memory (QEMU >= 7.0 on x86
 * offers it and fails FEATURES_OK without it). We never touch unplugged
 * memory, so accepting it is only saying so. */
#define VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE  1

/* Device config space (all little endian; 56 bytes). block_size, node_id,
 * addr and region_size cannot change; usable_region_size grows with
 * requested_size (and shrinks on UNPLUG_ALL without a config interrupt);
 * plugged_size follows our requests (no interrupt either). */
#define VIRTIO_MEM_CFG_BLOCK_SIZE            0    /* le64 */
#define VIRTIO_MEM_CFG_NODE_ID               8    /* le16, then 6 bytes padding */
#define VIRTIO_MEM_CFG_ADDR                  16   /* le64 */
#define VIRTIO_MEM_CFG_REGION_SIZE           24   /* le64 */
#define VIRTIO_MEM_CFG_USABLE_REGION_SIZE    32   /* le64 */
#define VIRTIO_MEM_CFG_PLUGGED_SIZE          40   /* le64 */
#define VIRTIO_MEM_CFG_REQUESTED_SIZE        48   /* le64 */
#define VIRTIO_MEM_CFG_SIZE                  56

/* Requests (driver -> device, device-readable). */
#define VIRTIO_MEM_REQ_PLUG                  0
#define VIRTIO_MEM_REQ_UNPLUG                1
#define VIRTIO_MEM_REQ_UNPLUG_ALL            2
#define VIRTIO_MEM_REQ_STATE                 3

struct virtio_mem_req {
	le16 type;
	le16 padding[3];
	le64 addr;          /* PLUG/UNPLUG/STATE: first block, block_size aligned */
	le16 nb_blocks;     /* PLUG/UNPLUG/STATE: how many (>= 1) */
	le16 padding2[3];
} __attribute__((packed));

/* Responses (device -> driver, device-writable). */
#define VIRTIO_MEM_RESP_ACK                  0
#define VIRTIO_MEM_RESP_NACK                 1   /* PLUG only: e.g. beyond requested_size */
#define VIRTIO_MEM_RESP_BUSY                 2   /* PLUG, UNPLUG, UNPLUG_ALL: try again later */
#define VIRTIO_MEM_RESP_ERROR                3   /* PLUG, UNPLUG, STATE: bad addresses or state */

#define VIRTIO_MEM_STATE_PLUGGED             0
#define VIRTIO_MEM_STATE_UNPLUGGED           1
#define VIRTIO_MEM_STATE_MIXED               2

struct virtio_mem_resp {
	le16 type;
	le16 padding[3];
	le16 state;         /* STATE only */
} __attribute__((packed));

/* The least a device must report as written: the type for every request,
 * the whole response (with state) for STATE. QEMU always reports 10. */
#define VIRTIO_MEM_RESP_MIN_LEN              2u
#define VIRTIO_MEM_RESP_STATE_LEN            10u
#define VIRTIO_MEM_MAX_NB_BLOCKS             0xffffu

_Static_assert(sizeof(struct virtio_mem_req) == 24, "virtio_mem_req is 24 bytes on the wire");
_Static_assert(sizeof(struct virtio_mem_resp) == 10, "virtio_mem_resp is 10 bytes on the wire");

#endif /* DRIVERS_VIRTIO_MEM_PROTO_H */
