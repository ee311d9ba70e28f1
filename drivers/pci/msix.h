/*
 * pci_msix.h - MSI-X for one PCI function: find the capability, check and
 * map its vector table, point entries at local APIC vectors, enable it.
 *
 * Contract: pci_msix_locate() is pure (host-tested): from the capability's
 * three dwords and the function's BARs it computes where the table lives, and
 * refuses a table that is not inside an implemented memory BAR. The rest
 * touches the device: pci_msix_init() maps the table (uncached) with every
 * entry masked; pci_msix_route() programs one entry to deliver `vector` to
 * the local APIC `apic_id` (fixed, edge) and unmasks it; pci_msix_enable()
 * turns MSI-X on (which also stops INTx for the function) or off. Any failure
 * is one reason string; the caller falls back to polling.
 */
#ifndef DRIVERS_PCI_MSIX_H
#define DRIVERS_PCI_MSIX_H

#include <stdint.h>
#include "drivers/pci/pci.h"

#define PCI_MSIX_CTRL        2        /* capability offset of Message Control */
#define PCI_MSIX_CTRL_ENABLE 0x8000
#define PCI_MSIX_CTRL_MASK   0x4000   /* function mask */
#define PCI_MSIX_ENTRY_SIZE  16

struct pci_msix {
	const struct pci_dev *dev;
	uint16_t cap;                /* config-space offset of the capability */
	uint16_t entries;            /* table size */
	volatile uint32_t *table;
};

/* ctrl = Message Control (16 bits), table = Table Offset/BIR dword. */
int pci_msix_locate(uint16_t ctrl, uint32_t table, const struct pci_bar bars[6],
                    uint64_t *pa, uint16_t *entries, const char **why);

/* Find the function's MSI-X capability and its table (pure over config
 * space reads): 0 with the capability's offset, the table's physical address
 * and its entries; -1 and *why if there is none or it is malformed. */
int pci_msix_find(const struct pci_dev *d, uint16_t *cap, uint64_t *pa, uint16_t *entries,
                  const char **why);
int pci_msix_init(struct pci_msix *m, const struct pci_dev *d, const char **why);
int pci_msix_route(struct pci_msix *m, unsigned entry, uint32_t apic_id, uint8_t vector);
void pci_msix_enable(struct pci_msix *m, int on);

#endif
