/*
 * test_hostile_reporting.c - free page reporting and deflate on OOM (the
 * balloon features that hand memory back outside the host's targets)
 * against a device that misbehaves, on the same whole-guest harness as
 * test_hostile_device.c (tests/unit/fake_hostile_sys.h): the kernel's
 * device shell and driver stack, memory that checks every frame's owner (now
 * also blocks isolated for a report), an application that keeps allocating
 * and checksumming, and, with DEFLATE_ON_OOM, the application's allocation
 * failures going through balloon_oom like the kernel's OOM notifier.
 *
 * Checked after every millisecond: every invariant of hsys_check, including
 * "the blocks the allocator has isolated are exactly the report in flight"
 * and "a frame goes back only when the device can no longer use it".
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
#include "fake_hostile_sys.h"
#include "host_support.h"
#include "hostile_fixture.h"
#include "kclock.h"

/* ------------------------------------------------------------ harness */

/* A QEMU balloon with deflate-on-oom=on,free-page-reporting=on: queues
 * inflate, deflate, stats, reporting (32). */
static struct hsys *make(uint64_t seed, int reporting, int oom, unsigned report_delay_ms)
{
	struct hsys *x = hfx_new(seed);
	x->params.report_delay_ns = report_delay_ms * NS_PER_MS;
	if (reporting) {
		x->dev.pci.host_features |= 1ull << VIRTIO_BALLOON_F_REPORTING;
		x->dev.pci.num_queues = 4;
		x->dev.pci.qmax[3] = 32;
	}
	if (oom)
		x->dev.pci.host_features |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	/* 4 blocks' worth, packed like a real allocator packs movable memory,
	 * so whole blocks stay free to report */
	x->mem.pack = 1;
	fake_mem_app_alloc(&x->mem, 2048);
	hfx_start(x);
	assert_int_equal(hsys_bring_up(x), 0);
	assert_true(hsys_core_up(x));
	assert_int_equal(x->vb->has_report, reporting);
	/* the shell's boot lines: interrupts, the device, its features (and
	 * where the reporting queue is) */
	hfx_log_has("virtio-balloon: interrupts: INTx line 11");
	hfx_log_has("virtio-balloon: using stats");
	if (reporting)
		hfx_log_has("virtio-balloon: reporting queue 3 (numbered by the offered features (QEMU's rule))");
	assert_int_equal(host_klog_count(), 3 + reporting);
	host_klog_reset();
	return x;
}

/* Not the host's count: a device holding a report counts those frames too. */
static void settle_at(struct hsys *x, uint64_t pages) { hfx_settle(x, pages, 0); }

/* The device asks for a reset; the driver resets it and takes everything back. */
static void reset_and_reclaim(struct hsys *x)
{
	hdev_raise_needs_reset(&x->dev);
	hfx_ticks(x, 1);
	hfx_log_has("device needs a reset");
	assert_int_equal(x->vb->attempts, 1);
	assert_int_equal(x->mem.nisolated, 0);
}

/* Every frame back (balloon and isolated), the application intact and able
 * to use all free memory. */
static void assert_all_back(struct hsys *x)
{
	for (unsigned i = 0; i < 100 && x->b_inited && x->b->rep.in_flight && hsys_up(x); i++)
		hfx_ticks(x, 1);                  /* a report just sent comes back first */
	assert_int_equal(x->mem.nballoon, hsys_owned(x));
	assert_int_equal(x->mem.nisolated, 0);
	if (x->mem.nballoon == 0)
		assert_int_equal(x->mem.frames_given, x->mem.frames_taken);
	x->mem.oom = NULL;                 /* just what is free, no deflate */
	hfx_assert_app_uses_all_free(x);
}

/* ------------------------------------------------------------ reporting */

static void test_reporting_round_trip(void **state)
{
	(void)state;
	struct hsys *x = make(31, 1, 0, 0);
	hfx_ticks(x, 20);
	assert_true(x->dev.reports_seen >= 1);
	assert_true(x->mem.reported_blocks >= 16);          /* most of free memory */
	assert_int_equal(x->mem.nisolated, 0);              /* acked: all back */
	/* the balloon works alongside, and reported blocks are usable */
	hdev_set_target(&x->dev, 12 * PAGES_PER_BLOCK);
	settle_at(x, 12 * PAGES_PER_BLOCK);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_int_equal(host_klog_count() > 0, 1);         /* target lines only */
	assert_false(host_klog_contains("virtq"));
	assert_all_back(x);
	hfx_destroy(x);
}

/* The device completes a report with a length beyond what the element can
 * hold: reporting stops with one line; the isolated blocks stay out of use
 * (the device may still write them) while the balloon goes on; a reset
 * brings them back. */
static void test_report_len_larger_than_buffer(void **state)
{
	(void)state;
	struct hsys *x = make(32, 1, 0, 1000);
	int q = hdev_queue(&x->dev, HD_ROLE_REPORT);
	assert_int_equal(q, 3);
	hdev_set_target(&x->dev, 10 * PAGES_PER_BLOCK);
	settle_at(x, 10 * PAGES_PER_BLOCK);                  /* before the first report is due */
	hdev_set_mode(&x->dev, q, FAKE_HOLD);
	hfx_wait_ms(x, 1500);
	struct fake_vq *f = &x->dev.vq[q];
	assert_int_equal(f->nheld, 1);
	uint64_t isolated = x->mem.nisolated;
	assert_true(isolated >= 8 * PAGES_PER_BLOCK);
	host_klog_reset();
	hfx_mark_failure(x);
	uint32_t writable = f->held[0].in_bytes;
	hdev_push_raw(&x->dev, q, f->held[0].head, writable + 1);
	hfx_ticks(x, 2);                             /* the queue's line, then the balloon's */
	assert_int_equal(host_klog_count(), 2);
	char cause[160];
	snprintf(cause, sizeof cause, "virtq balloon-report (queue 3): used len %u larger than the buffer (%u bytes)",
	         writable + 1, writable);
	hfx_log_has(cause);
	hfx_log_has("balloon: free page reporting stopped: its queue broke");
	assert_int_equal(x->mem.nisolated, isolated);
	/* the balloon still follows the host */
	hdev_set_target(&x->dev, 6 * PAGES_PER_BLOCK);
	settle_at(x, 6 * PAGES_PER_BLOCK);
	assert_false(host_klog_contains("stopped: device queue broken"));
	hfx_assert_app_kept_running(x);
	assert_int_equal(x->mem.nisolated, isolated);
	reset_and_reclaim(x);
	assert_all_back(x);
	hfx_destroy(x);
}

/* A device that never completes a report: one element stays out, nothing
 * else is reported, the balloon goes on; a reset brings the blocks back. */
static void test_report_never_acked(void **state)
{
	(void)state;
	struct hsys *x = make(33, 1, 0, 1000);
	int q = hdev_queue(&x->dev, HD_ROLE_REPORT);
	hdev_set_target(&x->dev, 10 * PAGES_PER_BLOCK);
	settle_at(x, 10 * PAGES_PER_BLOCK);
	hdev_set_mode(&x->dev, q, FAKE_DROP);
	hfx_wait_ms(x, 1500);
	uint64_t isolated = x->mem.nisolated;
	assert_true(isolated > 0);
	unsigned seen = x->dev.reports_seen;
	hfx_mark_failure(x);
	host_klog_reset();
	hfx_wait_ms(x, 8000);
	assert_int_equal(x->dev.reports_seen, seen);         /* one in flight at a time */
	assert_int_equal(x->mem.nisolated, isolated);
	hfx_log_has("host has not acked a free page report");
	if (host_klog_count() > 1)
		fail_msg("%u lines, the last: '%s'", host_klog_count(), host_klog_last());
	hdev_set_target(&x->dev, 4 * PAGES_PER_BLOCK);
	settle_at(x, 4 * PAGES_PER_BLOCK);
	hfx_assert_app_kept_running(x);
	reset_and_reclaim(x);
	assert_all_back(x);
	hfx_destroy(x);
}

/* An allocator bug: report_isolate slips a block that is the balloon's into
 * the middle of the list. The balloon must refuse that block, turn reporting
 * off, and hand every *other* isolated block back to the allocator. */
static void test_report_isolate_bad_block_gives_the_rest_back(void **state)
{
	(void)state;
	struct hsys *x = make(34, 1, 0, 1000);
	hdev_set_target(&x->dev, 8 * PAGES_PER_BLOCK);
	settle_at(x, 8 * PAGES_PER_BLOCK);
	host_klog_reset();
	/* the first round: a free block, then one of the balloon's, then more
	 * free blocks (sorted, the balloon's low block comes first) */
	x->mem.bad_isolate_pfn = fake_mem_balloon_block(&x->mem);
	assert_true(x->mem.bad_isolate_pfn != 0);
	x->mem.bad_isolate_at = 1;
	hfx_wait_ms(x, 1500);                            /* hsys_check: isolated == in flight */
	hfx_log_has("allocator isolated a bad block for reporting");
	hfx_log_has("free page reporting off");
	assert_int_equal(x->mem.nisolated, 0);
	assert_int_equal(x->mem.nballoon, hsys_owned(x));
	assert_all_back(x);
	hfx_destroy(x);
}

/* ------------------------------------------------------------ deflate on OOM */

/* The application needs more than is free: the OOM path deflates, the host
 * acks, the allocation succeeds; the balloon then holds (no re-inflating
 * into the same shortage) until the host sets a new target. */
static void test_deflate_on_oom_round_trip(void **state)
{
	(void)state;
	struct hsys *x = make(35, 0, 1, 0);
	x->app_paused = 1;
	hdev_set_target(&x->dev, 30 * PAGES_PER_BLOCK);
	settle_at(x, 30 * PAGES_PER_BLOCK);
	uint64_t free = x->mem.nfree, failures = x->mem.app_alloc_failures;
	assert_int_equal(fake_mem_app_alloc(&x->mem, free + 1000), free + 1000);
	assert_int_equal(x->mem.app_alloc_failures, failures);      /* the OOM path helped in time */
	assert_true(x->mem.oom_pages >= 1000);
	uint64_t held = hsys_owned(x);
	assert_true(held <= 30 * PAGES_PER_BLOCK - 1000);
	hfx_check(x);
	hfx_wait_ms(x, 3000);
	assert_int_equal(hsys_owned(x), held);              /* holds */
	hfx_log_has("balloon: deflated on OOM");
	fake_mem_app_free(&x->mem, free + 1000);
	hdev_set_target(&x->dev, 20 * PAGES_PER_BLOCK);                        /* the host moves: capped no more */
	settle_at(x, 20 * PAGES_PER_BLOCK);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

/* The host stops acking deflates: the OOM path waits its bounded time and
 * gives up; nothing is handed to the allocator before the host's ack (the
 * allocation fails cleanly), one line says so, later acks bring the memory
 * back. */
static void test_deflate_on_oom_host_stops_acking(void **state)
{
	(void)state;
	struct hsys *x = make(36, 0, 1, 0);
	x->app_paused = 1;
	hdev_set_target(&x->dev, 30 * PAGES_PER_BLOCK);
	settle_at(x, 30 * PAGES_PER_BLOCK);
	hdev_set_mode(&x->dev, HD_DEFLATE, FAKE_DROP);
	host_klog_reset();
	uint64_t free = x->mem.nfree, given = x->mem.frames_given, t0 = clock_ns();
	assert_int_equal(fake_mem_app_alloc(&x->mem, free + 1000), free);    /* what was free, no more */
	uint64_t waited = clock_ns() - t0;
	assert_true(waited >= 150 * NS_PER_MS && waited <= 400 * NS_PER_MS);
	assert_int_equal(x->mem.frames_given, given);                    /* nothing before the ack */
	hfx_check(x);
	assert_int_equal(host_klog_count(), 0);                          /* not from inside the OOM path */
	hfx_ticks(x, 2);
	hfx_log_has("host did not ack a deflate on OOM within 200 ms");
	/* a second OOM does not wait again while those acks are out */
	t0 = clock_ns();
	assert_int_equal(fake_mem_app_alloc(&x->mem, 10), 0);
	assert_true(clock_ns() - t0 < 10 * NS_PER_MS);
	/* the host comes back */
	hdev_set_mode(&x->dev, HD_DEFLATE, FAKE_ACK);
	hdev_complete(&x->dev, HD_DEFLATE, 64);
	hfx_ticks(x, 5);
	assert_true(x->mem.frames_given > given);
	assert_true(x->mem.nfree > 0);
	fake_mem_app_free(&x->mem, free);
	hdev_set_target(&x->dev, 0);
	settle_at(x, 0);
	assert_all_back(x);
	hfx_destroy(x);
}

/* While the OOM path waits, the device answers with garbage on the deflate
 * queue: the queue breaks, the allocation fails cleanly, no frame the device
 * may still use goes back - and, as balloon.h promises for the OOM path
 * (the allocator may be inside malloc), nothing is logged until the next
 * poll. */
static void test_deflate_on_oom_hostile_ack_logged_after(void **state)
{
	(void)state;
	struct hsys *x = make(37, 0, 1, 0);
	x->app_paused = 1;
	hdev_set_target(&x->dev, 30 * PAGES_PER_BLOCK);
	settle_at(x, 30 * PAGES_PER_BLOCK);
	/* the deflate elements are popped and held; the relax hook would serve
	 * the queue: an index far ahead is what it publishes */
	hdev_set_mode(&x->dev, HD_DEFLATE, FAKE_HOLD);
	x->host_paused = 1;
	x->dev.process_on_notify = 0;
	hdev_set_used_idx(&x->dev, HD_DEFLATE, 1000);
	host_klog_reset();
	uint64_t free = x->mem.nfree, given = x->mem.frames_given;
	assert_int_equal(fake_mem_app_alloc(&x->mem, free + 1000), free);
	assert_int_equal(x->mem.frames_given, given);
	unsigned in_oom = host_klog_count();
	char line[256];
	snprintf(line, sizeof line, "%s", host_klog_last());
	if (in_oom)                                   /* balloon.h: the OOM path never logs */
		fail_msg("%u lines logged inside the OOM path, the last: '%s'", in_oom, line);
	hfx_ticks(x, 1);
	hfx_log_has("used idx moved by 1000");
	hfx_destroy(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_reporting_round_trip, hfx_teardown),
		cmocka_unit_test_teardown(test_report_len_larger_than_buffer, hfx_teardown),
		cmocka_unit_test_teardown(test_report_never_acked, hfx_teardown),
		cmocka_unit_test_teardown(test_report_isolate_bad_block_gives_the_rest_back, hfx_teardown),
		cmocka_unit_test_teardown(test_deflate_on_oom_round_trip, hfx_teardown),
		cmocka_unit_test_teardown(test_deflate_on_oom_host_stops_acking, hfx_teardown),
		cmocka_unit_test_teardown(test_deflate_on_oom_hostile_ack_logged_after, hfx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
