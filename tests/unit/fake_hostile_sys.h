/*
 * fake_hostile_sys.h - one whole guest for the hostile-device tests and the
 * fuzzers, around the kernel's own device shell: drivers/balloon/
 * virtio_balloon.c (find, bring-up, interrupts, recovery, the poller) runs
 * unchanged on top of drivers/virtio/virtio_pci.c, virtq.c and the balloon
 * core. This file provides what that shell gets from the kernel, simulated:
 *
 *   - the PCI function (pci_find; config space with the INTx pin and line
 *     firmware assigned, no MSI-X capability) and its virtio registers
 *     (vp_hw_attach wires the vp_dev to the simulated device, fake_hostile_dev.h);
 *   - interrupts: irq_request_line / irq_alloc_vector record the handlers;
 *     the device raises its ISR bits (used buffers, config change) and the
 *     guest delivers the INTx interrupt after each step, like the CPU would;
 *   - memory: dma_alloc_pages, kmem_anon_map, and the balloon's kernel seams
 *     (drivers/balloon/kernel.h) bound to the checked memory of
 *     fake_balloon_mem.h, with the allocator's OOM notifier as kernel.c
 *     registers it (the application running dry -> balloon_oom);
 *   - the balloon.* knobs (params, single_desc below);
 *   - cpu_relax: a millisecond passes and the device runs (unless paused);
 *   - the work loop (kernel/main.c): the poller runs when the deadline it
 *     asked for (kernel/lib/wake.c) has come or an interrupt arrived - not
 *     every millisecond regardless, so a poller that forgets to ask for its
 *     next wake-up sleeps here as it would in the kernel.
 *
 * One guest at a time (the shell has one device): hsys_init makes it the
 * current one, hsys_destroy forgets the shell's state (virtio_balloon_forget).
 *
 * hsys_check() is every invariant at once (balloon books, frame owners,
 * device-side protocol, register order), with the first violation in `why`.
 */
#ifndef FAKE_HOSTILE_SYS_H
#define FAKE_HOSTILE_SYS_H

#include <stddef.h>
#include <stdint.h>
#include "drivers/balloon/balloon.h"
#include "drivers/balloon/internal.h"   /* white-box: the tests read the core's books */
#include "drivers/balloon/virtio_balloon.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtq.h"
#include "kernel/arch/arch.h"
#include "fake_hostile_dev.h"
#include "fake_balloon_mem.h"

/* The shell's attempt limit, under the model's old name. */
#define HSYS_MAX_RECOVERIES VIRTIO_BALLOON_MAX_ATTEMPTS

struct hsys {
	struct fake_mem mem;
	struct hdev dev;

	/* the kernel around the shell */
	struct balloon_params params;   /* what balloon_knobs_to_params hands over */
	int single_desc;                /* balloon.single_desc */
	uint8_t intx_pin, intx_line;    /* config space: 0 pin = no INTx (the shell polls) */
	struct pci_dev pd;
	struct pci_access acc;
	uint8_t cfg[256];
	trap_handler_fn intx;           /* the handler on the line, once requested */
	int watch_free;                 /* the shell asked to hear of free blocks */
	uint64_t due;                   /* the work loop's next deadline (WAKE_NEVER: none) */
	int irq_seen;                   /* an interrupt arrived since the last round */
	unsigned polls, interrupts;
	void *dma, *track;              /* what the shell allocated (freed by hsys_destroy) */
	size_t dma_len, track_len;
	uint8_t *track_backed;        /* per page of track: populated (kmem_lazy_populate) */

	/* the shell under test, once hsys_bring_up found the device */
	struct virtio_balloon_dev *vb;
	struct balloon *b;              /* its core (NULL until the first start) */
	int b_inited;                   /* its books exist: the last balloon_init succeeded */

	int host_paused;         /* the device does not run between polls */
	int app_paused;          /* the application does nothing between polls */
	unsigned app_check_every;/* application full check every N ticks (0 = never) */
	unsigned step;
	/* hsys_check's scans over every frame and the balloon's books
	 * (balloon_check, fake_mem_consistent) on every Nth call only, and at
	 * once after a reset or recovery (0 or 1: every call; the fuzzer) */
	unsigned full_check_every;
	unsigned since_full, full_checks;
	uint64_t epoch;
};

/* Memory [base_pfn, base_pfn + npages), the device, the PCI function; the
 * shell is not started yet (set hostile knobs first). 0, or -1 if out of
 * memory. */
int hsys_init(struct hsys *x, uint64_t base_pfn, uint64_t npages, uint64_t min_free, uint64_t seed);
void hsys_destroy(struct hsys *x);

/* Boot's initcall (virtio_balloon_init). 0 if the transport came up
 * (vb->core_up says whether the balloon runs), -1 if the device was refused
 * (one line). */
int hsys_bring_up(struct hsys *x);
/* One round of the work loop: the shell's poller if it is due (its deadline
 * came or an interrupt arrived), then pending interrupts delivered. */
void hsys_poll(struct hsys *x);
/* One millisecond: the device serves its queues, the work loop runs a round,
 * the application does one step. No checks. */
void hsys_tick(struct hsys *x);
/* Deliver what the device raised (its ISR) to the handler on the line. */
void hsys_interrupts(struct hsys *x);

/* The shell's state, for the tests. */
static inline int hsys_up(const struct hsys *x) { return x->vb && x->vb->transport_up; }
static inline int hsys_core_up(const struct hsys *x) { return x->vb && x->vb->core_up; }
/* Frames the balloon owns (0 before its core first started). */
static inline uint64_t hsys_owned(const struct hsys *x) { return x->b_inited ? balloon_owned(x->b) : 0; }

/* Every invariant: 0, or -1 with the first violation in why. With
 * full_check_every set, hsys_check scans every frame and the balloon's books
 * only on every Nth call (and after a reset or recovery): the other
 * invariants (errors the memory, the device and the registers recorded as
 * they happened, frames owned and isolated against the balloon's counters)
 * every time. hsys_check_full always scans. */
int hsys_check(struct hsys *x, char *why, size_t len);
int hsys_check_full(struct hsys *x, char *why, size_t len);

#endif
