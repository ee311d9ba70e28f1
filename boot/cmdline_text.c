/* cmdline_text.c - raw bytes -> boot_info command line (contract in cmdline_text.h). */
#include "boot/cmdline_text.h"

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum cmdline_text_err cmdline_text_clean(const uint8_t *src, uint64_t len,
                                         char out[BOOT_CMDLINE_MAX], uint32_t *out_len,
                                         uint64_t *bad_offset)
{
	uint64_t start = 0, end = 0;

	out[0] = '\0';
	*out_len = 0;
	*bad_offset = 0;
	while (end < len && src[end] != 0)
		end++;
	if (end >= 3 && src[0] == 0xef && src[1] == 0xbb && src[2] == 0xbf)
		start = 3;
	while (start < end && is_space(src[start]))
		start++;
	while (end > start && is_space(src[end - 1]))
		end--;

	for (uint64_t i = start; i < end; i++) {
		if (!is_space(src[i]) && (src[i] < 0x20 || src[i] >= 0x7f)) {
			*bad_offset = i;
			return CMDLINE_TEXT_BINARY;
		}
	}
	if (end - start > BOOT_CMDLINE_MAX - 1)
		return CMDLINE_TEXT_TOO_LONG;

	uint32_t n = 0;
	for (uint64_t i = start; i < end; i++)
		out[n++] = is_space(src[i]) ? ' ' : (char)src[i];
	out[n] = '\0';
	*out_len = n;
	return CMDLINE_TEXT_OK;
}
