/*
 * acpi.c - ACPI table lookup and the MADT; contract in acpi.h.
 */
#include <string.h>
#include "kernel/lib/acpi.h"

static uint16_t le16_at(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t le32_at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t le64_at(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static int checksum_ok(const uint8_t *p, uint32_t len)
{
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return sum == 0;
}

/* Map a whole SDT: the header first, to learn its length. */
static const uint8_t *map_sdt(uint64_t pa, acpi_map_fn map, void *ctx, uint32_t *len)
{
	if (!pa)
		return NULL;
	const uint8_t *h = map(ctx, pa, ACPI_HDR_LEN);
	if (!h)
		return NULL;
	uint32_t l = le32_at(h + 4);
	if (l < ACPI_HDR_LEN || l > ACPI_MAX_TABLE)
		return NULL;
	const uint8_t *t = map(ctx, pa, l);
	if (!t || !checksum_ok(t, l))
		return NULL;
	*len = l;
	return t;
}

int acpi_find_table(uint64_t rsdp_pa, const char *sig, acpi_map_fn map, void *ctx,
                    const uint8_t **table, uint32_t *len, const char **why)
{
	const uint8_t *rsdp = rsdp_pa ? map(ctx, rsdp_pa, 36) : NULL;
	if (!rsdp) {
		*why = "no ACPI RSDP";
		return ACPI_NO_ROOT;
	}
	if (memcmp(rsdp, "RSD PTR ", 8) != 0 || !checksum_ok(rsdp, 20)) {
		*why = "RSDP signature or checksum bad";
		return ACPI_NO_ROOT;
	}
	uint64_t root_pa;
	unsigned entry_size;
	if (rsdp[15] >= 2 && le32_at(rsdp + 20) >= 36 && checksum_ok(rsdp, 36) && le64_at(rsdp + 24)) {
		root_pa = le64_at(rsdp + 24);     /* XSDT: 64-bit entries */
		entry_size = 8;
	} else {
		root_pa = le32_at(rsdp + 16);     /* RSDT: 32-bit entries */
		entry_size = 4;
	}
	uint32_t root_len;
	const uint8_t *root = map_sdt(root_pa, map, ctx, &root_len);
	if (!root || memcmp(root, entry_size == 8 ? "XSDT" : "RSDT", 4) != 0) {
		*why = "XSDT/RSDT missing or corrupt";
		return ACPI_NO_ROOT;
	}
	for (uint32_t off = ACPI_HDR_LEN; off + entry_size <= root_len; off += entry_size) {
		uint64_t pa = entry_size == 8 ? le64_at(root + off) : le32_at(root + off);
		const uint8_t *h = pa ? map(ctx, pa, ACPI_HDR_LEN) : NULL;
		if (!h || memcmp(h, sig, 4) != 0)
			continue;
		*table = map_sdt(pa, map, ctx, len);
		if (!*table) {
			*why = "table corrupt (length or checksum)";
			return ACPI_CORRUPT;
		}
		return ACPI_FOUND;
	}
	*why = "no such table";
	return ACPI_ABSENT;
}

/* MADT: header, le32 local APIC address, le32 flags, then entries of
 * (type, length, ...). Types used: 1 I/O APIC, 2 interrupt source override,
 * 5 local APIC address override (64-bit). */
enum { MADT_IOAPIC = 1, MADT_OVERRIDE = 2, MADT_LAPIC_ADDR = 5 };
#define MADT_PCAT_COMPAT 1u

int acpi_parse_madt(const uint8_t *t, uint32_t len, struct acpi_madt *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (len < ACPI_HDR_LEN + 8) {
		*why = "MADT too short";
		return -1;
	}
	out->lapic_pa = le32_at(t + ACPI_HDR_LEN);
	out->has_8259 = (le32_at(t + ACPI_HDR_LEN + 4) & MADT_PCAT_COMPAT) != 0;
	for (uint32_t off = ACPI_HDR_LEN + 8; off < len;) {
		if (len - off < 2 || t[off + 1] < 2 || t[off + 1] > len - off) {
			*why = "MADT entry runs past the table";
			return -1;
		}
		const uint8_t *e = t + off;
		uint8_t type = e[0], elen = e[1];
		if (type == MADT_IOAPIC && elen >= 12 && out->n_ioapic < ACPI_MAX_IOAPICS) {
			struct acpi_ioapic *io = &out->ioapic[out->n_ioapic++];
			io->id = e[2];
			io->pa = le32_at(e + 4);
			io->gsi_base = le32_at(e + 8);
		} else if (type == MADT_OVERRIDE && elen >= 10 && e[2] == 0 &&   /* bus 0: ISA */
		           out->n_override < ACPI_MAX_OVERRIDES) {
			struct acpi_override *o = &out->override[out->n_override++];
			o->isa_irq = e[3];
			o->gsi = le32_at(e + 4);
			o->flags = le16_at(e + 8);
		} else if (type == MADT_LAPIC_ADDR && elen >= 12) {
			out->lapic_pa = le64_at(e + 4);
		}
		off += elen;
	}
	if (!out->n_ioapic) {
		*why = "MADT lists no I/O APIC";
		return -1;
	}
	return 0;
}

struct acpi_irq_route acpi_isa_irq_route(const struct acpi_madt *m, uint8_t irq)
{
	struct acpi_irq_route r = { irq, 0, 0 };   /* ISA: edge, active high */
	for (unsigned i = 0; i < m->n_override; i++) {
		const struct acpi_override *o = &m->override[i];
		if (o->isa_irq != irq)
			continue;
		r.gsi = o->gsi;
		unsigned pol = o->flags & 3, trig = (o->flags >> 2) & 3;
		r.active_low = pol == 3;   /* 0: as the bus (ISA: high), 1: high, 3: low */
		r.level = trig == 3;       /* 0: as the bus (ISA: edge), 1: edge, 3: level */
		break;
	}
	return r;
}
