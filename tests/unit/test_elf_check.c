/*
 * test_elf_check.c - boot/elf_check.c against a minimal kernel ELF built here
 * with the host's <elf.h> (an independent statement of the format), then
 * corrupted one field at a time. Every buffer handed to elf_check() is a heap
 * copy of exactly the claimed size, so ASan catches any read past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <elf.h>

#include "boot/elf_check.h"
#include "boot_info.h"

#define TEXT_VA   0xffffffff80100000ull
#define RO_VA     0xffffffff80101000ull
#define DATA_VA   0xffffffff80102000ull

/* A file: ELF header, 3 phdrs (text RX, rodata R, data+bss RW) + 1 PT_NOTE,
 * then three 4 KiB-aligned payloads. */
struct img {
	uint8_t bytes[0x4000];
	size_t size;
};

static Elf64_Ehdr *eh(struct img *m) { return (Elf64_Ehdr *)m->bytes; }
static Elf64_Phdr *ph(struct img *m, int i) { return (Elf64_Phdr *)(m->bytes + sizeof(Elf64_Ehdr)) + i; }

static void build(struct img *m)
{
	memset(m, 0, sizeof *m);
	Elf64_Ehdr *e = eh(m);
	memcpy(e->e_ident, ELFMAG, SELFMAG);
	e->e_ident[EI_CLASS] = ELFCLASS64;
	e->e_ident[EI_DATA] = ELFDATA2LSB;
	e->e_ident[EI_VERSION] = EV_CURRENT;
	e->e_type = ET_EXEC;
	e->e_machine = EM_X86_64;
	e->e_version = EV_CURRENT;
	e->e_entry = TEXT_VA + 0x10;
	e->e_phoff = sizeof(Elf64_Ehdr);
	e->e_ehsize = sizeof(Elf64_Ehdr);
	e->e_phentsize = sizeof(Elf64_Phdr);
	e->e_phnum = 4;

	*ph(m, 0) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0x1000,
	                          .p_vaddr = TEXT_VA, .p_filesz = 0x100, .p_memsz = 0x100, .p_align = 0x1000 };
	*ph(m, 1) = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 0x7fffffff, .p_filesz = 0x7fffffff };
	*ph(m, 2) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R, .p_offset = 0x2000,
	                          .p_vaddr = RO_VA, .p_filesz = 0x80, .p_memsz = 0x80, .p_align = 0x1000 };
	*ph(m, 3) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = 0x3000,
	                          .p_vaddr = DATA_VA, .p_filesz = 0x10, .p_memsz = 0x5000, .p_align = 0x1000 };
	memset(m->bytes + 0x1000, 0x90, 0x100);
	memset(m->bytes + 0x2000, 'r', 0x80);
	memset(m->bytes + 0x3000, 'd', 0x10);
	m->size = 0x3010;
}

/* elf_check() on an exact-size heap copy of the first `size` bytes. */
static enum elf_check_err check_n(const struct img *m, size_t size, struct elf_image *out)
{
	void *copy = malloc(size ? size : 1);
	assert_non_null(copy);
	memcpy(copy, m->bytes, size);
	enum elf_check_err err = elf_check(copy, size, out);
	free(copy);
	return err;
}

static enum elf_check_err check(const struct img *m)
{
	struct elf_image out;
	return check_n(m, m->size, &out);
}

static void test_valid(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	assert_int_equal(check_n(&m, m.size, &out), ELF_OK);
	assert_int_equal(out.nseg, 3);
	assert_int_equal(out.entry, TEXT_VA + 0x10);
	assert_int_equal(out.span_start, TEXT_VA);
	assert_int_equal(out.span_end, DATA_VA + 0x5000);
	assert_int_equal(out.seg[0].vaddr, TEXT_VA);
	assert_int_equal(out.seg[0].offset, 0x1000);
	assert_int_equal(out.seg[0].flags, ELF_PF_R | ELF_PF_X);
	assert_int_equal(out.seg[2].filesz, 0x10);
	assert_int_equal(out.seg[2].memsz, 0x5000);
}

static void test_span_rounds_to_pages(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	ph(&m, 0)->p_vaddr = TEXT_VA + 0x234;           /* unaligned start */
	eh(&m)->e_entry = TEXT_VA + 0x234;
	ph(&m, 3)->p_memsz = 0x4001;                     /* unaligned end */
	assert_int_equal(check_n(&m, m.size, &out), ELF_OK);
	assert_int_equal(out.span_start, TEXT_VA);
	assert_int_equal(out.span_end, DATA_VA + 0x5000);
}

static void test_bad_ident(void **state)
{
	(void)state;
	struct img m;
	build(&m); m.bytes[1] = 'X';                      assert_int_equal(check(&m), ELF_ERR_MAGIC);
	build(&m); m.bytes[EI_CLASS] = ELFCLASS32;        assert_int_equal(check(&m), ELF_ERR_CLASS);
	build(&m); m.bytes[EI_DATA] = ELFDATA2MSB;        assert_int_equal(check(&m), ELF_ERR_ENDIAN);
	build(&m); m.bytes[EI_VERSION] = 2;               assert_int_equal(check(&m), ELF_ERR_VERSION);
	build(&m); eh(&m)->e_version = 0;                 assert_int_equal(check(&m), ELF_ERR_VERSION);
	build(&m); eh(&m)->e_machine = EM_AARCH64;        assert_int_equal(check(&m), ELF_ERR_MACHINE);
	build(&m); eh(&m)->e_machine = EM_386;            assert_int_equal(check(&m), ELF_ERR_MACHINE);
	build(&m); eh(&m)->e_type = ET_DYN;               assert_int_equal(check(&m), ELF_ERR_TYPE);
	build(&m); eh(&m)->e_type = ET_REL;               assert_int_equal(check(&m), ELF_ERR_TYPE);
}

static void test_truncated_header(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	assert_int_equal(check_n(&m, 0, &out), ELF_ERR_TRUNCATED);
	assert_int_equal(check_n(&m, 63, &out), ELF_ERR_TRUNCATED);
	assert_int_equal(elf_check(NULL, 100, &out), ELF_ERR_TRUNCATED);
	/* A short file that is not ELF at all says so. */
	assert_int_equal(elf_check("hello\n", 6, &out), ELF_ERR_MAGIC);
	assert_int_equal(elf_check("\x7f" "EL", 3, &out), ELF_ERR_TRUNCATED);
}

static void test_truncated_phdrs(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	/* Header intact, program header table cut. */
	assert_int_equal(check_n(&m, sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr) + 10, &out), ELF_ERR_PHDRS);
	build(&m); eh(&m)->e_phoff = m.size - 10;            assert_int_equal(check(&m), ELF_ERR_PHDRS);
	build(&m); eh(&m)->e_phoff = UINT64_MAX - 8;         assert_int_equal(check(&m), ELF_ERR_PHDRS);
	build(&m); eh(&m)->e_phnum = 0;                      assert_int_equal(check(&m), ELF_ERR_PHDRS);
	build(&m); eh(&m)->e_phnum = PN_XNUM;                assert_int_equal(check(&m), ELF_ERR_PHDRS);
	build(&m); eh(&m)->e_phentsize = 40;                 assert_int_equal(check(&m), ELF_ERR_PHDRS);
	build(&m); eh(&m)->e_phnum = 0xfffe;                 assert_int_equal(check(&m), ELF_ERR_PHDRS);
}

static void test_larger_phentsize_is_stride(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	/* Re-lay the 4 headers with a 64-byte stride: still valid. */
	Elf64_Phdr p[4];
	for (int i = 0; i < 4; i++)
		p[i] = *ph(&m, i);
	memset(m.bytes + sizeof(Elf64_Ehdr), 0xee, 4 * 64);
	for (int i = 0; i < 4; i++)
		memcpy(m.bytes + sizeof(Elf64_Ehdr) + i * 64, &p[i], sizeof p[i]);
	eh(&m)->e_phentsize = 64;
	assert_int_equal(check_n(&m, m.size, &out), ELF_OK);
	assert_int_equal(out.nseg, 3);
	assert_int_equal(out.seg[1].vaddr, RO_VA);
}

static void test_segment_past_eof(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	/* The data segment's 0x10 bytes end at 0x3010: one byte less fails. */
	assert_int_equal(check_n(&m, m.size - 1, &out), ELF_ERR_SEG_FILE);
	build(&m); ph(&m, 0)->p_offset = m.size + 1;         assert_int_equal(check(&m), ELF_ERR_SEG_FILE);
	build(&m); ph(&m, 0)->p_filesz = m.size;             ph(&m, 0)->p_memsz = m.size;
	assert_int_equal(check(&m), ELF_ERR_SEG_FILE);
}

static void test_offset_size_overflow(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	/* offset + filesz wraps to a small number: must not pass as "in file". */
	ph(&m, 2)->p_offset = UINT64_MAX - 0x10;
	ph(&m, 2)->p_filesz = 0x100;
	ph(&m, 2)->p_memsz = 0x100;
	assert_int_equal(check(&m), ELF_ERR_SEG_FILE);
	build(&m);
	ph(&m, 2)->p_offset = 0x100;
	ph(&m, 2)->p_filesz = UINT64_MAX - 0x80;
	ph(&m, 2)->p_memsz = UINT64_MAX;
	assert_int_equal(check(&m), ELF_ERR_SEG_FILE);
}

static void test_filesz_gt_memsz(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	ph(&m, 2)->p_memsz = 0x7f;
	assert_int_equal(check(&m), ELF_ERR_SEG_SIZE);
	build(&m);
	ph(&m, 2)->p_memsz = 0;   /* filesz 0x80 into nothing */
	assert_int_equal(check(&m), ELF_ERR_SEG_SIZE);
}

static void test_vaddr_checks(void **state)
{
	(void)state;
	struct img m;
	build(&m); ph(&m, 2)->p_vaddr = 0x100000;                 assert_int_equal(check(&m), ELF_ERR_SEG_ADDR);
	build(&m); ph(&m, 2)->p_vaddr = BOOT_KERNEL_BASE - 0x1000; assert_int_equal(check(&m), ELF_ERR_SEG_ADDR);
	/* vaddr + memsz (rounded to a page) wraps past 2^64. */
	build(&m); ph(&m, 3)->p_vaddr = UINT64_MAX - 0x2000;       assert_int_equal(check(&m), ELF_ERR_SEG_ADDR);
	build(&m); ph(&m, 3)->p_vaddr = UINT64_MAX - 0x800; ph(&m, 3)->p_memsz = 0x10;
	assert_int_equal(check(&m), ELF_ERR_SEG_ADDR);
	build(&m); ph(&m, 3)->p_memsz = UINT64_MAX;               assert_int_equal(check(&m), ELF_ERR_SEG_ADDR);
	/* Exactly at the base is fine. */
	struct elf_image out;
	build(&m); ph(&m, 0)->p_vaddr = BOOT_KERNEL_BASE; eh(&m)->e_entry = BOOT_KERNEL_BASE;
	assert_int_equal(check_n(&m, m.size, &out), ELF_OK);
	assert_int_equal(out.span_start, BOOT_KERNEL_BASE);
}

static void test_overlap(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	ph(&m, 2)->p_vaddr = TEXT_VA + 0xff;      /* last byte of text */
	assert_int_equal(check(&m), ELF_ERR_OVERLAP);
	build(&m);
	ph(&m, 0)->p_vaddr = DATA_VA + 0x4000;    /* inside data's .bss */
	eh(&m)->e_entry = DATA_VA + 0x4000;
	assert_int_equal(check(&m), ELF_ERR_OVERLAP);
	/* Touching is not overlapping, sharing a page is allowed. */
	build(&m);
	ph(&m, 2)->p_vaddr = TEXT_VA + 0x100;
	assert_int_equal(check(&m), ELF_OK);
}

static void test_entry(void **state)
{
	(void)state;
	struct img m;
	build(&m); eh(&m)->e_entry = TEXT_VA + 0x100;   assert_int_equal(check(&m), ELF_ERR_ENTRY); /* one past */
	build(&m); eh(&m)->e_entry = TEXT_VA - 1;       assert_int_equal(check(&m), ELF_ERR_ENTRY);
	build(&m); eh(&m)->e_entry = RO_VA;             assert_int_equal(check(&m), ELF_ERR_ENTRY); /* not X */
	build(&m); eh(&m)->e_entry = 0;                 assert_int_equal(check(&m), ELF_ERR_ENTRY);
	/* In an executable segment but past its file bytes (zero fill). */
	build(&m); ph(&m, 0)->p_memsz = 0x1000; eh(&m)->e_entry = TEXT_VA + 0x200;
	assert_int_equal(check(&m), ELF_ERR_ENTRY);
	build(&m); eh(&m)->e_entry = TEXT_VA + 0xff;    assert_int_equal(check(&m), ELF_OK);
}

static void test_no_load(void **state)
{
	(void)state;
	struct img m;
	build(&m);
	ph(&m, 0)->p_type = PT_NOTE;
	ph(&m, 2)->p_type = PT_NOTE;
	ph(&m, 3)->p_type = PT_GNU_STACK;
	assert_int_equal(check(&m), ELF_ERR_NO_LOAD);
	/* PT_LOADs that load nothing do not count either. */
	build(&m);
	for (int i = 0; i < 4; i++) {
		ph(&m, i)->p_type = PT_LOAD;
		ph(&m, i)->p_filesz = ph(&m, i)->p_memsz = 0;
		ph(&m, i)->p_offset = 0;
	}
	assert_int_equal(check(&m), ELF_ERR_NO_LOAD);
}

static void test_empty_segment_ignored(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	/* A memsz-0 PT_LOAD far below the base and overlapping nothing matters. */
	*ph(&m, 1) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_vaddr = 0x1000, .p_offset = 0 };
	assert_int_equal(check_n(&m, m.size, &out), ELF_OK);
	assert_int_equal(out.nseg, 3);
	assert_int_equal(out.span_start, TEXT_VA);
}

static void test_huge_span(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	/* Exactly 64 MiB: accepted. */
	build(&m);
	ph(&m, 3)->p_memsz = ELF_MAX_SPAN - (DATA_VA - TEXT_VA);
	assert_int_equal(check_n(&m, m.size, &out), ELF_OK);
	assert_int_equal(out.span_end - out.span_start, ELF_MAX_SPAN);
	/* One byte more (rounds to one page more): refused. */
	ph(&m, 3)->p_memsz += 1;
	assert_int_equal(check(&m), ELF_ERR_SPAN);
	/* Small segments far apart. */
	build(&m);
	ph(&m, 3)->p_vaddr = TEXT_VA + (1ull << 30);
	assert_int_equal(check(&m), ELF_ERR_SPAN);
}

static void test_too_many_loads(void **state)
{
	(void)state;
	static uint8_t buf[64 + 17 * 56 + 16];
	struct elf_image out;
	struct img m;
	build(&m);
	memcpy(buf, m.bytes, 64);
	Elf64_Ehdr *e = (Elf64_Ehdr *)buf;
	e->e_phnum = 17;
	for (int i = 0; i < 17; i++) {
		Elf64_Phdr p = { .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0,
		                 .p_vaddr = TEXT_VA + (uint64_t)i * 0x1000, .p_filesz = 32, .p_memsz = 32 };
		memcpy(buf + 64 + i * 56, &p, sizeof p);
	}
	assert_int_equal(elf_check(buf, sizeof buf, &out), ELF_ERR_TOO_MANY_LOAD);
	e->e_phnum = 16;
	assert_int_equal(elf_check(buf, sizeof buf, &out), ELF_OK);
	assert_int_equal(out.nseg, 16);
}

static void test_unaligned_buffer(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	/* The loader's buffer is aligned, but nothing may depend on it. */
	uint8_t *raw = malloc(m.size + 1);
	memcpy(raw + 1, m.bytes, m.size);
	assert_int_equal(elf_check(raw + 1, m.size, &out), ELF_OK);
	free(raw);
}

/* Every prefix of a valid file is refused, and never read past. */
static void test_every_truncation(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	build(&m);
	for (size_t n = 0; n < m.size; n++)
		assert_int_not_equal(check_n(&m, n, &out), ELF_OK);
}

/* Random corruption: never a crash or out-of-bounds read; anything accepted
 * still satisfies the contract. */
static void test_random_mutations(void **state)
{
	(void)state;
	struct img m;
	struct elf_image out;
	unsigned seed = 12345, accepted = 0;
	for (int round = 0; round < 20000; round++) {
		build(&m);
		int flips = 1 + (int)(rand_r(&seed) % 4);
		for (int f = 0; f < flips; f++) {
			/* Aim at the headers, where the interesting fields are. */
			size_t at = (size_t)rand_r(&seed) % (sizeof(Elf64_Ehdr) + 4 * sizeof(Elf64_Phdr));
			m.bytes[at] = (uint8_t)rand_r(&seed);
		}
		if (check_n(&m, m.size, &out) != ELF_OK)
			continue;
		accepted++;
		assert_true(out.nseg >= 1 && out.nseg <= ELF_MAX_LOAD);
		assert_true(out.span_end - out.span_start <= ELF_MAX_SPAN);
		assert_true(out.span_start >= BOOT_KERNEL_BASE);
		int entry_ok = 0;
		for (uint32_t i = 0; i < out.nseg; i++) {
			const struct elf_segment *s = &out.seg[i];
			assert_true(s->offset <= m.size && s->filesz <= m.size - s->offset);
			assert_true(s->filesz <= s->memsz);
			assert_true(s->vaddr >= out.span_start && s->vaddr + s->memsz <= out.span_end);
			if ((s->flags & ELF_PF_X) && out.entry >= s->vaddr && out.entry < s->vaddr + s->filesz)
				entry_ok = 1;
		}
		assert_true(entry_ok);
	}
	/* Flips of unused bytes keep the file valid: the test exercised both paths. */
	assert_true(accepted > 100);
}

static void test_strerror(void **state)
{
	(void)state;
	for (int e = 0; e < ELF_ERR_COUNT; e++) {
		const char *s = elf_check_strerror((enum elf_check_err)e);
		assert_non_null(s);
		assert_true(strlen(s) > 4);
		for (int f = 0; f < e; f++)
			assert_string_not_equal(s, elf_check_strerror((enum elf_check_err)f));
	}
	assert_string_equal(elf_check_strerror(ELF_ERR_COUNT), "unknown error");
	assert_string_equal(elf_check_strerror((enum elf_check_err)-1), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_span_rounds_to_pages),
		cmocka_unit_test(test_bad_ident),
		cmocka_unit_test(test_truncated_header),
		cmocka_unit_test(test_truncated_phdrs),
		cmocka_unit_test(test_larger_phentsize_is_stride),
		cmocka_unit_test(test_segment_past_eof),
		cmocka_unit_test(test_offset_size_overflow),
		cmocka_unit_test(test_filesz_gt_memsz),
		cmocka_unit_test(test_vaddr_checks),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_entry),
		cmocka_unit_test(test_no_load),
		cmocka_unit_test(test_empty_segment_ignored),
		cmocka_unit_test(test_huge_span),
		cmocka_unit_test(test_too_many_loads),
		cmocka_unit_test(test_unaligned_buffer),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_random_mutations),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
