/*
 * vmem.c - the virtio-mem core's state machine: init, the poll step, one
 * request in flight and every answer checked (vmem.h has the rules). Block
 * choices are blocks.c, config handling config.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "drivers/virtio_mem/internal.h"
#include "kernel/lib/fmt.h"

#define MiB(x) ((unsigned long long)((x) >> 20))

struct vmem *vmem_alloc(void) { return calloc(1, sizeof(struct vmem)); }

static void stop(struct vmem *v) { v->broken = 1; }

/* ---- sending */

static void send(struct vmem *v, uint16_t type, uint64_t first, uint64_t n, uint64_t now)
{
	struct virtio_mem_req *r = v->req;
	memset(r, 0, sizeof *r);
	r->type = type;
	if (type != VIRTIO_MEM_REQ_UNPLUG_ALL) {
		r->addr = v->fixed.addr + first * v->bs;
		r->nb_blocks = (uint16_t)n;
	}
	/* Poisoned, so an answer the device never wrote is not read as ACK. */
	v->resp->type = 0xffff;
	v->resp->state = 0xffff;
	struct virtq_buf bufs[2] = {
		{ v->req_pa, sizeof(struct virtio_mem_req) },
		{ v->resp_pa, sizeof(struct virtio_mem_resp) },
	};
	int rc = virtq_add(v->s.vq, bufs, 1, 1, v);
	if (rc != 0) {
		/* One request at a time on a queue of >= 2 descriptors: only a
		 * broken queue refuses (virtq said why). */
		if (rc != -EIO)
			klog("virtio-mem: the request queue refused a request (%d); stopped", rc);
		stop(v);
		return;
	}
	virtq_kick(v->s.vq);
	v->in_flight = 1;
	v->req_type = type;
	v->req_first = first;
	v->req_n = type == VIRTIO_MEM_REQ_UNPLUG_ALL ? 0 : n;
	v->sent_ns = now;
	v->last_type = type;
	v->last_addr = type == VIRTIO_MEM_REQ_UNPLUG_ALL ? v->fixed.addr : r->addr;
	v->last_blocks = v->req_n;
	v->last_outcome = VOUT_PENDING;
	if (type == VIRTIO_MEM_REQ_PLUG)
		v->plug_reqs++;
	else if (type == VIRTIO_MEM_REQ_UNPLUG)
		v->unplug_reqs++;
}

static uint64_t target_blocks(const struct vmem *v)
{
	uint64_t t = v->req_blocks;
	if ((v->hold == VHOLD_NACK || v->hold == VHOLD_PLUG_ERROR || v->hold == VHOLD_MEM) && v->plug_cap < t)
		t = v->plug_cap;
	return t;
}

/* ---- what an answer does */

static void hold_plugging(struct vmem *v, enum vmem_hold_reason why, uint64_t cap)
{
	v->hold = why;
	v->plug_cap = cap;
}

static void plug_acked(struct vmem *v)
{
	uint64_t first = v->req_first, n = v->req_n;
	for (uint64_t i = first; i < first + n; i++)
		bit_set(v->plugged, i);
	v->n_plugged += n;
	v->blocks_plugged_total += n;
	int rc = v->s.mops->hot_add(v->s.mctx, vmem_block_pfn(v, first), n * v->pages_per_dblock);
	if (rc == VMEM_MEM_OK) {
		for (uint64_t i = first; i < first + n; i++)
			bit_set(v->online, i);
		v->n_online += n;
		return;
	}
	/* Plugged on the device, unusable here: hold at what is online, so
	 * these blocks are over target and go back to the host next. */
	klog_ratelimited(&v->lim_mem, VMEM_LOG_INTERVAL_NS,
	                 "virtio-mem: the allocator refused %llu MiB of plugged memory at %#llx (%s); "
	                 "holding at %llu MiB and giving it back", MiB(n * v->bs),
	                 (unsigned long long)(v->fixed.addr + first * v->bs), vmem_mem_err_name(rc),
	                 MiB(v->n_online * v->bs));
	hold_plugging(v, VHOLD_MEM, v->n_online);
}

static void unplug_acked(struct vmem *v)
{
	uint64_t first = v->req_first, n = v->req_n;
	for (uint64_t i = first; i < first + n; i++)
		bit_clr(v->plugged, i);
	v->n_plugged -= n;
	v->blocks_unplugged_total += n;
	v->batch_pos += (unsigned)n;
	if (v->batch_pos >= v->batch_n)
		v->batch_pos = v->batch_n = 0;
}

/* The device did not unplug the run in flight: it and the rest of the
 * round go back to the allocator. */
static void unplug_refused(struct vmem *v)
{
	for (unsigned i = v->batch_pos; i < v->batch_n; i++)
		vmem_put_back(v, v->batch[i], 1);
	v->batch_pos = v->batch_n = 0;
}

static void give_up_busy(struct vmem *v, uint64_t now)
{
	const char *what = vmem_req_name(v->req_type);
	klog_ratelimited(&v->lim_req[v->req_type & 3], VMEM_LOG_INTERVAL_NS,
	                 "virtio-mem: device busy for %u answers to %s of %llu MiB; trying again in %llu ms",
	                 v->busy_count, what, MiB(v->req_n * v->bs),
	                 (unsigned long long)(v->s.params.retry_ns / NS_PER_MS));
	v->busy_count = 0;
	v->retry_at_ns = now + v->s.params.retry_ns;
	if (v->req_type == VIRTIO_MEM_REQ_UNPLUG) {
		unplug_refused(v);
		v->short_reason = VSHORT_DEVICE;
	}
	/* PLUG: nothing changed; UNPLUG_ALL: still needed, retried. */
}

static void error_answer(struct vmem *v, uint16_t type, const char *answer)
{
	v->errors++;
	klog_ratelimited(&v->lim_req[type & 3], VMEM_LOG_INTERVAL_NS,
	                 "virtio-mem: device gave %s to %s of %llu MiB at %#llx; %s until the "
	                 "requested size changes", answer, vmem_req_name(type), MiB(v->req_n * v->bs),
	                 (unsigned long long)(v->fixed.addr + v->req_first * v->bs),
	                 type == VIRTIO_MEM_REQ_PLUG ? "not plugging more" : "blocks back online, not unplugging");
	if (type == VIRTIO_MEM_REQ_PLUG)
		hold_plugging(v, VHOLD_PLUG_ERROR, v->n_plugged);
	else {
		unplug_refused(v);
		v->unplug_held = 1;
		v->hold = VHOLD_UNPLUG_ERROR;
	}
}

/* An answer whose outcome is unknown (short, unknown type): ask the device
 * the blocks' state; a second unknown stops the core. */
static void unknown_answer(struct vmem *v, const char *why, uint64_t now)
{
	uint16_t t = v->req_type;
	if (t == VIRTIO_MEM_REQ_UNPLUG_ALL && ++v->unplug_all_tries <= v->s.params.busy_tries) {
		/* Idempotent: asking again is the way to know. */
		klog_ratelimited(&v->lim_req[VIRTIO_MEM_REQ_UNPLUG_ALL], VMEM_LOG_INTERVAL_NS, "virtio-mem: %s to UNPLUG_ALL; asking again", why);
		v->retry_at_ns = now + v->s.params.busy_delay_ns;
		return;
	}
	if (t == VIRTIO_MEM_REQ_STATE || t == VIRTIO_MEM_REQ_UNPLUG_ALL) {
		klog("virtio-mem: %s to %s%s; stopped (plugged memory stays as it is)", why, vmem_req_name(t),
		     v->resolving ? " (asked to settle an unknown answer)" : "");
		stop(v);
		return;
	}
	klog_ratelimited(&v->lim_req[t & 3], VMEM_LOG_INTERVAL_NS,
	                 "virtio-mem: %s to %s of %llu MiB at %#llx; asking the device for their state", why,
	                 vmem_req_name(t), MiB(v->req_n * v->bs),
	                 (unsigned long long)(v->fixed.addr + v->req_first * v->bs));
	v->resolving = 1;
	v->resolve_type = t;
	send(v, VIRTIO_MEM_REQ_STATE, v->req_first, v->req_n, now);
}

static void state_answer(struct vmem *v, uint16_t state, uint64_t now)
{
	uint16_t t = v->resolve_type;
	v->resolving = 0;
	v->req_type = t;   /* what the answer is about */
	if (state == VIRTIO_MEM_STATE_PLUGGED) {
		if (t == VIRTIO_MEM_REQ_PLUG)
			plug_acked(v);
		else
			error_answer(v, t, "no clear answer (STATE: still plugged)");
	} else if (state == VIRTIO_MEM_STATE_UNPLUGGED) {
		if (t == VIRTIO_MEM_REQ_UNPLUG)
			unplug_acked(v);
		else
			error_answer(v, t, "no clear answer (STATE: not plugged)");
	} else {
		klog("virtio-mem: device says blocks at %#llx are in state %u after %s; stopped (they stay "
		     "offline, never touched)", (unsigned long long)(v->fixed.addr + v->req_first * v->bs),
		     state, vmem_req_name(t));
		if (t == VIRTIO_MEM_REQ_PLUG) {   /* partly plugged: the books must cover them */
			for (uint64_t i = v->req_first; i < v->req_first + v->req_n; i++)
				bit_set(v->plugged, i);
			v->n_plugged += v->req_n;
		}
		stop(v);
	}
	(void)now;
}

static void handle_answer(struct vmem *v, uint32_t len, uint64_t now)
{
	uint16_t type = ((volatile struct virtio_mem_resp *)v->resp)->type;
	uint16_t state = ((volatile struct virtio_mem_resp *)v->resp)->state;
	uint16_t t = v->req_type;
	v->in_flight = 0;
	if (v->stalled) {
		klog("virtio-mem: device answered %s after all", vmem_req_name(t));
		v->stalled = 0;
	}
	uint32_t need = t == VIRTIO_MEM_REQ_STATE ? VIRTIO_MEM_RESP_STATE_LEN : VIRTIO_MEM_RESP_MIN_LEN;
	if (len < need) {
		v->last_outcome = VOUT_SHORT_LEN;
		char why[64];
		ksnprintf(why, sizeof why, "an answer of %u bytes (at least %u expected)", len, need);
		unknown_answer(v, why, now);
		return;
	}
	switch (type) {
	case VIRTIO_MEM_RESP_ACK:
		v->last_outcome = VOUT_ACK;
		v->busy_count = 0;
		if (t == VIRTIO_MEM_REQ_PLUG)
			plug_acked(v);
		else if (t == VIRTIO_MEM_REQ_UNPLUG)
			unplug_acked(v);
		else if (t == VIRTIO_MEM_REQ_UNPLUG_ALL) {
			klog("virtio-mem: unplugged the %llu MiB the device had plugged before this kernel started",
			     MiB(v->cfg.plugged_size));
			v->need_unplug_all = 0;
			v->unplug_all_tries = 0;
		} else if (v->resolving)
			state_answer(v, state, now);
		return;
	case VIRTIO_MEM_RESP_BUSY:
		v->last_outcome = VOUT_BUSY;
		v->busy_answers++;
		if (t == VIRTIO_MEM_REQ_STATE)
			break;   /* not an answer STATE may get */
		if (++v->busy_count >= v->s.params.busy_tries) {
			give_up_busy(v, now);
			return;
		}
		{
			uint64_t d = v->s.params.busy_delay_ns << (v->busy_count - 1);
			v->resend_at_ns = now + min_u64(d, VMEM_MAX_BUSY_DELAY_NS);
		}
		return;
	case VIRTIO_MEM_RESP_NACK:
		v->last_outcome = VOUT_NACK;
		if (t == VIRTIO_MEM_REQ_PLUG) {
			klog_ratelimited(&v->lim_req[VIRTIO_MEM_REQ_PLUG], VMEM_LOG_INTERVAL_NS,
			                 "virtio-mem: device refused (NACK) to plug %llu MiB at %#llx; holding at %llu "
			                 "MiB until the requested size changes", MiB(v->req_n * v->bs),
			                 (unsigned long long)(v->fixed.addr + v->req_first * v->bs),
			                 MiB(v->n_plugged * v->bs));
			hold_plugging(v, VHOLD_NACK, v->n_plugged);
			return;
		}
		if (t == VIRTIO_MEM_REQ_UNPLUG) {
			error_answer(v, t, "NACK");
			return;
		}
		break;
	case VIRTIO_MEM_RESP_ERROR:
		v->last_outcome = VOUT_ERROR;
		if (t == VIRTIO_MEM_REQ_PLUG || t == VIRTIO_MEM_REQ_UNPLUG) {
			error_answer(v, t, "ERROR");
			return;
		}
		break;
	default:
		v->last_outcome = VOUT_UNKNOWN_TYPE;
		break;
	}
	char why[64];
	ksnprintf(why, sizeof why, "answer type %u", type);
	unknown_answer(v, why, now);
}

/* ---- init */

int vmem_init(struct vmem *v, const struct vmem_setup *s)
{
	memset(v, 0, sizeof *v);
	v->last_type = VMEM_NO_REQ;
	if (!s->tops || !s->mops || !s->vq || !s->dma || s->dma_len < VMEM_DMA_BYTES || s->vq->num < 2) {
		klog("virtio-mem: setup incomplete (ops, a queue of >= 2 entries, %u bytes of DMA memory)",
		     VMEM_DMA_BYTES);
		return -1;
	}
	v->s = *s;
	vmem_params_defaults(&v->s.params);
	struct vmem_config c;
	if (s->tops->read_config(s->tctx, &c) != 0) {
		klog("virtio-mem: config space never settled; device not used");
		return -1;
	}
	char why[160];
	if (vmem_check_config(&c, s->max_phys, why, sizeof why) != 0) {
		klog("virtio-mem: device not used: %s", why);
		return -1;
	}
	if (s->mops->overlaps_ram(s->mctx, c.addr, c.region_size)) {
		klog("virtio-mem: device not used: region %#llx + %llu MiB overlaps memory the kernel has",
		     (unsigned long long)c.addr, MiB(c.region_size));
		return -1;
	}
	size_t need = vmem_track_bytes(&c);
	if (!s->track || s->track_len < need) {
		klog("virtio-mem: %zu bytes of tracking memory needed, %zu given; device not used", need,
		     s->track ? s->track_len : 0);
		return -1;
	}
	v->fixed = c;
	v->bs = c.block_size;
	v->pages_per_dblock = c.block_size >> PAGE_SHIFT;
	v->sub = (unsigned)(c.block_size / BLOCK_SIZE);
	v->nblocks = c.region_size / c.block_size;
	memset(s->track, 0, need);
	v->plugged = s->track;
	v->online = (uint64_t *)s->track + (v->nblocks + 63) / 64;
	v->req = s->dma;
	v->resp = (struct virtio_mem_resp *)((uint8_t *)s->dma + 32);
	v->req_pa = s->dma_pa;
	v->resp_pa = s->dma_pa + 32;
	if (c.plugged_size) {
		klog("virtio-mem: device has %llu MiB plugged that this kernel did not plug (a reboot?): "
		     "unplugging all first", MiB(c.plugged_size));
		v->need_unplug_all = 1;
	}
	vmem_take_config(v, &c, 0);
	v->up = 1;
	return 0;
}

/* ---- the poll step */

static void read_config(struct vmem *v, uint64_t now)
{
	struct vmem_config c;
	if (v->s.tops->read_config(v->s.tctx, &c) == 0) {
		v->cfg_fail_since_ns = 0;
		vmem_take_config(v, &c, now);
		return;
	}
	if (!v->cfg_fail_since_ns)
		v->cfg_fail_since_ns = now ? now : 1;
	else if (now - v->cfg_fail_since_ns > v->s.params.ack_timeout_ns) {
		klog("virtio-mem: config space has not settled for %llu ms; stopped",
		     (unsigned long long)((now - v->cfg_fail_since_ns) / NS_PER_MS));
		stop(v);
	}
}

static void shortfall(struct vmem *v, uint64_t want, uint64_t now)
{
	v->short_blocks = want;
	if (v->short_reason == VSHORT_NONE)
		v->short_reason = VSHORT_PINNED;
	v->retry_at_ns = now + v->s.params.retry_ns;
	if (v->short_logged)
		return;
	v->short_logged = 1;
	const char *why =
		v->short_reason == VSHORT_MIN_FREE ? "free memory is down to vmem.min_free" :
		v->short_reason == VSHORT_NO_ROOM ? "movable memory in the plugged blocks has no room to move" :
		v->short_reason == VSHORT_DEVICE ? "the device refused" :
		"the plugged blocks left hold unmovable memory (kernel data, lent or isolated)";
	klog_ratelimited(&v->lim_short, VMEM_LOG_INTERVAL_NS,
	                 "virtio-mem: cannot unplug %llu MiB more (plugged %llu MiB, requested %llu MiB): %s; "
	                 "retrying every %llu ms", MiB(want * v->bs), MiB(v->n_plugged * v->bs),
	                 MiB(v->req_blocks * v->bs), why, (unsigned long long)(v->s.params.retry_ns / NS_PER_MS));
}

/* Send the next request if one is due: 1 if one went out. */
static int submit_next(struct vmem *v, uint64_t now)
{
	if (v->resend_at_ns) {   /* BUSY: the same request again */
		if (now < v->resend_at_ns)
			return 0;
		v->resend_at_ns = 0;
		send(v, v->req_type, v->req_first, v->req_n, now);
		return 1;
	}
	if (v->need_unplug_all) {
		if (now < v->retry_at_ns)
			return 0;
		send(v, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, now);
		return 1;
	}
	if (v->batch_pos < v->batch_n) {   /* the round's next contiguous run */
		uint64_t first = v->batch[v->batch_pos], n = 1;
		while (v->batch_pos + n < v->batch_n && v->batch[v->batch_pos + n] == first + n &&
		       n < VIRTIO_MEM_MAX_NB_BLOCKS)
			n++;
		send(v, VIRTIO_MEM_REQ_UNPLUG, first, n, now);
		return 1;
	}
	if (!v->have_cfg)
		return 0;
	uint64_t target = target_blocks(v);
	if (v->n_plugged < target) {
		if (now < v->retry_at_ns)
			return 0;
		uint64_t max = min_u64(target - v->n_plugged,
		                       min_u64(max_u64(VMEM_PLUG_MAX_BYTES / v->bs, 1), VIRTIO_MEM_MAX_NB_BLOCKS));
		uint64_t first, n;
		if (vmem_find_plug_run(v, v->usable_blocks, max, &first, &n) != 0)
			return 0;   /* plugged blocks beyond a shrunk usable region: nothing to plug */
		send(v, VIRTIO_MEM_REQ_PLUG, first, n, now);
		return 1;
	}
	if (v->n_plugged > target) {
		if (v->unplug_held || now < v->retry_at_ns)
			return 0;
		uint64_t want = v->n_plugged - target;
		enum vmem_short_reason before = v->short_reason;
		v->short_reason = VSHORT_NONE;
		if (vmem_choose_unplug(v, want, now) == 0) {
			if (v->rate_limited && v->short_reason == VSHORT_NONE) {
				v->short_reason = before;
				return 0;   /* waiting for credit, not short */
			}
			shortfall(v, want, now);
			return 0;
		}
		v->short_blocks = 0;
		v->short_reason = VSHORT_NONE;
		return submit_next(v, now);
	}
	/* At target. */
	rate_forget(&v->rate);
	v->rate_limited = 0;
	v->short_blocks = 0;
	v->short_reason = VSHORT_NONE;
	if (vmem_stranded(v) && now >= v->retry_at_ns) {
		/* Blocks a refused unplug left offline, now wanted: try again. */
		v->retry_at_ns = now + v->s.params.retry_ns;
		for (uint64_t i = 0; i < v->nblocks; i++)
			if (bit_get(v->plugged, i) && !bit_get(v->online, i))
				vmem_put_back(v, i, 1);
	}
	return 0;
}

/* Take the answer if there is one: 1 if one was handled. */
static int reap(struct vmem *v, uint64_t now)
{
	uint32_t len = 0;
	void *tok = virtq_get_used(v->s.vq, &len);
	if (!tok) {
		if (virtq_is_broken(v->s.vq))
			stop(v);   /* virtq said why */
		return 0;
	}
	if (tok != v) {
		virtq_mark_broken(v->s.vq, "virtio-mem: used entry for a request we did not send");
		stop(v);
		return 0;
	}
	handle_answer(v, len, now);
	return 1;
}

void vmem_poll(struct vmem *v, uint64_t now)
{
	if (!v->up || v->broken)
		return;
	if (virtq_is_broken(v->s.vq)) {
		stop(v);
		return;
	}
	if (v->in_flight)
		reap(v, now);
	if (v->broken)
		return;
	read_config(v, now);
	for (unsigned step = 0; step < VMEM_STEPS_PER_POLL && !v->broken; step++) {
		if (v->in_flight && !reap(v, now))
			break;
		if (v->broken || v->in_flight || !submit_next(v, now))
			break;
	}
	if (v->in_flight && !v->stalled && now - v->sent_ns > v->s.params.ack_timeout_ns) {
		v->stalled = 1;
		v->last_outcome = VOUT_TIMEOUT;
		klog_ratelimited(&v->lim_stall, VMEM_LOG_INTERVAL_NS,
		                 "virtio-mem: device has not answered %s for %llu ms; waiting, nothing new is sent",
		                 vmem_req_name(v->req_type), (unsigned long long)((now - v->sent_ns) / NS_PER_MS));
	}
}

uint64_t vmem_next_poll(const struct vmem *v, uint64_t now)
{
	if (!v->up || v->broken)
		return UINT64_MAX;
	if (v->in_flight)
		return v->stalled ? UINT64_MAX : v->sent_ns + v->s.params.ack_timeout_ns + 1;
	if (v->resend_at_ns)
		return v->resend_at_ns;
	uint64_t target = target_blocks(v);
	int work = v->need_unplug_all || v->batch_pos < v->batch_n || v->n_plugged < target ||
	           (v->n_plugged > target && !v->unplug_held);
	if (v->cfg_fail_since_ns)
		return now + VMEM_BUSY_NS;
	if (!work)
		return vmem_stranded(v) ? max_u64(v->retry_at_ns, now + v->s.params.retry_ns) : UINT64_MAX;
	if (v->retry_at_ns > now)
		return v->retry_at_ns;
	if (v->rate_limited && v->s.params.rate_blocks_per_s)
		return now + NS_PER_S * v->sub / v->s.params.rate_blocks_per_s + 1;
	return now + VMEM_BUSY_NS;
}

void vmem_set_params(struct vmem *v, const struct vmem_params *p)
{
	struct vmem_params q = *p;
	vmem_params_defaults(&q);
	if (q.rate_blocks_per_s != v->s.params.rate_blocks_per_s)
		rate_forget(&v->rate);
	if (q.min_free_pages != v->s.params.min_free_pages) {
		v->retry_at_ns = 0;      /* a new attempt under the new floor */
		v->short_logged = 0;
	}
	v->s.params = q;
}

const struct vmem_params *vmem_get_params(const struct vmem *v) { return &v->s.params; }

enum vmem_state vmem_state(const struct vmem *v)
{
	if (!v->up)
		return VMEM_OFF;
	if (v->broken)
		return VMEM_BROKEN;
	if (v->stalled)
		return VMEM_STALLED;
	if (v->need_unplug_all)
		return VMEM_STARTING;
	uint64_t target = target_blocks(v);
	if (v->batch_pos < v->batch_n)
		return VMEM_UNPLUGGING;
	if (v->n_plugged < target)
		return VMEM_PLUGGING;
	if (v->n_plugged > target)
		return v->unplug_held ? VMEM_HELD : v->short_blocks ? VMEM_SHORT : VMEM_UNPLUGGING;
	if (v->hold != VHOLD_NONE && v->req_blocks != v->n_plugged)
		return VMEM_HELD;
	return VMEM_AT_TARGET;
}

uint64_t vmem_online_bytes(const struct vmem *v) { return v->up ? v->n_online * v->bs : 0; }

int vmem_block_plugged(const struct vmem *v, uint64_t idx) { return idx < v->nblocks && bit_get(v->plugged, idx); }
int vmem_block_online(const struct vmem *v, uint64_t idx) { return idx < v->nblocks && bit_get(v->online, idx); }
