/*
 * acpi.h - reading the firmware's ACPI tables: find a table by signature
 * (RSDP -> XSDT, or RSDT -> table) and parse the MADT (interrupt
 * controllers and how ISA interrupts reach them). Pure logic over a mapping
 * callback, so host tests feed it synthetic tables.
 *
 * Trust: the tables come from the firmware (under a hypervisor, from the
 * host). Every length is checked against what was mapped, every checksum
 * verified, table sizes are capped (ACPI_MAX_TABLE) and loops over entries
 * stop at the table's end; a malformed entry ends the walk, it is never
 * read past. Nothing here logs: the caller gets the reason and decides what
 * to say.
 */
#ifndef KERNEL_LIB_ACPI_H
#define KERNEL_LIB_ACPI_H

#include <stdint.h>

#define ACPI_HDR_LEN   36
#define ACPI_MAX_TABLE (1u << 20)   /* no sane table is larger */

/* Map `len` bytes of physical memory for reading; NULL if it cannot be. */
typedef const void *(*acpi_map_fn)(void *ctx, uint64_t pa, uint64_t len);

enum acpi_find_result {
	ACPI_FOUND = 0,
	ACPI_NO_ROOT = -1,     /* no RSDP, or RSDP/XSDT/RSDT bad: *why says which */
	ACPI_ABSENT = -2,      /* the root lists no table with that signature */
	ACPI_CORRUPT = -3,     /* the table's length or checksum is wrong */
};

/* Find the table with signature `sig` (4 characters). ACPI_FOUND with the
 * mapped table in *table and its length in *len (header included), or a
 * negative result with a reason in *why. */
int acpi_find_table(uint64_t rsdp_pa, const char *sig, acpi_map_fn map, void *ctx,
                    const uint8_t **table, uint32_t *len, const char **why);

/* ---- MADT ("APIC"): interrupt controllers */

#define ACPI_MAX_IOAPICS   4
#define ACPI_MAX_OVERRIDES 16

struct acpi_ioapic {
	uint8_t  id;
	uint64_t pa;          /* register window (4 KiB) */
	uint32_t gsi_base;    /* first global system interrupt it serves */
};

/* An ISA interrupt that does not reach the IOAPIC pin of the same number,
 * or not with ISA's edge/active-high signalling. */
struct acpi_override {
	uint8_t  isa_irq;
	uint32_t gsi;
	uint16_t flags;       /* MPS INTI flags: polarity bits 0-1, trigger bits 2-3 */
};

struct acpi_madt {
	uint64_t lapic_pa;
	int      has_8259;    /* PCAT_COMPAT: legacy PICs present (mask them) */
	unsigned n_ioapic, n_override;
	struct acpi_ioapic ioapic[ACPI_MAX_IOAPICS];
	struct acpi_override override[ACPI_MAX_OVERRIDES];
};

/* Parse a mapped MADT of `len` bytes. 0, or -1 with *why (too short, an
 * entry running past the end, no IOAPIC). Entries beyond the array sizes
 * are ignored (counted in neither). */
int acpi_parse_madt(const uint8_t *madt, uint32_t len, struct acpi_madt *out, const char **why);

/* How an ISA interrupt (also what firmware writes into a PCI function's
 * interrupt-line register) reaches the IOAPICs: its GSI, level (1) or edge
 * (0), active low (1) or high (0). Without an override: GSI = irq, edge,
 * active high (ISA's own signalling). */
struct acpi_irq_route { uint32_t gsi; int level, active_low; };
struct acpi_irq_route acpi_isa_irq_route(const struct acpi_madt *m, uint8_t irq);

#endif /* KERNEL_LIB_ACPI_H */
