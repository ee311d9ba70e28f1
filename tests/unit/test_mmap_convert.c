/*
 * test_mmap_convert.c - boot/mmap_convert.c: EFI type mapping, merging,
 * sorting, descriptor strides, malformed entries and the region cap.
 * Maps are built as raw byte arrays with an explicit stride, the way the
 * firmware hands them over.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/mmap_convert.h"

#define PG 4096ull

struct map {
	uint8_t *buf;
	size_t stride, n, cap;
};

static void map_init(struct map *m, size_t stride, size_t cap)
{
	m->stride = stride;
	m->n = 0;
	m->cap = cap;
	m->buf = malloc(stride * cap);
	/* Junk in padding and in the bytes past the struct: must be ignored. */
	memset(m->buf, 0xa5, stride * cap);
}

static void add(struct map *m, uint32_t type, uint64_t base, uint64_t pages)
{
	assert_true(m->n < m->cap);
	struct mmap_efi_desc d = { .type = type, .pad = 0xdeadbeef, .phys_start = base,
	                           .virt_start = 0x1234, .num_pages = pages, .attribute = 0xf };
	memcpy(m->buf + m->n * m->stride, &d, sizeof d);
	m->n++;
}

static enum mmap_err convert(struct map *m, struct boot_mem_region *out, uint32_t max, uint32_t *count)
{
	return mmap_convert(m->buf, m->n * m->stride, m->stride, out, max, count);
}

static void expect(const struct boot_mem_region *r, uint64_t base, uint64_t pages, uint32_t type)
{
	assert_int_equal(r->base, base);
	assert_int_equal(r->pages, pages);
	assert_int_equal(r->type, type);
}

static void test_type_mapping(void **state)
{
	(void)state;
	static const struct { uint32_t efi, boot; } table[] = {
		{ EFI_RESERVED_MEMORY, BOOT_MEM_RESERVED },
		{ EFI_LOADER_CODE, BOOT_MEM_RECLAIMABLE },
		{ EFI_LOADER_DATA, BOOT_MEM_RECLAIMABLE },
		{ EFI_BOOT_SERVICES_CODE, BOOT_MEM_RECLAIMABLE },
		{ EFI_BOOT_SERVICES_DATA, BOOT_MEM_RECLAIMABLE },
		{ EFI_RUNTIME_SERVICES_CODE, BOOT_MEM_EFI_RUNTIME },
		{ EFI_RUNTIME_SERVICES_DATA, BOOT_MEM_EFI_RUNTIME },
		{ EFI_CONVENTIONAL_MEMORY, BOOT_MEM_USABLE },
		{ EFI_UNUSABLE_MEMORY, BOOT_MEM_RESERVED },
		{ EFI_ACPI_RECLAIM_MEMORY, BOOT_MEM_ACPI_RECLAIM },
		{ EFI_ACPI_MEMORY_NVS, BOOT_MEM_ACPI_NVS },
		{ EFI_MEMORY_MAPPED_IO, BOOT_MEM_MMIO },
		{ EFI_MEMORY_MAPPED_IO_PORT_SPACE, BOOT_MEM_MMIO },
		{ EFI_PAL_CODE, BOOT_MEM_RESERVED },
		{ EFI_PERSISTENT_MEMORY, BOOT_MEM_RESERVED },
		{ 15 /* unaccepted */, BOOT_MEM_RESERVED },
		{ 0x7fffffff, BOOT_MEM_RESERVED },
		{ BOOT_EFI_TYPE_KERNEL, BOOT_MEM_KERNEL },
		{ BOOT_EFI_TYPE_BOOTINFO, BOOT_MEM_BOOTINFO },
		{ 0x80000003, BOOT_MEM_RESERVED },
		{ 0xffffffff, BOOT_MEM_RESERVED },
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		assert_int_equal(mmap_convert_type(table[i].efi), table[i].boot);

	/* And through mmap_convert(), keeping efi_type. */
	struct map m;
	struct boot_mem_region out[32];
	uint32_t n;
	map_init(&m, sizeof(struct mmap_efi_desc), 32);
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		add(&m, table[i].efi, i * 2 * PG, 1);   /* gaps: nothing merges */
	assert_int_equal(convert(&m, out, 32, &n), MMAP_OK);
	assert_int_equal(n, sizeof table / sizeof table[0]);
	for (uint32_t i = 0; i < n; i++) {
		expect(&out[i], i * 2 * PG, 1, table[i].boot);
		assert_int_equal(out[i].efi_type, table[i].efi);
	}
	free(m.buf);
}

static void test_merge_adjacent_same_type(void **state)
{
	(void)state;
	struct map m;
	struct boot_mem_region out[8];
	uint32_t n;
	map_init(&m, sizeof(struct mmap_efi_desc), 8);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0, 10);
	add(&m, EFI_CONVENTIONAL_MEMORY, 10 * PG, 5);        /* touches: merge */
	add(&m, EFI_LOADER_DATA, 15 * PG, 2);                 /* other type */
	add(&m, EFI_BOOT_SERVICES_DATA, 17 * PG, 3);          /* same converted type: merge */
	add(&m, EFI_BOOT_SERVICES_CODE, 21 * PG, 1);          /* gap of one page: no merge */
	add(&m, EFI_RUNTIME_SERVICES_DATA, 22 * PG, 1);
	assert_int_equal(convert(&m, out, 8, &n), MMAP_OK);
	assert_int_equal(n, 4);
	expect(&out[0], 0, 15, BOOT_MEM_USABLE);
	expect(&out[1], 15 * PG, 5, BOOT_MEM_RECLAIMABLE);
	assert_int_equal(out[1].efi_type, EFI_LOADER_DATA);   /* the lowest piece */
	expect(&out[2], 21 * PG, 1, BOOT_MEM_RECLAIMABLE);
	expect(&out[3], 22 * PG, 1, BOOT_MEM_EFI_RUNTIME);
	free(m.buf);
}

static void test_sorts_unsorted_input(void **state)
{
	(void)state;
	struct map m;
	struct boot_mem_region out[8];
	uint32_t n;
	map_init(&m, sizeof(struct mmap_efi_desc), 8);
	add(&m, EFI_MEMORY_MAPPED_IO, 0xfee00000, 1);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x300000, 16);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x100000, 16);
	add(&m, BOOT_EFI_TYPE_KERNEL, 0x200000, 4);
	/* The middle piece arrives last and bridges its two neighbours. */
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x110000, 0xf0);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x204000, 0xfc);
	add(&m, EFI_ACPI_RECLAIM_MEMORY, 0, 1);
	assert_int_equal(convert(&m, out, 8, &n), MMAP_OK);
	assert_int_equal(n, 5);
	expect(&out[0], 0, 1, BOOT_MEM_ACPI_RECLAIM);
	expect(&out[1], 0x100000, 0x100, BOOT_MEM_USABLE);
	expect(&out[2], 0x200000, 4, BOOT_MEM_KERNEL);
	expect(&out[3], 0x204000, 0xfc + 16, BOOT_MEM_USABLE);
	assert_int_equal(out[3].efi_type, EFI_CONVENTIONAL_MEMORY);
	expect(&out[4], 0xfee00000, 1, BOOT_MEM_MMIO);
	free(m.buf);

	/* Joining a region from below: the new lowest piece names it. */
	map_init(&m, sizeof(struct mmap_efi_desc), 4);
	add(&m, EFI_BOOT_SERVICES_DATA, 0x2000, 1);
	add(&m, EFI_LOADER_DATA, 0x1000, 1);
	assert_int_equal(convert(&m, out, 8, &n), MMAP_OK);
	assert_int_equal(n, 1);
	expect(&out[0], 0x1000, 2, BOOT_MEM_RECLAIMABLE);
	assert_int_equal(out[0].efi_type, EFI_LOADER_DATA);
	free(m.buf);
}

/* Reverse order is the worst case for insertion: result identical to sorted. */
static void test_reverse_equals_forward(void **state)
{
	(void)state;
	struct map fwd, rev;
	struct boot_mem_region a[128], b[128];
	uint32_t na, nb;
	static const uint32_t types[] = { EFI_CONVENTIONAL_MEMORY, EFI_LOADER_CODE, EFI_BOOT_SERVICES_DATA,
	                                  EFI_ACPI_MEMORY_NVS, EFI_CONVENTIONAL_MEMORY, BOOT_EFI_TYPE_BOOTINFO };
	map_init(&fwd, 48, 100);
	map_init(&rev, 48, 100);
	unsigned seed = 7;
	uint64_t base = 0;
	uint32_t t[100];
	uint64_t bases[100], pages[100];
	for (int i = 0; i < 100; i++) {
		t[i] = types[rand_r(&seed) % 6];
		pages[i] = 1 + rand_r(&seed) % 50;
		base += (rand_r(&seed) % 3 == 0) ? PG : 0;   /* sometimes a gap */
		bases[i] = base;
		base += pages[i] * PG;
	}
	for (int i = 0; i < 100; i++) {
		add(&fwd, t[i], bases[i], pages[i]);
		add(&rev, t[99 - i], bases[99 - i], pages[99 - i]);
	}
	assert_int_equal(convert(&fwd, a, 128, &na), MMAP_OK);
	assert_int_equal(convert(&rev, b, 128, &nb), MMAP_OK);
	assert_true(na > 10);   /* the map really had distinct regions to order */
	assert_int_equal(na, nb);
	uint64_t total = 0;
	for (uint32_t i = 0; i < na; i++) {
		expect(&b[i], a[i].base, a[i].pages, a[i].type);
		if (i)
			assert_true(a[i - 1].base + a[i - 1].pages * PG <= a[i].base);
		total += a[i].pages;
	}
	uint64_t want = 0;
	for (int i = 0; i < 100; i++)
		want += pages[i];
	assert_int_equal(total, want);
	free(fwd.buf);
	free(rev.buf);
}

static void test_stride_larger_than_struct(void **state)
{
	(void)state;
	/* 48 is what OVMF uses; 44 makes every other descriptor 4-byte aligned. */
	static const size_t strides[] = { 40, 44, 48, 64, 200 };
	for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
		struct map m;
		struct boot_mem_region out[4];
		uint32_t n;
		map_init(&m, strides[s], 4);
		add(&m, EFI_CONVENTIONAL_MEMORY, 0x1000, 3);
		add(&m, EFI_RESERVED_MEMORY, 0x4000, 1);
		add(&m, EFI_CONVENTIONAL_MEMORY, 0x5000, 2);
		assert_int_equal(convert(&m, out, 4, &n), MMAP_OK);
		assert_int_equal(n, 3);
		expect(&out[0], 0x1000, 3, BOOT_MEM_USABLE);
		expect(&out[1], 0x4000, 1, BOOT_MEM_RESERVED);
		expect(&out[2], 0x5000, 2, BOOT_MEM_USABLE);
		/* A trailing partial descriptor is ignored. */
		assert_int_equal(mmap_convert(m.buf, 3 * strides[s] - 1, strides[s], out, 4, &n), MMAP_OK);
		assert_int_equal(n, 2);
		free(m.buf);
	}
}

static void test_desc_size_too_small(void **state)
{
	(void)state;
	struct map m;
	struct boot_mem_region out[4];
	uint32_t n;
	map_init(&m, 48, 2);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0, 1);
	assert_int_equal(mmap_convert(m.buf, 48, 39, out, 4, &n), MMAP_ERR_DESC_SIZE);
	assert_int_equal(mmap_convert(m.buf, 48, 0, out, 4, &n), MMAP_ERR_DESC_SIZE);
	assert_int_equal(mmap_highest_end(m.buf, 48, 0), 0);
	free(m.buf);
}

static void test_empty_and_zero_pages(void **state)
{
	(void)state;
	struct map m;
	struct boot_mem_region out[4];
	uint32_t n = 99;
	map_init(&m, 48, 4);
	assert_int_equal(convert(&m, out, 4, &n), MMAP_OK);
	assert_int_equal(n, 0);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x1000, 0);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x1000, 1);   /* same base as the empty one: no overlap */
	add(&m, EFI_RESERVED_MEMORY, 0x1800, 0);       /* empty and unaligned: ignored */
	assert_int_equal(convert(&m, out, 4, &n), MMAP_OK);
	assert_int_equal(n, 1);
	expect(&out[0], 0x1000, 1, BOOT_MEM_USABLE);
	free(m.buf);
}

static void test_malformed(void **state)
{
	(void)state;
	struct map m;
	struct boot_mem_region out[4];
	uint32_t n;

	map_init(&m, 48, 4);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x1800, 1);
	assert_int_equal(convert(&m, out, 4, &n), MMAP_ERR_UNALIGNED);
	free(m.buf);

	map_init(&m, 48, 4);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0xfffffffffffff000ull, 2);   /* end wraps */
	assert_int_equal(convert(&m, out, 4, &n), MMAP_ERR_WRAP);
	free(m.buf);

	map_init(&m, 48, 4);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x1000, UINT64_MAX);          /* pages * 4096 wraps */
	assert_int_equal(convert(&m, out, 4, &n), MMAP_ERR_WRAP);
	free(m.buf);

	map_init(&m, 48, 4);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0xffffffffffffe000ull, 1);   /* ends at 2^64 - 4 KiB: fine */
	assert_int_equal(convert(&m, out, 4, &n), MMAP_OK);
	free(m.buf);

	/* Overlaps: below, above, identical, contained. */
	static const uint64_t other[][2] = { { 0x0000, 0x11 }, { 0x1f000, 4 }, { 0x10000, 0x10 }, { 0x14000, 1 } };
	for (int i = 0; i < 4; i++) {
		map_init(&m, 48, 4);
		add(&m, EFI_CONVENTIONAL_MEMORY, 0x10000, 0x10);
		add(&m, EFI_CONVENTIONAL_MEMORY, other[i][0], other[i][1]);
		assert_int_equal(convert(&m, out, 4, &n), MMAP_ERR_OVERLAP);
		free(m.buf);
	}
}

/* Alternating USABLE / RECLAIMABLE, all touching: too many for `max` until
 * the hard merge folds them into RECLAIMABLE runs. No page is lost. */
static void test_cap_merges_harder(void **state)
{
	(void)state;
	struct map m;
	struct boot_mem_region out[BOOT_MMAP_MAX];
	uint32_t n;
	map_init(&m, 48, 700);
	for (int i = 0; i < 600; i++)
		add(&m, i % 2 ? EFI_BOOT_SERVICES_DATA : EFI_CONVENTIONAL_MEMORY, (uint64_t)i * PG, 1);
	add(&m, EFI_RESERVED_MEMORY, 600 * PG, 1);
	assert_int_equal(convert(&m, out, BOOT_MMAP_MAX, &n), MMAP_OK);
	assert_true(n < BOOT_MMAP_MAX);
	uint64_t pages = 0, next = 0;
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(out[i].base, next);           /* contiguous, sorted, complete */
		next = out[i].base + out[i].pages * PG;
		pages += out[i].pages;
		assert_true(out[i].type == BOOT_MEM_USABLE || out[i].type == BOOT_MEM_RECLAIMABLE ||
		            (i == n - 1 && out[i].type == BOOT_MEM_RESERVED));
	}
	assert_int_equal(pages, 601);
	assert_int_equal(out[n - 1].type, BOOT_MEM_RESERVED);
	free(m.buf);

	/* Small max: a USABLE page between two reclaimable ones is absorbed. */
	struct boot_mem_region small[3];
	map_init(&m, 48, 8);
	add(&m, EFI_LOADER_DATA, 0, 1);
	add(&m, EFI_CONVENTIONAL_MEMORY, PG, 1);
	add(&m, EFI_LOADER_CODE, 2 * PG, 1);
	add(&m, EFI_ACPI_MEMORY_NVS, 3 * PG, 1);
	assert_int_equal(convert(&m, small, 3, &n), MMAP_OK);
	assert_int_equal(n, 2);
	expect(&small[0], 0, 3, BOOT_MEM_RECLAIMABLE);
	expect(&small[1], 3 * PG, 1, BOOT_MEM_ACPI_NVS);
	free(m.buf);
}

/* Regions that must stay distinct: more than max is an error, not a guess. */
static void test_cap_overflow_fails(void **state)
{
	(void)state;
	struct map m;
	struct boot_mem_region *out = malloc(sizeof *out * BOOT_MMAP_MAX);
	uint32_t n;
	map_init(&m, 48, 600);
	for (int i = 0; i < 600; i++)
		add(&m, i % 2 ? EFI_RESERVED_MEMORY : EFI_CONVENTIONAL_MEMORY, (uint64_t)i * PG, 1);
	assert_int_equal(convert(&m, out, BOOT_MMAP_MAX, &n), MMAP_ERR_TOO_MANY);
	/* Exactly max distinct regions fit. */
	m.n = BOOT_MMAP_MAX;
	assert_int_equal(convert(&m, out, BOOT_MMAP_MAX, &n), MMAP_OK);
	assert_int_equal(n, BOOT_MMAP_MAX);
	/* Gaps between same-typed regions cannot be merged either. */
	free(m.buf);
	map_init(&m, 48, 600);
	for (int i = 0; i < 600; i++)
		add(&m, EFI_CONVENTIONAL_MEMORY, (uint64_t)i * 2 * PG, 1);
	assert_int_equal(convert(&m, out, BOOT_MMAP_MAX, &n), MMAP_ERR_TOO_MANY);
	free(m.buf);
	free(out);
}

static void test_highest_end(void **state)
{
	(void)state;
	struct map m;
	map_init(&m, 48, 4);
	assert_int_equal(mmap_highest_end(m.buf, 0, 48), 0);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x100000, 0x100);
	add(&m, EFI_MEMORY_MAPPED_IO, 0xffc00000, 0x400);
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x1000, UINT64_MAX);   /* wraps: ignored */
	add(&m, EFI_CONVENTIONAL_MEMORY, 0x200000, 0x10);
	assert_int_equal(mmap_highest_end(m.buf, m.n * 48, 48), 0x100000000ull);
	free(m.buf);
}

static void test_strerror(void **state)
{
	(void)state;
	for (int e = 0; e < MMAP_ERR_COUNT; e++)
		assert_true(strlen(mmap_strerror((enum mmap_err)e)) > 1);
	assert_string_equal(mmap_strerror(MMAP_ERR_COUNT), "unknown error");
	assert_string_not_equal(mmap_strerror(MMAP_ERR_OVERLAP), mmap_strerror(MMAP_ERR_WRAP));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_mapping),
		cmocka_unit_test(test_merge_adjacent_same_type),
		cmocka_unit_test(test_sorts_unsorted_input),
		cmocka_unit_test(test_reverse_equals_forward),
		cmocka_unit_test(test_stride_larger_than_struct),
		cmocka_unit_test(test_desc_size_too_small),
		cmocka_unit_test(test_empty_and_zero_pages),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_cap_merges_harder),
		cmocka_unit_test(test_cap_overflow_fails),
		cmocka_unit_test(test_highest_end),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
