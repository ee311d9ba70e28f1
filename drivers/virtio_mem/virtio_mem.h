/*
 * virtio_mem.h - the virtio-mem device in the kernel (virtio_mem.c): finds
 * the PCI function (0x1af4:0x1058), brings it up through the modern
 * transport in the spec's order (features: VERSION_1, ACCESS_PLATFORM,
 * UNPLUGGED_INACCESSIBLE when offered; one request queue), routes its
 * interrupts (MSI-X entry 0 configuration change, entry 1 the queue; else
 * INTx through the I/O APIC, acknowledged by the ISR byte; else polling
 * every millisecond, one line says so) and drives the core (vmem.h) from a
 * POLLER, waking at the deadline the core asks for (kernel/lib/wake.h).
 *
 * What the core is bound to (kernel.c): mm_hot_add / mm_hot_remove /
 * mm_block_info / mm_free_pages, the region checked against the boot memory
 * map and boot RAM, and physical addresses below min(the CPU's physical
 * address width, mm's direct map). Options vmem.* and the `vmem` command are
 * vmem_cmd.c.
 *
 * Failure: a device that does not come up is FAILED with one line and left
 * alone. A core that stops (BROKEN) stays stopped: the plugged memory it
 * handed to the allocator stays in use (the host cannot take it without our
 * UNPLUG under UNPLUGGED_INACCESSIBLE), and there is no reset-and-retry
 * (a reset device would ask for UNPLUG_ALL of memory in use).
 */
#ifndef DRIVERS_VIRTIO_MEM_VIRTIO_MEM_H
#define DRIVERS_VIRTIO_MEM_VIRTIO_MEM_H

#include <stdint.h>
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtq.h"
#include "drivers/virtio_mem/vmem.h"

#define VIRTIO_PCI_DEVICE_MEM (VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_MEM)   /* 0x1058 */

struct virtio_mem_dev {
	const struct pci_dev *pd;
	struct vp_dev vp;
	uint64_t offered;
	struct virtq vq;
	int transport_up;
	int core_up;
	struct vmem *v;
	enum { VM_IRQ_POLL, VM_IRQ_MSIX, VM_IRQ_INTX } irq_mode;
	uint8_t intx_line;
	volatile uint64_t irq_config, irq_queue;
	uint64_t polls;
};

/* The device, NULL if there is none. */
struct virtio_mem_dev *virtio_mem_get(void);
/* The poller, for self-tests that drive the device themselves. */
void virtio_mem_poll(uint64_t now);

/* kernel.c: the core's memory ops on mm/, and the address limit. */
extern const struct vmem_mem_ops vmem_kernel_mem_ops;
uint64_t vmem_kernel_max_phys(void);
/* vmem_cmd.c: the vmem.* options as core params. */
void vmem_knobs_to_params(struct vmem_params *p);

#endif
