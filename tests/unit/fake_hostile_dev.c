/* fake_hostile_dev.c - simulated virtio-balloon PCI device with a host view; see the header. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_hostile_dev.h"
#include "host_support.h"

static int honest(const struct hdev *d) { return !(d->lied && d->tolerate_lies); }

static void __attribute__((format(printf, 2, 3))) proto_err(struct hdev *d, const char *fmt, ...)
{
	if (!honest(d))
		return;
	if (!d->protocol_errors) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->first_error, sizeof d->first_error, fmt, ap);
		va_end(ap);
	}
	d->protocol_errors++;
}

static uint64_t rnd(struct hdev *d) { return rng_next(&d->rng); }

static int live(const struct hdev *d)
{
	uint8_t s = d->pci.status;
	return !d->gone && (s & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(s & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED));
}

/* ------------------------------------------------------------ host view */

static void set_host(struct hdev *d, uint64_t pfn, uint8_t v)
{
	uint8_t *h = &d->host[pfn - d->base_pfn];
	if (*h == HOST_NONE && v != HOST_NONE)
		d->host_inflated++;
	else if (*h != HOST_NONE && v == HOST_NONE)
		d->host_inflated--;
	*h = v;
}

/* The PFN arrays are device-readable, but nothing stops a hostile device
 * from writing them once it is done with an element. */
static void scribble(struct hdev *d, const struct fake_elem *e)
{
	if (!d->scribble_pfns)
		return;
	for (unsigned s = 0; s < e->nseg; s++) {
		uint32_t *pfns = (uint32_t *)(uintptr_t)e->seg[s].addr;
		for (uint32_t k = 0; k < e->seg[s].len / 4; k++)
			pfns[k] = (uint32_t)rnd(d);
	}
}

static uint32_t balloon_elem(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct hdev *d = ctx;
	int inflate = d->role[f - d->vq] == HD_ROLE_INFLATE;
	d->elems_seen[!inflate]++;
	for (unsigned s = 0; s < e->nseg; s++) {
		if (e->seg[s].writable)
			proto_err(d, "device-writable descriptor on the %s queue", inflate ? "inflate" : "deflate");
		if (e->seg[s].len % 4 || e->seg[s].len > 1024)
			proto_err(d, "descriptor of %u bytes (not a multiple of 4, or above 1 KiB)", e->seg[s].len);
		uint32_t *pfns = (uint32_t *)(uintptr_t)e->seg[s].addr;
		for (uint32_t k = 0; k < e->seg[s].len / 4; k++) {
			uint64_t pfn = pfns[k];
			if (pfn < d->base_pfn || pfn >= d->end_pfn) {
				proto_err(d, "PFN 0x%llx outside guest RAM", (unsigned long long)pfn);
				continue;
			}
			uint8_t h = d->host[pfn - d->base_pfn];
			if (inflate) {
				if (h != HOST_NONE)
					proto_err(d, "PFN 0x%llx inflated while already in the balloon", (unsigned long long)pfn);
				set_host(d, pfn, HOST_INFLATED);
				if (honest(d))
					fake_mem_device_discard(d->mem, pfn);
			} else {
				if (h != HOST_INFLATED)
					proto_err(d, "deflate of PFN 0x%llx, which is not inflated", (unsigned long long)pfn);
				/* reusable once the element is completed: at once in ACK mode */
				set_host(d, pfn, f->mode == FAKE_ACK ? HOST_NONE : HOST_DEFLATING);
			}
		}
	}
	if (f->mode == FAKE_ACK)
		scribble(d, e);
	return 0;   /* QEMU reports 0 bytes written on inflate/deflate */
}

/* Free page reporting: whole isolated blocks the device may discard. */
static uint32_t report_elem(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct hdev *d = ctx;
	d->reports_seen++;
	for (unsigned s = 0; s < e->nseg; s++) {
		uint64_t addr = e->seg[s].addr, len = e->seg[s].len;
		if (!e->seg[s].writable)
			proto_err(d, "device-readable descriptor on the reporting queue");
		if (addr % (2u << 20) || len % (2u << 20) || !len) {
			proto_err(d, "reported range 0x%llx+0x%llx is not whole 2 MiB blocks",
			          (unsigned long long)addr, (unsigned long long)len);
			continue;
		}
		for (uint64_t pfn = addr >> 12; pfn < (addr + len) >> 12; pfn++) {
			if (pfn < d->base_pfn || pfn >= d->end_pfn) {
				proto_err(d, "reported PFN 0x%llx outside guest RAM", (unsigned long long)pfn);
				break;
			}
			if (d->host[pfn - d->base_pfn] != HOST_NONE)
				proto_err(d, "reported PFN 0x%llx is in the balloon or reported twice",
				          (unsigned long long)pfn);
			if (f->mode != FAKE_ACK)
				set_host(d, pfn, HOST_REPORTING);
			if (honest(d))
				fake_mem_device_report(d->mem, pfn);
		}
	}
	return 0;   /* QEMU pushes reported elements with len 0 */
}

static uint32_t stats_elem(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	struct hdev *d = ctx;
	(void)f;
	d->stats_seen++;
	return e->out_bytes;   /* QEMU reports the bytes it read */
}

/* ------------------------------------------------------------ queues */

static void attach(struct hdev *d, int q)
{
	struct fake_vq *f = &d->vq[q];
	fake_vq_clear(f);
	f->desc = (struct vring_desc *)(uintptr_t)d->pci.q[q].desc;
	f->avail = (struct vring_avail *)(uintptr_t)d->pci.q[q].avail;
	f->used = (struct vring_used *)(uintptr_t)d->pci.q[q].used;
	f->num = d->pci.q[q].size;
	f->mode = d->mode[q];
	f->on_elem = d->role[q] == HD_ROLE_STATS ? stats_elem : d->role[q] == HD_ROLE_REPORT ? report_elem :
	             balloon_elem;
	f->ctx = d;
	d->attached[q] = d->role[q] != HD_ROLE_NONE && d->role[q] != HD_ROLE_HINT &&
	                 f->num && f->desc && f->avail && f->used;
}

/* QEMU, Linux and Firecracker number the queues consecutively from the
 * offered features, skipping absent ones. */
static void set_roles(struct hdev *d)
{
	uint64_t f = d->pci.host_features;
	int q = 0;
	memset(d->role, HD_ROLE_NONE, sizeof d->role);
	d->role[q++] = HD_ROLE_INFLATE;
	d->role[q++] = HD_ROLE_DEFLATE;
	if (f & (1ull << VIRTIO_BALLOON_F_STATS_VQ))
		d->role[q++] = HD_ROLE_STATS;
	if (f & (1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT))
		d->role[q++] = HD_ROLE_HINT;
	if (f & (1ull << VIRTIO_BALLOON_F_REPORTING))
		d->role[q++] = HD_ROLE_REPORT;
}

int hdev_queue(const struct hdev *d, int role)
{
	for (int q = 0; q < HD_NQ; q++)
		if (d->role[q] == role)
			return q;
	return -1;
}

static void forget_everything(struct hdev *d)
{
	memset(d->attached, 0, sizeof d->attached);
	for (int q = 0; q < HD_NQ; q++)
		fake_vq_clear(&d->vq[q]);
	memset(d->host, 0, d->end_pfn - d->base_pfn);
	d->host_inflated = 0;
}

static void on_driver_ok(struct hdev *d)
{
	d->driver_oks++;
	set_roles(d);
	for (int q = 0; q < HD_NQ; q++)
		if (q < d->pci.num_queues && d->pci.q[q].enable)
			attach(d, q);
	if (d->needs_reset_every_init)
		hdev_raise_needs_reset(d);
}

/* Used buffers published: the queue bit of the ISR (the INTx line rises). */
static void used_moved(struct hdev *d, int q, uint16_t before)
{
	if (d->attached[q] && d->vq[q].used && d->vq[q].used->idx != before)
		d->pci.isr |= VIRTIO_PCI_ISR_QUEUE;
}

static uint16_t used_idx(const struct hdev *d, int q)
{
	return d->attached[q] && d->vq[q].used ? d->vq[q].used->idx : 0;
}

static void serve(struct hdev *d, int q)
{
	if (live(d) && d->attached[q]) {
		uint16_t before = used_idx(d, q);
		fake_vq_process(&d->vq[q]);
		used_moved(d, q, before);
	}
}

void hdev_run(struct hdev *d)
{
	for (int q = 0; q < HD_NQ; q++)
		serve(d, q);
}

/* A held element is about to be published as used: a deflated frame is
 * the guest's again from here. */
static void completing(struct hdev *d, int q, const struct fake_elem *e)
{
	if (d->role[q] == HD_ROLE_DEFLATE)
		for (unsigned s = 0; s < e->nseg; s++) {
			const uint32_t *pfns = (const uint32_t *)(uintptr_t)e->seg[s].addr;
			for (uint32_t k = 0; k < e->seg[s].len / 4; k++)
				if (pfns[k] >= d->base_pfn && pfns[k] < d->end_pfn &&
				    d->host[pfns[k] - d->base_pfn] == HOST_DEFLATING)
					set_host(d, pfns[k], HOST_NONE);
		}
	if (d->role[q] == HD_ROLE_REPORT)
		for (unsigned s = 0; s < e->nseg; s++)
			for (uint64_t p = e->seg[s].addr >> 12; p < (e->seg[s].addr + e->seg[s].len) >> 12; p++)
				if (p >= d->base_pfn && p < d->end_pfn && d->host[p - d->base_pfn] == HOST_REPORTING)
					set_host(d, p, HOST_NONE);
	if (d->role[q] == HD_ROLE_INFLATE || d->role[q] == HD_ROLE_DEFLATE)
		scribble(d, e);
}

unsigned hdev_complete(struct hdev *d, int q, unsigned n)
{
	struct fake_vq *f = &d->vq[q];
	unsigned done = 0;
	if (!d->attached[q])
		return 0;
	uint16_t before = used_idx(d, q);
	while (done < n && f->nheld) {
		completing(d, q, &f->held[0]);
		fake_vq_complete_at(f, 0);
		done++;
	}
	used_moved(d, q, before);
	return done;
}

void hdev_push_raw(struct hdev *d, int q, uint32_t id, uint32_t len)
{
	struct fake_vq *f = &d->vq[q];
	if (!d->attached[q])
		return;
	for (unsigned i = 0; i < f->nheld; i++) {
		if (f->held[i].head != id)
			continue;
		completing(d, q, &f->held[i]);
		memmove(&f->held[i], &f->held[i + 1], (f->nheld - i - 1) * sizeof f->held[0]);
		f->nheld--;
		f->outstanding[id] = 0;
		fake_vq_push_raw(f, id, len);
		f->completed++;
		d->pci.isr |= VIRTIO_PCI_ISR_QUEUE;
		return;
	}
	d->lied = 1;
	fake_vq_push_raw(f, id, len);
	d->pci.isr |= VIRTIO_PCI_ISR_QUEUE;
}

void hdev_set_used_idx(struct hdev *d, int q, uint16_t idx)
{
	if (!d->attached[q])
		return;
	d->lied = 1;
	fake_vq_set_used_idx(&d->vq[q], idx);
	d->pci.isr |= VIRTIO_PCI_ISR_QUEUE;
}

void hdev_set_mode(struct hdev *d, int q, enum fake_mode mode)
{
	d->mode[q] = mode;
	d->vq[q].mode = mode;
}

/* ------------------------------------------------------------ registers */

static uint32_t all_ones(unsigned w)
{
	return w == 4 ? 0xffffffffu : w == 2 ? 0xffffu : 0xffu;
}

static uint32_t device_read(struct hdev *d, struct vp_dev *vp, enum vp_region_id r, uint32_t off,
                            unsigned w);

static uint32_t hd_read(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned w)
{
	struct hdev *d = vp->ctx;
	if (d->ns_per_read)
		host_clock_advance(d->ns_per_read);
	if (d->gone)
		return all_ones(w);
	uint32_t v = device_read(d, vp, r, off, w);
	if (d->read_hook) {
		uint32_t h = d->read_hook(d->hook_ctx, r, off, w, v);
		v = r == VP_COMMON && off == VIRTIO_PCI_COMMON_STATUS ? v | h : h;
	}
	return v;
}

static uint32_t device_read(struct hdev *d, struct vp_dev *vp, enum vp_region_id r, uint32_t off,
                            unsigned w)
{
	if (r == VP_DEVICE) {
		d->config_reads++;
		if (d->flip_target && off == VIRTIO_BALLOON_CFG_NUM_PAGES && w == 4) {
			/* small, plausible, larger than RAM, or absurd: a new one every read */
			uint64_t x = rnd(d);
			uint64_t ram = d->end_pfn - d->base_pfn;
			switch (x % 4) {
			case 0: return (uint32_t)((x >> 8) % (ram / 4 + 1));
			case 1: return (uint32_t)((x >> 8) % (ram + 1));
			case 2: return (uint32_t)(ram + (x >> 8) % (ram + 1));
			default: return (uint32_t)(x >> 32);
			}
		}
	}
	return fake_vpci_io.read(vp, r, off, w);
}

static void hd_write(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned w, uint32_t v)
{
	struct hdev *d = vp->ctx;
	if (d->gone)
		return;
	int status = r == VP_COMMON && off == VIRTIO_PCI_COMMON_STATUS;
	uint8_t before = d->pci.status;
	if (status && (uint8_t)v == 0 && d->reset_stuck) {
		d->resets++;     /* ignored: status keeps reading what it was */
		return;
	}
	fake_vpci_io.write(vp, r, off, w, v);
	if (status && (uint8_t)v == 0) {
		d->resets++;
		if (!d->pci.reset_stuck) {
			/* a confirmed reset: the device lets go of every buffer */
			d->resets_confirmed++;
			forget_everything(d);
		}
	} else if (status && (d->pci.status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	           !(before & VIRTIO_CONFIG_S_DRIVER_OK)) {
		on_driver_ok(d);
	}
	if (r == VP_NOTIFY && d->process_on_notify && v < HD_NQ)
		serve(d, (int)v);
}

static void *hd_dma_alloc(struct vp_dev *vp, size_t bytes, uint64_t *pa)
{
	struct hdev *d = vp->ctx;
	if (d->ndma >= HD_MAX_DMA)
		return NULL;
	size_t sz = (bytes + 4095) & ~(size_t)4095;
	void *p = host_keep_alloc(sz);
	if (!p)
		return NULL;
	d->dma_bytes[d->ndma] = sz;
	d->dma[d->ndma++] = p;
	*pa = (uint64_t)(uintptr_t)p;   /* phys == virt in host tests */
	return p;
}

const struct vp_io hdev_io = { hd_read, hd_write, hd_dma_alloc };

/* ------------------------------------------------------------ set-up and knobs */

void hdev_init(struct hdev *d, struct fake_mem *mem, uint64_t seed)
{
	memset(d, 0, offsetof(struct hdev, vq));
	for (int q = 0; q < HD_NQ; q++)
		fake_vq_clear(&d->vq[q]);
	fake_vpci_init(&d->pci);
	d->mem = mem;
	d->base_pfn = mem->base_pfn;
	d->end_pfn = mem->base_pfn + mem->npages;
	d->host = host_keep_alloc(mem->npages);
	d->process_on_notify = 1;
	rng_seed(&d->rng, seed ? seed : 0x2545f4914f6cdd1dull);
	for (int q = 0; q < HD_NQ; q++)
		d->mode[q] = FAKE_ACK;
	set_roles(d);
	d->mode[HD_STATS] = FAKE_HOLD;   /* the host keeps the stats buffer, like QEMU */
	mem->device_holds = hdev_holds;
	mem->dctx = d;
}

void hdev_destroy(struct hdev *d)
{
	for (unsigned i = 0; i < d->ndma; i++)
		host_keep_free(d->dma[i], d->dma_bytes[i]);
	host_keep_free(d->host, d->end_pfn - d->base_pfn);
	if (d->mem && d->mem->dctx == d)
		d->mem->device_holds = NULL;
	memset(d, 0, offsetof(struct hdev, vq));
	for (int q = 0; q < HD_NQ; q++)
		fake_vq_clear(&d->vq[q]);
}

void hdev_attach_vp(struct hdev *d, struct vp_dev *vp, const char *name)
{
	fake_vpci_attach(&d->pci, vp);
	vp->io = &hdev_io;
	vp->ctx = d;
	vp->name = name;
}

/* A configuration change: the config bit of the ISR (the line rises). */
void hdev_set_target(struct hdev *d, uint32_t num_pages)
{
	memcpy(d->pci.devcfg + VIRTIO_BALLOON_CFG_NUM_PAGES, &num_pages, 4);
	d->pci.isr |= VIRTIO_PCI_ISR_CONFIG;
}

uint32_t hdev_actual(const struct hdev *d)
{
	uint32_t v;
	memcpy(&v, d->pci.devcfg + VIRTIO_BALLOON_CFG_ACTUAL, 4);
	return v;
}

/* The spec: the device sets DEVICE_NEEDS_RESET and sends a configuration
 * change notification. */
void hdev_raise_needs_reset(struct hdev *d)
{
	d->pci.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	d->pci.isr |= VIRTIO_PCI_ISR_CONFIG;
}

void hdev_self_reset(struct hdev *d)
{
	d->pci.status = 0;
	memset(d->pci.q, 0, sizeof d->pci.q);
	forget_everything(d);
}

uint64_t hdev_host_pages(const struct hdev *d)
{
	return d->host_inflated;
}

/* Does the device still know a frame of [pfn, pfn + count) from an inflate
 * or report element it has not popped yet? Read the rings as it would. */
static int pending_has(struct hdev *d, int q, uint64_t pfn, uint64_t count)
{
	if (q < 0 || !d->attached[q])
		return 0;
	struct fake_vq *f = &d->vq[q];
	int report = d->role[q] == HD_ROLE_REPORT;
	uint16_t idx = f->avail->idx;
	unsigned n = 0;
	for (uint16_t a = f->last_avail; a != idx && n < f->num; a++, n++) {
		uint16_t head = f->avail->ring[a % f->num];
		for (unsigned i = 0, dsc = head; i < f->num && dsc < f->num; i++) {
			const struct vring_desc *desc = &f->desc[dsc];
			if (report) {
				uint64_t lo = desc->addr >> 12, hi = (desc->addr + desc->len) >> 12;
				if (lo < pfn + count && pfn < hi)
					return 1;
			} else {
				const uint32_t *pfns = (const uint32_t *)(uintptr_t)desc->addr;
				for (uint32_t k = 0; k < desc->len / 4; k++)
					if (pfns[k] >= pfn && pfns[k] < pfn + count)
						return 1;
			}
			if (!(desc->flags & VRING_DESC_F_NEXT))
				break;
			dsc = desc->next;
		}
	}
	return 0;
}

int hdev_holds(void *ctx, uint64_t pfn, uint64_t count)
{
	struct hdev *d = ctx;
	if (!honest(d))
		return 0;
	for (uint64_t p = pfn; p < pfn + count; p++)
		if (p >= d->base_pfn && p < d->end_pfn && d->host[p - d->base_pfn] != HOST_NONE)
			return 1;
	return pending_has(d, hdev_queue(d, HD_ROLE_INFLATE), pfn, count) ||
	       pending_has(d, hdev_queue(d, HD_ROLE_REPORT), pfn, count);
}
