/*
 * test_hostile_device.c - the whole balloon driver stack against a hostile
 * virtio-balloon device: the modern PCI transport (drivers/virtio/virtio_pci.c), the
 * split virtqueues (drivers/virtio/virtq.c) and the balloon core (drivers/balloon/),
 * on a simulated device with a host view (fake_hostile_dev.c), over guest
 * memory that checks the ownership of every frame while an application keeps
 * allocating, freeing and checksumming its own (fake_balloon_mem.c).
 *
 * The driver is the kernel's own device shell, drivers/balloon/virtio_balloon.c
 * (find, bring-up, interrupts on the INTx line, recovery, the poller), run
 * by a work loop that polls only when asked or interrupted, as kernel/main.c
 * does (tests/unit/fake_hostile_sys.h). Recovery as virtio_balloon.h says: a
 * device that needs a reset, reset itself or broke a ring is reset; only
 * when it confirms the reset does the balloon give its frames back
 * (balloon_release_all), and it is brought up again (at most 3 attempts); a
 * reset that is not confirmed keeps every frame the balloon's for good.
 *
 * Every case asserts: the driver notices, says so in one line naming the
 * cause (plus at most the balloon's "stopped" line and the shell's reset line), stops
 * using the broken queue or device (or resets it), never logs about it again,
 * and the application keeps running with its data intact; no frame is lost or
 * handed out twice: every frame the balloon took comes back exactly once, or
 * stays the balloon's while the device may still use it. These are checked
 * after every millisecond of simulated time (check_all).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/balloon/balloon.h"
#include "drivers/balloon/internal.h"   /* white-box: the tests read the core's books */
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtq.h"
#include "fake_hostile_dev.h"
#include "fake_balloon_mem.h"
#include "fake_hostile_sys.h"
#include "host_support.h"
#include "hostile_fixture.h"
#include "kclock.h"

#define NPAGES    HFX_NPAGES            /* 80 MiB from 1 MiB: the first block is partial */
#define MIN_FREE  HFX_MIN_FREE
#define MAX_RECOVERIES HSYS_MAX_RECOVERIES

/* ------------------------------------------------------------ the harness */

/* The application is already running: 4096 frames in small pieces all over
 * memory, so whole free blocks need compaction. */
static struct hsys *make_paused(uint64_t seed)
{
	struct hsys *x = hfx_new(seed);
	for (unsigned i = 0; i < 256; i++)
		fake_mem_app_alloc(&x->mem, 16);
	hfx_start(x);
	return x;
}

/* A guest whose driver came up on a well-behaved device (knobs set by the
 * caller between make_paused and bring_up make it hostile from the start). */
static void bring_up(struct hsys *x, int expect_ok)
{
	int rc = hsys_bring_up(x);
	if (expect_ok) {
		assert_int_equal(rc, 0);
		assert_true(hsys_core_up(x));
	}
}

/* What the shell says at every boot of a working device: the interrupt
 * mode, the device, the features it uses. */
static void expect_boot_lines(void)
{
	hfx_log_has("virtio-balloon: interrupts: INTx line 11 (no MSI-X: no free interrupt vectors)");
	hfx_log_has("virtio-balloon: 00:03.0 modern, BAR4 0xfe000000, features 0x100000002 of 0x130000012, "
	            "queues inflate 0/128 deflate 1/128 stats yes reporting no");
	hfx_log_has("virtio-balloon: using stats");
	assert_int_equal(host_klog_count(), 3);
}

static struct hsys *make(uint64_t seed)
{
	struct hsys *x = make_paused(seed);
	bring_up(x, 1);
	expect_boot_lines();
	host_klog_reset();
	return x;
}

/* Run until host and guest agree on `pages` with nothing in flight. */
static void settle_at(struct hsys *x, uint64_t pages) { hfx_settle(x, pages, 1); }

/* Every frame the balloon ever took is back, exactly once; the application
 * still has all its data and can now use every free frame. */
static void assert_all_back(struct hsys *x)
{
	assert_int_equal(x->mem.nballoon, 0);
	assert_int_equal(hsys_owned(x), 0);
	assert_int_equal(x->mem.frames_given, x->mem.frames_taken);
	assert_int_equal(x->mem.nfree + x->mem.nused + x->mem.npinned, NPAGES);
	hfx_assert_app_uses_all_free(x);
}

/* After the failure was reported: silence, and nothing more goes to the device. */
static void assert_quiet_and_left_alone(struct hsys *x, unsigned ms)
{
	unsigned lines = host_klog_count(), resets = x->dev.resets;
	struct virtq *vq[3] = { &x->vb->inflate_vq, &x->vb->deflate_vq, &x->vb->stats_vq };
	uint16_t avail[3];
	for (int q = 0; q < 3; q++)
		avail[q] = vq[q]->avail ? vq[q]->avail->idx : 0;
	uint64_t owned = hsys_owned(x);
	hfx_wait_ms(x, ms);
	assert_int_equal(host_klog_count(), lines);
	assert_int_equal(x->dev.resets, resets);
	for (int q = 0; q < 3; q++)
		if (vq[q]->avail)
			assert_int_equal(vq[q]->avail->idx, avail[q]);
	assert_int_equal(hsys_owned(x), owned);
}

/* ------------------------------------------------------------ a good device */

static void test_baseline_round_trip(void **state)
{
	(void)state;
	struct hsys *x = make(1);
	hdev_set_target(&x->dev, 20 * PAGES_PER_BLOCK);
	settle_at(x, 20 * PAGES_PER_BLOCK);
	assert_true(x->mem.compact_calls >= 1);          /* whole blocks had to be made */
	assert_true(x->dev.stats_seen >= 1);
	hdev_set_target(&x->dev, 3 * PAGES_PER_BLOCK + 77);
	settle_at(x, 3 * PAGES_PER_BLOCK + 77);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_false(host_klog_contains("virtq"));
	assert_all_back(x);
	hfx_destroy(x);
}

/* ------------------------------------------------------------ used ring */

/* Inflate 8 blocks with the device holding them, 3 acked. */
static void eight_in_flight_three_acked(struct hsys *x)
{
	hdev_set_mode(&x->dev, HD_INFLATE, FAKE_HOLD);
	hdev_set_target(&x->dev, 8 * PAGES_PER_BLOCK);
	hfx_ticks(x, 3);
	assert_int_equal(x->dev.vq[HD_INFLATE].nheld, 8);
	assert_int_equal(hdev_complete(&x->dev, HD_INFLATE, 3), 3);
	hfx_ticks(x, 2);
	assert_int_equal(balloon_actual(x->b), 3 * PAGES_PER_BLOCK);
	assert_int_equal(hdev_actual(&x->dev), 3 * PAGES_PER_BLOCK);
	assert_int_equal(x->b->inflating, 5 * PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
}

/* The device's number of pages to balloon (num_pages). */
static uint32_t host_target(struct hsys *x)
{
	uint32_t np;
	memcpy(&np, x->dev.pci.devcfg + VIRTIO_BALLOON_CFG_NUM_PAGES, 4);
	return np;
}

/* The failure was a broken ring: the cause, the balloon's stop, and the
 * shell's reset, which brings every frame back exactly once and brings the
 * device up again (attempt 1 of 3, virtio_balloon.h). Once the device
 * behaves, the host's target is met again and nothing more is said about
 * the failure. */
static void expect_ring_failure(struct hsys *x, const char *cause, uint64_t pages_back)
{
	hfx_ticks(x, 1);
	assert_int_equal(host_klog_count(), 3);
	hfx_log_has(cause);
	hfx_log_has("queue disabled");
	hfx_log_has("balloon: stopped: device queue broken");
	char line[160];
	snprintf(line, sizeof line, "virtio-balloon: balloon stopped (broken queue or config); reset ok, %llu MiB "
	         "(%llu pages) reclaimed, bringing it up again (attempt 1 of 3)",
	         (unsigned long long)(pages_back * 4096 / (1u << 20)), (unsigned long long)pages_back);
	hfx_log_has(line);
	assert_false(x->vb->given_up);
	assert_true(hsys_up(x) && hsys_core_up(x));
	assert_int_equal(x->vb->attempts, 1);
	assert_int_equal(x->dev.resets_confirmed, 3);    /* boot, the recovery, the new bring-up */
	assert_int_equal(x->mem.nballoon, 0);            /* all of it, exactly once */
	assert_int_equal(x->mem.frames_given, x->mem.frames_taken);
	hdev_set_mode(&x->dev, HD_INFLATE, FAKE_ACK);
	hdev_set_mode(&x->dev, HD_DEFLATE, FAKE_ACK);
	host_klog_reset();
	settle_at(x, host_target(x));
	hfx_wait_ms(x, 2000);
	assert_false(host_klog_contains("virtq"));
	assert_false(host_klog_contains("stopped"));
	assert_false(host_klog_contains("reset"));
	assert_int_equal(x->vb->attempts, 1);
	hfx_assert_app_kept_running(x);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
}

static void test_used_idx_jumps_ahead(void **state)
{
	(void)state;
	struct hsys *x = make(2);
	eight_in_flight_three_acked(x);
	struct fake_vq *f = &x->dev.vq[HD_INFLATE];
	hdev_set_used_idx(&x->dev, HD_INFLATE, (uint16_t)(f->used_idx + 10));   /* 10 new, 5 in flight */
	expect_ring_failure(x, "virtq balloon-inflate (queue 0): used idx moved by 10 with 5 buffers in flight",
	                    8 * PAGES_PER_BLOCK);
	hfx_destroy(x);
}

static void test_used_idx_goes_backwards(void **state)
{
	(void)state;
	struct hsys *x = make(3);
	hdev_set_target(&x->dev, 6 * PAGES_PER_BLOCK);
	settle_at(x, 6 * PAGES_PER_BLOCK);
	hdev_set_mode(&x->dev, HD_DEFLATE, FAKE_HOLD);
	hdev_set_target(&x->dev, 0);
	hfx_ticks(x, 3);
	assert_int_equal(x->dev.vq[HD_DEFLATE].nheld, 6);
	hdev_complete(&x->dev, HD_DEFLATE, 2);
	hfx_ticks(x, 2);
	assert_int_equal(hsys_owned(x), 4 * PAGES_PER_BLOCK);   /* 2 acked blocks went back */
	host_klog_reset();
	hfx_mark_failure(x);
	struct fake_vq *f = &x->dev.vq[HD_DEFLATE];
	hdev_set_used_idx(&x->dev, HD_DEFLATE, (uint16_t)(f->used_idx - 1));
	expect_ring_failure(x, "virtq balloon-deflate (queue 1): used idx moved by 65535 with 4 buffers",
	                    4 * PAGES_PER_BLOCK);
	hfx_destroy(x);
}

static void test_used_id_already_completed(void **state)
{
	(void)state;
	struct hsys *x = make(4);
	hdev_set_mode(&x->dev, HD_INFLATE, FAKE_HOLD);
	hdev_set_target(&x->dev, 2 * PAGES_PER_BLOCK);
	hfx_ticks(x, 3);
	struct fake_vq *f = &x->dev.vq[HD_INFLATE];
	assert_int_equal(f->nheld, 2);
	uint16_t head = f->held[0].head;
	hdev_complete(&x->dev, HD_INFLATE, 1);
	hfx_ticks(x, 2);                                       /* reaped; nothing new to add */
	assert_int_equal(balloon_actual(x->b), PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
	hdev_push_raw(&x->dev, HD_INFLATE, head, 0);       /* the same element again */
	char cause[100];
	snprintf(cause, sizeof cause, "used id %u is not a buffer in flight", head);
	expect_ring_failure(x, cause, 2 * PAGES_PER_BLOCK);
	hfx_destroy(x);
}

static void test_used_len_larger_than_buffer(void **state)
{
	(void)state;
	struct hsys *x = make(5);
	eight_in_flight_three_acked(x);
	struct fake_vq *f = &x->dev.vq[HD_INFLATE];
	/* a block element is two 1 KiB device-readable descriptors */
	hdev_push_raw(&x->dev, HD_INFLATE, f->held[0].head, 2049);
	expect_ring_failure(x, "used len 2049 larger than the buffer (2048 bytes)", 8 * PAGES_PER_BLOCK);
	hfx_destroy(x);
}

/* The reset that should let the driver reclaim never completes: the device
 * may still use every frame it was given, so they stay the balloon's. The
 * device here is also slow: elements made available but never popped must
 * stay too. */
static void test_used_id_out_of_range_reset_stuck(void **state)
{
	(void)state;
	struct hsys *x = make(6);
	eight_in_flight_three_acked(x);
	x->host_paused = 1;
	x->dev.process_on_notify = 0;
	hdev_set_target(&x->dev, 12 * PAGES_PER_BLOCK);
	hfx_ticks(x, 2);                                       /* 4 more, not popped */
	assert_int_equal(x->b->inflating, 9 * PAGES_PER_BLOCK);
	x->dev.reset_stuck = 1;
	host_klog_reset();
	uint64_t owned = hsys_owned(x), given = x->mem.frames_given;
	hdev_push_raw(&x->dev, HD_INFLATE, 500, 0);
	hfx_ticks(x, 1);
	assert_int_equal(host_klog_count(), 4);
	hfx_log_has("used id 500 out of range (size 128)");
	hfx_log_has("balloon: stopped: device queue broken; holding 6144 pages");
	hfx_log_has("reset did not complete");
	hfx_log_has("reset not confirmed, keeping the 24 MiB (6144 pages) the balloon holds for good; leaving it off");
	assert_true(x->vb->given_up);
	assert_quiet_and_left_alone(x, 3000);
	assert_int_equal(hsys_owned(x), owned);
	assert_int_equal(x->mem.nballoon, owned);          /* nothing given back... */
	assert_int_equal(x->mem.frames_given, given);
	hfx_assert_app_kept_running(x);
	hfx_destroy(x);
}

/* A broken stats queue costs the statistics, not the balloon. */
static void test_stats_queue_broken_balloon_goes_on(void **state)
{
	(void)state;
	struct hsys *x = make(7);
	hfx_ticks(x, 2);
	struct fake_vq *f = &x->dev.vq[HD_STATS];
	assert_int_equal(f->nheld, 1);
	host_klog_reset();
	hfx_mark_failure(x);
	char cause[120];
	snprintf(cause, sizeof cause, "virtq balloon-stats (queue 2): used len 9999 larger than the buffer "
	         "(%u bytes)", f->held[0].out_bytes);
	hdev_push_raw(&x->dev, HD_STATS, f->held[0].head, 9999);
	hfx_ticks(x, 1);
	assert_int_equal(host_klog_count(), 1);
	hfx_log_has(cause);
	unsigned seen = x->dev.stats_seen;
	hdev_set_target(&x->dev, 10 * PAGES_PER_BLOCK);
	settle_at(x, 10 * PAGES_PER_BLOCK);
	hdev_set_target(&x->dev, PAGES_PER_BLOCK);
	settle_at(x, PAGES_PER_BLOCK);
	assert_int_equal(x->dev.stats_seen, seen);        /* the queue is not used again */
	assert_false(host_klog_contains("stopped"));
	hfx_assert_app_kept_running(x);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

/* ------------------------------------------------------------ config space */

static void test_target_above_total_memory(void **state)
{
	(void)state;
	struct hsys *x = make(8);
	hfx_mark_failure(x);
	hdev_set_target(&x->dev, NPAGES + 1);             /* one page more than the guest has */
	hfx_wait_ms(x, 2000);
	hfx_log_has("host asks for 20481 pages (80 MiB), at most 19456 can be given");
	hfx_log_has("clamped");
	/* never above the limit; what the application does not hold went */
	assert_true(hsys_owned(x) <= NPAGES - MIN_FREE);
	assert_true(hsys_owned(x) + x->mem.nused + MIN_FREE + 1024 >= NPAGES);
	assert_int_equal(hdev_actual(&x->dev), balloon_actual(x->b));
	host_klog_reset();
	hdev_set_target(&x->dev, 0xffffffffu);            /* absurd */
	hfx_wait_ms(x, 3000);
	assert_int_equal(host_klog_count(), 1);           /* one clamp line for the new value */
	hfx_log_has("host asks for 4294967295 pages");
	hfx_assert_app_kept_running(x);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

static void test_target_flipping_wildly(void **state)
{
	(void)state;
	struct hsys *x = make(9);
	x->dev.flip_target = 1;                           /* a new num_pages on every read */
	hfx_mark_failure(x);
	hfx_ticks(x, 4000);
	/* rate-limited: a few lines per second at most, never a flood */
	assert_true(host_klog_count() <= 4 * 5 + 4);
	assert_false(host_klog_contains("stopped"));
	assert_true(x->mem.compact_calls > 0);
	hfx_assert_app_kept_running(x);
	x->dev.flip_target = 0;
	hdev_set_target(&x->dev, 5 * PAGES_PER_BLOCK);
	settle_at(x, 5 * PAGES_PER_BLOCK);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

static void test_config_generation_never_settles(void **state)
{
	(void)state;
	struct hsys *x = make(10);
	hdev_set_target(&x->dev, 4 * PAGES_PER_BLOCK);
	settle_at(x, 4 * PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
	x->dev.pci.gen_changes_left = UINT32_MAX;         /* changes on every read */
	hdev_set_target(&x->dev, 30 * PAGES_PER_BLOCK);
	hfx_wait_ms(x, 4000);
	assert_int_equal(host_klog_count(), 1);
	hfx_log_has("device config generation does not settle; keeping target 2048 pages");
	assert_int_equal(balloon_actual(x->b), 4 * PAGES_PER_BLOCK);  /* old target kept */
	hfx_wait_ms(x, 2000);
	hfx_log_has("balloon: stopped: device config unreadable");
	hfx_log_has("reset ok, 8 MiB (2048 pages) reclaimed, bringing it up again (attempt 1 of 3)");
	/* the device is reset and brought up again; its config still never
	 * settles, so each attempt ends the same way, then it is left off */
	hfx_wait_ms(x, 20000);
	hfx_log_has("all 3 attempts used, leaving it off");
	assert_true(x->vb->given_up);
	assert_true(host_klog_count() <= 3 * 4);           /* a few lines per attempt */
	assert_quiet_and_left_alone(x, 2000);
	hfx_assert_app_kept_running(x);
	assert_all_back(x);
	hfx_destroy(x);
}

/* ------------------------------------------------------------ bring-up */

/* The device is unusable from the start: one line, FAILED, no queue, and
 * the balloon never took a frame. */
static void expect_refused(struct hsys *x, const char *cause)
{
	/* the interrupt mode is said before the queues are set up */
	unsigned lines = 1 + host_klog_contains("virtio-balloon: interrupts: INTx line 11");
	assert_int_equal(host_klog_count(), lines);
	hfx_log_has(cause);
	assert_false(hsys_core_up(x));
	assert_true(x->dev.pci.status & VIRTIO_CONFIG_S_FAILED);
	assert_false(x->dev.pci.status & VIRTIO_CONFIG_S_DRIVER_OK);
	hfx_mark_failure(x);
	hdev_set_target(&x->dev, 10 * PAGES_PER_BLOCK);
	hfx_wait_ms(x, 2000);
	assert_int_equal(host_klog_count(), lines);
	assert_int_equal(x->mem.frames_taken, 0);
	assert_int_equal(x->dev.elems_seen[0] + x->dev.elems_seen[1], 0);
	hfx_assert_app_kept_running(x);
	assert_all_back(x);
}

static void test_features_ok_refused(void **state)
{
	(void)state;
	struct hsys *x = make_paused(11);
	x->dev.pci.refuse_features_ok = 1;
	bring_up(x, 0);
	for (int q = 0; q < 3; q++)
		assert_int_equal(x->dev.pci.q[q].enable, 0);
	expect_refused(x, "device refused features 0x100000002 (FEATURES_OK not kept)");
	hfx_destroy(x);
}

static void test_inflate_queue_size_zero(void **state)
{
	(void)state;
	struct hsys *x = make_paused(12);
	x->dev.pci.qmax[0] = 0;
	bring_up(x, 0);
	expect_refused(x, "inflate/deflate queues missing or unusable; device marked FAILED");
	hfx_destroy(x);
}

static void test_stats_queue_size_zero(void **state)
{
	(void)state;
	struct hsys *x = make_paused(13);
	x->dev.pci.qmax[2] = 0;
	bring_up(x, 1);
	assert_int_equal(host_klog_count(), 4);           /* and the three boot lines */
	hfx_log_has("STATS_VQ offered but queue 2 is absent; no statistics");
	assert_false(x->vb->has_stats);
	hdev_set_target(&x->dev, 6 * PAGES_PER_BLOCK);
	settle_at(x, 6 * PAGES_PER_BLOCK);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_int_equal(x->dev.stats_seen, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

static void test_queue_size_not_power_of_two(void **state)
{
	(void)state;
	const uint16_t sizes[] = { 96, 3, 0xffff };
	for (unsigned i = 0; i < 3; i++) {
		struct hsys *x = make_paused(14 + i);
		x->dev.pci.qmax[1] = sizes[i];
		bring_up(x, 0);
		char cause[100];
		snprintf(cause, sizeof cause, "queue 1 (balloon-deflate): size %u is not a power of two", sizes[i]);
		expect_refused(x, cause);
		hfx_destroy(x);
	}
}

/* Size 1 cannot carry a block (two descriptors): the balloon does not start,
 * the kernel goes on without it. */
static void test_queue_size_one(void **state)
{
	(void)state;
	struct hsys *x = make_paused(17);
	x->dev.pci.qmax[0] = 1;
	bring_up(x, 0);
	assert_false(hsys_core_up(x));
	assert_int_equal(host_klog_count(), 4);           /* and the three boot lines */
	hfx_log_has("balloon: cannot start: inflate/deflate queues missing, broken or smaller than 2");
	hfx_mark_failure(x);
	hdev_set_target(&x->dev, 10 * PAGES_PER_BLOCK);
	hfx_wait_ms(x, 1000);
	assert_int_equal(host_klog_count(), 4);
	assert_int_equal(x->mem.frames_taken, 0);
	hfx_assert_app_kept_running(x);
	hfx_destroy(x);
}

/* Odd but legal sizes: 2 (one block in flight at a time) and 32768 (shrunk). */
static void test_queue_sizes_small_and_huge(void **state)
{
	(void)state;
	const uint16_t sizes[] = { 2, 0x8000 };
	for (unsigned i = 0; i < 2; i++) {
		struct hsys *x = make_paused(18 + i);
		x->dev.pci.qmax[0] = x->dev.pci.qmax[1] = sizes[i];
		bring_up(x, 1);
		assert_int_equal(x->vb->inflate_vq.num, sizes[i] == 2 ? 2 : 128);
		hdev_set_target(&x->dev, 6 * PAGES_PER_BLOCK + 9);
		settle_at(x, 6 * PAGES_PER_BLOCK + 9);
		hdev_set_target(&x->dev, 0);
		settle_at(x, 0);
		assert_false(host_klog_contains("virtq"));
		assert_all_back(x);
		hfx_destroy(x);
	}
}

/* ------------------------------------------------------------ device state */

/* DEVICE_NEEDS_RESET with elements in flight: reset, every frame back once,
 * brought up again, and the host's target is met again. */
static void needs_reset_recovered(struct hsys *x)
{
	hdev_set_target(&x->dev, 6 * PAGES_PER_BLOCK);
	settle_at(x, 6 * PAGES_PER_BLOCK);
	hdev_set_mode(&x->dev, HD_INFLATE, FAKE_HOLD);
	hdev_set_target(&x->dev, 8 * PAGES_PER_BLOCK);
	hfx_ticks(x, 2);
	assert_int_equal(x->b->inflating, 2 * PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
	uint64_t taken = x->mem.frames_taken;
	hdev_raise_needs_reset(&x->dev);
	hfx_ticks(x, 1);
	assert_int_equal(host_klog_count(), 2);
	hfx_log_has("virtio-balloon: device needs a reset (DEVICE_NEEDS_RESET, status 0x4f)");
	hfx_log_has("virtio-balloon: device needs reset; reset ok, 16 MiB (4096 pages) reclaimed, bringing it up "
	            "again (attempt 1 of 3)");
	assert_int_equal(x->mem.frames_given, taken);      /* all of it, exactly once */
	assert_true(hsys_up(x) && hsys_core_up(x));
	hdev_set_mode(&x->dev, HD_INFLATE, FAKE_ACK);
	settle_at(x, 8 * PAGES_PER_BLOCK);                             /* the target still stands, unasked */
	assert_int_equal(x->vb->attempts, 1);
	hfx_assert_app_kept_running(x);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

/* On the INTx line (QEMU's balloon has no MSI-X): after the recovery no
 * interrupt comes (the target did not change), so the shell must ask to
 * be polled again itself. */
static void test_needs_reset_recovered(void **state)
{
	(void)state;
	needs_reset_recovered(make(20));
}

/* Without interrupts (no INTx pin) the poller is the only way the device
 * is ever seen again: a recovery that asks for no next poll stops the
 * balloon for good. */
static void test_needs_reset_recovered_polling(void **state)
{
	(void)state;
	struct hsys *x = make_paused(26);
	x->intx_pin = 0;
	bring_up(x, 1);
	hfx_log_has("virtio-balloon: no interrupts (MSI-X: no free interrupt vectors; INTx: the function has no "
	            "INTx pin); polling every millisecond");
	host_klog_reset();
	needs_reset_recovered(x);
}

/* A device that asks for a reset after every bring-up: bounded retries,
 * bounded lines, then left off. */
static void test_needs_reset_storm_bounded(void **state)
{
	(void)state;
	struct hsys *x = make(21);
	hdev_set_target(&x->dev, 4 * PAGES_PER_BLOCK);
	settle_at(x, 4 * PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
	x->dev.needs_reset_every_init = 1;
	hdev_raise_needs_reset(&x->dev);
	hfx_ticks(x, 50);
	assert_true(x->vb->given_up);
	assert_int_equal(x->vb->attempts, MAX_RECOVERIES);
	/* per reset: the health line and the reset line */
	assert_int_equal(host_klog_count(), 2 * (MAX_RECOVERIES + 1));
	hfx_log_has("virtio-balloon: device needs reset; reset ok, 0 MiB (0 pages) reclaimed; all 3 attempts used, "
	            "leaving it off");
	assert_quiet_and_left_alone(x, 2000);
	hfx_assert_app_kept_running(x);
	assert_all_back(x);
	hfx_destroy(x);
}

static void test_needs_reset_but_reset_never_completes(void **state)
{
	(void)state;
	struct hsys *x = make(22);
	hdev_set_target(&x->dev, 5 * PAGES_PER_BLOCK);
	settle_at(x, 5 * PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
	x->dev.reset_stuck = 1;
	hdev_raise_needs_reset(&x->dev);
	hfx_ticks(x, 1);
	assert_int_equal(host_klog_count(), 3);
	hfx_log_has("device needs a reset");
	hfx_log_has("reset did not complete within 100 ms");
	hfx_log_has("virtio-balloon: device needs reset; reset not confirmed, keeping the 10 MiB (2560 pages) the "
	            "balloon holds for good; leaving it off");
	assert_quiet_and_left_alone(x, 2000);
	assert_int_equal(x->mem.nballoon, 5 * PAGES_PER_BLOCK);        /* kept: the device may still use them */
	assert_int_equal(x->mem.frames_given, 0);
	hfx_assert_app_kept_running(x);
	hfx_destroy(x);
}

/* The device drops DRIVER_OK on its own (a host-side reset) while the
 * balloon is idle at its target: nothing tells the guest (no interrupt), and
 * an idle guest does not look (issue 12). The host's next request (a new
 * target, a configuration interrupt) makes it look: our own reset, then
 * reclaim and start again, and the new target is met. */
static void test_device_resets_itself(void **state)
{
	(void)state;
	struct hsys *x = make(23);
	hdev_set_target(&x->dev, 7 * PAGES_PER_BLOCK);
	settle_at(x, 7 * PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
	hdev_self_reset(&x->dev);
	hfx_wait_ms(x, 1000);
	assert_int_equal(host_klog_count(), 0);
	hdev_set_target(&x->dev, 5 * PAGES_PER_BLOCK);
	hfx_ticks(x, 1);
	assert_int_equal(host_klog_count(), 2);
	hfx_log_has("device dropped DRIVER_OK on its own (status 0x0)");
	hfx_log_has("virtio-balloon: device reset itself; reset ok, 14 MiB (3584 pages) reclaimed, bringing it up "
	            "again (attempt 1 of 3)");
	settle_at(x, 5 * PAGES_PER_BLOCK);
	hfx_assert_app_kept_running(x);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

/* Surprise removal with elements in flight: everything reads all ones and
 * no interrupt comes; the shell notices when the core's next deadline (the
 * ack it waits for) makes it look. Nothing can be confirmed, so the balloon
 * keeps what it has; the kernel goes on. */
static void test_device_gone(void **state)
{
	(void)state;
	struct hsys *x = make(24);
	eight_in_flight_three_acked(x);
	uint64_t owned = hsys_owned(x);
	x->dev.gone = 1;
	for (unsigned ms = 0; ms < 10000 && !host_klog_count(); ms++)
		hfx_tick(x);
	assert_int_equal(host_klog_count(), 3);
	hfx_log_has("status reads 0xff: device removed or no longer decoding");
	hfx_log_has("reset did not complete");
	hfx_log_has("virtio-balloon: device gone; reset not confirmed, keeping the 16 MiB (4096 pages) the balloon "
	            "holds for good; leaving it off");
	assert_quiet_and_left_alone(x, 2000);
	assert_int_equal(x->mem.nballoon, owned);
	assert_int_equal(x->mem.frames_given, 0);
	hfx_assert_app_kept_running(x);
	hfx_destroy(x);
}

/* `balloon reset` on a healthy device: the balloon is deflated through the
 * deflate queue first (the host is told: its count goes to 0 before the
 * reset), then the device is reset and brought up again without using an
 * attempt, and the host's target, which still stands, is met again. */
static void test_requested_reset_deflates_first(void **state)
{
	(void)state;
	struct hsys *x = make(27);
	hdev_set_target(&x->dev, 6 * PAGES_PER_BLOCK);
	settle_at(x, 6 * PAGES_PER_BLOCK);
	host_klog_reset();
	unsigned deflates = x->dev.elems_seen[1], resets = x->dev.resets_confirmed;
	assert_int_equal(virtio_balloon_reset(), 0);
	assert_true(x->dev.elems_seen[1] > deflates);       /* told through the deflate queue */
	assert_int_equal(x->dev.resets_confirmed, resets + 2);   /* the reset, the new bring-up */
	assert_int_equal(x->mem.nballoon, 0);
	assert_int_equal(x->mem.frames_given, x->mem.frames_taken);
	hfx_log_has("virtio-balloon: reset requested; deflated 12 MiB first; reset ok, 0 MiB (0 pages) reclaimed, "
	            "bringing it up again");
	assert_int_equal(x->vb->requested, 1);
	assert_int_equal(x->vb->attempts, 0);
	assert_int_equal(x->vb->drained, 6 * PAGES_PER_BLOCK);
	settle_at(x, 6 * PAGES_PER_BLOCK);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

/* The device writes garbage over the PFN arrays it was given (they are
 * device-readable, but nothing stops a device): the balloon's own records
 * decide what goes back. */
static void test_device_scribbles_pfn_arrays(void **state)
{
	(void)state;
	struct hsys *x = make(25);
	x->dev.scribble_pfns = 1;
	hdev_set_target(&x->dev, 9 * PAGES_PER_BLOCK + 100);
	settle_at(x, 9 * PAGES_PER_BLOCK + 100);
	hdev_set_target(&x->dev, 2 * PAGES_PER_BLOCK);
	settle_at(x, 2 * PAGES_PER_BLOCK);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_false(host_klog_contains("virtq"));
	assert_all_back(x);
	hfx_destroy(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_baseline_round_trip, hfx_teardown),
		cmocka_unit_test_teardown(test_used_idx_jumps_ahead, hfx_teardown),
		cmocka_unit_test_teardown(test_used_idx_goes_backwards, hfx_teardown),
		cmocka_unit_test_teardown(test_used_id_already_completed, hfx_teardown),
		cmocka_unit_test_teardown(test_used_len_larger_than_buffer, hfx_teardown),
		cmocka_unit_test_teardown(test_used_id_out_of_range_reset_stuck, hfx_teardown),
		cmocka_unit_test_teardown(test_stats_queue_broken_balloon_goes_on, hfx_teardown),
		cmocka_unit_test_teardown(test_target_above_total_memory, hfx_teardown),
		cmocka_unit_test_teardown(test_target_flipping_wildly, hfx_teardown),
		cmocka_unit_test_teardown(test_config_generation_never_settles, hfx_teardown),
		cmocka_unit_test_teardown(test_features_ok_refused, hfx_teardown),
		cmocka_unit_test_teardown(test_inflate_queue_size_zero, hfx_teardown),
		cmocka_unit_test_teardown(test_stats_queue_size_zero, hfx_teardown),
		cmocka_unit_test_teardown(test_queue_size_not_power_of_two, hfx_teardown),
		cmocka_unit_test_teardown(test_queue_size_one, hfx_teardown),
		cmocka_unit_test_teardown(test_queue_sizes_small_and_huge, hfx_teardown),
		cmocka_unit_test_teardown(test_needs_reset_recovered, hfx_teardown),
		cmocka_unit_test_teardown(test_needs_reset_recovered_polling, hfx_teardown),
		cmocka_unit_test_teardown(test_needs_reset_storm_bounded, hfx_teardown),
		cmocka_unit_test_teardown(test_needs_reset_but_reset_never_completes, hfx_teardown),
		cmocka_unit_test_teardown(test_device_resets_itself, hfx_teardown),
		cmocka_unit_test_teardown(test_device_gone, hfx_teardown),
		cmocka_unit_test_teardown(test_requested_reset_deflates_first, hfx_teardown),
		cmocka_unit_test_teardown(test_device_scribbles_pfn_arrays, hfx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
