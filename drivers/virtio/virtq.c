/*
 * virtq.c - split virtqueue, driver side. Contract in virtq.h.
 *
 * Bookkeeping lives in vq->st[], private to the driver: the free list, each
 * chain's links, lengths and token. The shared descriptor table is only
 * written, never read back, so a device scribbling on it cannot redirect
 * the driver. Device-written fields (used->idx, used->ring[]) are read once
 * each and validated before anything is freed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "drivers/virtio/virtq.h"
#include "drivers/virtio/barrier.h"
#include "klog.h"
#include "kernel/lib/fmt.h"

#define USED_PART_ALIGN 64  /* keep device-written memory off our cache lines */

static size_t align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

static size_t avail_off(uint16_t num) { return (size_t)num * sizeof(struct vring_desc); }
static size_t used_off(uint16_t num)
{
	/* avail: flags, idx, ring[num], used_event */
	return align_up(avail_off(num) + 4 + 2 * (size_t)num + 2, USED_PART_ALIGN);
}

size_t virtq_mem_size(uint16_t num)
{
	/* used: flags, idx, ring[num], avail_event */
	return used_off(num) + 4 + 8 * (size_t)num + 2;
}

/* The one line a broken queue gets, now or (quiet) at the next chance. */
static void flush_log(struct virtq *vq)
{
	if (!vq->log_pending || vq->quiet)
		return;
	vq->log_pending = 0;
	klog("virtq %s (queue %u): %s", vq->name, vq->index, vq->why);
}

static void __attribute__((format(printf, 2, 3)))
fail(struct virtq *vq, const char *fmt, ...)
{
	if (vq->broken)
		return;
	vq->broken = 1;
	char why[112];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	ksnprintf(vq->why, sizeof vq->why, "%s; queue disabled, %u buffers left with the device",
	         why, vq->heads_in_flight);
	vq->log_pending = 1;
	flush_log(vq);
}

void virtq_mark_broken(struct virtq *vq, const char *why)
{
	fail(vq, "%s", why);
}

void virtq_quiet(struct virtq *vq, int on)
{
	vq->quiet = on;
}

int virtq_init(struct virtq *vq, const char *name, uint16_t index, uint16_t num,
               void *mem, uint64_t mem_pa,
               void (*notify)(void *ctx, uint16_t index), void *notify_ctx)
{
	memset(vq, 0, sizeof *vq);
	vq->name = name;
	vq->index = index;
	if (num == 0 || num > VIRTQ_MAX_SIZE || (num & (num - 1))) {
		klog("virtq %s (queue %u): size %u is not a power of two in 1..%u",
		     name, index, num, VIRTQ_MAX_SIZE);
		vq->broken = 1;
		return -EINVAL;
	}
	if (!mem || (mem_pa & 4095)) {
		klog("virtq %s (queue %u): ring memory missing or not page aligned", name, index);
		vq->broken = 1;
		return -EINVAL;
	}
	vq->num = num;
	vq->desc = mem;
	vq->avail = (struct vring_avail *)((char *)mem + avail_off(num));
	vq->used = (struct vring_used *)((char *)mem + used_off(num));
	vq->desc_pa = mem_pa;
	vq->avail_pa = mem_pa + avail_off(num);
	vq->used_pa = mem_pa + used_off(num);
	memset(mem, 0, virtq_mem_size(num));

	for (uint16_t i = 0; i < num; i++)
		vq->st[i].next = (uint16_t)(i + 1);   /* last one's next is never used */
	vq->free_head = 0;
	vq->num_free = num;
	vq->notify = notify;
	vq->notify_ctx = notify_ctx;
	return 0;
}

int virtq_add(struct virtq *vq, const struct virtq_buf *bufs,
              unsigned n_out, unsigned n_in, void *token)
{
	unsigned n = n_out + n_in;
	flush_log(vq);
	if (vq->broken)
		return -EIO;
	if (n == 0 || !token)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (bufs[i].len == 0)
			return -EINVAL;
	if (n > vq->num_free)
		return -ENOSPC;

	uint16_t head = vq->free_head, d = head;
	uint32_t out_len = 0, in_len = 0;
	for (unsigned i = 0; i < n; i++) {
		int writable = i >= n_out;
		struct vring_desc *desc = &vq->desc[d];
		desc->addr = bufs[i].addr;
		desc->len = bufs[i].len;
		desc->flags = (uint16_t)((writable ? VRING_DESC_F_WRITE : 0) |
		                         (i + 1 < n ? VRING_DESC_F_NEXT : 0));
		desc->next = vq->st[d].next;   /* the free list already links them */
		if (writable)
			in_len += bufs[i].len;
		else
			out_len += bufs[i].len;
		d = vq->st[d].next;
	}
	vq->free_head = d;
	vq->num_free = (uint16_t)(vq->num_free - n);

	struct virtq_desc_state *hs = &vq->st[head];
	hs->token = token;
	hs->in_len = in_len;
	hs->out_len = out_len;
	hs->ndesc = (uint16_t)n;
	hs->head = 1;
	vq->heads_in_flight++;

	/* Descriptors must be visible before the ring entry that names them,
	 * and the entry before the index that publishes it. */
	VRING_WRITE(vq->avail->ring[vq->avail_idx & (vq->num - 1)], head);
	virtio_wmb();
	vq->avail_idx++;
	VRING_WRITE(vq->avail->idx, vq->avail_idx);
	vq->added_since_kick++;
	return 0;
}

int virtq_kick(struct virtq *vq)
{
	flush_log(vq);
	if (vq->broken || vq->added_since_kick == 0)
		return 0;
	vq->added_since_kick = 0;
	/* The idx store must be globally visible before we read the device's
	 * flags, or we could miss a device that just went to sleep. */
	virtio_mb();
	uint16_t flags = VRING_READ(vq->used->flags);
	if (flags & VRING_USED_F_NO_NOTIFY)
		return 0;
	if (vq->notify)
		vq->notify(vq->notify_ctx, vq->index);
	return 1;
}

int virtq_has_used(const struct virtq *vq)
{
	return !vq->broken && VRING_READ(vq->used->idx) != vq->last_used_idx;
}

/* Return a chain's descriptors to the free list. The links come from the
 * shadow state, which is exactly how virtq_add built the chain. */
static void free_chain(struct virtq *vq, uint16_t head)
{
	struct virtq_desc_state *hs = &vq->st[head];
	uint16_t last = head;
	for (uint16_t i = 1; i < hs->ndesc; i++)
		last = vq->st[last].next;
	vq->st[last].next = vq->free_head;
	vq->free_head = head;
	vq->num_free = (uint16_t)(vq->num_free + hs->ndesc);
	hs->token = NULL;
	hs->head = 0;
	hs->ndesc = 0;
	vq->heads_in_flight--;
}

void *virtq_get_used(struct virtq *vq, uint32_t *len)
{
	flush_log(vq);
	if (vq->broken)
		return NULL;
	uint16_t used_idx = VRING_READ(vq->used->idx);
	uint16_t pending = (uint16_t)(used_idx - vq->last_used_idx);
	if (pending == 0)
		return NULL;
	/* Each used entry completes one chain we made available, so more
	 * pending entries than chains in flight means idx jumped (or went
	 * backwards, which wraps to a huge distance). */
	if (pending > vq->heads_in_flight) {
		fail(vq, "used idx moved by %u with %u buffers in flight",
		     pending, vq->heads_in_flight);
		return NULL;
	}
	/* Read the entry only after seeing the index that published it. */
	virtio_rmb();
	struct vring_used_elem *e = &vq->used->ring[vq->last_used_idx & (vq->num - 1)];
	uint32_t id = VRING_READ(e->id);
	uint32_t ulen = VRING_READ(e->len);

	if (id >= vq->num) {
		fail(vq, "used id %u out of range (size %u)", id, vq->num);
		return NULL;
	}
	struct virtq_desc_state *hs = &vq->st[id];
	if (!hs->head) {
		fail(vq, "used id %u is not a buffer in flight (len %u)", id, ulen);
		return NULL;
	}
	/* len counts bytes written into the device-writable part. For chains
	 * without one, devices differ (QEMU's stats queue reports the bytes it
	 * read), so allow up to the readable size there. */
	uint32_t cap = hs->in_len ? hs->in_len : hs->out_len;
	if (ulen > cap) {
		fail(vq, "used len %u larger than the buffer (%u bytes)", ulen, cap);
		return NULL;
	}
	void *token = hs->token;
	vq->last_used_idx++;
	free_chain(vq, (uint16_t)id);
	if (len)
		*len = ulen;
	return token;
}

void *virtq_detach_unused(struct virtq *vq)
{
	for (uint16_t i = 0; i < vq->num; i++) {
		if (vq->st[i].head) {
			void *token = vq->st[i].token;
			free_chain(vq, i);
			return token;
		}
	}
	return NULL;
}
