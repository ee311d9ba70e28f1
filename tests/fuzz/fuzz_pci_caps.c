/*
 * fuzz_pci_caps.c - libFuzzer target: what a PCI function's config space and
 * the firmware's ACPI tables can do to the code that reads them.
 *
 * The input is a script (fuzz_input.h): one function's 256 bytes of config
 * space on bus 0 (made to look like a modern virtio balloon, so the walk
 * goes deep: vendor id, device id and header type forced, everything else -
 * BARs, the capability pointer, every capability - from the input), the
 * answers BAR sizing gets back, then a byte array parsed as an ACPI MADT.
 * Run on it: pci_scan (bus walk), pci_size_bars, pci_find_cap over every id,
 * vp_parse_caps (the virtio capability walk that once looped forever on a
 * cyclic list), pci_msix_locate on what the MSI-X capability says, and
 * acpi_parse_madt + acpi_isa_irq_route for every ISA IRQ.
 *
 * Every loop must end (libFuzzer's -timeout catches one that does not), no
 * read may leave config space or the table (ASan), and what the walks
 * return must lie inside what they were given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "drivers/pci/msix.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_pci.h"
#include "fuzz_input.h"
#include "kernel/lib/acpi.h"

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz_pci_caps: " __VA_ARGS__); \
	fprintf(stderr, "\n"); abort(); } } while (0)

struct fn { uint8_t cfg[256]; uint32_t sizing[6]; int probing[6]; };

static uint32_t rd(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w)
{
	struct fn *f = ctx;
	if (bus || dev || fn)
		return 0xffffffffu;                   /* one function on the whole bus */
	CHECK(off + w <= 256 && (w == 1 || w == 2 || w == 4), "config read of %u bytes at %#x", w, off);
	if (off >= PCI_BAR0 && off < PCI_BAR0 + 24 && w == 4 && f->probing[(off - PCI_BAR0) / 4])
		return f->sizing[(off - PCI_BAR0) / 4];
	uint32_t v = 0;
	memcpy(&v, f->cfg + off, w);
	return v;
}

static void wr(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w, uint32_t v)
{
	struct fn *f = ctx;
	if (bus || dev || fn)
		return;
	CHECK(off + w <= 256, "config write of %u bytes at %#x", w, off);
	if (off >= PCI_BAR0 && off < PCI_BAR0 + 24 && w == 4) {
		f->probing[(off - PCI_BAR0) / 4] = v == 0xffffffffu;   /* sizing: the next read answers */
		if (v != 0xffffffffu)
			memcpy(f->cfg + off, &v, 4);
		return;
	}
	if (off == PCI_COMMAND)
		memcpy(f->cfg + off, &v, w);              /* decoding on/off: kept, nothing else */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	static struct fn f;
	memset(&f, 0, sizeof f);
	for (unsigned i = 0; i < 256; i++)
		f.cfg[i] = byte(&in);
	for (unsigned i = 0; i < 6; i++)
		f.sizing[i] = u32(&in);
	const uint16_t vendor = 0x1af4, device = 0x1045;
	memcpy(f.cfg + PCI_VENDOR_ID, &vendor, 2);
	memcpy(f.cfg + PCI_DEVICE_ID, &device, 2);
	f.cfg[PCI_HEADER_TYPE] = 0;

	struct pci_access acc = { rd, wr, &f, 256, 0, 0, "fuzz" };
	static struct pci_dev devs[PCI_MAX_DEVS];
	unsigned n = pci_scan(&acc, devs, PCI_MAX_DEVS);
	for (unsigned i = 0; i < n; i++)
		pci_size_bars(&devs[i]);
	CHECK(n <= 1, "%u functions found on a bus with one", n);
	for (unsigned i = 0; i < n; i++) {
		const struct pci_dev *d = &devs[i];
		for (unsigned id = 0; id < 256; id += 7) {
			uint16_t c = pci_find_cap(d, (uint8_t)id, 0);
			CHECK(c == 0 || (c >= 0x40 && c <= 0xfc), "capability at %#x", c);
		}
		struct vp_dev vp = { .name = "fuzz" };
		if (vp_parse_caps(&vp, d) == 0)
			for (int r = 0; r < VP_NREGIONS; r++)
				CHECK(vp.r[r].bar < 6 && (uint64_t)vp.r[r].offset + vp.r[r].length <= d->bar[vp.r[r].bar].size,
				      "region %d outside its BAR", r);
		uint16_t mc;
		uint64_t pa;
		uint16_t entries;
		const char *why;
		if (pci_msix_find(d, &mc, &pa, &entries, &why) == 0) {
			uint32_t table = rd(&f, 0, 0, 0, (uint16_t)(mc + 4), 4);
			const struct pci_bar *b = &d->bar[table & 7];
			CHECK((table & 7) < 6 && pa >= b->addr &&
			      pa - b->addr + (uint64_t)entries * 16 <= b->size, "MSI-X table outside its BAR");
		}
	}

	/* The rest of the input is an MADT (header included). */
	uint8_t madt[1024];
	size_t len = in.n < sizeof madt ? in.n : sizeof madt;
	memcpy(madt, in.p, len);
	struct acpi_madt m;
	const char *why;
	(void)why;
	if (acpi_parse_madt(madt, (uint32_t)len, &m, &why) == 0) {
		CHECK(m.n_ioapic >= 1 && m.n_ioapic <= ACPI_MAX_IOAPICS && m.n_override <= ACPI_MAX_OVERRIDES,
		      "%u I/O APICs, %u overrides", m.n_ioapic, m.n_override);
		for (unsigned irq = 0; irq < 256; irq++)
			(void)acpi_isa_irq_route(&m, (uint8_t)irq);
	}
	return 0;
}
