/* fake_virtio_dev.c - simulated device side of a split virtqueue; see the header. */
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include "fake_virtio_dev.h"

static void driver_error(struct fake_vq *f, const char *what, unsigned a)
{
	f->driver_errors++;
	fprintf(stderr, "fake device: driver error: %s (%u)\n", what, a);
}

void fake_vq_clear(struct fake_vq *f)
{
	memset(f, 0, offsetof(struct fake_vq, held));
}

void fake_vq_attach(struct fake_vq *f, const struct virtq *vq, enum fake_mode mode)
{
	fake_vq_clear(f);
	/* phys == virt in host tests: the addresses the device is given are pointers */
	f->desc = (struct vring_desc *)(uintptr_t)vq->desc_pa;
	f->avail = (struct vring_avail *)(uintptr_t)vq->avail_pa;
	f->used = (struct vring_used *)(uintptr_t)vq->used_pa;
	f->num = vq->num;
	f->mode = mode;
}

void fake_vq_notify(void *ctx, uint16_t index)
{
	struct fake_vq *f = ctx;
	(void)index;
	f->notifies++;
	if (f->process_on_notify)
		fake_vq_process(f);
}

static void push_used(struct fake_vq *f, uint32_t id, uint32_t len)
{
	struct vring_used_elem *u = &f->used->ring[f->used_idx % f->num];
	u->id = id;
	u->len = len;
	__asm__ __volatile__("" ::: "memory");
	f->used_idx++;
	f->used->idx = f->used_idx;
}

static int pop_one(struct fake_vq *f, struct fake_elem *e)
{
	uint16_t head = f->avail->ring[f->last_avail % f->num];
	f->last_avail++;
	memset(e, 0, sizeof *e);
	e->head = head;
	if (head >= f->num) {
		driver_error(f, "avail head out of range", head);
		return -1;
	}
	if (f->outstanding[head]) {
		driver_error(f, "head made available twice", head);
		return -1;
	}
	uint16_t d = head;
	for (;;) {
		if (d >= f->num) {
			driver_error(f, "descriptor index out of range", d);
			return -1;
		}
		if (e->nseg >= FAKE_MAX_SEGS || e->nseg >= f->num) {
			driver_error(f, "chain too long or looping", e->nseg);
			return -1;
		}
		struct vring_desc *desc = &f->desc[d];
		int w = !!(desc->flags & VRING_DESC_F_WRITE);
		if (!w && e->in_bytes) {
			driver_error(f, "readable descriptor after a writable one", d);
			return -1;
		}
		if (desc->len == 0)
			driver_error(f, "zero-length descriptor", d);
		e->seg[e->nseg++] = (struct fake_seg){ desc->addr, desc->len, w };
		if (w)
			e->in_bytes += desc->len;
		else
			e->out_bytes += desc->len;
		if (!(desc->flags & VRING_DESC_F_NEXT))
			break;
		d = desc->next;
	}
	f->outstanding[head] = 1;
	f->popped++;
	e->used_len = f->on_elem ? f->on_elem(f, e, f->ctx) : 0;
	return 0;
}

unsigned fake_vq_process(struct fake_vq *f)
{
	unsigned n = 0;
	uint16_t avail_idx = f->avail->idx;
	if ((uint16_t)(avail_idx - f->last_avail) > f->num) {
		driver_error(f, "avail idx ran ahead by more than the queue size",
		             (uint16_t)(avail_idx - f->last_avail));
		return 0;
	}
	while (f->last_avail != avail_idx) {
		struct fake_elem e;
		if (pop_one(f, &e) != 0)
			continue;
		n++;
		if (f->mode == FAKE_ACK) {
			f->outstanding[e.head] = 0;
			push_used(f, e.head, e.used_len);
			f->completed++;
		} else {
			f->held[f->nheld++] = e;
		}
	}
	return n;
}

void fake_vq_complete_at(struct fake_vq *f, unsigned i)
{
	if (i >= f->nheld)
		return;
	struct fake_elem e = f->held[i];
	memmove(&f->held[i], &f->held[i + 1], (f->nheld - i - 1) * sizeof f->held[0]);
	f->nheld--;
	f->outstanding[e.head] = 0;
	push_used(f, e.head, e.used_len);
	f->completed++;
}

unsigned fake_vq_complete(struct fake_vq *f, unsigned n)
{
	unsigned done = 0;
	while (done < n && f->nheld) {
		fake_vq_complete_at(f, 0);
		done++;
	}
	return done;
}

void fake_vq_push_raw(struct fake_vq *f, uint32_t id, uint32_t len)
{
	push_used(f, id, len);
}

void fake_vq_set_used_idx(struct fake_vq *f, uint16_t idx)
{
	f->used_idx = idx;
	f->used->idx = idx;
}

void fake_vq_set_no_notify(struct fake_vq *f, int on)
{
	f->used->flags = on ? VRING_USED_F_NO_NOTIFY : 0;
}
