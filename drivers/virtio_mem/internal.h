/*
 * internal.h - the virtio-mem core's private state and the calls its files
 * make of each other. Only drivers/virtio_mem/ core files and their white-box
 * tests include it; everyone else goes through vmem.h.
 *
 * Books (vmem_check verifies them): two bitmaps over the region's device
 * blocks, `plugged` (the device's view, as the acked requests made it) and
 * `online` (handed to the allocator); online implies plugged. A plugged,
 * offline block is either in `batch` (taken out for an UNPLUG, from
 * batch_pos on not yet acked) or stranded (the allocator would not take it
 * back); stranded blocks are the first the next unplug round gives back.
 */
#ifndef DRIVERS_VIRTIO_MEM_INTERNAL_H
#define DRIVERS_VIRTIO_MEM_INTERNAL_H

#include "drivers/virtio_mem/vmem.h"
#include "kernel/lib/rate.h"
#include "klog.h"

#define VMEM_DEFAULT_ACK_TIMEOUT_NS (5 * NS_PER_S)
#define VMEM_DEFAULT_RETRY_NS       (1 * NS_PER_S)
#define VMEM_DEFAULT_BUSY_DELAY_NS  (10 * NS_PER_MS)
#define VMEM_MAX_BUSY_DELAY_NS      (1 * NS_PER_S)
#define VMEM_DEFAULT_BUSY_TRIES     8u
#define VMEM_LOG_INTERVAL_NS        (1 * NS_PER_S)
#define VMEM_NO_REQ                 0xffffu

struct vmem {
	struct vmem_setup s;
	int up;                       /* vmem_init succeeded */
	int broken;

	/* geometry: fixed at init */
	struct vmem_config fixed;     /* block_size, node_id, addr, region_size as at init */
	uint64_t bs;                  /* device block size in bytes */
	uint64_t pages_per_dblock;
	unsigned sub;                 /* 2 MiB blocks per device block */
	uint64_t nblocks;             /* device blocks in the region */
	uint64_t *plugged, *online;   /* bitmaps over nblocks */
	uint64_t n_plugged, n_online;

	/* live config */
	struct vmem_config cfg;       /* last read */
	uint64_t usable_blocks;       /* clamped */
	uint64_t req_blocks;          /* requested, rounded down, clamped */
	uint64_t req_raw_seen;        /* the raw requested_size the lines were about */
	uint64_t usable_raw_seen;
	uint64_t dev_plugged_seen;    /* plugged_size value last complained about */
	int have_cfg;
	uint64_t cfg_fail_since_ns;

	/* holds: until requested_size changes */
	enum vmem_hold_reason hold;
	uint64_t plug_cap;            /* target at most this while a plug hold is on */
	int unplug_held;

	/* the request in flight (one at a time) */
	struct virtio_mem_req *req;   /* DMA */
	struct virtio_mem_resp *resp;
	uint64_t req_pa, resp_pa;
	int in_flight;
	uint16_t req_type;            /* VIRTIO_MEM_REQ_* */
	uint64_t req_first, req_n;    /* device blocks */
	uint64_t sent_ns;
	int stalled;
	unsigned busy_count;
	uint64_t resend_at_ns;        /* 0: none; else BUSY resend due */
	int resolving;                /* the STATE in flight settles an unknown outcome */
	uint16_t resolve_type;        /* ... of this request */
	int need_unplug_all;
	unsigned unplug_all_tries;

	/* unplug round: offline device blocks, ascending */
	uint32_t batch[VMEM_BATCH];
	unsigned batch_n, batch_pos;

	/* pacing */
	uint64_t retry_at_ns;
	struct rate_bucket rate;      /* unplug credit in 2 MiB blocks */
	int rate_limited;

	/* shortfall */
	uint64_t short_blocks;
	enum vmem_short_reason short_reason;
	int short_logged;

	/* the last request, counters */
	uint16_t last_type;
	uint64_t last_addr, last_blocks;
	enum vmem_outcome last_outcome;
	uint64_t plug_reqs, unplug_reqs, busy_answers, errors;
	uint64_t blocks_plugged_total, blocks_unplugged_total;

	struct klog_limit lim_usable, lim_reqsize, lim_reqclamp, lim_req[4], lim_short, lim_state, lim_stall, lim_mem;
};

/* config.c */
void vmem_params_defaults(struct vmem_params *p);
/* Take a freshly read config: fixed fields unchanged (else BROKEN), clamp
 * usable and requested (lines once per new value), compare plugged_size. */
void vmem_take_config(struct vmem *v, const struct vmem_config *c, uint64_t now);

/* blocks.c (bitmaps: one bit per device block) */
static inline int bit_get(const uint64_t *bm, uint64_t i) { return (bm[i >> 6] >> (i & 63)) & 1; }
static inline void bit_set(uint64_t *bm, uint64_t i) { bm[i >> 6] |= 1ull << (i & 63); }
static inline void bit_clr(uint64_t *bm, uint64_t i) { bm[i >> 6] &= ~(1ull << (i & 63)); }
static inline uint64_t vmem_block_pfn(const struct vmem *v, uint64_t idx)
{
	return (v->fixed.addr + idx * v->bs) >> PAGE_SHIFT;
}
/* The lowest run of unplugged blocks below `limit`, at most max long:
 * 0 and *first, *n; or -1 if every block below limit is plugged. */
int vmem_find_plug_run(const struct vmem *v, uint64_t limit, uint64_t max, uint64_t *first, uint64_t *n);
/* Stranded blocks: plugged, offline, not in the batch. */
uint64_t vmem_stranded(const struct vmem *v);
int vmem_in_batch(const struct vmem *v, uint64_t idx);
/* Fill the batch for an unplug of up to `want` device blocks (see vmem.h
 * for the order and limits); returns blocks taken out, sets the shortfall
 * reason when that is fewer than wanted and why. */
unsigned vmem_choose_unplug(struct vmem *v, uint64_t want, uint64_t now);
/* Put blocks [first, first + n) back into the allocator (a refused unplug):
 * those it refuses stay offline (stranded), one line. Returns blocks put back. */
uint64_t vmem_put_back(struct vmem *v, uint64_t first, uint64_t n);
void vmem_batch_sort(struct vmem *v);

#endif /* DRIVERS_VIRTIO_MEM_INTERNAL_H */
