/*
 * hostile_fixture.h - the cmocka fixture shared by the hostile-device suites
 * (test_hostile_device.c, test_hostile_reporting.c): one whole guest
 * (struct hsys, fake_hostile_sys.h: the kernel's balloon shell in a simulated
 * guest) per test, run a millisecond at a time
 * with every invariant checked after each (hsys_check), and the assertions
 * both suites make about the guest.
 *
 * Contract: one guest at a time. hfx_new registers it, so that
 * hfx_teardown (each case's cmocka teardown) frees it even when an
 * assertion ended the case early; hfx_destroy frees it at the normal end.
 * Every failure is a cmocka failure with the first broken invariant or the
 * missing log line in its message.
 */
#ifndef HOSTILE_FIXTURE_H
#define HOSTILE_FIXTURE_H

#include <stdint.h>
#include "fake_hostile_sys.h"

/* The guest both suites run: RAM from 1 MiB (the first block is partial),
 * 80 MiB, the balloon keeping 4 MiB free. */
#define HFX_BASE_PFN 256u
#define HFX_NPAGES   (40u * PAGES_PER_BLOCK)
#define HFX_MIN_FREE (2u * PAGES_PER_BLOCK)

/* A guest (hsys_init with the sizes above), nothing brought up yet. */
struct hsys *hfx_new(uint64_t seed);
void hfx_destroy(struct hsys *x);
/* cmocka teardown: frees the guest of a case that failed half-way. */
int hfx_teardown(void **state);
/* The clock at 1 s and an empty log: what the case sees from here is its own. */
void hfx_start(struct hsys *x);

/* Every invariant (hsys_check), else the case fails with the first broken one. */
void hfx_check(struct hsys *x);
/* One millisecond of the whole guest, then every invariant; n of them. */
void hfx_tick(struct hsys *x);
void hfx_ticks(struct hsys *x, unsigned n);
/* Long stretches: 10 ms of time per tick. */
void hfx_wait_ms(struct hsys *x, unsigned ms);
/* Run (at most 3000 ticks) until the balloon is at `pages` with nothing in
 * flight and the device agrees; with host_too also the host's own count of
 * ballooned frames (not for a device holding reported blocks). */
void hfx_settle(struct hsys *x, uint64_t pages, int host_too);
/* A log line contains `needle`. */
void hfx_log_has(const char *needle);

/* The application kept working after a failure: hfx_mark_failure when it is
 * injected; hfx_assert_app_kept_running runs 256 ms more and wants more than
 * 100 allocations since, and its data intact. */
void hfx_mark_failure(struct hsys *x);
void hfx_assert_app_kept_running(struct hsys *x);
/* The application's data intact, and it can take every free frame (then lets
 * them go); no memory error ever. */
void hfx_assert_app_uses_all_free(struct hsys *x);

#endif
