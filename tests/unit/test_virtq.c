/*
 * test_virtq.c - the split virtqueue against the simulated device:
 * round trips, chains, full ring, index wraparound, notification
 * suppression, and a hostile device (used idx jumping or going back, ids
 * out of range / not in flight / not a head, lengths beyond the buffer,
 * scribbled descriptors).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/virtio/virtq.h"
#include "fake_virtio_dev.h"
#include "host_support.h"

struct fixture {
	struct virtq vq;
	struct fake_vq dev;
	void *ring;
	uint8_t bufs[64][64];   /* buffer memory the chains point at */
};

static struct fixture *setup_q(uint16_t num, enum fake_mode mode)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	assert_non_null(fx);
	fx->ring = aligned_alloc(4096, (virtq_mem_size(num) + 4095) & ~4095ul);
	assert_non_null(fx->ring);
	assert_int_equal(virtq_init(&fx->vq, "test", 0, num, fx->ring,
	                            (uint64_t)(uintptr_t)fx->ring, fake_vq_notify, &fx->dev), 0);
	fake_vq_attach(&fx->dev, &fx->vq, mode);
	host_klog_reset();
	return fx;
}

static void teardown_q(struct fixture *fx)
{
	assert_int_equal(fx->dev.driver_errors, 0);
	free(fx->ring);
	free(fx);
}

static struct virtq_buf buf_of(struct fixture *fx, unsigned i, uint32_t len)
{
	return (struct virtq_buf){ (uint64_t)(uintptr_t)fx->bufs[i], len };
}

static uint32_t write_pattern(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	(void)f; (void)ctx;
	uint32_t written = 0;
	for (unsigned i = 0; i < e->nseg; i++) {
		if (!e->seg[i].writable)
			continue;
		memset((void *)(uintptr_t)e->seg[i].addr, 0xA5, e->seg[i].len);
		written += e->seg[i].len;
	}
	return written;
}

static void test_init_rejects_bad_sizes(void **state)
{
	(void)state;
	struct virtq *vq = calloc(1, sizeof *vq);
	void *ring = aligned_alloc(4096, 8192);
	uint16_t bad[] = { 0, 3, 6, 100, VIRTQ_MAX_SIZE * 2 };
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		host_klog_reset();
		assert_int_equal(virtq_init(vq, "bad", 1, bad[i], ring, (uintptr_t)ring, NULL, NULL), -EINVAL);
		assert_int_equal(host_klog_count(), 1);
		assert_true(host_klog_contains("power of two"));
		assert_true(virtq_is_broken(vq));
		struct virtq_buf b = { (uintptr_t)ring, 8 };
		assert_int_equal(virtq_add(vq, &b, 1, 0, ring), -EIO);
	}
	/* misaligned ring memory */
	host_klog_reset();
	assert_int_equal(virtq_init(vq, "bad", 1, 8, (char *)ring + 8, (uintptr_t)ring + 8, NULL, NULL), -EINVAL);
	assert_int_equal(host_klog_count(), 1);
	free(ring);
	free(vq);
}

static void test_layout_alignment(void **state)
{
	(void)state;
	for (uint16_t num = 1; num <= VIRTQ_MAX_SIZE; num *= 2) {
		struct fixture *fx = setup_q(num, FAKE_ACK);
		assert_int_equal(fx->vq.desc_pa % VRING_DESC_ALIGN, 0);
		assert_int_equal(fx->vq.avail_pa % VRING_AVAIL_ALIGN, 0);
		assert_int_equal(fx->vq.used_pa % VRING_USED_ALIGN, 0);
		/* the parts do not overlap and fit in virtq_mem_size */
		assert_true(fx->vq.avail_pa >= fx->vq.desc_pa + 16u * num);
		assert_true(fx->vq.used_pa >= fx->vq.avail_pa + 6u + 2u * num);
		assert_true(fx->vq.used_pa + 6u + 8u * num <= fx->vq.desc_pa + virtq_mem_size(num));
		teardown_q(fx);
	}
}

static void test_single_round_trip(void **state)
{
	(void)state;
	struct fixture *fx = setup_q(8, FAKE_ACK);
	fx->dev.on_elem = write_pattern;
	struct virtq_buf b = buf_of(fx, 0, 32);
	int token;
	assert_int_equal(virtq_add(&fx->vq, &b, 0, 1, &token), 0);
	assert_int_equal(virtq_num_free(&fx->vq), 7);
	assert_int_equal(virtq_in_flight(&fx->vq), 1);
	assert_null(virtq_get_used(&fx->vq, NULL));   /* device has not run */
	assert_int_equal(virtq_kick(&fx->vq), 1);
	assert_int_equal(fx->dev.notifies, 1);
	assert_int_equal(fake_vq_process(&fx->dev), 1);
	uint32_t len = 0;
	assert_true(virtq_has_used(&fx->vq));
	assert_ptr_equal(virtq_get_used(&fx->vq, &len), &token);
	assert_int_equal(len, 32);
	assert_int_equal(fx->bufs[0][31], 0xA5);
	assert_int_equal(virtq_num_free(&fx->vq), 8);
	assert_int_equal(virtq_in_flight(&fx->vq), 0);
	assert_null(virtq_get_used(&fx->vq, &len));
	assert_int_equal(virtq_kick(&fx->vq), 0);    /* nothing new: no notify */
	assert_int_equal(fx->dev.notifies, 1);
	assert_int_equal(host_klog_count(), 0);
	teardown_q(fx);
}

static struct fake_elem last_elem;
static uint32_t record_elem(struct fake_vq *f, struct fake_elem *e, void *ctx)
{
	last_elem = *e;
	return write_pattern(f, e, ctx);
}

static void test_chain_order_and_flags(void **state)
{
	(void)state;
	struct fixture *fx = setup_q(8, FAKE_ACK);
	fx->dev.on_elem = record_elem;
	struct virtq_buf b[3] = { buf_of(fx, 0, 16), buf_of(fx, 1, 24), buf_of(fx, 2, 40) };
	int token;
	assert_int_equal(virtq_add(&fx->vq, b, 2, 1, &token), 0);
	assert_int_equal(virtq_num_free(&fx->vq), 5);
	virtq_kick(&fx->vq);
	fake_vq_process(&fx->dev);
	assert_int_equal(last_elem.nseg, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(last_elem.seg[i].addr, b[i].addr);
		assert_int_equal(last_elem.seg[i].len, b[i].len);
		assert_int_equal(last_elem.seg[i].writable, i == 2);
	}
	assert_int_equal(last_elem.out_bytes, 40);
	assert_int_equal(last_elem.in_bytes, 40);
	uint32_t len;
	assert_ptr_equal(virtq_get_used(&fx->vq, &len), &token);
	assert_int_equal(len, 40);
	assert_int_equal(fx->bufs[0][0], 0);        /* readable buffers untouched */
	assert_int_equal(fx->bufs[2][39], 0xA5);
	assert_int_equal(virtq_num_free(&fx->vq), 8);
	teardown_q(fx);
}

static void test_invalid_add(void **state)
{
	(void)state;
	struct fixture *fx = setup_q(8, FAKE_ACK);
	struct virtq_buf b = buf_of(fx, 0, 16), z = buf_of(fx, 0, 0);
	int token;
	assert_int_equal(virtq_add(&fx->vq, &b, 0, 0, &token), -EINVAL);
	assert_int_equal(virtq_add(&fx->vq, &b, 1, 0, NULL), -EINVAL);
	assert_int_equal(virtq_add(&fx->vq, &z, 1, 0, &token), -EINVAL);
	assert_int_equal(virtq_num_free(&fx->vq), 8);
	assert_int_equal(virtq_kick(&fx->vq), 0);
	teardown_q(fx);
}

static void test_full_ring(void **state)
{
	(void)state;
	struct fixture *fx = setup_q(8, FAKE_HOLD);
	int tokens[8];
	struct virtq_buf b[3] = { buf_of(fx, 0, 8), buf_of(fx, 1, 8), buf_of(fx, 2, 8) };
	/* 3 + 3 descriptors leave 2: a 3-chain does not fit, the queue is unchanged */
	assert_int_equal(virtq_add(&fx->vq, b, 3, 0, &tokens[0]), 0);
	assert_int_equal(virtq_add(&fx->vq, b, 1, 2, &tokens[1]), 0);
	assert_int_equal(virtq_add(&fx->vq, b, 3, 0, &tokens[2]), -ENOSPC);
	assert_int_equal(virtq_num_free(&fx->vq), 2);
	assert_int_equal(virtq_add(&fx->vq, b, 1, 0, &tokens[2]), 0);
	assert_int_equal(virtq_add(&fx->vq, b, 1, 0, &tokens[3]), 0);
	assert_int_equal(virtq_add(&fx->vq, b, 1, 0, &tokens[4]), -ENOSPC);
	assert_int_equal(virtq_num_free(&fx->vq), 0);
	virtq_kick(&fx->vq);
	assert_int_equal(fake_vq_process(&fx->dev), 4);
	assert_null(virtq_get_used(&fx->vq, NULL));
	/* complete the 3-chain: 3 descriptors come back */
	fake_vq_complete(&fx->dev, 1);
	assert_ptr_equal(virtq_get_used(&fx->vq, NULL), &tokens[0]);
	assert_int_equal(virtq_num_free(&fx->vq), 3);
	assert_int_equal(virtq_add(&fx->vq, b, 3, 0, &tokens[5]), 0);
	virtq_kick(&fx->vq);
	fake_vq_process(&fx->dev);
	assert_int_equal(fake_vq_complete(&fx->dev, 10), 4);
	int *expect[] = { &tokens[1], &tokens[2], &tokens[3], &tokens[5] };
	for (unsigned i = 0; i < 4; i++)
		assert_ptr_equal(virtq_get_used(&fx->vq, NULL), expect[i]);
	assert_int_equal(virtq_num_free(&fx->vq), 8);
	assert_int_equal(host_klog_count(), 0);
	teardown_q(fx);
}

/* Many more operations than 65536 on a small queue, chains of 1..3
 * descriptors, completed out of order: both the ring position (mod num) and
 * the free-running 16-bit indexes wrap many times. */
static void test_wraparound_out_of_order(void **state)
{
	(void)state;
	struct fixture *fx = setup_q(4, FAKE_HOLD);
	static uintptr_t tokens[70000 * 2];
	unsigned added = 0, got = 0;
	uint64_t sum_added = 0, sum_got = 0;
	srand(1);
	while (got < 140000) {
		unsigned n = 1 + (unsigned)rand() % 3;
		struct virtq_buf b[3] = { buf_of(fx, 0, 8), buf_of(fx, 1, 8), buf_of(fx, 2, 8) };
		while (added < 140000 && virtq_num_free(&fx->vq) >= n) {
			tokens[added] = added + 1;
			assert_int_equal(virtq_add(&fx->vq, b, n, 0, &tokens[added]), 0);
			sum_added += added + 1;
			added++;
			n = 1 + (unsigned)rand() % 3;
		}
		virtq_kick(&fx->vq);
		fake_vq_process(&fx->dev);
		/* complete a random held chain, sometimes two */
		unsigned k = 1 + (unsigned)rand() % 2;
		for (unsigned i = 0; i < k && fx->dev.nheld; i++)
			fake_vq_complete_at(&fx->dev, (unsigned)rand() % fx->dev.nheld);
		uintptr_t *t;
		while ((t = virtq_get_used(&fx->vq, NULL)) != NULL) {
			sum_got += *t;
			got++;
		}
		assert_false(virtq_is_broken(&fx->vq));
	}
	assert_int_equal(sum_added, sum_got);
	assert_int_equal(virtq_num_free(&fx->vq), 4);
	assert_int_equal(virtq_in_flight(&fx->vq), 0);
	assert_int_equal(host_klog_count(), 0);
	teardown_q(fx);
}

static void test_no_notify_respected(void **state)
{
	(void)state;
	struct fixture *fx = setup_q(8, FAKE_ACK);
	struct virtq_buf b = buf_of(fx, 0, 8);
	int token;
	fake_vq_set_no_notify(&fx->dev, 1);
	assert_int_equal(virtq_add(&fx->vq, &b, 1, 0, &token), 0);
	assert_int_equal(virtq_kick(&fx->vq), 0);
	assert_int_equal(fx->dev.notifies, 0);
	/* the device still sees the buffer when it looks */
	assert_int_equal(fake_vq_process(&fx->dev), 1);
	assert_ptr_equal(virtq_get_used(&fx->vq, NULL), &token);
	fake_vq_set_no_notify(&fx->dev, 0);
	assert_int_equal(virtq_add(&fx->vq, &b, 1, 0, &token), 0);
	assert_int_equal(virtq_kick(&fx->vq), 1);
	assert_int_equal(fx->dev.notifies, 1);
	teardown_q(fx);
}

/* ---- hostile device: each case must give NULL, a broken queue, exactly one
 * log line, and leave every buffer that was in flight in flight. */

static struct fixture *two_in_flight(int tokens[2])
{
	struct fixture *fx = setup_q(8, FAKE_HOLD);
	struct virtq_buf b[2] = { buf_of(fx, 0, 8), buf_of(fx, 1, 16) };
	assert_int_equal(virtq_add(&fx->vq, b, 1, 1, &tokens[0]), 0);  /* head 0, descs 0-1 */
	assert_int_equal(virtq_add(&fx->vq, b, 1, 0, &tokens[1]), 0);  /* head 2 */
	virtq_kick(&fx->vq);
	assert_int_equal(fake_vq_process(&fx->dev), 2);
	return fx;
}

static void expect_broken(struct fixture *fx, const char *needle, unsigned in_flight)
{
	assert_null(virtq_get_used(&fx->vq, NULL));
	assert_true(virtq_is_broken(&fx->vq));
	assert_int_equal(host_klog_count(), 1);
	assert_true(host_klog_contains(needle));
	assert_true(host_klog_contains("queue disabled"));
	assert_int_equal(virtq_in_flight(&fx->vq), in_flight);
	/* sticky, and quiet from now on */
	struct virtq_buf b = buf_of(fx, 3, 8);
	int t;
	assert_int_equal(virtq_add(&fx->vq, &b, 1, 0, &t), -EIO);
	fake_vq_complete(&fx->dev, 10);
	assert_null(virtq_get_used(&fx->vq, NULL));
	assert_int_equal(virtq_kick(&fx->vq), 0);
	assert_int_equal(host_klog_count(), 1);
}

static void test_hostile_used_idx_jump(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	fake_vq_set_used_idx(&fx->dev, 3);   /* 3 entries, only 2 chains in flight */
	expect_broken(fx, "used idx moved by 3", 2);
	teardown_q(fx);
}

static void test_hostile_used_idx_backwards(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	fake_vq_complete(&fx->dev, 1);
	assert_ptr_equal(virtq_get_used(&fx->vq, NULL), &tokens[0]);
	fake_vq_set_used_idx(&fx->dev, 0);   /* back from 1 to 0 */
	expect_broken(fx, "used idx moved by 65535", 1);
	teardown_q(fx);
}

static void test_hostile_id_out_of_range(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	fake_vq_push_raw(&fx->dev, 8, 0);
	expect_broken(fx, "used id 8 out of range", 2);
	fx->dev.nheld = 0;
	teardown_q(fx);
}

static void test_hostile_id_completed_twice(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	fake_vq_complete_at(&fx->dev, 1);     /* head 2 */
	assert_ptr_equal(virtq_get_used(&fx->vq, NULL), &tokens[1]);
	fake_vq_push_raw(&fx->dev, 2, 0);     /* head 2 again */
	expect_broken(fx, "used id 2 is not a buffer in flight", 1);
	teardown_q(fx);
}

static void test_hostile_id_not_a_head(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	fake_vq_push_raw(&fx->dev, 1, 0);     /* descriptor 1 is the tail of chain 0 */
	expect_broken(fx, "used id 1 is not a buffer in flight", 2);
	teardown_q(fx);
}

static void test_hostile_len_too_large(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	fake_vq_push_raw(&fx->dev, 0, 17);    /* chain 0 has 16 writable bytes */
	expect_broken(fx, "used len 17 larger than the buffer (16 bytes)", 2);
	fx->dev.nheld = 0;
	teardown_q(fx);
}

static void test_readonly_chain_len(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	/* chain at head 2 is 8 readable bytes: len up to 8 is tolerated */
	fake_vq_push_raw(&fx->dev, 2, 8);
	uint32_t len;
	assert_ptr_equal(virtq_get_used(&fx->vq, &len), &tokens[1]);
	assert_int_equal(len, 8);
	assert_int_equal(host_klog_count(), 0);
	struct virtq_buf b = buf_of(fx, 3, 8);
	int t;
	assert_int_equal(virtq_add(&fx->vq, &b, 1, 0, &t), 0);   /* head 2 again */
	virtq_kick(&fx->vq);
	fake_vq_push_raw(&fx->dev, 2, 9);
	expect_broken(fx, "used len 9 larger", 2);
	fx->dev.nheld = 0;
	teardown_q(fx);
}

static void test_scribbled_descriptors_do_not_matter(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	/* the device overwrites the whole descriptor table with garbage */
	memset(fx->dev.desc, 0xff, 8 * sizeof(struct vring_desc));
	assert_int_equal(fake_vq_complete(&fx->dev, 2), 2);
	assert_ptr_equal(virtq_get_used(&fx->vq, NULL), &tokens[0]);
	assert_ptr_equal(virtq_get_used(&fx->vq, NULL), &tokens[1]);
	assert_int_equal(virtq_num_free(&fx->vq), 8);
	/* the free list is intact: all 8 descriptors can form one chain */
	struct virtq_buf b[8];
	for (unsigned i = 0; i < 8; i++)
		b[i] = buf_of(fx, i, 8);
	assert_int_equal(virtq_add(&fx->vq, b, 8, 0, &tokens[0]), 0);
	virtq_kick(&fx->vq);
	fx->dev.mode = FAKE_ACK;
	fx->dev.on_elem = record_elem;
	assert_int_equal(fake_vq_process(&fx->dev), 1);
	assert_int_equal(last_elem.nseg, 8);
	assert_ptr_equal(virtq_get_used(&fx->vq, NULL), &tokens[0]);
	assert_int_equal(host_klog_count(), 0);
	teardown_q(fx);
}

static void test_detach_unused_after_reset(void **state)
{
	(void)state;
	int tokens[2];
	struct fixture *fx = two_in_flight(tokens);
	void *a = virtq_detach_unused(&fx->vq), *b = virtq_detach_unused(&fx->vq);
	assert_non_null(a);
	assert_non_null(b);
	assert_true((a == &tokens[0] && b == &tokens[1]) || (a == &tokens[1] && b == &tokens[0]));
	assert_null(virtq_detach_unused(&fx->vq));
	assert_int_equal(virtq_num_free(&fx->vq), 8);
	assert_int_equal(virtq_in_flight(&fx->vq), 0);
	fx->dev.nheld = 0;
	teardown_q(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects_bad_sizes),
		cmocka_unit_test(test_layout_alignment),
		cmocka_unit_test(test_single_round_trip),
		cmocka_unit_test(test_chain_order_and_flags),
		cmocka_unit_test(test_invalid_add),
		cmocka_unit_test(test_full_ring),
		cmocka_unit_test(test_wraparound_out_of_order),
		cmocka_unit_test(test_no_notify_respected),
		cmocka_unit_test(test_hostile_used_idx_jump),
		cmocka_unit_test(test_hostile_used_idx_backwards),
		cmocka_unit_test(test_hostile_id_out_of_range),
		cmocka_unit_test(test_hostile_id_completed_twice),
		cmocka_unit_test(test_hostile_id_not_a_head),
		cmocka_unit_test(test_hostile_len_too_large),
		cmocka_unit_test(test_readonly_chain_len),
		cmocka_unit_test(test_scribbled_descriptors_do_not_matter),
		cmocka_unit_test(test_detach_unused_after_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
