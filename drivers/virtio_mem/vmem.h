/*
 * vmem.h - the virtio-mem core: which device blocks are plugged, which to
 * plug or unplug next, and the request/response state machine, independent
 * of PCI and of the allocator, so it runs unchanged in host tests
 * (tests/unit/test_vmem.c against a fake device and fake memory). Files:
 * config.c (config checks: pure), blocks.c (block books, run and unplug
 * choice), vmem.c (init, poll, requests, responses), show.c (status text);
 * private state in internal.h; the wire format is proto.h; the device shell
 * virtio_mem.c, the allocator binding kernel.c, options and `vmem` vmem_cmd.c.
 *
 * What it talks to, all given at vmem_init:
 *   - the device's one request queue (struct virtq, set up by the transport)
 *     and a transport op reading the config space generation-stable;
 *   - memory ops (below): add plugged memory to the allocator, take it out
 *     again, describe a 2 MiB block, free memory, and whether a range
 *     overlaps memory the kernel already has.
 *
 * Trust: nothing the device says is believed unchecked. At init the config
 * must make sense (vmem_check_config: block size a power of two and a whole
 * multiple of 2 MiB - smaller is refused, the allocator cannot hand out less
 * than a block; region block-aligned, inside the physical address width the
 * kernel maps (max_phys), not overlapping RAM the kernel has; usable <=
 * region) or the device is not used (one line). At run time requested_size
 * is rounded down to whole blocks and clamped to usable_region_size (one line
 * per new value); a change of block_size, addr, region_size or node_id, a
 * broken queue, a response that cannot be resolved, or a config space whose
 * generation never settles for ack_timeout stop the core for good (BROKEN,
 * one line). plugged_size is only compared with the books (one line when it
 * disagrees): the books follow the requests the device acked.
 *
 * Books: each device block is unplugged, plugged and online (handed to the
 * allocator), or plugged and offline (taken out for an UNPLUG in flight, or
 * stranded: the allocator refused it back). Memory goes to the allocator
 * only after the device ACKed its PLUG; it is taken out (hot_remove) BEFORE
 * its UNPLUG is sent, and put back if the device refuses. Unplugged memory
 * is never touched (UNPLUGGED_INACCESSIBLE is accepted when offered).
 *
 * What it does (vmem_poll(now), never blocking; one request in flight):
 *   Start: if the device reports plugged memory at init (plugged_size != 0:
 *     memory the driver does not know, e.g. after a reboot), UNPLUG_ALL first,
 *     as Linux does; nothing else until it is ACKed.
 *   Target = requested_size in whole blocks, clamped to usable_region_size,
 *     and held at the plugged count after a NACK or ERROR on PLUG, or at the
 *     online count after the allocator refused plugged memory, until the
 *     host changes requested_size.
 *   Plug: lowest unplugged blocks first, one ranged PLUG per contiguous run
 *     (at most VMEM_PLUG_MAX_BYTES), hot_add on ACK. Never rate-limited:
 *     giving the guest memory is never slowed down.
 *   Unplug: plugged-but-offline blocks first (they cost nothing), then, by
 *     asking block_info about every 2 MiB block of each online device block:
 *     wholly free and resident (host RSS drops); movable blocks the other
 *     partly used ones can absorb (k of them when those blocks' free frames
 *     add up to k device blocks), fewest used first - the host backs them,
 *     so emptying one releases a host page without making another resident;
 *     wholly free not resident (releases nothing on the host, costs
 *     nothing); then the remaining movable blocks, fewest used first (the
 *     allocator empties them by moving frames elsewhere); never a block
 *     holding unmovable, ballooned or isolated memory. At most VMEM_BATCH device blocks per round, at most
 *     what keeps min_free_pages free (every unplugged 2 MiB block costs 512
 *     free frames, moved or not) and what the rate bucket allows
 *     (rate_blocks_per_s 2 MiB blocks, kernel/lib/rate.h). Chosen blocks are
 *     taken out (hot_remove, all-or-nothing per device block), grouped into
 *     contiguous runs, one UNPLUG each. If nothing can be taken out, the
 *     shortfall (MiB and why: min_free, pinned unmovable memory, no room to
 *     move) is one rate-limited line, and a quiet retry follows retry_ns
 *     later.
 *   Responses: every one is checked. ACK applies the request. BUSY: the
 *     same request again after busy_delay_ns, doubling up to 1 s, at most
 *     busy_tries times; then given up (an unplug's blocks go back online)
 *     with one line and retried retry_ns later. NACK (PLUG): stop plugging
 *     until requested_size changes. ERROR: one line; a PLUG stops plugging,
 *     an UNPLUG's blocks go back online and unplugging stops, both until
 *     requested_size changes. A short used length or an unknown type leaves
 *     the outcome unknown: a STATE request for the same range settles it
 *     (PLUGGED/UNPLUGGED); if that fails too, BROKEN. A request not answered
 *     within ack_timeout_ns: one line (STALLED); its buffers stay the
 *     device's, nothing new is sent, and it resumes if the answer comes.
 *
 * Ownership: the request and response buffers (DMA memory from the setup)
 * belong to the device while a request is in flight. The tracking memory is
 * the core's. Memory of plugged blocks belongs to the allocator while
 * online, to nobody (never touched) while offline or unplugged.
 */
#ifndef DRIVERS_VIRTIO_MEM_VMEM_H
#define DRIVERS_VIRTIO_MEM_VMEM_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/virtio/virtq.h"
#include "drivers/virtio_mem/proto.h"
#include "kclock.h"
#include "units.h"

#define VMEM_BATCH            256u          /* device blocks taken out per unplug round */
#define VMEM_PLUG_MAX_BYTES   (1ull << 30)  /* largest PLUG (and hot_add) at once */
#define VMEM_MAX_BLOCKS       (1u << 26)    /* device blocks tracked at most (128 TiB of 2 MiB) */
#define VMEM_STEPS_PER_POLL   16u           /* requests one poll may complete (synchronous hosts) */
#define VMEM_BUSY_NS          (1 * NS_PER_MS)
#define VMEM_DMA_BYTES        64u           /* request (24) + response (10), aligned */

/* ---- config as read from the device (host byte order), and its checks */

struct vmem_config {
	uint64_t block_size;
	uint16_t node_id;
	uint64_t addr;
	uint64_t region_size;
	uint64_t usable_region_size;
	uint64_t plugged_size;
	uint64_t requested_size;
};

/* The checks of the header comment, for the values that cannot change.
 * 0 if usable; else -1 and one sentence in `why` (no newline). */
int vmem_check_config(const struct vmem_config *c, uint64_t max_phys, char *why, size_t len);

/* Bytes of tracking memory for this config (two bits per device block,
 * rounded to 8 bytes per bitmap), 0 if the config is unusable. */
size_t vmem_track_bytes(const struct vmem_config *c);

/* The features this driver accepts: VERSION_1 (required: 0 if missing),
 * ACCESS_PLATFORM, UNPLUGGED_INACCESSIBLE. ACPI_PXM is declined (one node). */
uint64_t vmem_features_wanted(uint64_t offered);

/* ---- what the core needs from outside */

struct vmem_transport_ops {
	/* The whole config between two equal config_generation values (bounded
	 * retries). 0, or -1 if it never settled (the core keeps the old one). */
	int (*read_config)(void *ctx, struct vmem_config *out);
};

/* Memory op results (the kernel binding maps mm's codes onto these). */
enum vmem_mem_err {
	VMEM_MEM_OK     = 0,
	VMEM_MEM_BUSY   = -1,  /* remove: unmovable, lent or isolated memory in the range */
	VMEM_MEM_NOMEM  = -2,  /* add: no memory for metadata; remove: no room to move frames */
	VMEM_MEM_RANGE  = -3,  /* add: beyond what the allocator can cover */
	VMEM_MEM_INVAL  = -4,  /* misaligned (a bug here) */
	VMEM_MEM_STATE  = -5,  /* add: already present; remove: not present */
	VMEM_MEM_OTHER  = -6,
};
const char *vmem_mem_err_name(int err);

/* A 2 MiB block as the allocator sees it; kind as mm/frame.h's block_kind. */
enum vmem_block_kind {
	VMEM_BK_UNMOVABLE = 0, VMEM_BK_MOVABLE = 1, VMEM_BK_FREE = 2,
	VMEM_BK_BALLOON = 3, VMEM_BK_ISOLATED = 4, VMEM_BK_ABSENT = 5,
};
struct vmem_block_info {
	int online;        /* in the allocator */
	int kind;          /* enum vmem_block_kind */
	unsigned nfree;    /* free frames in it (512 when wholly free) */
	int resident;      /* wholly free: the host may hold it resident */
};

/* Memory ops: PFN = physical address >> 12; ranges are 2 MiB aligned whole
 * device blocks. Every call returns quickly (the work loop). */
struct vmem_mem_ops {
	/* Plugged memory becomes free frames (not resident, direct-mapped).
	 * VMEM_MEM_OK, or an error with nothing changed. */
	int (*hot_add)(void *ctx, uint64_t pfn, uint64_t npages);
	/* All-or-nothing: VMEM_MEM_OK when every 2 MiB block of the range is out
	 * of the allocator (free ones taken, movable ones emptied by moving their
	 * frames elsewhere); VMEM_MEM_BUSY or VMEM_MEM_NOMEM with nothing
	 * changed. Afterwards the range is never touched. */
	int (*hot_remove)(void *ctx, uint64_t pfn, uint64_t npages);
	/* The block at `pfn` (2 MiB aligned): 0, or an error (treated as pinned). */
	int (*block_info)(void *ctx, uint64_t pfn, struct vmem_block_info *out);
	/* Frames free now (plugged memory included). */
	uint64_t (*free_pages)(void *ctx);
	/* 1 if [pa, pa + len) overlaps memory the kernel already has (boot RAM,
	 * the kernel, firmware regions it keeps). */
	int (*overlaps_ram)(void *ctx, uint64_t pa, uint64_t len);
};

struct vmem_params {
	uint64_t min_free_pages;      /* never unplug below this much free memory */
	uint64_t rate_blocks_per_s;   /* unplug limit in 2 MiB blocks per second (0 = none) */
	uint64_t ack_timeout_ns;      /* a request unanswered this long: STALLED (0 = 5 s) */
	uint64_t retry_ns;            /* after a shortfall or a given-up request (0 = 1 s) */
	uint64_t busy_delay_ns;       /* first resend after BUSY (0 = 10 ms), doubling to 1 s */
	unsigned busy_tries;          /* BUSY answers before a request is given up (0 = 8) */
};

struct vmem_setup {
	const struct vmem_transport_ops *tops;
	void *tctx;
	const struct vmem_mem_ops *mops;
	void *mctx;
	struct virtq *vq;             /* the request queue, set up */
	uint64_t features;            /* negotiated */
	void *dma;                    /* >= VMEM_DMA_BYTES, device-visible */
	uint64_t dma_pa;
	size_t dma_len;
	void *track;                  /* >= vmem_track_bytes(config), any memory */
	size_t track_len;
	uint64_t max_phys;            /* physical addresses the kernel can map are below this */
	struct vmem_params params;
};

/* ---- the core */

struct vmem;

enum vmem_state {
	VMEM_OFF,         /* not initialised, or the config was refused */
	VMEM_STARTING,    /* UNPLUG_ALL of memory we did not know about */
	VMEM_AT_TARGET,
	VMEM_PLUGGING,
	VMEM_UNPLUGGING,
	VMEM_HELD,        /* plugging or unplugging stopped until requested_size changes */
	VMEM_SHORT,       /* unplug cannot be met now; retrying quietly */
	VMEM_STALLED,     /* the device does not answer */
	VMEM_BROKEN,
};

enum vmem_short_reason {
	VSHORT_NONE,
	VSHORT_MIN_FREE,  /* free memory is at min_free */
	VSHORT_PINNED,    /* the remaining plugged blocks hold unmovable (or lent) memory */
	VSHORT_NO_ROOM,   /* movable memory has nowhere to go */
	VSHORT_DEVICE,    /* the device refused (ERROR, BUSY too long) */
};

enum vmem_hold_reason {
	VHOLD_NONE,
	VHOLD_NACK,       /* PLUG NACKed */
	VHOLD_PLUG_ERROR, /* PLUG answered ERROR */
	VHOLD_UNPLUG_ERROR,
	VHOLD_MEM,        /* the allocator refused plugged memory */
	VHOLD_USABLE,     /* requested beyond the blocks usable now */
};

/* The last request and what became of it. */
enum vmem_outcome {
	VOUT_NONE, VOUT_PENDING, VOUT_ACK, VOUT_NACK, VOUT_BUSY, VOUT_ERROR,
	VOUT_UNKNOWN_TYPE, VOUT_SHORT_LEN, VOUT_TIMEOUT,
};

struct vmem_status {
	enum vmem_state state;
	uint64_t addr, region_size, block_size;
	uint64_t usable;              /* bytes, as last read (clamped) */
	uint64_t requested;           /* bytes, as the device says */
	uint64_t target;              /* bytes the core aims for */
	uint64_t plugged;             /* bytes, the books */
	uint64_t device_plugged;      /* bytes, as the device says */
	uint64_t blocks_online, blocks_offline, blocks_unplugged;   /* device blocks (unplugged: within usable) */
	uint64_t blocks_in_flight;    /* offline for an UNPLUG now */
	uint16_t last_type;           /* VIRTIO_MEM_REQ_*, 0xffff none yet */
	uint64_t last_addr, last_blocks;
	enum vmem_outcome last_outcome;
	uint64_t shortfall;           /* bytes that could not be unplugged (0: none) */
	enum vmem_short_reason short_reason;
	enum vmem_hold_reason hold;
	uint64_t plug_reqs, unplug_reqs, busy_answers, errors;
	uint64_t bytes_plugged_total, bytes_unplugged_total;
};

/* Per class of the online 2 MiB blocks (console; scans every block). */
struct vmem_class_counts {
	uint64_t free_resident, free_not_resident, movable, pinned;
};

/* A zeroed core (the kernel: once). NULL when out of memory. */
struct vmem *vmem_alloc(void);

/* Read and check the config, carve the DMA and tracking memory. 0, or -1
 * with one line (config refused, memory too small, queue missing). */
int vmem_init(struct vmem *v, const struct vmem_setup *s);

/* One bounded step (at most VMEM_STEPS_PER_POLL requests completed): reap
 * the answer, read the config, send the next request. Call on every device
 * interrupt and at the time vmem_next_poll() gives. */
void vmem_poll(struct vmem *v, uint64_t now_ns);

/* When to poll again without an interrupt: now + VMEM_BUSY_NS while there
 * is work that can proceed, else the earliest timer (BUSY resend, retry, ack
 * timeout, rate credit), UINT64_MAX if only the device can give it work. */
uint64_t vmem_next_poll(const struct vmem *v, uint64_t now_ns);

/* Change min_free and the rate at run time (takes effect at the next poll). */
void vmem_set_params(struct vmem *v, const struct vmem_params *p);
const struct vmem_params *vmem_get_params(const struct vmem *v);

enum vmem_state vmem_state(const struct vmem *v);
void vmem_get_status(const struct vmem *v, struct vmem_status *st);
void vmem_count_classes(const struct vmem *v, struct vmem_class_counts *out);
/* Plugged memory handed to the allocator, in bytes (the `mem` command). */
uint64_t vmem_online_bytes(const struct vmem *v);

const char *vmem_state_name(enum vmem_state s);
const char *vmem_short_name(enum vmem_short_reason r);
const char *vmem_hold_name(enum vmem_hold_reason r);
const char *vmem_outcome_name(enum vmem_outcome o);
const char *vmem_req_name(uint16_t type);
/* Status lines for the console (newline-separated, no trailing newline). */
void vmem_format_status(const struct vmem *v, char *buf, size_t len);

/* Every invariant of the books (bitmaps vs counters, offline blocks all
 * accounted for, in-flight batch consistent). 0, or -1 and why. */
int vmem_check(const struct vmem *v, char *why, size_t len);

/* For tests: 1 if device block `idx` is plugged / online. */
int vmem_block_plugged(const struct vmem *v, uint64_t idx);
int vmem_block_online(const struct vmem *v, uint64_t idx);

#endif /* DRIVERS_VIRTIO_MEM_VMEM_H */
