/*
 * cmdline_text.h - turn raw command-line bytes (\cmdline.txt or the fw_cfg
 * file) into the NUL-terminated string boot_info carries.
 *
 * Contract: cmdline_text_clean() reads `len` bytes of `src` and writes `out`
 * (BOOT_CMDLINE_MAX bytes, always NUL-terminated, "" on error):
 *   - input ends at the first NUL byte (fw_cfg blobs may carry one);
 *   - a leading UTF-8 byte-order mark is skipped (editors add it);
 *   - leading and trailing spaces, tabs, CR and LF are dropped, inner ones
 *     become one space each, so a file with several lines is one line;
 *   - any other control byte or non-ASCII byte is refused (CMDLINE_TEXT_BINARY,
 *     *bad_offset = its offset in src): the kernel parser expects text;
 *   - more than BOOT_CMDLINE_MAX - 1 bytes after trimming is refused
 *     (CMDLINE_TEXT_TOO_LONG): a truncated option could change its meaning.
 * No EFI headers: linked into tests/unit/test_boot_cmdline.c on the host.
 */
#ifndef BOOT_CMDLINE_TEXT_H
#define BOOT_CMDLINE_TEXT_H

#include <stdint.h>
#include "boot_info.h"

enum cmdline_text_err {
	CMDLINE_TEXT_OK = 0,
	CMDLINE_TEXT_TOO_LONG,
	CMDLINE_TEXT_BINARY,
};

enum cmdline_text_err cmdline_text_clean(const uint8_t *src, uint64_t len,
                                         char out[BOOT_CMDLINE_MAX], uint32_t *out_len,
                                         uint64_t *bad_offset);

#endif /* BOOT_CMDLINE_TEXT_H */
