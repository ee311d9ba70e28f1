/*
 * virtio_mem.c - the virtio-mem device: find it, bring it up in the spec's
 * order, route its interrupts, and drive the core from the work loop; see
 * virtio_mem.h. Memory binding in kernel.c, options and console in
 * vmem_cmd.c.
 */
#include <stdio.h>
#include <string.h>
#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_pci_hw.h"
#include "drivers/virtio_mem/virtio_mem.h"
#include "kclock.h"
#include "kernel/arch/arch.h"
#include "kernel/arch/irq.h"
#include "kernel/arch/time.h"
#include "kernel/lib/initcall.h"
#include "kernel/lib/wake.h"
#include "klog.h"
#include "mm/kmem.h"
#include "mm/mm.h"

static struct virtio_mem_dev vm;
static int found;

struct virtio_mem_dev *virtio_mem_get(void) { return found ? &vm : NULL; }

/* ---- transport op: the whole config, generation-stable */

static int read_config(void *ctx, struct vmem_config *c)
{
	struct virtio_mem_dev *d = ctx;
	uint8_t raw[VIRTIO_MEM_CFG_SIZE];
	if (vp_config_read(&d->vp, 0, raw, sizeof raw) != 0)
		return -1;
	uint16_t node;
	memcpy(&c->block_size, raw + VIRTIO_MEM_CFG_BLOCK_SIZE, 8);
	memcpy(&node, raw + VIRTIO_MEM_CFG_NODE_ID, 2);
	c->node_id = node;
	memcpy(&c->addr, raw + VIRTIO_MEM_CFG_ADDR, 8);
	memcpy(&c->region_size, raw + VIRTIO_MEM_CFG_REGION_SIZE, 8);
	memcpy(&c->usable_region_size, raw + VIRTIO_MEM_CFG_USABLE_REGION_SIZE, 8);
	memcpy(&c->plugged_size, raw + VIRTIO_MEM_CFG_PLUGGED_SIZE, 8);
	memcpy(&c->requested_size, raw + VIRTIO_MEM_CFG_REQUESTED_SIZE, 8);
	return 0;
}

static const struct vmem_transport_ops transport_ops = { .read_config = read_config };

/* ---- interrupts (as the balloon's: MSI-X 0 = config, 1 = queue; else
 * INTx with the ISR byte; else polling). Handlers only count: the work loop
 * wakes on any interrupt and runs the poller. */
static struct pci_msix msix;
static int on_config_irq(struct trap_frame *tf) { vm.irq_config++; lapic_eoi(); return 1; }
static int on_queue_irq(struct trap_frame *tf) { vm.irq_queue++; lapic_eoi(); return 1; }

static int on_intx(struct trap_frame *tf)
{
	uint8_t isr = vp_read_isr(&vm.vp);
	if (isr & VIRTIO_PCI_ISR_QUEUE)
		vm.irq_queue++;
	if (isr & VIRTIO_PCI_ISR_CONFIG)
		vm.irq_config++;
	return isr != 0;
}

static int setup_msix(struct virtio_mem_dev *d, const char **why)
{
	int vc = irq_alloc_vector(on_config_irq), vq = irq_alloc_vector(on_queue_irq);
	if (vc < 0 || vq < 0) {
		*why = "no free interrupt vectors";
		return -1;
	}
	if (pci_msix_init(&msix, d->pd, why) != 0)
		return -1;
	if (msix.entries < 2) {
		*why = "fewer than 2 MSI-X entries";
		return -1;
	}
	pci_msix_route(&msix, 0, lapic_id(), (uint8_t)vc);
	pci_msix_route(&msix, 1, lapic_id(), (uint8_t)vq);
	pci_msix_enable(&msix, 1);
	if (vp_set_config_vector(&d->vp, 0) != 0) {
		pci_msix_enable(&msix, 0);
		*why = "the device refused the configuration vector";
		return -1;
	}
	d->vp.queue_vector = 1;
	return 0;
}

static int setup_intx(struct virtio_mem_dev *d, const char **why)
{
	uint8_t pin = (uint8_t)pci_read(d->pd, PCI_INTERRUPT_PIN, 1);
	d->intx_line = (uint8_t)pci_read(d->pd, PCI_INTERRUPT_LINE, 1);
	if (!pin) {
		*why = "the function has no INTx pin";
		return -1;
	}
	if (d->intx_line == 0 || d->intx_line == 0xff) {
		*why = "firmware assigned no interrupt line";
		return -1;
	}
	if (irq_request_line(d->intx_line, on_intx, why) < 0)
		return -1;
	pci_command(d->pd, 0, PCI_COMMAND_INTX_OFF);
	return 0;
}

static void setup_interrupts(struct virtio_mem_dev *d)
{
	const char *why_msix = "?", *why_intx = "?";
	if (setup_msix(d, &why_msix) == 0) {
		d->irq_mode = VM_IRQ_MSIX;
		klog("virtio-mem: interrupts: MSI-X");
	} else if (setup_intx(d, &why_intx) == 0) {
		d->irq_mode = VM_IRQ_INTX;
		klog("virtio-mem: interrupts: INTx line %u (no MSI-X: %s)", d->intx_line, why_msix);
	} else {
		d->irq_mode = VM_IRQ_POLL;
		klog("virtio-mem: no interrupts (MSI-X: %s; INTx: %s); polling every millisecond", why_msix,
		     why_intx);
	}
}

/* ---- bring-up */

static void start_core(struct virtio_mem_dev *d)
{
	if (!mm_ready()) {
		klog("virtio-mem: memory manager not running; device idle");
		return;
	}
	struct vmem_config c;
	if (read_config(d, &c) != 0) {
		klog("virtio-mem: config space never settled; device idle");
		return;
	}
	/* The books are the CPU's alone (two bits per device block): heap
	 * memory; the request and response are the device's: one DMA page. */
	size_t track = vmem_track_bytes(&c);
	uint64_t dma_pa;
	void *dma = dma_alloc_pages(1, &dma_pa);
	void *books = track ? kmem_anon_map((track + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) : NULL;
	d->v = vmem_alloc();
	if (!dma || !d->v || (track && !books)) {
		klog("virtio-mem: no memory for the driver's %zu bytes of books; device idle", track);
		return;
	}
	struct vmem_setup s = {
		.tops = &transport_ops, .tctx = d, .mops = &vmem_kernel_mem_ops, .mctx = NULL, .vq = &d->vq,
		.features = d->vp.features, .dma = dma, .dma_pa = dma_pa, .dma_len = PAGE_SIZE,
		.track = books, .track_len = track, .max_phys = vmem_kernel_max_phys(),
	};
	vmem_knobs_to_params(&s.params);
	if (vmem_init(d->v, &s) != 0)
		return;   /* it said why */
	d->core_up = 1;
	klog("virtio-mem: region %#llx + %llu MiB, block %llu MiB, usable %llu MiB, requested %llu MiB",
	     (unsigned long long)c.addr, (unsigned long long)(c.region_size >> 20),
	     (unsigned long long)(c.block_size >> 20), (unsigned long long)(c.usable_region_size >> 20),
	     (unsigned long long)(c.requested_size >> 20));
	wake_at(0);   /* the first poll at once: there may be memory to plug */
}

static int virtio_mem_init(void)
{
	struct virtio_mem_dev *d = &vm;
	const struct pci_dev *pd = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_MEM, 0);
	if (!pd)
		return 0;   /* no device, no line: most guests have none */
	found = 1;
	d->pd = pd;
	if (vp_hw_attach(&d->vp, pd, "virtio-mem") != 0 || vp_begin(&d->vp) != 0)
		return -1;
	d->offered = vp_device_features(&d->vp);
	uint64_t wanted = vmem_features_wanted(d->offered);
	if (!wanted) {
		vp_fail(&d->vp, "device does not offer VERSION_1 (features 0x%llx)", (unsigned long long)d->offered);
		return -1;
	}
	if (vp_set_features(&d->vp, wanted) != 0)
		return -1;
	setup_interrupts(d);
	if (vp_setup_queue(&d->vp, 0, &d->vq, "virtio-mem", 8) != 0) {
		vp_fail(&d->vp, "request queue missing or unusable");
		return -1;
	}
	vp_driver_ok(&d->vp);
	if (d->vp.failed)
		return -1;
	d->transport_up = 1;
	klog("virtio-mem: %02x:%02x.%u, features 0x%llx of 0x%llx%s", pd->bus, pd->dev, pd->fn,
	     (unsigned long long)d->vp.features, (unsigned long long)d->offered,
	     (d->vp.features >> VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE) & 1 ? " (unplugged-inaccessible)" : "");
	start_core(d);
	return 0;
}
INITCALL(INIT_DRIVER, virtio_mem_init);

void virtio_mem_poll(uint64_t now)
{
	struct virtio_mem_dev *d = &vm;
	if (!d->transport_up || !d->core_up)
		return;
	if (vp_health(&d->vp) != VP_HEALTHY) {   /* it said what, once */
		if (vmem_state(d->v) != VMEM_BROKEN)
			klog("virtio-mem: device is no longer usable; plugged memory stays in use, nothing more "
			     "is plugged or unplugged");
		d->transport_up = 0;
		return;
	}
	d->polls++;
	vmem_poll(d->v, now);
	/* Without interrupts the device is only seen by looking. */
	uint64_t next = vmem_next_poll(d->v, now);
	if (d->irq_mode == VM_IRQ_POLL && next > now + VMEM_BUSY_NS)
		next = now + VMEM_BUSY_NS;
	wake_at(next);
}
POLLER(virtio_mem_poll);
