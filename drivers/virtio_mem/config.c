/*
 * config.c - what the device's config space may say, and what the core
 * makes of it: the checks at init (fixed geometry), the features it takes,
 * the knobs' defaults, and each fresh read at run time (requested and usable
 * sizes clamped, plugged_size compared with the books). Pure: no device, no
 * allocator.
 */
#include <stdio.h>
#include "drivers/virtio_mem/internal.h"
#include "kernel/lib/fmt.h"

#define MiB(x) ((unsigned long long)((x) >> 20))

uint64_t vmem_features_wanted(uint64_t offered)
{
	if (!(offered & (1ull << VIRTIO_F_VERSION_1)))
		return 0;
	uint64_t ok = (1ull << VIRTIO_F_VERSION_1) |
	              (1ull << VIRTIO_F_ACCESS_PLATFORM) |   /* no IOMMU here: addresses stay physical */
	              (1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE);
	return offered & ok;
}

int vmem_check_config(const struct vmem_config *c, uint64_t max_phys, char *why, size_t len)
{
	uint64_t bs = c->block_size;
	if (bs == 0 || (bs & (bs - 1))) {
		ksnprintf(why, len, "block size %#llx is not a power of two", (unsigned long long)bs);
		return -1;
	}
	if (bs < BLOCK_SIZE) {
		/* The allocator's unit is 2 MiB: a smaller device block could
		 * neither be handed to it nor taken back on its own. */
		ksnprintf(why, len, "block size %llu KiB is smaller than the 2 MiB blocks memory is "
		         "managed in", (unsigned long long)(bs >> 10));
		return -1;
	}
	if (c->region_size == 0 || c->region_size % bs) {
		ksnprintf(why, len, "region size %#llx is not a nonzero multiple of the %llu MiB block",
		         (unsigned long long)c->region_size, MiB(bs));
		return -1;
	}
	if (c->addr % bs) {
		ksnprintf(why, len, "region address %#llx is not aligned to the %llu MiB block",
		         (unsigned long long)c->addr, MiB(bs));
		return -1;
	}
	if (c->addr + c->region_size < c->addr || c->addr + c->region_size > max_phys) {
		ksnprintf(why, len, "region %#llx + %llu MiB ends beyond the %llu GiB of physical "
		         "addresses the kernel maps", (unsigned long long)c->addr, MiB(c->region_size),
		         (unsigned long long)(max_phys >> 30));
		return -1;
	}
	if (c->region_size / bs > VMEM_MAX_BLOCKS) {
		ksnprintf(why, len, "region of %llu blocks is more than the %u this driver tracks",
		         (unsigned long long)(c->region_size / bs), VMEM_MAX_BLOCKS);
		return -1;
	}
	return 0;
}

size_t vmem_track_bytes(const struct vmem_config *c)
{
	char why[8];
	if (vmem_check_config(c, UINT64_MAX, why, sizeof why) != 0)
		return 0;
	uint64_t n = c->region_size / c->block_size;
	return (size_t)(2 * ((n + 63) / 64) * 8);
}

void vmem_params_defaults(struct vmem_params *p)
{
	if (!p->ack_timeout_ns) p->ack_timeout_ns = VMEM_DEFAULT_ACK_TIMEOUT_NS;
	if (!p->retry_ns) p->retry_ns = VMEM_DEFAULT_RETRY_NS;
	if (!p->busy_delay_ns) p->busy_delay_ns = VMEM_DEFAULT_BUSY_DELAY_NS;
	if (!p->busy_tries) p->busy_tries = VMEM_DEFAULT_BUSY_TRIES;
}

static void broken(struct vmem *v, const char *what, unsigned long long was, unsigned long long now)
{
	klog("virtio-mem: device changed its %s from %#llx to %#llx, which cannot change; stopped "
	     "(plugged memory stays as it is)", what, was, now);
	v->broken = 1;
}

/* A fresh read. Fixed fields must not move; usable and requested are
 * clamped to whole blocks the region has, with a line per new raw value. */
void vmem_take_config(struct vmem *v, const struct vmem_config *c, uint64_t now)
{
	const struct vmem_config *f = &v->fixed;
	if (c->block_size != f->block_size)
		return broken(v, "block size", f->block_size, c->block_size);
	if (c->addr != f->addr)
		return broken(v, "region address", f->addr, c->addr);
	if (c->region_size != f->region_size)
		return broken(v, "region size", f->region_size, c->region_size);
	if (c->node_id != f->node_id)
		return broken(v, "node id", f->node_id, c->node_id);
	uint64_t bs = v->bs;

	uint64_t usable = c->usable_region_size;
	int new_usable = !v->have_cfg || usable != v->usable_raw_seen;
	v->usable_raw_seen = usable;
	if (usable > f->region_size) {
		if (new_usable)
			klog_ratelimited(&v->lim_usable, VMEM_LOG_INTERVAL_NS,
			                 "virtio-mem: usable region %llu MiB is larger than the %llu MiB region: "
			                 "using %llu MiB", MiB(usable), MiB(f->region_size), MiB(f->region_size));
		usable = f->region_size;
	} else if (usable % bs) {
		if (new_usable)
			klog_ratelimited(&v->lim_usable, VMEM_LOG_INTERVAL_NS,
			                 "virtio-mem: usable region %#llx is not a multiple of the %llu MiB "
			                 "block: using %llu MiB", (unsigned long long)usable, MiB(bs),
			                 MiB(usable / bs * bs));
	}
	v->usable_blocks = usable / bs;

	uint64_t req = c->requested_size;
	int new_req = !v->have_cfg || req != v->req_raw_seen;
	if (new_req && v->have_cfg) {
		/* The host changed its mind: holds and shortfalls were about the
		 * old value, the next attempt starts fresh. */
		v->hold = VHOLD_NONE;
		v->unplug_held = 0;
		v->short_reason = VSHORT_NONE;
		v->short_blocks = 0;
		v->short_logged = 0;
		v->retry_at_ns = 0;
	}
	v->req_raw_seen = req;
	uint64_t blocks = req / bs;
	if (req % bs && new_req)
		klog_ratelimited(&v->lim_reqsize, VMEM_LOG_INTERVAL_NS,
		                 "virtio-mem: requested size %#llx is not a multiple of the %llu MiB block: "
		                 "using %llu MiB", (unsigned long long)req, MiB(bs), MiB(blocks * bs));
	if (blocks > v->usable_blocks) {
		if (new_req || new_usable)
			klog_ratelimited(&v->lim_reqclamp, VMEM_LOG_INTERVAL_NS,
			                 "virtio-mem: requested size %llu MiB is beyond the usable %llu MiB of the "
			                 "region: using %llu MiB", MiB(req), MiB(v->usable_blocks * bs),
			                 MiB(v->usable_blocks * bs));
		blocks = v->usable_blocks;
	}
	v->req_blocks = blocks;

	/* plugged_size follows our requests (no interrupt). Compare only when
	 * nothing is in flight or pending; the books win, the line says so. */
	uint64_t books = v->n_plugged * bs;
	if (!v->in_flight && !v->need_unplug_all && !v->resend_at_ns && c->plugged_size != books &&
	    c->plugged_size != v->dev_plugged_seen) {
		v->dev_plugged_seen = c->plugged_size;
		klog_ratelimited(&v->lim_state, VMEM_LOG_INTERVAL_NS,
		                 "virtio-mem: device says %llu MiB plugged, the requests it acked make %llu MiB; "
		                 "going by the acked requests", MiB(c->plugged_size), MiB(books));
	}
	v->cfg = *c;
	v->have_cfg = 1;
	(void)now;
}
