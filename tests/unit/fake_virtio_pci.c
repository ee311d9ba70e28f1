/* fake_virtio_pci.c - simulated virtio-pci modern device; see the header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_virtio_pci.h"

static void order_error(struct fake_vpci *f, const char *what)
{
	f->order_errors++;
	fprintf(stderr, "fake virtio-pci: order error: %s (status 0x%x)\n", what, f->status);
}

void fake_vpci_init(struct fake_vpci *f)
{
	memset(f, 0, sizeof *f);
	f->host_features = (1ull << 32) | (1ull << 1) | (1ull << 4) | (1ull << 28) | (1ull << 29);
	f->num_queues = 3;
	f->qmax[0] = f->qmax[1] = f->qmax[2] = 128;
	for (unsigned i = 0; i < FVP_QUEUES; i++)
		f->qnoff[i] = (uint16_t)i;
	f->notify_len = 0x1000;
	f->notify_mult = 4;
}

void fake_vpci_free(struct fake_vpci *f)
{
	for (unsigned i = 0; i < f->dma_allocs && i < 16; i++)
		free(f->dma[i]);
}

void fake_vpci_attach(struct fake_vpci *f, struct vp_dev *vp)
{
	memset(vp, 0, sizeof *vp);
	vp->name = "fake-virtio";
	vp->io = &fake_vpci_io;
	vp->ctx = f;
	vp->r[VP_COMMON] = (struct vp_region){ 4, 0x0000, 0x1000, NULL };
	vp->r[VP_ISR] = (struct vp_region){ 4, 0x1000, 0x1000, NULL };
	vp->r[VP_DEVICE] = (struct vp_region){ 4, 0x2000, 0x1000, NULL };
	vp->r[VP_NOTIFY] = (struct vp_region){ 4, 0x3000, f->notify_len, NULL };
	vp->notify_mult = f->notify_mult;
}

static void reset(struct fake_vpci *f)
{
	f->status = 0;
	f->driver_features = 0;
	f->isr = 0;
	memset(f->q, 0, sizeof f->q);
}

static uint32_t common_read(struct fake_vpci *f, uint32_t off)
{
	uint16_t s = f->qsel;
	int qok = s < FVP_QUEUES && s < f->num_queues;
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: return f->dfselect;
	case VIRTIO_PCI_COMMON_DF:
		return f->dfselect == 0 ? (uint32_t)f->host_features :
		       f->dfselect == 1 ? (uint32_t)(f->host_features >> 32) : 0;
	case VIRTIO_PCI_COMMON_GFSELECT: return f->gfselect;
	case VIRTIO_PCI_COMMON_NUMQ: return f->num_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return f->reset_stuck ? 0x1 : f->status;
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		if (f->gen_changes_left) {
			f->gen_changes_left--;
			f->gen++;
		}
		return f->gen;
	case VIRTIO_PCI_COMMON_Q_SELECT: return f->qsel;
	case VIRTIO_PCI_COMMON_Q_SIZE: return qok ? (f->q[s].size ? f->q[s].size : f->qmax[s]) : 0;
	case VIRTIO_PCI_COMMON_Q_ENABLE: return qok ? f->q[s].enable : 0;
	case VIRTIO_PCI_COMMON_Q_NOFF: return qok ? f->qnoff[s] : 0;
	case VIRTIO_PCI_COMMON_Q_MSIX: return qok ? f->q[s].msix : 0xffff;
	default: return 0;
	}
}

static void set64(uint64_t *field, uint32_t off, uint32_t v)
{
	if (off & 4)
		*field = (*field & 0xffffffffull) | (uint64_t)v << 32;
	else
		*field = (*field & ~0xffffffffull) | v;
}

static void common_write(struct fake_vpci *f, uint32_t off, uint32_t v)
{
	uint16_t s = f->qsel;
	int qok = s < FVP_QUEUES && s < f->num_queues;
	int queue_reg = off >= VIRTIO_PCI_COMMON_Q_SIZE && off != VIRTIO_PCI_COMMON_Q_NOFF;
	if (queue_reg && !(f->status & 0x8))
		order_error(f, "queue register written before FEATURES_OK");
	if (queue_reg && (f->status & 0x4))
		order_error(f, "queue register written after DRIVER_OK");
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: f->dfselect = v; break;
	case VIRTIO_PCI_COMMON_GFSELECT: f->gfselect = v; break;
	case VIRTIO_PCI_COMMON_GF:
		if (f->status & 0x8)
			order_error(f, "features written after FEATURES_OK");
		if (!(f->status & 0x2))
			order_error(f, "features written before DRIVER");
		if (f->gfselect == 0)
			f->driver_features = (f->driver_features & ~0xffffffffull) | v;
		else if (f->gfselect == 1)
			f->driver_features = (f->driver_features & 0xffffffffull) | (uint64_t)v << 32;
		break;
	case VIRTIO_PCI_COMMON_STATUS: {
		uint8_t nv = (uint8_t)v;
		if (f->nstatus < sizeof f->status_log)
			f->status_log[f->nstatus++] = nv;
		if (nv == 0) {
			reset(f);
			break;
		}
		if ((nv & 0x8) && !(f->status & 0x8)) {
			/* accept only a subset of what we offer, and VERSION_1 */
			if (f->refuse_features_ok || (f->driver_features & ~f->host_features) ||
			    !(f->driver_features & (1ull << 32)))
				nv &= (uint8_t)~0x8;
		}
		if ((nv & 0x4) && !(nv & 0x8) && !(nv & 0x80))
			order_error(f, "DRIVER_OK without FEATURES_OK");
		f->status = nv;
		break;
	}
	case VIRTIO_PCI_COMMON_Q_SELECT: f->qsel = (uint16_t)v; break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (qok) {
			if (v > f->qmax[s] || (v & (v - 1)))
				order_error(f, "queue size larger than offered or not a power of two");
			f->q[s].size = (uint16_t)v;
		}
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX: if (qok) f->q[s].msix = (uint16_t)v; break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (qok) {
			if (!f->q[s].desc || !f->q[s].avail || !f->q[s].used)
				order_error(f, "queue enabled before its addresses were written");
			f->q[s].enable = (uint16_t)v;
		}
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO: case VIRTIO_PCI_COMMON_Q_DESCHI:
		if (qok) set64(&f->q[s].desc, off, v);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: case VIRTIO_PCI_COMMON_Q_AVAILHI:
		if (qok) set64(&f->q[s].avail, off, v);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO: case VIRTIO_PCI_COMMON_Q_USEDHI:
		if (qok) set64(&f->q[s].used, off, v);
		break;
	default: break;
	}
}

static uint32_t fv_read(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned width)
{
	struct fake_vpci *f = vp->ctx;
	switch (r) {
	case VP_COMMON: return common_read(f, off);
	case VP_ISR: { uint8_t v = f->isr; f->isr = 0; return v; }
	case VP_DEVICE: {
		uint32_t v = 0;
		if (off + width <= sizeof f->devcfg)
			memcpy(&v, f->devcfg + off, width);
		return v;
	}
	default: return 0;
	}
}

static void fv_write(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned width, uint32_t v)
{
	struct fake_vpci *f = vp->ctx;
	switch (r) {
	case VP_COMMON: common_write(f, off, v); break;
	case VP_NOTIFY:
		if (width != 2 || off % f->notify_mult || v >= FVP_QUEUES || off / f->notify_mult != f->qnoff[v])
			order_error(f, "notify write at the wrong place or width");
		else
			f->notifies[v]++;
		break;
	case VP_DEVICE:
		if (off + width <= sizeof f->devcfg)
			memcpy(f->devcfg + off, &v, width);
		break;
	default: break;
	}
}

static void *fv_dma_alloc(struct vp_dev *vp, size_t bytes, uint64_t *pa)
{
	struct fake_vpci *f = vp->ctx;
	size_t sz = (bytes + 4095) & ~(size_t)4095;
	void *p = aligned_alloc(4096, sz);
	memset(p, 0, sz);
	if (f->dma_allocs < 16)
		f->dma[f->dma_allocs] = p;
	f->dma_allocs++;
	*pa = (uint64_t)(uintptr_t)p;
	return p;
}

const struct vp_io fake_vpci_io = { fv_read, fv_write, fv_dma_alloc };
