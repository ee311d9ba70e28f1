/* pci_msix.c - see pci_msix.h. */
#include <stddef.h>
#include "drivers/pci/msix.h"
#include "hw/io.h"
#include "mm/kmem.h"

int pci_msix_locate(uint16_t ctrl, uint32_t table, const struct pci_bar bars[6],
                    uint64_t *pa, uint16_t *entries, const char **why)
{
	unsigned bir = table & 7;
	uint64_t off = table & ~7u;
	uint16_t n = (uint16_t)((ctrl & 0x7ff) + 1);
	if (bir > 5) {
		*why = "MSI-X table in a BAR that does not exist";
		return -1;
	}
	const struct pci_bar *b = &bars[bir];
	if (b->io || !b->addr || !b->size) {
		*why = "MSI-X table BAR is not an assigned memory BAR";
		return -1;
	}
	if (off > b->size || (uint64_t)n * PCI_MSIX_ENTRY_SIZE > b->size - off) {
		*why = "MSI-X table runs past the end of its BAR";
		return -1;
	}
	*pa = b->addr + off;
	*entries = n;
	return 0;
}

int pci_msix_find(const struct pci_dev *d, uint16_t *cap_out, uint64_t *pa, uint16_t *entries,
                  const char **why)
{
	uint16_t cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
	if (!cap) {
		*why = "no MSI-X capability";
		return -1;
	}
	/* 12 bytes (id, next, control, table, PBA): one placed at the very end
	 * of config space is not read past it */
	if (cap > 256 - 12) {
		*why = "MSI-X capability runs past config space";
		return -1;
	}
	*cap_out = cap;
	return pci_msix_locate((uint16_t)pci_read(d, (uint16_t)(cap + PCI_MSIX_CTRL), 2),
	                       pci_read(d, (uint16_t)(cap + 4), 4), d->bar, pa, entries, why);
}

#ifndef HOST_TEST
int pci_msix_init(struct pci_msix *m, const struct pci_dev *d, const char **why)
{
	uint16_t cap;
	uint64_t pa;
	uint16_t n;
	if (pci_msix_find(d, &cap, &pa, &n, why))
		return -1;
	volatile uint32_t *t = mmio_map(pa, (uint64_t)n * PCI_MSIX_ENTRY_SIZE);
	if (!t) {
		*why = "cannot map the MSI-X table";
		return -1;
	}
	m->dev = d;
	m->cap = cap;
	m->entries = n;
	m->table = t;
	for (unsigned i = 0; i < n; i++)
		mmio_write32(&t[i * 4 + 3], 1);   /* masked until routed */
	return 0;
}

int pci_msix_route(struct pci_msix *m, unsigned entry, uint32_t apic_id, uint8_t vector)
{
	if (entry >= m->entries || apic_id > 0xff)
		return -1;
	volatile uint32_t *e = &m->table[entry * 4];
	mmio_write32(&e[3], 1);
	mmio_write32(&e[0], 0xfee00000u | (apic_id << 12));   /* physical destination */
	mmio_write32(&e[1], 0);
	mmio_write32(&e[2], vector);                          /* fixed, edge */
	mmio_write32(&e[3], 0);
	return 0;
}

void pci_msix_enable(struct pci_msix *m, int on)
{
	uint16_t off = (uint16_t)(m->cap + PCI_MSIX_CTRL);
	uint16_t ctrl = (uint16_t)pci_read(m->dev, off, 2) & ~PCI_MSIX_CTRL_MASK;
	ctrl = on ? (ctrl | PCI_MSIX_CTRL_ENABLE) : (ctrl & ~PCI_MSIX_CTRL_ENABLE);
	pci_write(m->dev, off, 2, ctrl);
}
#endif
