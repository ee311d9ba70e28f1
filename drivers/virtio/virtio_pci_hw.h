/*
 * virtio_pci_hw.h - bind a struct vp_dev to a real PCI function: parse its
 * virtio capabilities, map the four regions (uncached, via kmem's
 * mmio_map), enable memory decoding and bus mastering, and route register
 * access to MMIO and ring memory to dma_alloc_pages. INTx is switched off:
 * a device with MSI-X gets its vectors from the driver above
 * (drivers/balloon/virtio_balloon.c); without them the driver polls.
 */
#ifndef DRIVERS_VIRTIO_PCI_HW_H
#define DRIVERS_VIRTIO_PCI_HW_H

#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_pci.h"

/* 0, or -1 with one log line. */
int vp_hw_attach(struct vp_dev *vp, const struct pci_dev *pd, const char *name);

#endif
