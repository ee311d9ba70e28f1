/*
 * show.c - the core's state in words and numbers: names for states,
 * reasons and outcomes, the status snapshot, the console's lines, and the
 * books' self-check.
 */
#include <stdio.h>
#include "drivers/virtio_mem/internal.h"
#include "kernel/lib/fmt.h"

#define MiB(x) ((unsigned long long)((x) >> 20))

const char *vmem_mem_err_name(int err)
{
	switch (err) {
	case VMEM_MEM_OK:    return "ok";
	case VMEM_MEM_BUSY:  return "in use and cannot be moved";
	case VMEM_MEM_NOMEM: return "out of memory";
	case VMEM_MEM_RANGE: return "beyond what the allocator covers";
	case VMEM_MEM_INVAL: return "misaligned";
	case VMEM_MEM_STATE: return "wrong state";
	default:             return "error";
	}
}

const char *vmem_state_name(enum vmem_state s)
{
	static const char *const n[] = {
		[VMEM_OFF] = "off", [VMEM_STARTING] = "unplugging all (start)", [VMEM_AT_TARGET] = "at target",
		[VMEM_PLUGGING] = "plugging", [VMEM_UNPLUGGING] = "unplugging", [VMEM_HELD] = "held",
		[VMEM_SHORT] = "short", [VMEM_STALLED] = "stalled", [VMEM_BROKEN] = "broken",
	};
	return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

const char *vmem_short_name(enum vmem_short_reason r)
{
	static const char *const n[] = {
		[VSHORT_NONE] = "none", [VSHORT_MIN_FREE] = "min_free reached",
		[VSHORT_PINNED] = "pinned unmovable memory", [VSHORT_NO_ROOM] = "no room to move",
		[VSHORT_DEVICE] = "device refused",
	};
	return (unsigned)r < sizeof n / sizeof n[0] ? n[r] : "?";
}

const char *vmem_hold_name(enum vmem_hold_reason r)
{
	static const char *const n[] = {
		[VHOLD_NONE] = "none", [VHOLD_NACK] = "plug NACKed", [VHOLD_PLUG_ERROR] = "plug ERROR",
		[VHOLD_UNPLUG_ERROR] = "unplug ERROR", [VHOLD_MEM] = "allocator refused plugged memory",
		[VHOLD_USABLE] = "usable region full",
	};
	return (unsigned)r < sizeof n / sizeof n[0] ? n[r] : "?";
}

const char *vmem_outcome_name(enum vmem_outcome o)
{
	static const char *const n[] = {
		[VOUT_NONE] = "none", [VOUT_PENDING] = "pending", [VOUT_ACK] = "ACK", [VOUT_NACK] = "NACK",
		[VOUT_BUSY] = "BUSY", [VOUT_ERROR] = "ERROR", [VOUT_UNKNOWN_TYPE] = "unknown type",
		[VOUT_SHORT_LEN] = "short answer", [VOUT_TIMEOUT] = "no answer yet (timeout)",
	};
	return (unsigned)o < sizeof n / sizeof n[0] ? n[o] : "?";
}

const char *vmem_req_name(uint16_t type)
{
	switch (type) {
	case VIRTIO_MEM_REQ_PLUG:       return "PLUG";
	case VIRTIO_MEM_REQ_UNPLUG:     return "UNPLUG";
	case VIRTIO_MEM_REQ_UNPLUG_ALL: return "UNPLUG_ALL";
	case VIRTIO_MEM_REQ_STATE:      return "STATE";
	default:                        return "none";
	}
}

void vmem_get_status(const struct vmem *v, struct vmem_status *st)
{
	*st = (struct vmem_status){ .state = vmem_state(v), .last_type = VMEM_NO_REQ };
	if (!v->up)
		return;
	uint64_t bs = v->bs;
	st->addr = v->fixed.addr;
	st->region_size = v->fixed.region_size;
	st->block_size = bs;
	st->usable = v->usable_blocks * bs;
	st->requested = v->cfg.requested_size;
	uint64_t t = v->req_blocks;
	if ((v->hold == VHOLD_NACK || v->hold == VHOLD_PLUG_ERROR || v->hold == VHOLD_MEM) && v->plug_cap < t)
		t = v->plug_cap;
	st->target = t * bs;
	st->plugged = v->n_plugged * bs;
	st->device_plugged = v->cfg.plugged_size;
	st->blocks_online = v->n_online;
	st->blocks_offline = v->n_plugged - v->n_online;
	st->blocks_in_flight = v->batch_n - v->batch_pos;
	st->blocks_unplugged = v->usable_blocks > v->n_plugged ? v->usable_blocks - v->n_plugged : 0;
	st->last_type = v->last_type;
	st->last_addr = v->last_addr;
	st->last_blocks = v->last_blocks;
	st->last_outcome = v->last_outcome;
	st->shortfall = v->short_blocks * bs;
	st->short_reason = v->short_reason;
	st->hold = v->hold;
	st->plug_reqs = v->plug_reqs;
	st->unplug_reqs = v->unplug_reqs;
	st->busy_answers = v->busy_answers;
	st->errors = v->errors;
	st->bytes_plugged_total = v->blocks_plugged_total * bs;
	st->bytes_unplugged_total = v->blocks_unplugged_total * bs;
}

void vmem_format_status(const struct vmem *v, char *buf, size_t len)
{
	struct vmem_status st;
	vmem_get_status(v, &st);
	if (!v->up) {
		ksnprintf(buf, len, "virtio-mem: off");
		return;
	}
	struct vmem_class_counts cc;
	vmem_count_classes(v, &cc);
	char last[96] = "none yet";
	if (st.last_type != VMEM_NO_REQ)
		ksnprintf(last, sizeof last, "%s %llu MiB at %#llx: %s", vmem_req_name(st.last_type),
		         MiB(st.last_blocks * st.block_size), (unsigned long long)st.last_addr,
		         vmem_outcome_name(st.last_outcome));
	char hold[64] = "", shortl[96] = "";
	if (st.hold != VHOLD_NONE)
		ksnprintf(hold, sizeof hold, ", held: %s", vmem_hold_name(st.hold));
	if (st.shortfall)
		ksnprintf(shortl, sizeof shortl, "\nshortfall: %llu MiB (%s)", MiB(st.shortfall),
		         vmem_short_name(st.short_reason));
	ksnprintf(buf, len,
	         "virtio-mem: %s%s; plugged %llu MiB (device says %llu), requested %llu MiB, target %llu MiB, "
	         "usable %llu of %llu MiB at %#llx, block %llu MiB\n"
	         "device blocks: %llu online, %llu offline (%llu in an unplug), %llu unplugged usable\n"
	         "2 MiB blocks online: %llu free resident, %llu free not resident, %llu movable, %llu pinned\n"
	         "last request: %s; %llu plugs, %llu unplugs, %llu BUSY, %llu errors; %llu MiB plugged, "
	         "%llu MiB unplugged since boot%s",
	         vmem_state_name(st.state), hold, MiB(st.plugged), MiB(st.device_plugged), MiB(st.requested),
	         MiB(st.target), MiB(st.usable), MiB(st.region_size), (unsigned long long)st.addr,
	         MiB(st.block_size), (unsigned long long)st.blocks_online,
	         (unsigned long long)st.blocks_offline, (unsigned long long)st.blocks_in_flight,
	         (unsigned long long)st.blocks_unplugged, (unsigned long long)cc.free_resident,
	         (unsigned long long)cc.free_not_resident, (unsigned long long)cc.movable,
	         (unsigned long long)cc.pinned, last, (unsigned long long)st.plug_reqs,
	         (unsigned long long)st.unplug_reqs, (unsigned long long)st.busy_answers,
	         (unsigned long long)st.errors, MiB(st.bytes_plugged_total), MiB(st.bytes_unplugged_total),
	         shortl);
}

int vmem_check(const struct vmem *v, char *why, size_t len)
{
	if (!v->up)
		return 0;
	uint64_t np = 0, no = 0;
	for (uint64_t w = 0; w < (v->nblocks + 63) / 64; w++) {
		if (v->online[w] & ~v->plugged[w]) {
			ksnprintf(why, len, "online but not plugged near block %llu", (unsigned long long)(w * 64));
			return -1;
		}
		np += (uint64_t)__builtin_popcountll(v->plugged[w]);
		no += (uint64_t)__builtin_popcountll(v->online[w]);
	}
	uint64_t tail = v->nblocks % 64;
	if (tail && (v->plugged[(v->nblocks - 1) / 64] >> tail)) {
		ksnprintf(why, len, "bits beyond the region");
		return -1;
	}
	if (np != v->n_plugged || no != v->n_online) {
		ksnprintf(why, len, "counters %llu plugged %llu online, bitmaps %llu %llu",
		         (unsigned long long)v->n_plugged, (unsigned long long)v->n_online,
		         (unsigned long long)np, (unsigned long long)no);
		return -1;
	}
	if (v->batch_pos > v->batch_n || v->batch_n > VMEM_BATCH) {
		ksnprintf(why, len, "batch %u..%u", v->batch_pos, v->batch_n);
		return -1;
	}
	for (unsigned i = v->batch_pos; i < v->batch_n; i++) {
		uint64_t idx = v->batch[i];
		if (idx >= v->nblocks || !bit_get(v->plugged, idx) || bit_get(v->online, idx) ||
		    (i > v->batch_pos && v->batch[i - 1] >= idx)) {
			ksnprintf(why, len, "batch entry %u (block %llu) not a plugged offline block in order", i,
			         (unsigned long long)idx);
			return -1;
		}
	}
	if (v->n_plugged - v->n_online < v->batch_n - v->batch_pos) {
		ksnprintf(why, len, "more blocks in the unplug round than offline");
		return -1;
	}
	return 0;
}
