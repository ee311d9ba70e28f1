/*
 * virtio_pci_hw.c - MMIO and DMA behind struct vp_io for the kernel; see
 * virtio_pci_hw.h. The only virtio file that touches hardware.
 */
#include <string.h>
#include "hw/io.h"
#include "mm/kmem.h"
#include "klog.h"
#include "drivers/virtio/virtio_pci_hw.h"

static uint32_t mmio_rd(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned w)
{
	if ((uint64_t)off + w > vp->r[r].length)
		return 0;
	volatile uint8_t *a = (volatile uint8_t *)vp->r[r].va + off;
	return w == 1 ? mmio_read8(a) : w == 2 ? mmio_read16(a) : mmio_read32(a);
}

static void mmio_wr(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned w, uint32_t v)
{
	if ((uint64_t)off + w > vp->r[r].length)
		return;
	volatile uint8_t *a = (volatile uint8_t *)vp->r[r].va + off;
	if (w == 1) mmio_write8(a, (uint8_t)v);
	else if (w == 2) mmio_write16(a, (uint16_t)v);
	else mmio_write32(a, v);
}

static void *dma_alloc(struct vp_dev *vp, size_t bytes, uint64_t *pa)
{
	return dma_alloc_pages((bytes + PAGE_SIZE - 1) / PAGE_SIZE, pa);
}

static const struct vp_io mmio_io = { mmio_rd, mmio_wr, dma_alloc };

int vp_hw_attach(struct vp_dev *vp, const struct pci_dev *pd, const char *name)
{
	memset(vp, 0, sizeof *vp);
	vp->name = name;
	vp->io = &mmio_io;
	if (vp_parse_caps(vp, pd) != 0)
		return -1;
	for (int r = 0; r < VP_NREGIONS; r++) {
		const struct pci_bar *b = &pd->bar[vp->r[r].bar];
		vp->r[r].va = mmio_map(b->addr + vp->r[r].offset, vp->r[r].length);
		if (!vp->r[r].va) {
			klog("%s: BAR%u at %#llx cannot be mapped; not using the device", name,
			     vp->r[r].bar, (unsigned long long)b->addr);
			return -1;
		}
	}
	pci_command(pd, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_OFF, 0);
	return 0;
}
