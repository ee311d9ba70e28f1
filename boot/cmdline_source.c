/*
 * cmdline_source.c - where boot_info's command line comes from (contract in
 * cmdline_source.h). Cleaning and length rules: boot/cmdline_text.c.
 */
#include <efi.h>
#include <efilib.h>
#include "boot/cmdline_source.h"
#include "boot/cmdline_text.h"
#include "boot/console.h"
#include "boot/file.h"
#include "boot/fwcfg.h"

#define CMDLINE_FILE_MAX (64u << 10)      /* anything bigger is not a command line */
#define FWCFG_CMDLINE    "opt/balloon/cmdline"

/* Clean `raw` into bi->cmdline; on refusal print why and leave it empty. */
static int take_cmdline(struct boot_info *bi, const uint8_t *raw, uint64_t len, const CHAR16 *what)
{
	uint64_t bad;
	switch (cmdline_text_clean(raw, len, bi->cmdline, &bi->cmdline_len, &bad)) {
	case CMDLINE_TEXT_OK:
		return 1;
	case CMDLINE_TEXT_TOO_LONG:
		loader_msg(L"%s longer than %d bytes, ignored", what, BOOT_CMDLINE_MAX - 1);
		return 0;
	default:
		loader_msg(L"%s has a non-text byte at offset %ld, ignored", what, bad);
		return 0;
	}
}

void cmdline_read(EFI_FILE_HANDLE root, struct boot_info *bi)
{
	void *buf;
	UINT64 size;
	static uint8_t fw[4096];   /* room for trailing blanks; length is judged after trimming */
	uint32_t fw_len;

	bi->cmdline_source = BOOT_CMDLINE_NONE;
	EFI_STATUS st = file_read_all(root, L"\\cmdline.txt", CMDLINE_FILE_MAX, &buf, &size);
	if (st == EFI_BAD_BUFFER_SIZE) {
		loader_msg(L"cmdline.txt longer than %d bytes, ignored", BOOT_CMDLINE_MAX - 1);
	} else if (st != EFI_NOT_FOUND && EFI_ERROR(st)) {
		loader_msg(L"cannot read \\cmdline.txt: %r, ignored", st);
	} else if (!EFI_ERROR(st)) {
		if (take_cmdline(bi, buf, size, L"cmdline.txt"))
			bi->cmdline_source = BOOT_CMDLINE_FILE;
		if (buf)
			BS->FreePool(buf);
	}

	/* QEMU tests override the file without rebuilding the image. No firmware
	 * event may touch fw_cfg between our select and our reads. */
	EFI_TPL tpl = BS->RaiseTPL(TPL_HIGH_LEVEL);
	enum fwcfg_result fr = fwcfg_read_file(FWCFG_CMDLINE, fw, sizeof fw, &fw_len);
	BS->RestoreTPL(tpl);
	switch (fr) {
	case FWCFG_OK: {
		static char keep[BOOT_CMDLINE_MAX];
		uint32_t keep_len = bi->cmdline_len;
		CopyMem(keep, bi->cmdline, sizeof keep);
		if (take_cmdline(bi, fw, fw_len, L"fw_cfg opt/balloon/cmdline")) {
			bi->cmdline_source = BOOT_CMDLINE_FWCFG;
		} else {   /* a bad override falls back to the file */
			CopyMem(bi->cmdline, keep, sizeof keep);
			bi->cmdline_len = keep_len;
		}
		break;
	}
	case FWCFG_TOO_BIG:
		loader_msg(L"fw_cfg %a longer than %d bytes, ignored", FWCFG_CMDLINE, BOOT_CMDLINE_MAX - 1);
		break;
	case FWCFG_BAD_DIR:
		loader_msg(L"fw_cfg file directory is malformed, ignored");
		break;
	default:   /* not QEMU, or no override: normal */
		break;
	}
}

