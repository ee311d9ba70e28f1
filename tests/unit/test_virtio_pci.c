/*
 * test_virtio_pci.c - PCI and the virtio-pci modern transport on simulated
 * hardware: ACPI MCFG lookup (XSDT and RSDT, corrupt tables), bus walk
 * through bridges (and bridge loops), BAR sizing (32/64-bit, I/O, above
 * 4 GiB, decoding off while probing), capability lists (and loops), virtio
 * vendor capabilities, the init order, and hostile devices: FEATURES_OK
 * refused, queue size 0 / not a power of two / too large, notify offset out
 * of range, config generation never settling, reset never completing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/balloon/balloon.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_pci.h"
#include "fake_virtio_pci.h"
#include "host_support.h"

/* ------------------------------------------------------------ fake config space */

enum { BAR_NONE, BAR_MEM32, BAR_MEM64, BAR_IO };

struct ffn {
	uint8_t bus, dev, fn;
	uint8_t cfg[256];
	uint64_t bar_size[6];
	uint8_t bar_type[6], probing[6], upper[6];
};

struct fpci {
	struct ffn f[16];
	unsigned n;
	unsigned probe_while_decoding;
	unsigned reads, writes;
};

static struct ffn *lookup(struct fpci *p, uint8_t bus, uint8_t dev, uint8_t fn)
{
	for (unsigned i = 0; i < p->n; i++)
		if (p->f[i].bus == bus && p->f[i].dev == dev && p->f[i].fn == fn)
			return &p->f[i];
	return NULL;
}

static uint32_t fp_read(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w)
{
	struct fpci *p = ctx;
	p->reads++;
	struct ffn *f = lookup(p, bus, dev, fn);
	if (!f)
		return w == 4 ? 0xffffffffu : w == 2 ? 0xffff : 0xff;
	uint32_t v = 0;
	memcpy(&v, f->cfg + off, w);
	unsigned i = (off - PCI_BAR0) / 4;
	if (off >= PCI_BAR0 && off < PCI_BAR0 + 24 && w == 4 && f->probing[i]) {
		unsigned lo = f->upper[i] ? i - 1 : i;
		uint64_t mask = ~(f->bar_size[lo] - 1);
		if (f->upper[i])
			v = (uint32_t)(mask >> 32);
		else if (f->bar_type[i] == BAR_IO)
			v = ((uint32_t)mask & 0xffff) | (f->cfg[off] & 3);
		else if (f->bar_type[i] == BAR_NONE)
			v = 0;
		else
			v = ((uint32_t)mask & ~0xfu) | (f->cfg[off] & 0xf);
	}
	return v;
}

static void fp_write(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w, uint32_t v)
{
	struct fpci *p = ctx;
	p->writes++;
	struct ffn *f = lookup(p, bus, dev, fn);
	if (!f)
		return;
	if (off >= PCI_BAR0 && off < PCI_BAR0 + 24 && w == 4) {
		unsigned i = (off - PCI_BAR0) / 4;
		if (v == 0xffffffffu) {
			if (f->cfg[PCI_COMMAND] & 3)
				p->probe_while_decoding++;
			f->probing[i] = 1;
			return;
		}
		f->probing[i] = 0;
		if (f->bar_type[i] == BAR_NONE && !f->upper[i])
			return;
	}
	memcpy(f->cfg + off, &v, w);
}

static struct ffn *add_fn(struct fpci *p, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t vendor,
                          uint16_t device, uint8_t header)
{
	struct ffn *f = &p->f[p->n++];
	memset(f, 0, sizeof *f);
	f->bus = bus; f->dev = dev; f->fn = fn;
	memcpy(f->cfg + PCI_VENDOR_ID, &vendor, 2);
	memcpy(f->cfg + PCI_DEVICE_ID, &device, 2);
	f->cfg[PCI_HEADER_TYPE] = header;
	f->cfg[PCI_COMMAND] = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
	return f;
}

static void set_bar(struct ffn *f, unsigned i, unsigned type, uint64_t addr, uint64_t size, int prefetch)
{
	f->bar_type[i] = (uint8_t)type;
	f->bar_size[i] = size;
	uint32_t lo = (uint32_t)addr;
	if (type == BAR_IO)
		lo |= 1;
	if (type == BAR_MEM64) {
		lo |= 4;
		f->upper[i + 1] = 1;
		f->bar_type[i + 1] = BAR_MEM64;
		uint32_t hi = (uint32_t)(addr >> 32);
		memcpy(f->cfg + PCI_BAR0 + 4 * (i + 1), &hi, 4);
	}
	if (prefetch)
		lo |= 8;
	memcpy(f->cfg + PCI_BAR0 + 4 * i, &lo, 4);
}

static void add_cap(struct ffn *f, uint8_t at, const uint8_t *bytes, unsigned len)
{
	f->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	/* append to the end of the list */
	uint8_t *link = &f->cfg[PCI_CAP_PTR];
	while (*link)
		link = &f->cfg[*link + 1];
	*link = at;
	memcpy(f->cfg + at, bytes, len);
	f->cfg[at + 1] = 0;
}

static void add_vcap(struct ffn *f, uint8_t at, uint8_t type, uint8_t bar, uint32_t off, uint32_t len,
                     uint32_t mult)
{
	uint8_t c[20] = { PCI_CAP_ID_VNDR, 0, type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16, type, bar };
	memcpy(c + 8, &off, 4);
	memcpy(c + 12, &len, 4);
	memcpy(c + 16, &mult, 4);
	add_cap(f, at, c, c[2]);
}

static struct pci_access access_of(struct fpci *p)
{
	return (struct pci_access){ fp_read, fp_write, p, 4096, 0, 255, "fake" };
}

/* q35-like: host bridge, a root port to bus 1 with the modern balloon, a
 * transitional virtio-blk on bus 0, a multifunction device. */
static void build_q35(struct fpci *p)
{
	memset(p, 0, sizeof *p);
	add_fn(p, 0, 0, 0, 0x8086, 0x29c0, 0);
	struct ffn *rp = add_fn(p, 0, 1, 0, 0x1b36, 0x000c, 1);
	rp->cfg[PCI_SECONDARY_BUS] = 1;
	rp->cfg[PCI_SUBORDINATE_BUS] = 1;
	set_bar(rp, 0, BAR_MEM32, 0xc0202000, 0x1000, 0);
	struct ffn *blk = add_fn(p, 0, 2, 0, 0x1af4, 0x1001, 0);
	set_bar(blk, 0, BAR_IO, 0x6200, 0x80, 0);
	set_bar(blk, 1, BAR_MEM32, 0xc0201000, 0x1000, 0);
	set_bar(blk, 4, BAR_MEM64, 0xe020000000ull, 0x4000, 1);
	add_fn(p, 0, 31, 0, 0x8086, 0x2918, 0x80);
	add_fn(p, 0, 31, 2, 0x8086, 0x2922, 0);
	add_fn(p, 0, 31, 3, 0x8086, 0x2930, 0);
	struct ffn *bal = add_fn(p, 1, 0, 0, 0x1af4, 0x1045, 0);
	set_bar(bal, 4, BAR_MEM64, 0xe000000000ull, 0x4000, 1);
	uint8_t msix[12] = { PCI_CAP_ID_MSIX };
	add_cap(bal, 0xc0, msix, sizeof msix);
	add_vcap(bal, 0xa0, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0x0000, 0x1000, 0);
	add_vcap(bal, 0x88, VIRTIO_PCI_CAP_ISR_CFG, 4, 0x1000, 0x1000, 0);
	add_vcap(bal, 0x70, VIRTIO_PCI_CAP_DEVICE_CFG, 4, 0x2000, 0x1000, 0);
	add_vcap(bal, 0x58, VIRTIO_PCI_CAP_NOTIFY_CFG, 4, 0x3000, 0x1000, 4);
	add_vcap(bal, 0x40, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, 0);
}

static const struct pci_dev *find(const struct pci_dev *d, unsigned n, uint16_t vendor, uint16_t device)
{
	for (unsigned i = 0; i < n; i++)
		if (d[i].vendor == vendor && d[i].device == device)
			return &d[i];
	return NULL;
}

static struct fpci P;
static struct pci_dev devs[PCI_MAX_DEVS];

/* What a driver sees: the scan, then the BARs of the devices it takes
 * (pci_find sizes them); here all of them. */
static unsigned scan(const struct pci_access *a)
{
	unsigned n = pci_scan(a, devs, PCI_MAX_DEVS);
	for (unsigned i = 0; i < n; i++)
		pci_size_bars(&devs[i]);
	return n;
}

/* The scan itself only reads: every write to a command register makes the
 * host remap BARs (slow under TCG), so sizing waits for a driver. Sizing
 * twice probes once. */
static void test_scan_only_reads(void **state)
{
	(void)state;
	build_q35(&P);
	struct pci_access a = access_of(&P);
	unsigned n = pci_scan(&a, devs, PCI_MAX_DEVS);
	assert_int_equal(n, 7);
	assert_int_equal(P.writes, 0);
	struct pci_dev *bal = (struct pci_dev *)find(devs, n, 0x1af4, 0x1045);
	assert_int_equal(bal->bar[4].size, 0);
	pci_size_bars(bal);
	unsigned w = P.writes;
	assert_true(w > 0);
	assert_int_equal(bal->bar[4].size, 0x4000);
	pci_size_bars(bal);
	assert_int_equal(P.writes, w);
}

static void test_scan_walks_bridges_and_functions(void **state)
{
	(void)state;
	build_q35(&P);
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	assert_int_equal(n, 7);
	const struct pci_dev *bal = find(devs, n, 0x1af4, 0x1045);
	assert_non_null(bal);
	assert_int_equal(bal->bus, 1);
	assert_non_null(find(devs, n, 0x8086, 0x2930));   /* function 3 of a multifunction device */
	assert_int_equal(find(devs, n, 0x1b36, 0x000c)->header_type, 1);
	assert_int_equal(P.probe_while_decoding, 0);
	/* command registers restored after sizing */
	for (unsigned i = 0; i < P.n; i++)
		assert_int_equal(P.f[i].cfg[PCI_COMMAND], PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
}

static void test_bar_sizing(void **state)
{
	(void)state;
	build_q35(&P);
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	const struct pci_dev *blk = find(devs, n, 0x1af4, 0x1001);
	assert_int_equal(blk->bar[0].io, 1);
	assert_int_equal(blk->bar[0].addr, 0x6200);
	assert_int_equal(blk->bar[0].size, 0x80);
	assert_int_equal(blk->bar[1].io, 0);
	assert_int_equal(blk->bar[1].mem64, 0);
	assert_int_equal(blk->bar[1].addr, 0xc0201000);
	assert_int_equal(blk->bar[1].size, 0x1000);
	assert_int_equal(blk->bar[4].mem64, 1);
	assert_int_equal(blk->bar[4].prefetch, 1);
	assert_int_equal(blk->bar[4].addr, 0xe020000000ull);
	assert_int_equal(blk->bar[4].size, 0x4000);
	assert_int_equal(blk->bar[5].size, 0);            /* upper half, not a BAR */
	assert_int_equal(blk->bar[2].size, 0);
	/* the BAR registers hold their original values again */
	uint32_t v;
	memcpy(&v, P.f[2].cfg + PCI_BAR0 + 16, 4);
	assert_int_equal(v, 0x2000000c);
	memcpy(&v, P.f[2].cfg + PCI_BAR0 + 20, 4);
	assert_int_equal(v, 0xe0);
}

static void test_bridge_loop_is_cut(void **state)
{
	(void)state;
	build_q35(&P);
	/* a second bridge on bus 1 claims bus 1 again, and one claims bus 0 */
	struct ffn *b2 = add_fn(&P, 1, 3, 0, 0x1b36, 0x000c, 1);
	b2->cfg[PCI_SECONDARY_BUS] = 1;
	struct ffn *b3 = add_fn(&P, 1, 4, 0, 0x1b36, 0x000c, 1);
	b3->cfg[PCI_SECONDARY_BUS] = 0;
	/* and a second root port on bus 0 claims bus 1 as well */
	struct ffn *b4 = add_fn(&P, 0, 5, 0, 0x1b36, 0x000c, 1);
	b4->cfg[PCI_SECONDARY_BUS] = 1;
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	assert_int_equal(n, 10);
	unsigned on_bus1 = 0;
	for (unsigned i = 0; i < n; i++)
		on_bus1 += devs[i].bus == 1;
	assert_int_equal(on_bus1, 3);
}

static void test_scan_table_full(void **state)
{
	(void)state;
	build_q35(&P);
	struct pci_access a = access_of(&P);
	host_klog_reset();
	assert_int_equal(pci_scan(&a, devs, 3), 3);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("more than 3 functions"));
}

static void test_capability_walk_and_loop(void **state)
{
	(void)state;
	build_q35(&P);
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	const struct pci_dev *bal = find(devs, n, 0x1af4, 0x1045);
	uint16_t c = pci_find_cap(bal, PCI_CAP_ID_VNDR, 0);
	unsigned count = 0;
	for (; c; c = pci_find_cap(bal, PCI_CAP_ID_VNDR, c))
		count++;
	assert_int_equal(count, 5);
	assert_int_equal(pci_find_cap(bal, PCI_CAP_ID_MSIX, 0), 0xc0);
	/* a loop: the last capability points back at the first */
	struct ffn *f = lookup(&P, 1, 0, 0);
	f->cfg[0x40 + 1] = 0xc0;
	host_klog_reset();
	assert_int_equal(pci_find_cap(bal, 0x05, 0), 0);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("does not end"));
	/* a pointer into the header */
	f->cfg[0x40 + 1] = 0x10;
	host_klog_reset();
	assert_int_equal(pci_find_cap(bal, 0x05, 0), 0);
	assert_true(host_klog_contains("out of bounds"));
}

/* ------------------------------------------------------------ ACPI */

static uint8_t phys[0x8000];

static const void *map_phys(void *ctx, uint64_t pa, uint64_t len)
{
	(void)ctx;
	return pa + len <= sizeof phys ? phys + pa : NULL;
}

static void fix_checksum(uint8_t *p, uint32_t len, unsigned at)
{
	uint8_t sum = 0;
	p[at] = 0;
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	p[at] = (uint8_t)-sum;
}

static void sdt(uint64_t pa, const char *sig, uint32_t len)
{
	memcpy(phys + pa, sig, 4);
	memcpy(phys + pa + 4, &len, 4);
	phys[pa + 8] = 1;
}

static void build_acpi(int xsdt)
{
	memset(phys, 0, sizeof phys);
	/* RSDP at 0x100 */
	memcpy(phys + 0x100, "RSD PTR ", 8);
	phys[0x100 + 15] = xsdt ? 2 : 0;
	uint32_t rsdt = 0x1000;
	uint64_t xs = 0x1800;
	memcpy(phys + 0x100 + 16, &rsdt, 4);
	uint32_t len36 = 36;
	memcpy(phys + 0x100 + 20, &len36, 4);
	if (xsdt)
		memcpy(phys + 0x100 + 24, &xs, 8);
	fix_checksum(phys + 0x100, 20, 8);
	fix_checksum(phys + 0x100, 36, 32);
	/* FACP dummy at 0x2000, MCFG at 0x3000 */
	sdt(0x2000, "FACP", 36);
	fix_checksum(phys + 0x2000, 36, 9);
	sdt(0x3000, "MCFG", 36 + 8 + 32);
	uint64_t base1 = 0xd0000000;      /* segment 1: ignored */
	uint16_t seg1 = 1;
	memcpy(phys + 0x3000 + 44, &base1, 8);
	memcpy(phys + 0x3000 + 52, &seg1, 2);
	uint64_t base = 0xb0000000;
	memcpy(phys + 0x3000 + 60, &base, 8);
	phys[0x3000 + 70] = 0;
	phys[0x3000 + 71] = 255;
	fix_checksum(phys + 0x3000, 76, 9);
	/* RSDT with 32-bit entries, XSDT with 64-bit ones */
	sdt(0x1000, "RSDT", 36 + 8);
	uint32_t e32[2] = { 0x2000, 0x3000 };
	memcpy(phys + 0x1000 + 36, e32, 8);
	fix_checksum(phys + 0x1000, 44, 9);
	sdt(0x1800, "XSDT", 36 + 16);
	uint64_t e64[2] = { 0x2000, 0x3000 };
	memcpy(phys + 0x1800 + 36, e64, 16);
	fix_checksum(phys + 0x1800, 52, 9);
}

static void test_mcfg_found(void **state)
{
	(void)state;
	for (int x = 0; x < 2; x++) {
		build_acpi(x);
		struct pci_ecam e;
		const char *why = NULL;
		assert_int_equal(acpi_find_ecam(0x100, map_phys, NULL, &e, &why), 0);
		assert_int_equal(e.base, 0xb0000000);
		assert_int_equal(e.bus_start, 0);
		assert_int_equal(e.bus_end, 255);
	}
	/* XSDT preferred: break the RSDT and it still works with revision 2 */
	build_acpi(1);
	memcpy(phys + 0x1000, "XXXX", 4);
	struct pci_ecam e;
	const char *why = NULL;
	assert_int_equal(acpi_find_ecam(0x100, map_phys, NULL, &e, &why), 0);
}

static void test_mcfg_errors(void **state)
{
	(void)state;
	struct pci_ecam e;
	const char *why = NULL;
	assert_int_equal(acpi_find_ecam(0, map_phys, NULL, &e, &why), -1);
	assert_string_equal(why, "no ACPI RSDP");
	build_acpi(1);
	phys[0x100 + 9] ^= 1;                      /* RSDP checksum */
	assert_int_equal(acpi_find_ecam(0x100, map_phys, NULL, &e, &why), -1);
	assert_non_null(strstr(why, "RSDP"));
	build_acpi(1);
	phys[0x3000 + 60] ^= 0x10;                 /* MCFG body changed, checksum stale */
	assert_int_equal(acpi_find_ecam(0x100, map_phys, NULL, &e, &why), -1);
	assert_non_null(strstr(why, "MCFG corrupt"));
	build_acpi(1);
	uint32_t huge = 0x7fffffff;                /* absurd MCFG length */
	memcpy(phys + 0x3000 + 4, &huge, 4);
	assert_int_equal(acpi_find_ecam(0x100, map_phys, NULL, &e, &why), -1);
	build_acpi(1);
	memcpy(phys + 0x3000, "APIC", 4);          /* no MCFG at all */
	fix_checksum(phys + 0x3000, 76, 9);
	assert_int_equal(acpi_find_ecam(0x100, map_phys, NULL, &e, &why), -1);
	assert_string_equal(why, "no MCFG table");
}

/* ------------------------------------------------------------ virtio caps */

static void test_virtio_caps_parsed(void **state)
{
	(void)state;
	build_q35(&P);
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	struct vp_dev vp = { .name = "vb" };
	assert_int_equal(vp_parse_caps(&vp, find(devs, n, 0x1af4, 0x1045)), 0);
	assert_int_equal(vp.r[VP_COMMON].bar, 4);
	assert_int_equal(vp.r[VP_COMMON].offset, 0);
	assert_int_equal(vp.r[VP_ISR].offset, 0x1000);
	assert_int_equal(vp.r[VP_DEVICE].offset, 0x2000);
	assert_int_equal(vp.r[VP_NOTIFY].offset, 0x3000);
	assert_int_equal(vp.notify_mult, 4);
}

static void test_virtio_caps_bad_ones_skipped(void **state)
{
	(void)state;
	build_q35(&P);
	struct ffn *bal = lookup(&P, 1, 0, 0);
	/* prepend unusable common caps: BAR 7, and beyond the BAR's 16 KiB */
	memset(bal->cfg + 0x40, 0, 0xc0);
	bal->cfg[PCI_CAP_PTR] = 0;
	add_vcap(bal, 0xc0, VIRTIO_PCI_CAP_COMMON_CFG, 7, 0, 0x1000, 0);
	add_vcap(bal, 0xd0, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0x3800, 0x1000, 0);
	add_vcap(bal, 0xa0, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0x0000, 0x1000, 0);
	add_vcap(bal, 0x88, VIRTIO_PCI_CAP_ISR_CFG, 4, 0x1000, 0x1000, 0);
	add_vcap(bal, 0x70, VIRTIO_PCI_CAP_DEVICE_CFG, 4, 0x2000, 0x1000, 0);
	add_vcap(bal, 0x58, VIRTIO_PCI_CAP_NOTIFY_CFG, 4, 0x3000, 0x1000, 4);
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	struct vp_dev vp = { .name = "vb" };
	assert_int_equal(vp_parse_caps(&vp, find(devs, n, 0x1af4, 0x1045)), 0);
	assert_int_equal(vp.r[VP_COMMON].offset, 0);
	/* without the good one: refused with one line */
	bal->cfg[0x88 + 1] = 0;     /* list ends after ISR: no device/notify caps */
	memset(&vp, 0, sizeof vp);
	vp.name = "vb";
	host_klog_reset();
	assert_int_equal(vp_parse_caps(&vp, find(devs, n, 0x1af4, 0x1045)), -1);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("no usable notify config capability"));
}

/* A loop of vendor capabilities (one pointing at itself): each pci_find_cap
 * call is bounded, but the walk calls it again with after = cap, so the walk
 * itself must be bounded too - it used to hang boot here. */
static void test_virtio_caps_cyclic_list(void **state)
{
	(void)state;
	build_q35(&P);
	struct ffn *bal = lookup(&P, 1, 0, 0);
	bal->cfg[0x40 + 1] = 0x40;     /* the last capability (PCI_CFG at 0x40) points at itself */
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	struct vp_dev vp = { .name = "vb" };
	host_klog_reset();
	/* the four regions come before the loop: found, with one line about it */
	assert_int_equal(vp_parse_caps(&vp, find(devs, n, 0x1af4, 0x1045)), 0);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("capability list"));
	/* a loop before them (the first capability points at itself) */
	bal->cfg[PCI_CAP_PTR] = 0xa0;
	bal->cfg[0xa0 + 1] = 0xa0;
	memset(&vp, 0, sizeof vp);
	vp.name = "vb";
	host_klog_reset();
	assert_int_equal(vp_parse_caps(&vp, find(devs, n, 0x1af4, 0x1045)), -1);
	assert_true(host_klog_contains("capability list"));
	assert_true(host_klog_count() <= 2);
}

static void test_legacy_only_device_refused(void **state)
{
	(void)state;
	build_q35(&P);
	struct pci_access a = access_of(&P);
	unsigned n = scan(&a);
	struct vp_dev vp = { .name = "blk" };
	host_klog_reset();
	assert_int_equal(vp_parse_caps(&vp, find(devs, n, 0x1af4, 0x1001)), -1);
	assert_true(host_klog_contains("no usable common config capability"));
}

/* ------------------------------------------------------------ transport */

static struct fake_vpci F;
static struct vp_dev VP;
static struct virtq Q[3];

static int bring_up(uint64_t wanted, unsigned nq)
{
	fake_vpci_attach(&F, &VP);
	host_klog_reset();
	if (vp_begin(&VP) != 0)
		return -1;
	if (vp_set_features(&VP, wanted & vp_device_features(&VP)) != 0)
		return -1;
	for (unsigned i = 0; i < nq; i++) {
		int rc = vp_setup_queue(&VP, (uint16_t)i, &Q[i], "q", 128);
		if (rc)
			return rc;
	}
	vp_driver_ok(&VP);
	return 0;
}

static void test_init_order_and_queues(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.status = 0x0f;    /* left over from firmware: must be reset first */
	uint64_t want = balloon_features_wanted(F.host_features);
	assert_int_equal(bring_up(want, 3), 0);
	const uint8_t expect[] = { 0, 1, 3, 11, 15 };
	assert_int_equal(F.nstatus, sizeof expect);
	assert_memory_equal(F.status_log, expect, sizeof expect);
	assert_int_equal(F.order_errors, 0);
	assert_int_equal(F.driver_features, (1ull << 32) | (1ull << 1));
	assert_int_equal(VP.features, F.driver_features);
	assert_int_equal(VP.num_queues, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(F.q[i].enable, 1);
		assert_int_equal(F.q[i].size, 128);
		assert_int_equal(F.q[i].desc, Q[i].desc_pa);
		assert_int_equal(F.q[i].avail, Q[i].avail_pa);
		assert_int_equal(F.q[i].used, Q[i].used_pa);
		assert_int_equal(F.q[i].msix, VIRTIO_MSI_NO_VECTOR);
	}
	/* notify goes to notify_off * multiplier with the queue index */
	struct virtq_buf b = { 0x1000, 8 };
	assert_int_equal(virtq_add(&Q[1], &b, 1, 0, &b), 0);
	assert_int_equal(virtq_kick(&Q[1]), 1);
	assert_int_equal(F.notifies[1], 1);
	assert_int_equal(F.order_errors, 0);
	assert_int_equal(host_klog_count(), 0);
	fake_vpci_free(&F);
}

static void test_features_ok_refused(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.refuse_features_ok = 1;
	assert_int_equal(bring_up(balloon_features_wanted(F.host_features), 3), -1);
	assert_true(VP.failed);
	assert_true(F.status & VIRTIO_CONFIG_S_FAILED);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("refused features"));
	assert_int_equal(F.q[0].enable, 0);        /* no queue was touched */
	fake_vpci_free(&F);
}

static void test_queue_size_zero_is_absent(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.qmax[2] = 0;
	assert_int_equal(bring_up(balloon_features_wanted(F.host_features), 2), 0);
	assert_int_equal(vp_setup_queue(&VP, 2, &Q[2], "stats", 128), -ENOENT);
	assert_int_equal(vp_setup_queue(&VP, 5, &Q[2], "none", 128), -ENOENT);   /* >= num_queues */
	assert_false(VP.failed);
	assert_int_equal(host_klog_count(), 0);
	fake_vpci_free(&F);
}

static void test_queue_size_not_power_of_two(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.qmax[1] = 96;
	assert_int_equal(bring_up(balloon_features_wanted(F.host_features), 3), -1);
	assert_true(F.status & VIRTIO_CONFIG_S_FAILED);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("queue 1 (q): size 96 is not a power of two"));
	assert_int_equal(F.q[1].enable, 0);
	fake_vpci_free(&F);
}

static void test_queue_size_shrunk(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.qmax[0] = 32768;
	assert_int_equal(bring_up(balloon_features_wanted(F.host_features), 3), 0);
	assert_int_equal(F.q[0].size, 128);              /* our max_size */
	assert_int_equal(Q[0].num, 128);
	assert_int_equal(F.order_errors, 0);
	fake_vpci_free(&F);
}

/* A device that comes back from a reset offering a larger queue: the ring
 * of the first set-up is reused (it used to be replaced, leaking the old
 * one each time), so the queue stays at the size that ring holds. */
static void test_queue_larger_after_reset_keeps_its_ring(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.qmax[0] = 64;
	uint64_t want = balloon_features_wanted(F.host_features);
	assert_int_equal(bring_up(want, 1), 0);
	assert_int_equal(Q[0].num, 64);
	void *ring = VP.ring[0].mem;
	unsigned allocs = F.dma_allocs;
	F.qmax[0] = 256;
	assert_int_equal(vp_begin(&VP), 0);
	assert_int_equal(vp_set_features(&VP, want & vp_device_features(&VP)), 0);
	assert_int_equal(vp_setup_queue(&VP, 0, &Q[0], "q", 128), 0);
	assert_ptr_equal(VP.ring[0].mem, ring);
	assert_int_equal(F.dma_allocs, allocs);
	assert_int_equal(Q[0].num, 64);
	assert_int_equal(F.q[0].size, 64);
	fake_vpci_free(&F);
}

static void test_notify_offset_out_of_range(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.qnoff[2] = 0x400;      /* 0x400 * 4 + 2 > 0x1000 */
	assert_int_equal(bring_up(balloon_features_wanted(F.host_features), 3), -1);
	assert_true(host_klog_contains("notify offset"));
	assert_true(F.status & VIRTIO_CONFIG_S_FAILED);
	fake_vpci_free(&F);
}

static void test_reset_never_completes(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	F.reset_stuck = 1;
	assert_int_equal(bring_up(0, 0), -1);
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains("reset did not complete"));
	fake_vpci_free(&F);
}

static void test_config_generation(void **state)
{
	(void)state;
	fake_vpci_init(&F);
	assert_int_equal(bring_up(balloon_features_wanted(F.host_features), 3), 0);
	uint32_t np = 0x12345, got = 0;
	memcpy(F.devcfg + VIRTIO_BALLOON_CFG_NUM_PAGES, &np, 4);
	/* settles after a few changes */
	F.gen_changes_left = 3;
	assert_int_equal(vp_config_read(&VP, 0, &got, 4), 0);
	assert_int_equal(got, 0x12345);
	/* never settles: bounded, reports failure */
	F.gen_changes_left = 1000;
	assert_int_equal(vp_config_read(&VP, 0, &got, 4), -1);
	assert_true(F.gen_changes_left >= 1000 - 2 * VP_CONFIG_RETRIES);
	/* reads beyond the region are refused */
	assert_int_equal(vp_config_read(&VP, 0xffe, &got, 4), -1);
	vp_config_write32(&VP, VIRTIO_BALLOON_CFG_ACTUAL, 777);
	uint32_t actual;
	memcpy(&actual, F.devcfg + VIRTIO_BALLOON_CFG_ACTUAL, 4);
	assert_int_equal(actual, 777);
	fake_vpci_free(&F);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_only_reads),
		cmocka_unit_test(test_scan_walks_bridges_and_functions),
		cmocka_unit_test(test_bar_sizing),
		cmocka_unit_test(test_bridge_loop_is_cut),
		cmocka_unit_test(test_scan_table_full),
		cmocka_unit_test(test_capability_walk_and_loop),
		cmocka_unit_test(test_mcfg_found),
		cmocka_unit_test(test_mcfg_errors),
		cmocka_unit_test(test_virtio_caps_parsed),
		cmocka_unit_test(test_virtio_caps_bad_ones_skipped),
		cmocka_unit_test(test_legacy_only_device_refused),
		cmocka_unit_test(test_virtio_caps_cyclic_list),
		cmocka_unit_test(test_init_order_and_queues),
		cmocka_unit_test(test_features_ok_refused),
		cmocka_unit_test(test_queue_size_zero_is_absent),
		cmocka_unit_test(test_queue_size_not_power_of_two),
		cmocka_unit_test(test_queue_size_shrunk),
		cmocka_unit_test(test_queue_larger_after_reset_keeps_its_ring),
		cmocka_unit_test(test_notify_offset_out_of_range),
		cmocka_unit_test(test_reset_never_completes),
		cmocka_unit_test(test_config_generation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
