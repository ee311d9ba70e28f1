/*
 * test_boot_paging.c - boot/paging.c: build the loader's tables in host
 * memory, then translate addresses by walking them like the MMU would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/paging.h"
#include "boot_info.h"

#define KB 1024ull
#define MB (1024 * KB)
#define GB (1024 * MB)

#define KPHYS 0x7de00000ull   /* never dereferenced: only written into PTEs */

struct walk {
	int present;
	uint64_t pa;
	int writable, nx, large;
};

/* The MMU's view of va: accumulate W and NX over all levels. */
static struct walk translate(uint64_t pml4_phys, uint64_t va)
{
	struct walk w = { .writable = 1 };
	uint64_t *table = (uint64_t *)(uintptr_t)pml4_phys;
	for (int shift = 39; shift >= 12; shift -= 9) {
		uint64_t e = table[(va >> shift) & 511];
		if (!(e & PTE_P))
			return (struct walk){ 0 };
		w.writable &= (e & PTE_RW) != 0;
		w.nx |= (e & PTE_NX) != 0;
		if ((e & PTE_PS) && shift == 21) {
			w.present = 1;
			w.large = 1;
			w.pa = (e & PTE_ADDR & ~(2 * MB - 1)) + (va & (2 * MB - 1));
			return w;
		}
		assert_false(e & PTE_PS);   /* no 1 GiB pages, no PS in a PML4E */
		if (shift == 12) {
			w.present = 1;
			w.pa = (e & PTE_ADDR) + (va & 4095);
			return w;
		}
		table = (uint64_t *)(uintptr_t)(e & PTE_ADDR);
	}
	return (struct walk){ 0 };
}

/* The kernel from test_elf_check: text RX, rodata R, data+bss RW, with a
 * one-page hole between rodata and data. */
static struct elf_image kernel_image(uint64_t base)
{
	struct elf_image img = {
		.entry = base,
		.span_start = base,
		.span_end = base + 0x8000,
		.nseg = 3,
		.seg = {
			{ .vaddr = base,          .filesz = 0x1800, .memsz = 0x1800, .flags = ELF_PF_R | ELF_PF_X },
			{ .vaddr = base + 0x2000, .filesz = 0x80,   .memsz = 0x80,   .flags = ELF_PF_R },
			{ .vaddr = base + 0x4000, .filesz = 0x10,   .memsz = 0x4000, .flags = ELF_PF_R | ELF_PF_W },
		},
	};
	return img;
}

struct built {
	struct pt_pool pool;
	uint64_t pml4;
	enum paging_err err;
};

static struct built build(uint64_t max_phys, const struct elf_image *img, uint32_t pages, int nx)
{
	struct built b = { 0 };
	b.pool.pages = aligned_alloc(4096, (size_t)pages * 4096 + 4096);
	b.pool.total = pages;
	memset(b.pool.pages, 0xff, (size_t)pages * 4096);   /* stale junk (P set): tables must be zeroed on use */
	b.err = paging_build(&b.pool, max_phys, img, KPHYS, nx, &b.pml4);
	return b;
}

static void test_max_phys(void **state)
{
	(void)state;
	assert_int_equal(paging_max_phys(0), 4 * GB);
	assert_int_equal(paging_max_phys(512 * MB), 4 * GB);
	assert_int_equal(paging_max_phys(4 * GB), 4 * GB);
	assert_int_equal(paging_max_phys(4 * GB + 1), 5 * GB);
	assert_int_equal(paging_max_phys(10 * GB - 4096), 10 * GB);
	assert_int_equal(paging_max_phys(512 * GB), 512 * GB);
	assert_int_equal(paging_max_phys(512 * GB + 1), 512 * GB);
	assert_int_equal(paging_max_phys(UINT64_MAX), 512 * GB);
}

static void test_direct_and_identity(void **state)
{
	(void)state;
	struct elf_image img = kernel_image(0xffffffff80100000ull);
	uint64_t max = 5 * GB;
	uint32_t need = paging_tables_needed(max, &img);
	struct built b = build(max, &img, need, 1);
	assert_int_equal(b.err, PAGING_OK);
	assert_true(b.pool.used <= need);

	static const uint64_t probes[] = { 0, 4095, 2 * MB, 2 * MB + 12345, 1 * GB - 1, 1 * GB,
	                                   4 * GB - 4096, 4 * GB + 3 * MB, 5 * GB - 1 };
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		uint64_t pa = probes[i];
		struct walk id = translate(b.pml4, pa);
		struct walk hh = translate(b.pml4, BOOT_HHDM_BASE + pa);
		assert_true(id.present && id.large && id.writable && !id.nx);
		assert_int_equal(id.pa, pa);
		assert_true(hh.present && hh.large && hh.writable);
		assert_int_equal(hh.pa, pa);
	}
	/* Nothing at or beyond max_phys, in either view. */
	assert_false(translate(b.pml4, 5 * GB).present);
	assert_false(translate(b.pml4, BOOT_HHDM_BASE + 5 * GB).present);
	assert_false(translate(b.pml4, 512 * GB).present);
	/* Nothing between the kernel base and its span. */
	assert_false(translate(b.pml4, BOOT_KERNEL_BASE).present);
	free(b.pool.pages);
}

static void test_kernel_pages(void **state)
{
	(void)state;
	uint64_t base = 0xffffffff80100000ull;
	struct elf_image img = kernel_image(base);
	struct built b = build(4 * GB, &img, paging_tables_needed(4 * GB, &img), 1);
	assert_int_equal(b.err, PAGING_OK);

	struct walk t = translate(b.pml4, base + 0x10);
	assert_true(t.present && !t.large && !t.writable && !t.nx);   /* text: R-X */
	assert_int_equal(t.pa, KPHYS + 0x10);
	t = translate(b.pml4, base + 0x1fff);              /* text's second page (memsz 0x1800) */
	assert_true(t.present && !t.nx);
	assert_int_equal(t.pa, KPHYS + 0x1fff);
	t = translate(b.pml4, base + 0x2040);              /* rodata */
	assert_true(t.present && t.nx && !t.writable);     /* rodata: R-- */
	assert_int_equal(t.pa, KPHYS + 0x2040);
	assert_false(translate(b.pml4, base + 0x3000).present);   /* hole */
	for (uint64_t off = 0x4000; off < 0x8000; off += 0x1000) {   /* data + bss */
		t = translate(b.pml4, base + off);
		assert_true(t.present && t.nx && t.writable);
		assert_int_equal(t.pa, KPHYS + off);
	}
	assert_false(translate(b.pml4, base + 0x8000).present);
	free(b.pool.pages);
}

static void test_no_nx(void **state)
{
	(void)state;
	struct elf_image img = kernel_image(0xffffffff80100000ull);
	struct built b = build(4 * GB, &img, paging_tables_needed(4 * GB, &img), 0);
	assert_int_equal(b.err, PAGING_OK);
	for (uint64_t off = 0; off < 0x8000; off += 0x1000) {
		struct walk t = translate(b.pml4, img.span_start + off);
		if (t.present)
			assert_false(t.nx);
	}
	free(b.pool.pages);
}

/* A span straddling a 1 GiB and 2 MiB boundary needs more tables: the count
 * must cover it and every page must land. */
static void test_span_across_boundaries(void **state)
{
	(void)state;
	uint64_t base = 0xffffffffc0000000ull - 0x3000;
	struct elf_image img = {
		.entry = base, .span_start = base, .span_end = base + 0x6000, .nseg = 1,
		.seg = { { .vaddr = base, .filesz = 0x6000, .memsz = 0x6000, .flags = ELF_PF_X } },
	};
	uint32_t need = paging_tables_needed(4 * GB, &img);
	/* 1 PML4 + 1 PDPT + 4 PDs + kernel: 1 PDPT, 2 PDs, 2 PTs. */
	assert_int_equal(need, 1 + 1 + 4 + 1 + 2 + 2);
	struct built b = build(4 * GB, &img, need, 1);
	assert_int_equal(b.err, PAGING_OK);
	assert_int_equal(b.pool.used, need);
	for (uint64_t off = 0; off < 0x6000; off += 0x1000) {
		struct walk t = translate(b.pml4, base + off);
		assert_true(t.present && !t.nx);
		assert_int_equal(t.pa, KPHYS + off);
	}
	free(b.pool.pages);
}

static void test_pool_exhaustion(void **state)
{
	(void)state;
	struct elf_image img = kernel_image(0xffffffff80100000ull);
	uint32_t need = paging_tables_needed(4 * GB, &img);
	for (uint32_t pages = 0; pages < 8; pages++) {   /* the real need is 9 */
		struct built b = build(4 * GB, &img, pages, 1);
		assert_int_equal(b.err, PAGING_ERR_POOL);
		assert_true(b.pool.used <= pages);
		free(b.pool.pages);
	}
	assert_int_equal(need, 9);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct elf_image img = kernel_image(0xffffffff80100000ull);
	struct built b;
	b = build(0, &img, 16, 1);                 assert_int_equal(b.err, PAGING_ERR_RANGE); free(b.pool.pages);
	b = build(4 * GB + 4096, &img, 16, 1);     assert_int_equal(b.err, PAGING_ERR_RANGE); free(b.pool.pages);
	b = build(513 * GB, &img, 600, 1);         assert_int_equal(b.err, PAGING_ERR_RANGE); free(b.pool.pages);
	img.span_start = 0x100000;                  /* would land in the identity slot */
	b = build(4 * GB, &img, 16, 1);            assert_int_equal(b.err, PAGING_ERR_RANGE); free(b.pool.pages);
}

static void test_512g(void **state)
{
	(void)state;
	struct elf_image img = kernel_image(0xffffffff80100000ull);
	uint32_t need = paging_tables_needed(512 * GB, &img);
	assert_int_equal(need, 1 + 1 + 512 + 3);
	struct built b = build(512 * GB, &img, need, 1);
	assert_int_equal(b.err, PAGING_OK);
	struct walk t = translate(b.pml4, BOOT_HHDM_BASE + 512 * GB - 1);
	assert_true(t.present);
	assert_int_equal(t.pa, 512 * GB - 1);
	assert_false(translate(b.pml4, 512 * GB).present);
	free(b.pool.pages);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_phys),
		cmocka_unit_test(test_direct_and_identity),
		cmocka_unit_test(test_kernel_pages),
		cmocka_unit_test(test_no_nx),
		cmocka_unit_test(test_span_across_boundaries),
		cmocka_unit_test(test_pool_exhaustion),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_512g),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
