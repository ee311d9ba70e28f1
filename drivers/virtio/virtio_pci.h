/*
 * virtio_pci.h - the virtio 1.x PCI transport ("modern"), driver side.
 *
 * Finds the vendor capabilities (common, notify, ISR, device config), then
 * runs the device through the spec's initialisation order:
 *   reset (and wait for status 0) -> ACKNOWLEDGE -> DRIVER -> read features
 *   -> write the accepted subset -> FEATURES_OK, read back -> queues (select,
 *   size, addresses, notify offset, enable) -> DRIVER_OK.
 * Any failure writes FAILED and logs one line saying why.
 *
 * Registers are reached through struct vp_io (MMIO in the kernel, see
 * drivers/virtio/virtio_pci_hw.c; a simulated device in host tests), so everything
 * here runs under cmocka, hostile devices included: FEATURES_OK refused,
 * queue sizes 0 or not a power of two, notify offsets beyond the notify
 * region, config_generation that never settles, reset that never completes,
 * DEVICE_NEEDS_RESET, a device that resets itself or disappears.
 *
 * Recovery (what the spec allows a driver): vp_health() notices a device
 * that needs a reset, lost DRIVER_OK on its own or reads all ones (removed),
 * with one line per change. vp_reset() resets it and waits, bounded, for
 * status 0: only after that succeeded may the owners of buffers the device
 * was given take them back (virtq_detach_unused, balloon_release_all); if it
 * fails, everything stays owned for good. A later vp_begin + setup reuses the
 * ring memory of each queue, so a reset costs no memory.
 */
#ifndef DRIVERS_VIRTIO_PCI_H
#define DRIVERS_VIRTIO_PCI_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtq.h"

#define VIRTIO_PCI_VENDOR            0x1af4
#define VIRTIO_PCI_MODERN_BASE       0x1040   /* + virtio device id */
#define VIRTIO_PCI_TRANS_BALLOON     0x1002   /* transitional balloon */

/* Vendor capability cfg_type values. */
#define VIRTIO_PCI_CAP_COMMON_CFG    1
#define VIRTIO_PCI_CAP_NOTIFY_CFG    2
#define VIRTIO_PCI_CAP_ISR_CFG       3
/* ISR status byte (read clears it and lowers INTx) */
#define VIRTIO_PCI_ISR_QUEUE         0x1
#define VIRTIO_PCI_ISR_CONFIG        0x2
#define VIRTIO_PCI_CAP_DEVICE_CFG    4
#define VIRTIO_PCI_CAP_PCI_CFG       5

/* struct virtio_pci_common_cfg offsets. */
#define VIRTIO_PCI_COMMON_DFSELECT   0x00
#define VIRTIO_PCI_COMMON_DF         0x04
#define VIRTIO_PCI_COMMON_GFSELECT   0x08
#define VIRTIO_PCI_COMMON_GF         0x0c
#define VIRTIO_PCI_COMMON_MSIX       0x10
#define VIRTIO_PCI_COMMON_NUMQ       0x12
#define VIRTIO_PCI_COMMON_STATUS     0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT   0x16
#define VIRTIO_PCI_COMMON_Q_SIZE     0x18
#define VIRTIO_PCI_COMMON_Q_MSIX     0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE   0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF     0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO   0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI   0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO  0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI  0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO   0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI   0x34
#define VIRTIO_PCI_COMMON_CFG_MIN    0x38   /* virtio 1.0 size */

/* Device status bits. */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE  1
#define VIRTIO_CONFIG_S_DRIVER       2
#define VIRTIO_CONFIG_S_DRIVER_OK    4
#define VIRTIO_CONFIG_S_FEATURES_OK  8
#define VIRTIO_CONFIG_S_NEEDS_RESET  0x40
#define VIRTIO_CONFIG_S_FAILED       0x80

#define VIRTIO_MSI_NO_VECTOR         0xffff
#define VP_MAX_QUEUES                8      /* queues this driver can set up */
#define VP_CONFIG_RETRIES            16     /* generation-stable read attempts */
#define VP_RESET_TIMEOUT_NS          (100ull * 1000 * 1000)
#define VP_RESET_SPINS               1000000ul

enum vp_region_id { VP_COMMON, VP_NOTIFY, VP_ISR, VP_DEVICE, VP_NREGIONS };

struct vp_region {
	uint8_t  bar;
	uint32_t offset;   /* within the BAR */
	uint32_t length;
	volatile void *va; /* mapped by the kernel shell; unused in host tests */
};

struct vp_dev;

/* Register and memory access; `width` is 1, 2 or 4 bytes. */
struct vp_io {
	uint32_t (*read)(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned width);
	void (*write)(struct vp_dev *vp, enum vp_region_id r, uint32_t off, unsigned width, uint32_t v);
	/* Zeroed, physically contiguous, 4 KiB aligned memory for rings. */
	void *(*dma_alloc)(struct vp_dev *vp, size_t bytes, uint64_t *pa);
};

struct vp_dev {
	const char *name;              /* for log lines, e.g. "virtio-balloon" */
	const struct vp_io *io;
	void *ctx;                     /* for the io implementation */
	struct vp_region r[VP_NREGIONS];
	uint32_t notify_mult;
	uint16_t num_queues;
	uint64_t features;             /* negotiated */
	uint16_t notify_off[VP_MAX_QUEUES];
	int failed;
	uint16_t queue_vector;         /* MSI-X entry for queues, VIRTIO_MSI_NO_VECTOR = poll */
	uint8_t health_logged;         /* enum vp_health last reported (0 = healthy) */
	/* Ring memory per queue index, kept across resets (vp_setup_queue). */
	struct { void *mem; uint64_t pa; size_t bytes; } ring[VP_MAX_QUEUES];
};

enum vp_health {
	VP_HEALTHY = 0,
	VP_NEEDS_RESET,    /* DEVICE_NEEDS_RESET set: the device gave up on us */
	VP_LOST,           /* DRIVER_OK gone without us resetting (the device reset itself) */
	VP_GONE,           /* status reads 0xff: removed, or its BAR no longer decodes */
};

/* MSI-X: route configuration changes to table entry `entry` (0 on success,
 * -1 if the device answers VIRTIO_MSI_NO_VECTOR: it could not allocate it).
 * Queues set up afterwards use vp->queue_vector, checked the same way; a
 * queue whose vector is refused falls back to polling (one line). */
int vp_set_config_vector(struct vp_dev *vp, uint16_t entry);

/* Parse the vendor capabilities of `pd` into vp->r[] (first usable one of
 * each type, checked against the BAR's size). 0, or -1 with one log line. */
int vp_parse_caps(struct vp_dev *vp, const struct pci_dev *pd);

/* Reset, wait for status 0 (bounded), ACKNOWLEDGE, DRIVER. 0 or -1. */
int vp_begin(struct vp_dev *vp);
/* Write status 0 and wait (bounded) until it reads back 0. 0 when the device
 * confirmed: it no longer touches any ring or buffer it was given, so they
 * may be reclaimed; queues need vp_begin + vp_setup_queue again. -1 with one
 * line if it never confirmed (vp->failed set): keep every buffer it had. */
int vp_reset(struct vp_dev *vp);
/* Read status once, for a device past DRIVER_OK: VP_HEALTHY or what is
 * wrong. One log line when the answer changes (not on every call), so it can
 * run from a poller every millisecond. */
enum vp_health vp_health(struct vp_dev *vp);
const char *vp_health_name(enum vp_health h);
uint64_t vp_device_features(struct vp_dev *vp);
/* Write `wanted`, set FEATURES_OK and read it back. 0, or -1 (FAILED set). */
int vp_set_features(struct vp_dev *vp, uint64_t wanted);
/* The size the device offers for queue `idx` (select + read), 0 if the
 * device has no such queue. Changes nothing else. */
uint16_t vp_queue_size(struct vp_dev *vp, uint16_t idx);
/* The ISR status byte (VIRTIO_PCI_ISR_QUEUE / _CONFIG bits): reading it
 * acknowledges the interrupt and lowers INTx. 0: not this device's. */
static inline uint8_t vp_read_isr(struct vp_dev *vp) { return (uint8_t)vp->io->read(vp, VP_ISR, 0, 1); }
/* Set up queue `idx` on `vq` with at most `max_size` entries.
 * 0; -ENOENT if the device has no such queue (size 0, nothing changed);
 * -1 on a hostile or impossible answer (FAILED set, one line).
 * Ring memory comes from io->dma_alloc the first time and is reused (zeroed
 * again by virtq_init) when the same queue is set up after a reset. */
int vp_setup_queue(struct vp_dev *vp, uint16_t idx, struct virtq *vq, const char *name,
                   uint16_t max_size);
void vp_driver_ok(struct vp_dev *vp);
/* Mark the device FAILED with one log line. */
void vp_fail(struct vp_dev *vp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

uint8_t vp_status(struct vp_dev *vp);
/* Device config read between two equal config_generation values; 0, or -1
 * after VP_CONFIG_RETRIES attempts (the caller decides what that means). */
int vp_config_read(struct vp_dev *vp, uint32_t off, void *buf, unsigned len);
void vp_config_write32(struct vp_dev *vp, uint32_t off, uint32_t v);
/* The virtq notify hook: ctx is the struct vp_dev. */
void vp_notify(void *ctx, uint16_t idx);

#endif /* DRIVERS_VIRTIO_PCI_H */
