/*
 * fwcfg.h - read one named file from QEMU's fw_cfg device (I/O ports).
 *
 * Contract: fwcfg_read_file() first checks the "QEMU" signature, so on other
 * hypervisors or hardware (where the ports read 0xff) it touches nothing else
 * and returns FWCFG_NO_DEVICE. It then walks the file directory (bounded,
 * sizes checked) for `name` and copies at most `cap` bytes: a larger file is
 * FWCFG_TOO_BIG and nothing is copied. Port I/O only, no firmware calls.
 * Protocol: QEMU docs/specs/fw_cfg.rst (selector 0x510, data 0x511, file
 * directory at key 0x0019, big-endian fields).
 */
#ifndef BOOT_FWCFG_H
#define BOOT_FWCFG_H

#include <stdint.h>

enum fwcfg_result {
	FWCFG_OK = 0,
	FWCFG_NO_DEVICE,    /* no QEMU fw_cfg here */
	FWCFG_NOT_FOUND,    /* no file of that name */
	FWCFG_TOO_BIG,      /* the file is larger than cap; *len = its size */
	FWCFG_BAD_DIR,      /* directory malformed (absurd count or key) */
};

enum fwcfg_result fwcfg_read_file(const char *name, uint8_t *buf, uint32_t cap, uint32_t *len);

#endif /* BOOT_FWCFG_H */
