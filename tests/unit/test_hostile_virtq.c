/*
 * test_hostile_virtq.c - the virtqueue's reporting of a hostile device where
 * logging is not allowed (virtq_quiet, for an allocator's OOM path): the
 * violation is detected at once, the queue stops at once, and its one line
 * comes with the first call made once quiet is off - never inside, never
 * lost, never twice. Also the ring memory a transport reuses after a reset.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtq.h"
#include "fake_virtio_dev.h"
#include "fake_virtio_pci.h"
#include "host_support.h"

static struct virtq vq;
static struct fake_vq dev;
static void *ring;
static uint8_t buf[64];

static int setup(void **state)
{
	(void)state;
	ring = aligned_alloc(4096, 8192);
	assert_int_equal(virtq_init(&vq, "q", 2, 8, ring, (uintptr_t)ring, fake_vq_notify, &dev), 0);
	fake_vq_attach(&dev, &vq, FAKE_HOLD);
	host_klog_reset();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ring);
	return 0;
}

static void two_in_flight(int tokens[2])
{
	struct virtq_buf b = { (uintptr_t)buf, 16 };
	assert_int_equal(virtq_add(&vq, &b, 1, 0, &tokens[0]), 0);
	assert_int_equal(virtq_add(&vq, &b, 1, 0, &tokens[1]), 0);
	virtq_kick(&vq);
	assert_int_equal(fake_vq_process(&dev), 2);
}

static void test_quiet_defers_the_line(void **state)
{
	(void)state;
	int tokens[2];
	two_in_flight(tokens);
	virtq_quiet(&vq, 1);
	fake_vq_set_used_idx(&dev, 5);                 /* 5 entries, 2 in flight */
	assert_null(virtq_get_used(&vq, NULL));
	assert_true(virtq_is_broken(&vq));             /* stopped at once */
	struct virtq_buf b = { (uintptr_t)buf, 8 };
	int t;
	assert_int_equal(virtq_add(&vq, &b, 1, 0, &t), -EIO);
	assert_int_equal(virtq_kick(&vq), 0);
	assert_int_equal(host_klog_count(), 0);        /* nothing while quiet */
	virtq_quiet(&vq, 0);
	assert_int_equal(host_klog_count(), 0);        /* turning quiet off does not log either */
	assert_null(virtq_get_used(&vq, NULL));        /* the next call does, once */
	assert_int_equal(host_klog_count(), 1);
	assert_string_equal(host_klog_last(), "virtq q (queue 2): used idx moved by 5 with 2 buffers in "
	                                      "flight; queue disabled, 2 buffers left with the device");
	assert_null(virtq_get_used(&vq, NULL));
	assert_int_equal(virtq_add(&vq, &b, 1, 0, &t), -EIO);
	assert_int_equal(host_klog_count(), 1);
	assert_int_equal(virtq_in_flight(&vq), 2);     /* still the device's */
}

static void test_not_quiet_logs_at_once(void **state)
{
	(void)state;
	int tokens[2];
	two_in_flight(tokens);
	fake_vq_push_raw(&dev, 7, 0);                  /* a descriptor that is no head */
	assert_null(virtq_get_used(&vq, NULL));
	assert_int_equal(host_klog_count(), 1);
	assert_non_null(strstr(host_klog_last(), "used id 7 is not a buffer in flight"));
	assert_non_null(strstr(vq.why, "used id 7"));
}

/* A transport that sets a queue up again after a reset reuses its rings
 * (no memory lost per reset) and they come back zeroed. */
static void test_ring_memory_reused_after_reset(void **state)
{
	(void)state;
	static struct fake_vpci f;
	static struct vp_dev vp;
	static struct virtq q;
	fake_vpci_init(&f);
	fake_vpci_attach(&f, &vp);
	uint64_t want = (1ull << 32) | (1ull << 1);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(vp_begin(&vp), 0);
		assert_int_equal(vp_set_features(&vp, want), 0);
		assert_int_equal(vp_setup_queue(&vp, 0, &q, "q", 128), 0);
		vp_driver_ok(&vp);
		assert_int_equal(f.dma_allocs, 1);
		assert_int_equal(q.desc_pa, f.q[0].desc);
		assert_int_equal(q.avail->idx, 0);             /* zeroed again */
		struct virtq_buf b = { 0x1000, 8 };
		assert_int_equal(virtq_add(&q, &b, 1, 0, &b), 0);
		assert_int_equal(vp_health(&vp), VP_HEALTHY);
		assert_int_equal(vp_reset(&vp), 0);
		assert_int_equal(vp_health(&vp), VP_LOST);     /* not past DRIVER_OK any more */
	}
	assert_int_equal(f.order_errors, 0);
	fake_vpci_free(&f);
}

/* A status that flips DEVICE_NEEDS_RESET on and off: one line, not one per flip. */
static void test_health_flapping_one_line(void **state)
{
	(void)state;
	static struct fake_vpci f;
	static struct vp_dev vp;
	fake_vpci_init(&f);
	fake_vpci_attach(&f, &vp);
	assert_int_equal(vp_begin(&vp), 0);
	assert_int_equal(vp_set_features(&vp, (1ull << 32)), 0);
	vp_driver_ok(&vp);
	for (int i = 0; i < 1000; i++) {
		f.status ^= VIRTIO_CONFIG_S_NEEDS_RESET;
		vp_health(&vp);
	}
	assert_int_equal(host_klog_count(), 1);
	assert_non_null(strstr(host_klog_last(), "device needs a reset (DEVICE_NEEDS_RESET, status 0x4f)"));
	f.status = 0xff;
	assert_int_equal(vp_health(&vp), VP_GONE);
	assert_int_equal(host_klog_count(), 2);
	assert_non_null(strstr(host_klog_last(), "status reads 0xff"));
	fake_vpci_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_quiet_defers_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_quiet_logs_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_memory_reused_after_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_flapping_one_line, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
