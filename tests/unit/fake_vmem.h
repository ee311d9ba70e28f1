/*
 * fake_vmem.h - host-test doubles for the virtio-mem core:
 *
 *   fake_vmem_dev: the device side, on the real virtqueue through
 *     fake_virtio_dev. It keeps a plugged bit per device block and answers
 *     as QEMU 7.2 does (virtio_mem_state_change_request): a range must be
 *     block-aligned and inside the usable region (else ERROR); PLUG beyond
 *     requested_size is NACKed, PLUG of a plugged block or UNPLUG of an
 *     unplugged one is ERROR; UNPLUG_ALL unplugs everything and shrinks the
 *     usable region; STATE reports PLUGGED / UNPLUGGED / MIXED. Hostile
 *     knobs override the answer (type, used length, BUSY for N requests,
 *     never answer). It records every request and counts driver errors (a
 *     request QEMU would refuse as ERROR when the device is honest).
 *
 *   fake_vmem_mem: the allocator side. Boot RAM is a count of free frames;
 *     hot-plugged memory is a table of 2 MiB blocks (present, kind, free
 *     frames, resident) the test sets up. hot_remove is all-or-nothing like
 *     mm's: free blocks are taken, movable ones emptied by moving their used
 *     frames into free frames outside the range (boot RAM first), BUSY for
 *     unmovable/ballooned/isolated blocks, NOMEM when the used frames have
 *     nowhere to go. It counts frames of data (used movable frames), which
 *     must be conserved by every move, and errors (a call on blocks not
 *     present or already present, misalignment).
 */
#ifndef FAKE_VMEM_H
#define FAKE_VMEM_H

#include <stdint.h>
#include "drivers/virtio_mem/vmem.h"
#include "fake_virtio_dev.h"

#define FV_MAX_BLOCKS 4096u   /* device blocks / 2 MiB blocks the fakes model */
#define FV_LOG        512u

struct fv_req { uint16_t type; uint64_t addr; uint16_t nb; uint16_t answer; };

struct fake_vmem_dev {
	struct vmem_config cfg;
	uint8_t plugged[FV_MAX_BLOCKS];
	struct fake_vq fq;
	uint64_t extent;             /* usable = requested + extent after UNPLUG_ALL (QEMU: 256 MiB) */
	/* hostile knobs */
	int force_type;              /* >= 0: answer this type instead (nothing done) */
	unsigned force_count;        /* ... for this many requests (0 = forever) */
	int force_len;               /* >= 0: report this used length */
	unsigned force_len_count;    /* ... for this many answers (0 = forever) */
	unsigned busy_next;          /* answer BUSY to the next N requests */
	int busy_forever;
	int fail_reads;
	int lie_plugged;             /* >= 0: config plugged_size says this many bytes instead */
	/* what happened */
	struct fv_req log[FV_LOG];
	unsigned nlog;
	unsigned reqs[4];
	unsigned driver_errors;
};

/* region [addr, addr + region), block size, usable, requested. */
void fv_dev_init(struct fake_vmem_dev *d, uint64_t addr, uint64_t region, uint64_t bs,
                 uint64_t usable, uint64_t requested);
/* Attach to the driver's queue (ACK mode: answers synchronously in notify). */
void fv_dev_attach(struct fake_vmem_dev *d, struct virtq *vq);
/* The transport op (ctx = the device). */
extern const struct vmem_transport_ops fv_transport_ops;
/* Set requested_size as the host would (usable grows with it, as QEMU's). */
void fv_dev_request(struct fake_vmem_dev *d, uint64_t bytes);
uint64_t fv_dev_plugged_blocks(const struct fake_vmem_dev *d);

struct fv_block { uint8_t present, kind, resident; uint16_t nfree; };

struct fake_vmem_mem {
	uint64_t ram_end;            /* boot RAM is [0, ram_end) */
	uint64_t boot_free;          /* free frames in boot RAM */
	uint64_t region_pfn;         /* first PFN the block table covers */
	struct fv_block blk[FV_MAX_BLOCKS];
	uint64_t data_frames;        /* used movable frames: conserved by moves */
	uint64_t boot_data;          /* ... of them moved into boot RAM */
	uint64_t moved;
	int fail_add;                /* nonzero: hot_add answers this error */
	unsigned fail_add_count;     /* ... this many times (0 = forever) */
	unsigned adds, removes;
	uint64_t remove_order[FV_LOG];   /* PFNs hot_remove was called with, in order */
	unsigned nremove;
	unsigned errors;
};

void fv_mem_init(struct fake_vmem_mem *m, uint64_t ram_end, uint64_t boot_free, uint64_t region_addr);
extern const struct vmem_mem_ops fv_mem_ops;
/* Set the state of the 2 MiB block at `addr` (must be present). */
void fv_mem_set(struct fake_vmem_mem *m, uint64_t addr, int kind, unsigned nfree, int resident);
uint64_t fv_mem_free(const struct fake_vmem_mem *m);
unsigned fv_mem_present(const struct fake_vmem_mem *m);
/* 1 if every frame of data is still somewhere (moves lose none). */
int fv_mem_data_ok(const struct fake_vmem_mem *m);

#endif
