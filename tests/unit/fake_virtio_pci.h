/*
 * fake_virtio_pci.h - a simulated virtio-pci modern device behind struct
 * vp_io: common config with its select registers and status semantics,
 * per-queue registers, notify writes, ISR and a 16-byte device config
 * (the balloon's). It records the status values the driver wrote and flags
 * order violations (queues or features touched at the wrong time).
 *
 * Hostile knobs: refuse FEATURES_OK, reset never completing, config
 * generation that changes on every read, arbitrary queue sizes and notify
 * offsets.
 */
#ifndef FAKE_VIRTIO_PCI_H
#define FAKE_VIRTIO_PCI_H

#include <stdint.h>
#include "drivers/virtio/virtio_pci.h"

#define FVP_QUEUES 8

struct fake_vpci {
	/* configuration (set by the test) */
	uint64_t host_features;
	uint16_t num_queues;
	uint16_t qmax[FVP_QUEUES];      /* size the device offers; 0 = absent */
	uint16_t qnoff[FVP_QUEUES];
	uint32_t notify_len, notify_mult;
	int refuse_features_ok;
	int reset_stuck;
	unsigned gen_changes_left;     /* config generation bumps on this many reads */

	/* state */
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint8_t  status, gen, isr;
	uint16_t qsel;
	struct {
		uint16_t size, enable, msix;
		uint64_t desc, avail, used;
	} q[FVP_QUEUES];
	uint8_t devcfg[16];

	/* observations */
	uint8_t  status_log[32];
	unsigned nstatus;
	unsigned notifies[FVP_QUEUES];
	unsigned order_errors;
	unsigned dma_allocs;
	void    *dma[16];
};

extern const struct vp_io fake_vpci_io;

void fake_vpci_init(struct fake_vpci *f);
void fake_vpci_free(struct fake_vpci *f);
/* A vp_dev wired to the fake, regions as QEMU lays them out. */
void fake_vpci_attach(struct fake_vpci *f, struct vp_dev *vp);

#endif
