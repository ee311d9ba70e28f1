/*
 * elf_check.c - validate the kernel ELF (contract in elf_check.h).
 *
 * The file comes from a disk anyone may have written, so every field is
 * read through bounds-checked little-endian byte loads (no casts of the
 * buffer to structs: the buffer need not be aligned) and every sum that
 * could wrap is checked before it is used.
 */
#include "boot/elf_check.h"
#include "boot_info.h"

#define PAGE_SIZE 4096ull

/* ELF header field offsets (ELF-64 Object File Format, version 1.5). */
#define EH_SIZE       64
#define EI_CLASS      4
#define EI_DATA       5
#define EI_VERSION    6
#define E_TYPE        16
#define E_MACHINE     18
#define E_VERSION     20
#define E_ENTRY       24
#define E_PHOFF       32
#define E_PHENTSIZE   54
#define E_PHNUM       56

/* Program header field offsets. */
#define PH_SIZE       56
#define P_TYPE        0
#define P_FLAGS       4
#define P_OFFSET      8
#define P_VADDR       16
#define P_FILESZ      32
#define P_MEMSZ       40

#define ELFCLASS64    2
#define ELFDATA2LSB   1
#define EV_CURRENT    1
#define ET_EXEC       2
#define EM_X86_64     62
#define PT_LOAD       1
#define PN_XNUM       0xffff

static uint64_t ld(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = bytes; i-- > 0;)
		v = (v << 8) | p[i];
	return v;
}

static enum elf_check_err check_header(const uint8_t *f, uint64_t size,
                                       uint64_t *phoff, uint64_t *phnum, uint64_t *phentsize)
{
	/* Magic first: "not an ELF file" says more than "too short" about a
	 * short text file in the kernel's place. */
	if (size >= 4 && (f[0] != 0x7f || f[1] != 'E' || f[2] != 'L' || f[3] != 'F'))
		return ELF_ERR_MAGIC;
	if (size < EH_SIZE)
		return ELF_ERR_TRUNCATED;
	if (f[EI_CLASS] != ELFCLASS64)
		return ELF_ERR_CLASS;
	if (f[EI_DATA] != ELFDATA2LSB)
		return ELF_ERR_ENDIAN;
	if (f[EI_VERSION] != EV_CURRENT || ld(f + E_VERSION, 4) != EV_CURRENT)
		return ELF_ERR_VERSION;
	if (ld(f + E_MACHINE, 2) != EM_X86_64)
		return ELF_ERR_MACHINE;
	if (ld(f + E_TYPE, 2) != ET_EXEC)
		return ELF_ERR_TYPE;

	*phoff = ld(f + E_PHOFF, 8);
	*phentsize = ld(f + E_PHENTSIZE, 2);
	*phnum = ld(f + E_PHNUM, 2);
	/* PN_XNUM means "the real count is in section 0": a kernel never needs it. */
	if (*phnum == 0 || *phnum == PN_XNUM || *phentsize < PH_SIZE)
		return ELF_ERR_PHDRS;
	/* phnum < 2^16 and phentsize < 2^16: the product cannot wrap. */
	uint64_t table = *phnum * *phentsize;
	if (*phoff > size || table > size - *phoff)
		return ELF_ERR_PHDRS;
	return ELF_OK;
}

/* One PT_LOAD: its bytes inside the file, its addresses sane. */
static enum elf_check_err check_segment(const struct elf_segment *s, uint64_t size)
{
	if (s->offset > size || s->filesz > size - s->offset)
		return ELF_ERR_SEG_FILE;
	if (s->filesz > s->memsz)
		return ELF_ERR_SEG_SIZE;
	if (s->memsz == 0)
		return ELF_OK;   /* loads nothing; ignored by the caller */
	if (s->vaddr < BOOT_KERNEL_BASE)
		return ELF_ERR_SEG_ADDR;
	/* The end, rounded up to a page, must not wrap past 2^64. */
	uint64_t room = UINT64_MAX - s->vaddr;
	if (room < PAGE_SIZE - 1 || s->memsz > room - (PAGE_SIZE - 1))
		return ELF_ERR_SEG_ADDR;
	return ELF_OK;
}

enum elf_check_err elf_check(const void *file, uint64_t size, struct elf_image *out)
{
	const uint8_t *f = file;
	uint64_t phoff, phnum, phentsize;
	enum elf_check_err err;

	out->nseg = 0;
	if (!file)
		return ELF_ERR_TRUNCATED;
	err = check_header(f, size, &phoff, &phnum, &phentsize);
	if (err)
		return err;
	out->entry = ld(f + E_ENTRY, 8);

	for (uint64_t i = 0; i < phnum; i++) {
		const uint8_t *ph = f + phoff + i * phentsize;
		if (ld(ph + P_TYPE, 4) != PT_LOAD)
			continue;
		struct elf_segment s = {
			.vaddr  = ld(ph + P_VADDR, 8),
			.offset = ld(ph + P_OFFSET, 8),
			.filesz = ld(ph + P_FILESZ, 8),
			.memsz  = ld(ph + P_MEMSZ, 8),
			.flags  = (uint32_t)ld(ph + P_FLAGS, 4),
		};
		err = check_segment(&s, size);
		if (err)
			return err;
		if (s.memsz == 0)
			continue;
		if (out->nseg == ELF_MAX_LOAD)
			return ELF_ERR_TOO_MANY_LOAD;
		out->seg[out->nseg++] = s;
	}
	if (out->nseg == 0)
		return ELF_ERR_NO_LOAD;

	/* Overlaps and the hull. Ends cannot wrap (check_segment). */
	uint64_t lo = UINT64_MAX, hi = 0;
	for (uint32_t i = 0; i < out->nseg; i++) {
		const struct elf_segment *a = &out->seg[i];
		uint64_t a_end = a->vaddr + a->memsz;
		for (uint32_t j = i + 1; j < out->nseg; j++) {
			const struct elf_segment *b = &out->seg[j];
			if (a->vaddr < b->vaddr + b->memsz && b->vaddr < a_end)
				return ELF_ERR_OVERLAP;
		}
		if (a->vaddr < lo)
			lo = a->vaddr;
		if (a_end > hi)
			hi = a_end;
	}
	out->span_start = lo & ~(PAGE_SIZE - 1);
	out->span_end = (hi + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (out->span_end - out->span_start > ELF_MAX_SPAN)
		return ELF_ERR_SPAN;

	/* The entry must be code the loader actually copied from the file. */
	for (uint32_t i = 0; i < out->nseg; i++) {
		const struct elf_segment *s = &out->seg[i];
		if ((s->flags & ELF_PF_X) && out->entry >= s->vaddr &&
		    out->entry - s->vaddr < s->filesz)
			return ELF_OK;
	}
	return ELF_ERR_ENTRY;
}

const char *elf_check_strerror(enum elf_check_err err)
{
	static const char *const msg[ELF_ERR_COUNT] = {
		[ELF_OK]                = "valid",
		[ELF_ERR_TRUNCATED]     = "file shorter than an ELF header",
		[ELF_ERR_MAGIC]         = "no ELF magic (not an ELF file)",
		[ELF_ERR_CLASS]         = "not a 64-bit ELF file",
		[ELF_ERR_ENDIAN]        = "not little-endian",
		[ELF_ERR_VERSION]       = "unknown ELF version",
		[ELF_ERR_MACHINE]       = "not an x86-64 executable",
		[ELF_ERR_TYPE]          = "not a static executable (ET_EXEC)",
		[ELF_ERR_PHDRS]         = "program header table missing, malformed or past the end of the file",
		[ELF_ERR_NO_LOAD]       = "no loadable (PT_LOAD) segment",
		[ELF_ERR_TOO_MANY_LOAD] = "too many loadable segments (max 16)",
		[ELF_ERR_SEG_FILE]      = "a segment's data lies past the end of the file (truncated?)",
		[ELF_ERR_SEG_SIZE]      = "a segment's file size exceeds its memory size",
		[ELF_ERR_SEG_ADDR]      = "a segment lies below the kernel base 0xffffffff80000000 or wraps the address space",
		[ELF_ERR_OVERLAP]       = "two segments overlap",
		[ELF_ERR_SPAN]          = "image spans more than 64 MiB",
		[ELF_ERR_ENTRY]         = "entry point is not inside an executable segment",
	};
	if ((unsigned)err >= ELF_ERR_COUNT || !msg[err])
		return "unknown error";
	return msg[err];
}
