/* fwcfg.c - QEMU fw_cfg file reads over I/O ports (contract in fwcfg.h). */
#include "boot/fwcfg.h"
#include "hw/io.h"

#define FW_CFG_PORT_SEL     0x510
#define FW_CFG_PORT_DATA    0x511
#define FW_CFG_SIGNATURE    0x0000
#define FW_CFG_FILE_DIR     0x0019
#define FW_CFG_FILE_FIRST   0x0020
#define FW_CFG_MAX_FILE_PATH 56
#define FW_CFG_MAX_FILES    4096    /* QEMU uses far fewer; bounds the walk */

static void fwcfg_select(uint16_t key)
{
	outw(FW_CFG_PORT_SEL, key);
}

/* Selecting a key rewinds it; each data read advances one byte. */
static void fwcfg_read(void *dst, uint32_t n)
{
	uint8_t *p = dst;
	while (n--)
		*p++ = inb(FW_CFG_PORT_DATA);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int name_equal(const char entry[FW_CFG_MAX_FILE_PATH], const char *name)
{
	for (int i = 0; i < FW_CFG_MAX_FILE_PATH; i++) {
		if (entry[i] != name[i])
			return 0;
		if (name[i] == '\0')
			return 1;
	}
	return 0;   /* entry not NUL-terminated within 56 bytes: not ours */
}

enum fwcfg_result fwcfg_read_file(const char *name, uint8_t *buf, uint32_t cap, uint32_t *len)
{
	uint8_t sig[4], hdr[4];

	*len = 0;
	fwcfg_select(FW_CFG_SIGNATURE);
	fwcfg_read(sig, 4);
	if (sig[0] != 'Q' || sig[1] != 'E' || sig[2] != 'M' || sig[3] != 'U')
		return FWCFG_NO_DEVICE;

	fwcfg_select(FW_CFG_FILE_DIR);
	fwcfg_read(hdr, 4);
	uint32_t count = be32(hdr);
	if (count > FW_CFG_MAX_FILES)
		return FWCFG_BAD_DIR;

	for (uint32_t i = 0; i < count; i++) {
		struct { uint8_t size[4], select[2], reserved[2]; char name[FW_CFG_MAX_FILE_PATH]; } e;
		fwcfg_read(&e, sizeof e);
		if (!name_equal(e.name, name))
			continue;
		uint32_t size = be32(e.size);
		uint16_t key = (uint16_t)(e.select[0] << 8 | e.select[1]);
		if (key < FW_CFG_FILE_FIRST)
			return FWCFG_BAD_DIR;
		*len = size;
		if (size > cap)
			return FWCFG_TOO_BIG;
		fwcfg_select(key);
		fwcfg_read(buf, size);
		return FWCFG_OK;
	}
	return FWCFG_NOT_FOUND;
}
