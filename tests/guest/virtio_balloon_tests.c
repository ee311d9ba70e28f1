/*
 * virtio_balloon_tests.c - in-guest self-tests of PCI and the virtio
 * balloon on the hypervisor at hand: the device is found, the transport
 * went through the init order with VERSION_1, the queues the features imply
 * are live on the device, config space reads are stable, and a real
 * element makes a round trip through the device.
 */
#include <stdint.h>
#include <string.h>
#include "drivers/pci/pci.h"
#include "drivers/balloon/virtio_balloon.h"
#include "kclock.h"
#include "mm/kmem.h"
#include "kernel/lib/selftest.h"

SELFTEST(virtio_pci_finds_balloon)
{
	const struct pci_dev *pd = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_BALLOON, 0);
	if (!pd)
		pd = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_TRANS_BALLOON, 0);
	ST_ASSERT(pd != NULL);
	/* QEMU q35 puts a modern-only balloon behind a root port: bus > 0 */
	if (pd->device == VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_BALLOON)
		ST_ASSERT(pd->bus > 0);
	struct virtio_balloon_dev *d = virtio_balloon_get();
	ST_ASSERT(d != NULL && d->pd == pd);
	for (int r = 0; r < VP_NREGIONS; r++) {
		const struct pci_bar *b = &pd->bar[d->vp.r[r].bar];
		ST_ASSERT(b->size && !b->io && b->addr);
		ST_ASSERT((uint64_t)d->vp.r[r].offset + d->vp.r[r].length <= b->size);
		if (!d->vp.r[r].va)
			ST_FAIL("BAR%u at %#llx (64-bit: %u) not mapped: kmem mmio_map refused it",
			        d->vp.r[r].bar, (unsigned long long)b->addr, b->mem64);
	}
	/* memory decoding and bus mastering on; INTx on exactly when the driver
	 * uses it (no MSI-X), so a device never raises a line nobody handles */
	uint16_t cmd = (uint16_t)pci_read(pd, PCI_COMMAND, 2);
	uint16_t want = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
	                (d->irq_mode == VB_IRQ_INTX ? 0 : PCI_COMMAND_INTX_OFF);
	ST_ASSERT((cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_OFF)) == want);
	return 0;
}

SELFTEST(virtio_balloon_transport_up)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	ST_ASSERT(d != NULL);
	ST_ASSERT(d->transport_up);
	uint8_t st = vp_status(&d->vp);
	if (st != (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	           VIRTIO_CONFIG_S_DRIVER_OK))
		ST_FAIL("device status 0x%x", st);
	ST_ASSERT(d->vp.features & (1ull << VIRTIO_F_VERSION_1));
	ST_ASSERT((d->vp.features & ~d->offered) == 0);
	ST_ASSERT(d->layout.inflate == 0 && d->layout.deflate == 1);
	/* the device sees every queue we set up enabled, at our ring addresses */
	struct { int idx; struct virtq *vq; } qs[] = {
		{ d->layout.inflate, &d->inflate_vq }, { d->layout.deflate, &d->deflate_vq },
		{ d->has_stats ? d->layout.stats : -1, &d->stats_vq },
	};
	for (unsigned i = 0; i < 3; i++) {
		if (qs[i].idx < 0)
			continue;
		d->vp.io->write(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SELECT, 2, (uint32_t)qs[i].idx);
		ST_ASSERT(d->vp.io->read(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 1);
		ST_ASSERT(d->vp.io->read(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_SIZE, 2) == qs[i].vq->num);
		uint64_t desc = d->vp.io->read(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_DESCLO, 4) |
		                (uint64_t)d->vp.io->read(&d->vp, VP_COMMON, VIRTIO_PCI_COMMON_Q_DESCHI, 4) << 32;
		ST_ASSERT(desc == qs[i].vq->desc_pa);
		ST_ASSERT(!virtq_is_broken(qs[i].vq));
	}
	/* QEMU offers STATS_VQ always */
	ST_ASSERT(!(d->offered & (1ull << VIRTIO_BALLOON_F_STATS_VQ)) || d->has_stats);
	return 0;
}

SELFTEST(virtio_balloon_config_reads)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	ST_ASSERT(d != NULL && d->transport_up);
	uint32_t cfg[2];
	ST_ASSERT(vp_config_read(&d->vp, VIRTIO_BALLOON_CFG_NUM_PAGES, cfg, sizeof cfg) == 0);
	/* actual on the device is what the core last wrote (0 when idle) */
	struct balloon_status st;
	if (d->core_up)
		balloon_get_status(d->b, &st);
	uint32_t expect = d->core_up && st.actual_written ? st.actual_device : 0;
	if (cfg[1] != expect)
		ST_FAIL("device actual %u, driver wrote %u", cfg[1], expect);
	return 0;
}

/* With the core idle, send one harmless element through the deflate queue
 * (deflating a page that is not in the balloon only makes QEMU prefault it)
 * and wait, bounded, for the device to hand it back. With the core running,
 * its books must be consistent instead. */
SELFTEST(virtio_balloon_queue_roundtrip)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	ST_ASSERT(d != NULL && d->transport_up);
	if (d->core_up) {
		/* Through the core: one block out on the inflate queue and back on
		 * the deflate queue, each acked by the real device, which then reads
		 * the `actual` the core wrote. */
		char why[160];
		struct balloon_params saved = *balloon_get_params(d->b), p = saved;
		p.initial_pages = PAGES_PER_BLOCK;
		p.rate_pages_per_s = 0;
		uint64_t acks0 = d->irq_queue;
		balloon_set_params(d->b, &p);
		uint64_t t0 = clock_ns();
		while ((balloon_actual(d->b) != PAGES_PER_BLOCK || balloon_in_flight(d->b)) &&
		       clock_ns() - t0 < 5 * NS_PER_S)
			virtio_balloon_poll(clock_ns());
		uint32_t dev_actual = 0;
		ST_ASSERT(vp_config_read(&d->vp, VIRTIO_BALLOON_CFG_ACTUAL, &dev_actual, 4) == 0);
		int inflated = balloon_actual(d->b) == PAGES_PER_BLOCK && dev_actual == PAGES_PER_BLOCK;
		balloon_set_params(d->b, &saved);
		t0 = clock_ns();
		while ((balloon_actual(d->b) != 0 || balloon_in_flight(d->b)) && clock_ns() - t0 < 5 * NS_PER_S)
			virtio_balloon_poll(clock_ns());
		ST_ASSERT(vp_config_read(&d->vp, VIRTIO_BALLOON_CFG_ACTUAL, &dev_actual, 4) == 0);
		if (!inflated || balloon_actual(d->b) != 0 || dev_actual != 0)
			ST_FAIL("round trip: inflated %d, actual now %llu, device actual %u", inflated,
			        (unsigned long long)balloon_actual(d->b), dev_actual);
		/* with INTx or MSI-X the acks arrived as queue interrupts */
		if (d->irq_mode != VB_IRQ_POLL)
			ST_ASSERT(d->irq_queue > acks0);
		if (balloon_check(d->b, why, sizeof why) != 0)
			ST_FAIL("balloon books: %s", why);
		return 0;
	}
	uint64_t pa;
	uint32_t *pfns = dma_alloc_pages(1, &pa);
	ST_ASSERT(pfns != NULL);
	pfns[0] = (uint32_t)(pa >> 12);
	struct virtq_buf b = { pa, 4 };
	ST_ASSERT(virtq_add(&d->deflate_vq, &b, 1, 0, pfns) == 0);
	virtq_kick(&d->deflate_vq);
	uint64_t t0 = clock_ns();
	void *tok = NULL;
	while (!(tok = virtq_get_used(&d->deflate_vq, NULL)) && clock_ns() - t0 < NS_PER_S)
		__asm__ __volatile__("pause");
	ST_ASSERT(tok == pfns);
	ST_ASSERT(virtq_in_flight(&d->deflate_vq) == 0);
	ST_ASSERT(!virtq_is_broken(&d->deflate_vq));
	dma_free_pages(pfns, 1);
	return 0;
}
