/*
 * fuzz_balloon_device.c - libFuzzer target: config space and feature
 * handling, and everything a device can do to the balloon driver after that.
 *
 * One guest (tests/unit/fake_hostile_sys.h: memory with a running
 * application, a simulated virtio-balloon on an INTx line, and the kernel's
 * device shell drivers/balloon/virtio_balloon.c over virtio_pci.c, virtq.c
 * and the balloon core, run by a tickless work loop) is built from the input:
 * offered features, number and sizes of queues, notify offsets, FEATURES_OK
 * refused or not; then the input is a program of device actions - targets
 * (sane, above RAM, absurd), config generation that does not settle, any
 * register read overridden (features, sizes, generation, config; status can
 * only gain bits), raw used entries and indexes on any queue, held or
 * dropped elements, DEVICE_NEEDS_RESET, a device that resets itself,
 * disappears or never completes a reset - interleaved with time passing and
 * the application allocating and checking its memory.
 *
 * A program ends after 512 actions, at the end of the input, or once the
 * balloon took WORK_BUDGET frames.
 *
 * After every action all invariants hold (hsys_check: the balloon's books,
 * every frame's owner, no frame given back while the device may use it, the
 * application's data intact, no protocol or register-order error by the
 * driver; once the device published completions it never did, only the
 * driver-side ones, see tolerate_lies in fake_hostile_dev.h): what breaks one
 * as it happens (a frame given back twice or while the device may use it, a
 * protocol error, counts that disagree) after that action; the scans over
 * every frame and the balloon's books after every FULL_CHECK_EVERY-th
 * action, every reset or recovery, and at the end; the application's data
 * every 32 ms of its run, on its own steps, and at the end. At the
 * end, if the device can still be reset, it is, and every frame the balloon
 * ever took must be back exactly once. Violations abort.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_hostile_sys.h"
#include "host_support.h"
#include "kclock.h"

#define BASE    256u
/* Eight blocks: still more than the OOM path's deflate (4 blocks), the
 * largest min_free (3.5) and a small-run inflate's elements (BALLOON_SLOTS of
 * 32 runs); the driver's work per poll grows with the frames it moves, and
 * with 16 blocks inputs took 1.6 times as long, for no more coverage. */
#ifndef NPAGES
#define NPAGES  (8u * PAGES_PER_BLOCK)
#endif
/* hsys_check scans every frame and the balloon's books after every Nth step
 * (and after every reset or recovery; the errors recorded as they happened
 * and the owner counts against the balloon's after every step), and in full
 * at the end of every input. */
#ifndef FULL_CHECK_EVERY
#define FULL_CHECK_EVERY 8u
#endif

/* The frames the balloon may take in one input: its memory over 32 times.
 * A target that flips at every read keeps the driver inflating and deflating
 * all memory at every tick; such inputs took 1.5 million frames, ran 250 ms
 * (50 times the median) and set the pace of the whole run once they were in
 * the corpus, for no coverage the first 32 rounds had not found. Past the
 * budget the program ends and the final checks run as for any input. */
#ifndef WORK_BUDGET
#define WORK_BUDGET (32u * NPAGES)
#endif

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz_balloon_device: " __VA_ARGS__); \
	fprintf(stderr, "\n"); abort(); } } while (0)

#include "fuzz_input.h"

/* ASan keeps freed memory out of use for this many MiB of later frees, to
 * catch use after free. One input builds and frees a whole guest (about
 * 0.6 MiB), so 32 MiB still covers every input and the 50 before it; the
 * default 256 MiB made every guest's memory fresh pages (a third of the
 * time went to page faults). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "quarantine_size_mb=32"; }

/* Register overrides: the next `count` reads of (region, offset) return
 * value. Once one fired, the simulated device's register model (which flags
 * the driver for writes it thinks out of order) no longer matches what the
 * driver saw, so its order errors stop counting. */
struct override { uint8_t region, count; uint16_t off; uint32_t value; };
static struct override ovr[4];
static int ovr_fired;

static uint32_t hook(void *ctx, enum vp_region_id r, uint32_t off, unsigned w, uint32_t v)
{
	(void)ctx;
	for (unsigned i = 0; i < 4; i++) {
		struct override *o = &ovr[i];
		if (o->count && o->region == r && o->off == off) {
			o->count--;
			ovr_fired = 1;
			uint32_t x = o->value;
			return w == 4 ? x : w == 2 ? (x & 0xffff) : (x & 0xff);
		}
	}
	/* status: no bits added; anything else: unchanged */
	return r == VP_COMMON && off == VIRTIO_PCI_COMMON_STATUS ? 0 : v;
}

static const uint16_t qsizes[] = { 0, 1, 2, 3, 4, 8, 16, 96, 128, 256, 1024, 0x8000, 0xffff, 128, 128, 128 };
static const uint16_t common_offs[] = {
	VIRTIO_PCI_COMMON_DF, VIRTIO_PCI_COMMON_NUMQ, VIRTIO_PCI_COMMON_STATUS,
	VIRTIO_PCI_COMMON_CFGGENERATION, VIRTIO_PCI_COMMON_Q_SIZE, VIRTIO_PCI_COMMON_Q_ENABLE,
	VIRTIO_PCI_COMMON_Q_NOFF, VIRTIO_PCI_COMMON_Q_MSIX,
};

static void check_(struct hsys *x, const char *after, int full)
{
	char why[300];
	if (ovr_fired)
		x->dev.pci.order_errors = 0;
	if ((full ? hsys_check_full : hsys_check)(x, why, sizeof why) != 0) {
		fprintf(stderr, "fuzz_balloon_device: after %s: %s\n", after, why);
		abort();
	}
}
static void check(struct hsys *x, const char *after) { check_(x, after, 0); }
static void check_full(struct hsys *x, const char *after) { check_(x, after, 1); }

static uint32_t target(struct input *in)
{
	uint8_t k = byte(in);
	switch (k % 4) {
	case 0: {
		uint32_t hi = byte(in);
		return (hi << 8 | byte(in)) % (NPAGES + 1);
	}
	case 1: return (uint32_t)(byte(in) % 17) * PAGES_PER_BLOCK;
	case 2: return NPAGES + byte(in);
	default: return u32(in);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hsys x;
	struct input in = { data, size };
	memset(ovr, 0, sizeof ovr);
	ovr_fired = 0;
	host_clock_set(NS_PER_S);
	host_klog_reset();
	host_klog_echo = getenv("KLOG_ECHO") != NULL;   /* replaying an input: what the driver said */
	uint64_t min_free = (byte(&in) % 8) * PAGES_PER_BLOCK / 2;
	uint64_t seed = 1 + byte(&in);
	CHECK(hsys_init(&x, BASE, NPAGES, min_free, seed) == 0, "out of memory");
	x.app_check_every = 32;   /* corrupt data stays corrupt: found by a later check, a free or the end */
	x.full_check_every = FULL_CHECK_EVERY;
	x.dev.read_hook = hook;
	x.dev.ns_per_read = 1000;   /* time passes with every register read: bounded waits end */
	x.dev.tolerate_lies = 1;

	/* the device as offered */
	uint8_t f = byte(&in);
	if (f & 1) {
		uint64_t hi = u32(&in);
		x.dev.pci.host_features = hi << 32 | u32(&in);
	}
	if (f & 2)
		x.dev.pci.host_features |= 1ull << 32;    /* VERSION_1 mostly there */
	if ((f & 0x60) == 0x20) {                     /* QEMU with deflate-on-oom and free-page-reporting */
		x.dev.pci.host_features |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM | 1ull << VIRTIO_BALLOON_F_REPORTING;
		x.dev.pci.num_queues = 4;
		x.dev.pci.qmax[3] = 32;
	}
	if (f & 4)
		x.dev.pci.num_queues = byte(&in) % 9;
	if (f & 8)
		for (int q = 0; q < 4; q++)
			x.dev.pci.qmax[q] = qsizes[byte(&in) % 16];
	if (f & 16)
		for (int q = 0; q < 4; q++) {
			uint8_t k = byte(&in);
			x.dev.pci.qnoff[q] = k & 0x80 ? (uint16_t)((k & 0x7f) << 8 | byte(&in)) : k % 8;
		}
	x.dev.pci.refuse_features_ok = (f & 0xe0) == 0xe0;
	fake_mem_app_alloc(&x.mem, (uint64_t)byte(&in) * 32);
	hsys_bring_up(&x);
	check(&x, "bring-up");

	for (unsigned step = 0; in.n && step < 512 && x.mem.frames_taken < WORK_BUDGET; step++) {
		uint8_t op = byte(&in);
		int q = byte(&in) % HD_NQ;
		struct fake_vq *fq = &x.dev.vq[q];
		switch (op % 16) {
		case 0: case 1:
			hdev_set_target(&x.dev, target(&in));
			break;
		case 2: case 3: case 4: {
			unsigned n = 1 + byte(&in) % 32;
			for (unsigned i = 0; i < n && x.mem.frames_taken < WORK_BUDGET; i++)
				hsys_tick(&x);
			break;
		}
		case 5:
			hdev_set_mode(&x.dev, q, (enum fake_mode)(byte(&in) % 3));
			break;
		case 6:
			hdev_complete(&x.dev, q, 1 + byte(&in) % 8);
			break;
		case 7:                                   /* any used entry on a live queue */
			if (x.dev.attached[q]) {
				uint8_t k = byte(&in);
				uint32_t id = k & 1 && fq->nheld ? fq->held[byte(&in) % fq->nheld].head
				            : k & 2 ? byte(&in) : u32(&in);
				uint32_t len = k & 4 ? (uint32_t)byte(&in) << 4 : u32(&in);
				hdev_push_raw(&x.dev, q, id, len);
			}
			break;
		case 8:                                   /* any used index */
			if (x.dev.attached[q])
				hdev_set_used_idx(&x.dev, q, (uint16_t)(fq->used_idx + (int8_t)byte(&in)));
			break;
		case 9: {                                 /* a register read overridden */
			struct override *o = &ovr[byte(&in) % 4];
			uint8_t k = byte(&in);
			o->region = k & 1 ? VP_DEVICE : VP_COMMON;
			o->off = k & 1 ? (uint16_t)(byte(&in) % 4 * 4) : common_offs[byte(&in) % 8];
			o->value = u32(&in);
			o->count = 1 + byte(&in) % 16;
			break;
		}
		case 10:
			x.dev.pci.gen_changes_left = byte(&in) & 0x80 ? UINT32_MAX : byte(&in) % 40;
			break;
		case 11: {                                /* the device's state changes */
			uint8_t k = byte(&in);
			if (k < 100)
				hdev_raise_needs_reset(&x.dev);
			else if (k < 180)
				hdev_self_reset(&x.dev);
			else if (k < 230)
				x.dev.flip_target = !x.dev.flip_target;
			else if (k < 245)
				x.dev.reset_stuck = !x.dev.reset_stuck;
			else
				x.dev.gone = 1;
			break;
		}
		case 12:                                  /* the application */
			if (byte(&in) & 1)
				fake_mem_app_alloc(&x.mem, byte(&in) * 8u);
			else
				fake_mem_app_free(&x.mem, byte(&in) * 8u);
			fake_mem_app_check(&x.mem);
			break;
		case 13:                                  /* a long wait (timeouts, retries) */
			host_clock_advance((1 + byte(&in) % 8) * NS_PER_S);
			hsys_tick(&x);
			break;
		case 14: {
			uint8_t k = byte(&in);
			x.host_paused = k & 1;
			x.dev.process_on_notify = !(k & 2);
			x.dev.scribble_pfns = (k & 0x1c) == 0x1c;
			break;
		}
		case 15:                                  /* the host starts serving again, at once */
			x.host_paused = 0;
			hdev_run(&x.dev);
			break;
		}
		check(&x, "a step");
	}

	/* The end: every invariant in full (hsys_check scans the frames and the
	 * books only every FULL_CHECK_EVERY steps); then a device that can still
	 * be reset is, and every frame the balloon took is back exactly once. */
	fake_mem_app_check(&x.mem);
	check_full(&x, "the last step");
	memset(ovr, 0, sizeof ovr);
	struct virtio_balloon_dev *d = x.vb;
	if (d && !x.dev.gone && !x.dev.reset_stuck && vp_reset(&d->vp) == 0) {
		if (d->core_up)
			balloon_release_all(d->b);
		d->core_up = d->transport_up = 0;
		check_full(&x, "the final reset");
		CHECK(x.mem.nballoon == 0, "%llu frames still the balloon's after a reset",
		      (unsigned long long)x.mem.nballoon);
		CHECK(x.mem.nisolated == 0, "%llu frames still isolated for reporting after a reset",
		      (unsigned long long)x.mem.nisolated);
		CHECK(x.mem.frames_given == x.mem.frames_taken, "%llu frames taken, %llu given back",
		      (unsigned long long)x.mem.frames_taken, (unsigned long long)x.mem.frames_given);
		CHECK(fake_mem_app_check(&x.mem) == 0, "application data corrupt: %s", x.mem.first_error);
	}
	hsys_destroy(&x);
	return 0;
}
