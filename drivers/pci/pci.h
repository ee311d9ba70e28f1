/*
 * pci.h - PCI configuration space: finding ECAM through ACPI MCFG, walking
 * the buses behind bridges, capabilities, BAR sizing, command bits.
 *
 * The logic (pci.c) reaches configuration space only through struct
 * pci_access, so host tests run it on a simulated config space. The kernel
 * binds it to ECAM (MMIO) or, without MCFG, to ports 0xCF8/0xCFC
 * (drivers/pci/pci_hw.c, which also keeps the table of devices found at boot).
 *
 * Trust: config space comes from firmware and devices; loops in capability
 * lists or bridge numbering, out-of-range pointers and absurd BARs are
 * detected and skipped with one log line, never followed forever.
 */
#ifndef DRIVERS_PCI_H
#define DRIVERS_PCI_H

#include <stdint.h>
#include "kernel/lib/acpi.h"   /* acpi_map_fn: how tables are mapped */

#define PCI_VENDOR_ID        0x00
#define PCI_DEVICE_ID        0x02
#define PCI_COMMAND          0x04
/* Capabilities config space can hold: 4-byte aligned, from 0x40 to 0xff. */
#define PCI_MAX_CAPS         48
#define PCI_INTERRUPT_LINE   0x3c   /* ISA IRQ firmware routed INTx to; 0xff none */
#define PCI_INTERRUPT_PIN    0x3d   /* 0 none, 1..4 INTA..INTD */
#define PCI_STATUS           0x06
#define PCI_REVISION         0x08
#define PCI_PROG_IF          0x09
#define PCI_SUBCLASS         0x0a
#define PCI_CLASS            0x0b
#define PCI_HEADER_TYPE      0x0e
#define PCI_BAR0             0x10
#define PCI_SECONDARY_BUS    0x19
#define PCI_SUBORDINATE_BUS  0x1a
#define PCI_CAP_PTR          0x34

#define PCI_COMMAND_IO       0x0001
#define PCI_COMMAND_MEMORY   0x0002
#define PCI_COMMAND_MASTER   0x0004
#define PCI_COMMAND_INTX_OFF 0x0400
#define PCI_STATUS_CAP_LIST  0x0010

#define PCI_CAP_ID_VNDR      0x09
#define PCI_CAP_ID_MSIX      0x11

#define PCI_MAX_DEVS         64

/* Configuration space access: one bus range of one segment. */
struct pci_access {
	uint32_t (*read)(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned width);
	void (*write)(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned width,
	              uint32_t val);
	void *ctx;
	uint16_t cfg_size;           /* 4096 with ECAM, 256 with port I/O */
	uint8_t bus_start, bus_end;  /* buses this access can reach */
	const char *name;            /* "ECAM" or "port I/O" */
};

struct pci_bar {
	uint64_t addr;     /* as assigned by firmware (0 = unassigned) */
	uint64_t size;     /* 0 = not implemented */
	uint8_t  io;       /* I/O space */
	uint8_t  mem64;    /* 64-bit memory BAR (uses the next BAR slot too) */
	uint8_t  prefetch;
};

struct pci_dev {
	const struct pci_access *acc;
	uint8_t  bus, dev, fn;
	uint16_t vendor, device;
	uint8_t  class_code, subclass, prog_if, revision;
	uint8_t  header_type;        /* 0 device, 1 bridge (multifunction bit cleared) */
	struct pci_bar bar[6];       /* valid once pci_size_bars ran */
	uint8_t  bars_sized;
};

/* Segment 0's ECAM window from the MCFG table. */
struct pci_ecam {
	uint64_t base;               /* physical address of bus 0 (not bus_start) */
	uint8_t  bus_start, bus_end;
};


/* RSDP -> XSDT (or RSDT) -> MCFG, checksums and lengths verified. 0 and *out,
 * or -1 with the reason in *why (no log: the caller decides what to say). */
int acpi_find_ecam(uint64_t rsdp_pa, acpi_map_fn map, void *ctx, struct pci_ecam *out,
                   const char **why);

/* Walk from bus_start through bridges; fills out[0..n), returns n. Reads
 * only: BARs are sized later, for the devices drivers take. Loops in bridge
 * numbering are cut. */
unsigned pci_scan(const struct pci_access *acc, struct pci_dev *out, unsigned max);

/* Fill d->bar[] (addresses as firmware assigned them, sizes by the
 * all-ones probe, decoding off meanwhile and the command register
 * restored). Once per device; later calls do nothing. */
void pci_size_bars(struct pci_dev *d);

/* Offset of the first capability with `id` after `after` (0 = from the
 * start), or 0 if none. Walks at most 48 entries; pointers must be in
 * [0x40, cfg end) and dword aligned, else the walk stops (one log line). */
uint16_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint16_t after);

uint32_t pci_read(const struct pci_dev *d, uint16_t off, unsigned width);
void pci_write(const struct pci_dev *d, uint16_t off, unsigned width, uint32_t val);

/* Set and clear bits in the command register. */
void pci_command(const struct pci_dev *d, uint16_t set, uint16_t clear);

/* ---- kernel side (drivers/pci/pci_hw.c) */
/* The nth device (0-based) with this vendor/device id, or NULL; its BARs
 * sized (the caller is a driver taking it). */
struct pci_dev *pci_find(uint16_t vendor, uint16_t device, unsigned nth);
/* All devices found at boot, BARs sized. */
struct pci_dev *pci_devices(unsigned *n);
/* How config space is reached ("ECAM", "port I/O"; "nothing" before pci_init). */
const char *pci_access_name(void);

#endif /* DRIVERS_PCI_H */
