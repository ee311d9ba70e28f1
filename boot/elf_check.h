/*
 * elf_check.h - validate a kernel ELF file before the loader trusts any of it.
 *
 * Contract: elf_check() reads only bytes inside [file, file + size), never
 * writes to the file, and either returns ELF_OK with `out` describing the
 * image or an error (elf_check_strerror() gives one human phrase). On ELF_OK:
 *   - the file is an ELF64, little-endian, x86-64 ET_EXEC;
 *   - out->seg[0 .. nseg) are its PT_LOAD segments with memsz > 0, in file
 *     order, each with offset + filesz inside the file, filesz <= memsz,
 *     vaddr >= BOOT_KERNEL_BASE, no two overlapping in virtual memory;
 *   - [span_start, span_end) is the 4 KiB-rounded hull of all segments,
 *     at most ELF_MAX_SPAN bytes, so one contiguous physical allocation of
 *     span_end - span_start bytes holds the image with each segment at
 *     (vaddr - span_start);
 *   - entry lies in the file-backed part of an executable segment.
 *
 * No EFI headers here: the same file is linked into the loader and into the
 * host unit test (tests/unit/test_elf_check.c).
 */
#ifndef BOOT_ELF_CHECK_H
#define BOOT_ELF_CHECK_H

#include <stdint.h>

#define ELF_MAX_LOAD 16                  /* PT_LOAD segments we accept */
#define ELF_MAX_SPAN (64ull << 20)       /* bytes of virtual span, .bss included */

/* p_flags bits */
#define ELF_PF_X 1u
#define ELF_PF_W 2u
#define ELF_PF_R 4u

enum elf_check_err {
	ELF_OK = 0,
	ELF_ERR_TRUNCATED,        /* shorter than an ELF header */
	ELF_ERR_MAGIC,
	ELF_ERR_CLASS,            /* not ELF64 */
	ELF_ERR_ENDIAN,           /* not little-endian */
	ELF_ERR_VERSION,
	ELF_ERR_MACHINE,          /* not EM_X86_64 */
	ELF_ERR_TYPE,             /* not ET_EXEC */
	ELF_ERR_PHDRS,            /* program header table outside the file or malformed */
	ELF_ERR_NO_LOAD,          /* no PT_LOAD segment with memory */
	ELF_ERR_TOO_MANY_LOAD,    /* more than ELF_MAX_LOAD PT_LOAD segments */
	ELF_ERR_SEG_FILE,         /* segment bytes outside the file */
	ELF_ERR_SEG_SIZE,         /* p_filesz > p_memsz */
	ELF_ERR_SEG_ADDR,         /* vaddr below BOOT_KERNEL_BASE or end wraps */
	ELF_ERR_OVERLAP,          /* two segments share virtual addresses */
	ELF_ERR_SPAN,             /* image larger than ELF_MAX_SPAN */
	ELF_ERR_ENTRY,            /* entry not inside an executable segment */
	ELF_ERR_COUNT
};

struct elf_segment {
	uint64_t vaddr;
	uint64_t offset;    /* in the file */
	uint64_t filesz;
	uint64_t memsz;
	uint32_t flags;     /* ELF_PF_* */
};

struct elf_image {
	uint64_t entry;
	uint64_t span_start;    /* lowest vaddr rounded down to 4 KiB */
	uint64_t span_end;      /* highest vaddr + memsz rounded up to 4 KiB */
	uint32_t nseg;
	struct elf_segment seg[ELF_MAX_LOAD];
};

enum elf_check_err elf_check(const void *file, uint64_t size, struct elf_image *out);
const char *elf_check_strerror(enum elf_check_err err);

#endif /* BOOT_ELF_CHECK_H */
