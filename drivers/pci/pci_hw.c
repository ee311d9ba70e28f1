/*
 * pci_hw.c - the kernel shell of PCI: configuration space through ECAM
 * (found via ACPI MCFG) or, failing that, ports 0xCF8/0xCFC; the boot-time
 * scan (INIT_BUS); the device table drivers look things up in; `lspci`.
 */
#include <stdio.h>
#include "hw/io.h"
#include "kernel/lib/boot.h"
#include "kernel/lib/initcall.h"
#include "mm/kmem.h"
#include "klog.h"
#include "drivers/pci/pci.h"

static struct pci_access acc;
static volatile uint8_t *ecam;       /* mapped at bus acc.bus_start */
static struct pci_dev devs[PCI_MAX_DEVS];
static unsigned ndevs;

/* ---- ECAM: bus << 20 | dev << 15 | fn << 12 | offset, native widths */

static volatile void *ecam_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return ecam + ((uint64_t)(bus - acc.bus_start) << 20 | (uint64_t)dev << 15 |
	               (uint64_t)fn << 12 | off);
}

static uint32_t ecam_read(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w)
{
	if (bus < acc.bus_start || bus > acc.bus_end || off + w > 4096)
		return 0xffffffffu;
	volatile void *a = ecam_addr(bus, dev, fn, off);
	return w == 1 ? mmio_read8(a) : w == 2 ? mmio_read16(a) : mmio_read32(a);
}

static void ecam_write(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w,
                       uint32_t v)
{
	if (bus < acc.bus_start || bus > acc.bus_end || off + w > 4096)
		return;
	volatile void *a = ecam_addr(bus, dev, fn, off);
	if (w == 1) mmio_write8(a, (uint8_t)v);
	else if (w == 2) mmio_write16(a, (uint16_t)v);
	else mmio_write32(a, v);
}

/* ---- configuration mechanism #1: first 256 bytes only */

#define PCI_CONF_ADDR 0xcf8
#define PCI_CONF_DATA 0xcfc

static void port_select(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	outl(PCI_CONF_ADDR, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 |
	                    (uint32_t)fn << 8 | (off & 0xfc));
}

static uint32_t port_read(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w)
{
	if (off + w > 256)
		return 0xffffffffu;
	port_select(bus, dev, fn, off);
	uint16_t port = (uint16_t)(PCI_CONF_DATA + (off & 3));
	return w == 1 ? inb(port) : w == 2 ? inw(port) : inl(port);
}

static void port_write(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w,
                       uint32_t v)
{
	if (off + w > 256)
		return;
	port_select(bus, dev, fn, off);
	uint16_t port = (uint16_t)(PCI_CONF_DATA + (off & 3));
	if (w == 1) outb(port, (uint8_t)v);
	else if (w == 2) outw(port, (uint16_t)v);
	else outl(port, v);
}

static int pci_init(void)
{
	const struct boot_info *bi = boot_info_get();
	struct pci_ecam e;
	const char *why = "no boot info";
	if (bi && acpi_find_ecam(bi->acpi_rsdp, boot_map_acpi, NULL, &e, &why) == 0) {
		uint64_t len = (uint64_t)(e.bus_end - e.bus_start + 1) << 20;
		ecam = mmio_map(e.base + ((uint64_t)e.bus_start << 20), len);
		if (ecam) {
			acc = (struct pci_access){ ecam_read, ecam_write, NULL, 4096, e.bus_start,
			                           e.bus_end, "ECAM" };
			klog("pci: ECAM at %#llx, buses %u-%u", (unsigned long long)e.base, e.bus_start,
			     e.bus_end);
		} else {
			why = "ECAM window could not be mapped";
		}
	}
	if (!ecam) {
		klog("pci: %s; using port I/O (config space limited to 256 bytes)", why);
		acc = (struct pci_access){ port_read, port_write, NULL, 256, 0, 255, "port I/O" };
	}
	ndevs = pci_scan(&acc, devs, PCI_MAX_DEVS);
	klog("pci: %u functions found", ndevs);
	return ndevs ? 0 : -1;
}
INITCALL(INIT_BUS, pci_init);

struct pci_dev *pci_find(uint16_t vendor, uint16_t device, unsigned nth)
{
	for (unsigned i = 0; i < ndevs; i++)
		if (devs[i].vendor == vendor && devs[i].device == device && nth-- == 0) {
			pci_size_bars(&devs[i]);
			return &devs[i];
		}
	return NULL;
}

struct pci_dev *pci_devices(unsigned *n)
{
	for (unsigned i = 0; i < ndevs; i++)
		pci_size_bars(&devs[i]);
	*n = ndevs;
	return devs;
}

const char *pci_access_name(void) { return acc.name ? acc.name : "nothing"; }
