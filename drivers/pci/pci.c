/*
 * pci.c - PCI logic over struct pci_access: ACPI MCFG lookup, bus walk,
 * BAR sizing, capability lists. Contract in pci.h.
 */
#include <string.h>
#include "klog.h"
#include "drivers/pci/pci.h"
#include "kernel/lib/acpi.h"

/* ------------------------------------------------------------ ACPI MCFG */

int acpi_find_ecam(uint64_t rsdp_pa, acpi_map_fn map, void *ctx, struct pci_ecam *out,
                   const char **why)
{
	const uint8_t *mcfg;
	uint32_t len;
	int rc = acpi_find_table(rsdp_pa, "MCFG", map, ctx, &mcfg, &len, why);
	if (rc == ACPI_ABSENT)
		*why = "no MCFG table";
	else if (rc == ACPI_CORRUPT)
		*why = "MCFG corrupt (length or checksum)";
	if (rc != ACPI_FOUND)
		return -1;
	/* header, 8 reserved bytes, then 16-byte allocations */
	for (uint32_t e = ACPI_HDR_LEN + 8; e + 16 <= len; e += 16) {
		uint64_t base;
		uint16_t seg;
		memcpy(&base, mcfg + e, 8);
		memcpy(&seg, mcfg + e + 8, 2);
		uint8_t start = mcfg[e + 10], end = mcfg[e + 11];
		if (seg != 0 || end < start || !base || (base & 0xfffff))
			continue;
		out->base = base;
		out->bus_start = start;
		out->bus_end = end;
		return 0;
	}
	*why = "MCFG has no usable entry for segment 0";
	return -1;
}

/* ------------------------------------------------------------ config access */

uint32_t pci_read(const struct pci_dev *d, uint16_t off, unsigned width)
{
	return d->acc->read(d->acc->ctx, d->bus, d->dev, d->fn, off, width);
}

void pci_write(const struct pci_dev *d, uint16_t off, unsigned width, uint32_t val)
{
	d->acc->write(d->acc->ctx, d->bus, d->dev, d->fn, off, width, val);
}

void pci_command(const struct pci_dev *d, uint16_t set, uint16_t clear)
{
	uint16_t cmd = (uint16_t)pci_read(d, PCI_COMMAND, 2);
	pci_write(d, PCI_COMMAND, 2, (uint16_t)((cmd & ~clear) | set));
}

/* ------------------------------------------------------------ BARs */

/* Size BARs with decoding off, so the all-ones probe never decodes. Only
 * for a device a driver takes, not in the scan: each command-register write
 * makes the host remap the device's BARs (QEMU rebuilds its address space,
 * about half a millisecond under TCG), and sizing every function found cost
 * boot 5-6 ms. */
void pci_size_bars(struct pci_dev *d)
{
	if (d->bars_sized)
		return;
	d->bars_sized = 1;
	unsigned nbars = d->header_type == 0 ? 6 : d->header_type == 1 ? 2 : 0;
	uint16_t cmd = (uint16_t)pci_read(d, PCI_COMMAND, 2);
	pci_write(d, PCI_COMMAND, 2, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	for (unsigned i = 0; i < nbars; i++) {
		uint16_t off = (uint16_t)(PCI_BAR0 + 4 * i);
		uint32_t orig = pci_read(d, off, 4);
		pci_write(d, off, 4, 0xffffffffu);
		uint32_t probe = pci_read(d, off, 4);
		pci_write(d, off, 4, orig);
		struct pci_bar *b = &d->bar[i];
		if (probe == 0 || probe == 0xffffffffu)
			continue;   /* not implemented (or no device answering) */
		if (orig & 1) {
			uint32_t mask = probe & ~3u;
			if (!(mask & 0xffff0000u))
				mask |= 0xffff0000u;   /* 16-bit I/O decoders */
			b->io = 1;
			b->addr = orig & ~3u;
			b->size = (uint32_t)(~mask + 1);
			continue;
		}
		uint64_t addr = orig & ~0xfull, mask = probe & ~0xfull;
		b->prefetch = !!(orig & 8);
		if (((orig >> 1) & 3) == 2 && i + 1 < nbars) {
			uint16_t hoff = (uint16_t)(off + 4);
			uint32_t horig = pci_read(d, hoff, 4);
			pci_write(d, hoff, 4, 0xffffffffu);
			uint32_t hprobe = pci_read(d, hoff, 4);
			pci_write(d, hoff, 4, horig);
			addr |= (uint64_t)horig << 32;
			mask |= (uint64_t)hprobe << 32;
			b->mem64 = 1;
			i++;                       /* the upper half is not a BAR of its own */
		} else {
			mask |= 0xffffffff00000000ull;
		}
		b->addr = addr;
		b->size = ~mask + 1;
		if (b->size == 0 || (b->size & (b->size - 1))) {
			klog("pci %02x:%02x.%u: BAR%u size probe 0x%llx makes no sense; ignored",
			     d->bus, d->dev, d->fn, b->mem64 ? i - 1 : i, (unsigned long long)mask);
			memset(b, 0, sizeof *b);
		}
	}
	pci_write(d, PCI_COMMAND, 2, cmd);
}

/* ------------------------------------------------------------ bus walk */

struct walk {
	const struct pci_access *acc;
	struct pci_dev *out;
	unsigned max, n;
	uint8_t seen[256 / 8];
	int warned_full;
};

static void scan_bus(struct walk *w, uint8_t bus, unsigned depth)
{
	if (w->seen[bus / 8] & (1u << (bus % 8)))
		return;   /* already walked: firmware numbered two bridges alike */
	w->seen[bus / 8] |= (uint8_t)(1u << (bus % 8));
	for (uint8_t dev = 0; dev < 32; dev++) {
		uint8_t nfn = 1;
		for (uint8_t fn = 0; fn < nfn; fn++) {
			const struct pci_access *a = w->acc;
			uint16_t vendor = (uint16_t)a->read(a->ctx, bus, dev, fn, PCI_VENDOR_ID, 2);
			if (vendor == 0xffff || vendor == 0)
				continue;
			uint8_t ht = (uint8_t)a->read(a->ctx, bus, dev, fn, PCI_HEADER_TYPE, 1);
			if (fn == 0 && (ht & 0x80))
				nfn = 8;
			if (w->n >= w->max) {
				if (!w->warned_full)
					klog("pci: more than %u functions; the rest are ignored", w->max);
				w->warned_full = 1;
				return;
			}
			struct pci_dev *d = &w->out[w->n++];
			memset(d, 0, sizeof *d);
			d->acc = a;
			d->bus = bus;
			d->dev = dev;
			d->fn = fn;
			d->vendor = vendor;
			d->device = (uint16_t)a->read(a->ctx, bus, dev, fn, PCI_DEVICE_ID, 2);
			d->revision = (uint8_t)a->read(a->ctx, bus, dev, fn, PCI_REVISION, 1);
			d->prog_if = (uint8_t)a->read(a->ctx, bus, dev, fn, PCI_PROG_IF, 1);
			d->subclass = (uint8_t)a->read(a->ctx, bus, dev, fn, PCI_SUBCLASS, 1);
			d->class_code = (uint8_t)a->read(a->ctx, bus, dev, fn, PCI_CLASS, 1);
			d->header_type = ht & 0x7f;
			if (d->header_type == 1 && depth < 32) {
				uint8_t sec = (uint8_t)a->read(a->ctx, bus, dev, fn, PCI_SECONDARY_BUS, 1);
				if (sec > bus && sec >= a->bus_start && sec <= a->bus_end)
					scan_bus(w, sec, depth + 1);
			}
		}
	}
}

unsigned pci_scan(const struct pci_access *acc, struct pci_dev *out, unsigned max)
{
	struct walk w = { .acc = acc, .out = out, .max = max };
	scan_bus(&w, acc->bus_start, 0);
	return w.n;
}

/* ------------------------------------------------------------ capabilities */

uint16_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint16_t after)
{
	if (!(pci_read(d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	uint16_t ptr = after ? (uint16_t)pci_read(d, (uint16_t)(after + 1), 1)
	                     : (uint16_t)pci_read(d, PCI_CAP_PTR, 1);
	for (unsigned n = 0; n < PCI_MAX_CAPS && ptr; n++) {
		if (ptr < 0x40 || (ptr & 3) || ptr + 2 > 256) {
			klog("pci %02x:%02x.%u: capability pointer 0x%x out of bounds; list ignored from here",
			     d->bus, d->dev, d->fn, ptr);
			return 0;
		}
		if (pci_read(d, ptr, 1) == id)
			return ptr;
		ptr = (uint16_t)pci_read(d, (uint16_t)(ptr + 1), 1);
	}
	if (ptr)
		klog("pci %02x:%02x.%u: capability list does not end (loop?); ignored from here",
		     d->bus, d->dev, d->fn);
	return 0;
}
