/*
 * kernel.h - the balloon core's seams bound to this kernel (kernel.c): memory
 * through mm/'s public calls, reclaim through the shrinker registry, the OOM
 * notifier; and the knobs (balloon_cmd.c). The
 * device shell (virtio_balloon.c) hands these to balloon_init; before mm/ is
 * up every memory op does nothing (no blocks, no free pages).
 */
#ifndef DRIVERS_BALLOON_KERNEL_H
#define DRIVERS_BALLOON_KERNEL_H

#include <stdint.h>
#include "drivers/balloon/balloon.h"

extern const struct balloon_mem_ops balloon_kernel_mem_ops;
extern const struct balloon_reclaim_ops balloon_kernel_reclaim_ops;
/* PFNs the allocator can lend are below this (0 before mm/ is up). */
uint64_t balloon_kernel_max_pfn(void);
/* Blocks compaction freed for the balloon before it took non-resident ones. */
uint64_t balloon_kernel_blocks_compacted(void);
/* Never hand the balloon frames at or above `pfn` (the protocol's limit). */
void balloon_kernel_limit_pfn(uint64_t pfn);
/* Register the allocator's OOM notifier for the device's core (once). */
int balloon_kernel_register_oom(void);
/* Poll the balloon soon after a block becomes free (free page reporting). */
void balloon_kernel_watch_free_blocks(void);

/* The balloon.* knobs as core params, and balloon.single_desc (balloon_cmd.c). */
void balloon_knobs_to_params(struct balloon_params *p);
int balloon_knob_single_desc(void);

#endif
