/*
 * cmdline_source.h - pick the kernel command line.
 *
 * Contract: cmdline_read() fills bi->cmdline, cmdline_len and cmdline_source
 * from \cmdline.txt on the boot volume (if present), then lets the QEMU
 * fw_cfg file opt/balloon/cmdline override it (if present, even when empty:
 * a test can clear the line). A source that is unreadable, too long (more
 * than BOOT_CMDLINE_MAX - 1 bytes after trimming) or not text prints one
 * "loader: ... ignored" line and is skipped; a refused override keeps the
 * file's line. Nothing is truncated. Needs boot services.
 */
#ifndef BOOT_CMDLINE_SOURCE_H
#define BOOT_CMDLINE_SOURCE_H

#include <efi.h>
#include "boot_info.h"

void cmdline_read(EFI_FILE_HANDLE root, struct boot_info *bi);

#endif /* BOOT_CMDLINE_SOURCE_H */
