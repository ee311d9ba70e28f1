/*
 * virtio_pci.c - virtio 1.x PCI transport logic; contract in virtio_pci.h.
 * Every register access goes through vp->io.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "kclock.h"
#include "klog.h"
#include "drivers/virtio/virtio_pci.h"
#include "kernel/lib/fmt.h"

static uint32_t rd(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned w)
{
	return vp->io->read(vp, r, off, w);
}

static void wr(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned w, uint32_t v)
{
	vp->io->write(vp, r, off, w, v);
}

void vp_fail(struct vp_dev *vp, const char *fmt, ...)
{
	char why[160];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (vp->r[VP_COMMON].length) {
		uint8_t st = (uint8_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_STATUS, 1);
		wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_STATUS, 1, st | VIRTIO_CONFIG_S_FAILED);
	}
	if (!vp->failed)
		klog("%s: %s; device marked FAILED", vp->name, why);
	vp->failed = 1;
}

/* ------------------------------------------------------------ capabilities */

int vp_parse_caps(struct vp_dev *vp, const struct pci_dev *pd)
{
	static const uint32_t min_len[VP_NREGIONS] = {
		[VP_COMMON] = VIRTIO_PCI_COMMON_CFG_MIN, [VP_NOTIFY] = 2, [VP_ISR] = 1, [VP_DEVICE] = 0,
	};
	static const uint8_t type_of[VP_NREGIONS] = {
		[VP_COMMON] = VIRTIO_PCI_CAP_COMMON_CFG, [VP_NOTIFY] = VIRTIO_PCI_CAP_NOTIFY_CFG,
		[VP_ISR] = VIRTIO_PCI_CAP_ISR_CFG, [VP_DEVICE] = VIRTIO_PCI_CAP_DEVICE_CFG,
	};
	int found[VP_NREGIONS] = { 0 };
	/* Each pci_find_cap call is bounded, but a cyclic list would hand this
	 * walk the same capabilities forever: bound the walk by how many
	 * capabilities config space can hold. */
	unsigned steps = 0;
	for (uint16_t cap = pci_find_cap(pd, PCI_CAP_ID_VNDR, 0); cap;
	     cap = pci_find_cap(pd, PCI_CAP_ID_VNDR, cap)) {
		if (++steps > PCI_MAX_CAPS) {
			klog("%s: capability list does not end (loop?); using what was found before",
			     vp->name);
			break;
		}
		/* A virtio capability is 16 bytes (20 for notify), all of it inside
		 * the 256-byte capability area: one placed at its very end is not
		 * read past it. */
		if (cap > 256 - 16)
			continue;
		uint8_t cap_len = (uint8_t)pci_read(pd, cap + 2, 1);
		uint8_t type = (uint8_t)pci_read(pd, cap + 3, 1);
		uint8_t bar = (uint8_t)pci_read(pd, cap + 4, 1);
		uint32_t offset = pci_read(pd, cap + 8, 4);
		uint32_t length = pci_read(pd, cap + 12, 4);
		for (int r = 0; r < VP_NREGIONS; r++) {
			if (type != type_of[r] || found[r])
				continue;
			/* The spec says to skip capabilities we cannot use and take the
			 * next one of the same type, so a bad one is not fatal yet. */
			if (cap_len < 16 || (r == VP_NOTIFY && (cap_len < 20 || cap > 256 - 20)) || bar > 5)
				continue;
			const struct pci_bar *b = &pd->bar[bar];
			if (!b->size || b->io || !b->addr || length < min_len[r] ||
			    (uint64_t)offset + length > b->size)
				continue;
			vp->r[r].bar = bar;
			vp->r[r].offset = offset;
			vp->r[r].length = length;
			if (r == VP_NOTIFY)
				vp->notify_mult = pci_read(pd, cap + 16, 4);
			found[r] = 1;
		}
	}
	static const char *const names[VP_NREGIONS] = { "common", "notify", "ISR", "device" };
	for (int r = 0; r < VP_NREGIONS; r++) {
		if (!found[r]) {
			klog("%s: no usable %s config capability (legacy-only device or bad BAR); not using it",
			     vp->name, names[r]);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ init order */

uint8_t vp_status(struct vp_dev *vp)
{
	return (uint8_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void add_status(struct vp_dev *vp, uint8_t bits)
{
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_STATUS, 1, vp_status(vp) | bits);
}

int vp_reset(struct vp_dev *vp)
{
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	/* The reset is done when status reads back 0 (spec 4.1.4.3.2). */
	uint64_t t0 = clock_ns();
	for (unsigned long spins = 0; vp_status(vp) != 0; spins++) {
		/* time bound in the kernel; the spin bound keeps a frozen (test)
		 * clock from hanging here */
		if (clock_ns() - t0 > VP_RESET_TIMEOUT_NS || spins > VP_RESET_SPINS) {
			klog("%s: reset did not complete within %llu ms (status 0x%x); not using it", vp->name,
			     (unsigned long long)(VP_RESET_TIMEOUT_NS / 1000000), vp_status(vp));
			vp->failed = 1;
			return -1;
		}
	}
	return 0;
}

int vp_begin(struct vp_dev *vp)
{
	vp->queue_vector = VIRTIO_MSI_NO_VECTOR;   /* polled until the caller routes MSI-X */
	vp->failed = 0;
	vp->health_logged = VP_HEALTHY;
	if (vp_reset(vp) != 0)
		return -1;
	add_status(vp, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	add_status(vp, VIRTIO_CONFIG_S_DRIVER);
	vp->num_queues = (uint16_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_NUMQ, 2);
	return 0;
}

const char *vp_health_name(enum vp_health h)
{
	switch (h) {
	case VP_HEALTHY: return "healthy";
	case VP_NEEDS_RESET: return "needs reset";
	case VP_LOST: return "reset itself";
	case VP_GONE: return "gone";
	}
	return "?";
}

enum vp_health vp_health(struct vp_dev *vp)
{
	uint8_t st = vp_status(vp);
	enum vp_health h;
	if (st == 0xff)
		h = VP_GONE;              /* all ones: nothing answers the read */
	else if (st & VIRTIO_CONFIG_S_NEEDS_RESET)
		h = VP_NEEDS_RESET;
	else if (!(st & VIRTIO_CONFIG_S_DRIVER_OK))
		h = VP_LOST;
	else
		h = VP_HEALTHY;
	/* One line per new kind of trouble until the next vp_begin: a device
	 * that flips the bit on and off cannot flood the log. */
	if (h != VP_HEALTHY && h != vp->health_logged) {
		vp->health_logged = (uint8_t)h;
		if (h == VP_GONE)
			klog("%s: status reads 0xff: device removed or no longer decoding", vp->name);
		else if (h == VP_NEEDS_RESET)
			klog("%s: device needs a reset (DEVICE_NEEDS_RESET, status 0x%x)", vp->name, st);
		else
			klog("%s: device dropped DRIVER_OK on its own (status 0x%x)", vp->name, st);
	}
	return h;
}

uint64_t vp_device_features(struct vp_dev *vp)
{
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t lo = rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_DF, 4);
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	uint64_t hi = rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_DF, 4);
	return lo | hi << 32;
}

int vp_set_features(struct vp_dev *vp, uint64_t wanted)
{
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)wanted);
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(wanted >> 32));
	add_status(vp, VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(vp_status(vp) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		vp_fail(vp, "device refused features 0x%llx (FEATURES_OK not kept)",
		        (unsigned long long)wanted);
		return -1;
	}
	vp->features = wanted;
	return 0;
}

static void wr64(struct vp_dev *vp, uint32_t off, uint64_t v)
{
	wr(vp, VP_COMMON, off, 4, (uint32_t)v);
	wr(vp, VP_COMMON, off + 4, 4, (uint32_t)(v >> 32));
}

int vp_set_config_vector(struct vp_dev *vp, uint16_t entry)
{
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_MSIX, 2, entry);
	if (rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_MSIX, 2) == entry)
		return 0;
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
	return -1;
}

uint16_t vp_queue_size(struct vp_dev *vp, uint16_t idx)
{
	if (vp->failed || idx >= vp->num_queues || idx >= VP_MAX_QUEUES)
		return 0;
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SELECT, 2, idx);
	return (uint16_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SIZE, 2);
}

int vp_setup_queue(struct vp_dev *vp, uint16_t idx, struct virtq *vq, const char *name,
                   uint16_t max_size)
{
	if (vp->failed)
		return -1;
	if (idx >= vp->num_queues || idx >= VP_MAX_QUEUES)
		return -ENOENT;
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SELECT, 2, idx);
	uint16_t size = (uint16_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SIZE, 2);
	if (size == 0)
		return -ENOENT;
	if (size & (size - 1)) {
		vp_fail(vp, "queue %u (%s): size %u is not a power of two", idx, name, size);
		return -1;
	}
	if (rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_ENABLE, 2)) {
		vp_fail(vp, "queue %u (%s) already enabled after reset", idx, name);
		return -1;
	}
	if (max_size > VIRTQ_MAX_SIZE)
		max_size = VIRTQ_MAX_SIZE;
	while (size > max_size)
		size /= 2;     /* the driver may shrink a queue; powers of two stay so */
	/* After a reset the rings of the first set-up are reused (there is no
	 * way to give DMA memory back here): a device that now offers a larger
	 * queue gets one that fits them, instead of new rings and a leak. */
	while (vp->ring[idx].mem && size > 1 && virtq_mem_size(size) > vp->ring[idx].bytes)
		size /= 2;
	uint16_t noff = (uint16_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_NOFF, 2);
	uint64_t at = (uint64_t)noff * vp->notify_mult;
	if (at + 2 > vp->r[VP_NOTIFY].length) {
		vp_fail(vp, "queue %u (%s): notify offset %u x %u beyond the %u-byte notify region",
		        idx, name, noff, vp->notify_mult, vp->r[VP_NOTIFY].length);
		return -1;
	}
	/* The rings of an earlier setup of this queue are reused: the device
	 * was reset since (vp_begin), so nothing else refers to them. */
	size_t bytes = virtq_mem_size(size);
	uint64_t pa = vp->ring[idx].pa;
	void *mem = vp->ring[idx].mem;
	if (!mem) {
		mem = vp->io->dma_alloc(vp, bytes, &pa);
		if (!mem) {
			vp_fail(vp, "queue %u (%s): no memory for %zu bytes of rings", idx, name, bytes);
			return -1;
		}
		vp->ring[idx].mem = mem;
		vp->ring[idx].pa = pa;
		vp->ring[idx].bytes = bytes;
	}
	if (virtq_init(vq, name, idx, size, mem, pa, vp_notify, vp) != 0) {
		vp_fail(vp, "queue %u (%s): ring setup failed", idx, name);
		return -1;
	}
	vp->notify_off[idx] = noff;
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	wr64(vp, VIRTIO_PCI_COMMON_Q_DESCLO, vq->desc_pa);
	wr64(vp, VIRTIO_PCI_COMMON_Q_AVAILLO, vq->avail_pa);
	wr64(vp, VIRTIO_PCI_COMMON_Q_USEDLO, vq->used_pa);
	/* NO_VECTOR (vp_begin's default: poll) or the entry the caller routed. */
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_MSIX, 2, vp->queue_vector);
	if (vp->queue_vector != VIRTIO_MSI_NO_VECTOR &&
	    rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_MSIX, 2) != vp->queue_vector) {
		klog("%s: queue %u: device refused MSI-X vector %u; that queue is polled",
		     vp->name, idx, vp->queue_vector);
		wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
	}
	wr(vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	return 0;
}

void vp_driver_ok(struct vp_dev *vp)
{
	if (!vp->failed)
		add_status(vp, VIRTIO_CONFIG_S_DRIVER_OK);
}

/* ------------------------------------------------------------ runtime */

void vp_notify(void *ctx, uint16_t idx)
{
	struct vp_dev *vp = ctx;
	if (idx >= VP_MAX_QUEUES)
		return;
	wr(vp, VP_NOTIFY, (uint32_t)vp->notify_off[idx] * vp->notify_mult, 2, idx);
}

int vp_config_read(struct vp_dev *vp, uint32_t off, void *buf, unsigned len)
{
	if ((uint64_t)off + len > vp->r[VP_DEVICE].length)
		return -1;
	uint8_t *out = buf;
	for (unsigned attempt = 0; attempt < VP_CONFIG_RETRIES; attempt++) {
		uint8_t g0 = (uint8_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
		unsigned i = 0;
		/* 32-bit fields are read whole: the device may change them between bytes */
		for (; i + 4 <= len && (off + i) % 4 == 0; i += 4) {
			uint32_t v = rd(vp, VP_DEVICE, off + i, 4);
			memcpy(out + i, &v, 4);
		}
		for (; i < len; i++)
			out[i] = (uint8_t)rd(vp, VP_DEVICE, off + i, 1);
		uint8_t g1 = (uint8_t)rd(vp, VP_COMMON, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
		if (g0 == g1)
			return 0;
	}
	return -1;
}

void vp_config_write32(struct vp_dev *vp, uint32_t off, uint32_t v)
{
	if ((uint64_t)off + 4 <= vp->r[VP_DEVICE].length)
		wr(vp, VP_DEVICE, off, 4, v);
}
