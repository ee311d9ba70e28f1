/*
 * virtio_balloon.c - the virtio balloon device: find it, bring it up in the
 * spec's order, route its interrupts, recover it after a reset, and drive the
 * core from the work loop; see virtio_balloon.h. Its knobs and console
 * command are in balloon_cmd.c, its memory and OOM binding in kernel.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kclock.h"
#include "drivers/pci/msix.h"
#include "kernel/arch/arch.h"
#include "kernel/lib/initcall.h"
#include "kernel/lib/wake.h"
#include "kernel/arch/irq.h"
#include "mm/kmem.h"
#include "kernel/arch/time.h"
#include "klog.h"
#include "drivers/balloon/kernel.h"
#include "drivers/balloon/virtio_balloon.h"
#include "drivers/virtio/virtio_pci_hw.h"
#include "hw/io.h"
#include "kernel/lib/fmt.h"

static struct virtio_balloon_dev vb;
static int found;

/* What is set up once per kernel life and reused by every re-init:
 * interrupt vectors, the MSI-X table mapping, the INTx route, the OOM
 * notifier, and the lines said once. */
struct vb_once {
	int vec_config, vec_queue;       /* MSI-X vectors, -1 until allocated */
	int table_tried, table_mapped;
	int intx_routed;                 /* -1 not tried, 0 failed, 1 routed */
	const char *intx_why;
	int irq_logged, oom_registered;
};
#define VB_ONCE_INIT { .vec_config = -1, .vec_queue = -1, .intx_routed = -1 }
static struct vb_once once = VB_ONCE_INIT;

struct virtio_balloon_dev *virtio_balloon_get(void) { return found ? &vb : NULL; }

/* ---- transport ops for the core */

static int read_num_pages(void *ctx, uint32_t *np)
{
	struct virtio_balloon_dev *d = ctx;
	return vp_config_read(&d->vp, VIRTIO_BALLOON_CFG_NUM_PAGES, np, 4);
}

static void write_actual(void *ctx, uint32_t actual)
{
	struct virtio_balloon_dev *d = ctx;
	vp_config_write32(&d->vp, VIRTIO_BALLOON_CFG_ACTUAL, actual);
}

/* The OOM path spins (bounded) for the host's ack: under TCG the device
 * answers inside our notify write, under KVM within microseconds. */
static void relax(void *ctx) { cpu_relax(); }

static const struct balloon_transport_ops transport_ops = {
	.read_num_pages = read_num_pages, .write_actual = write_actual, .relax = relax,
};

/* ---- interrupts
 *
 * MSI-X where the device has it: entry 0 signals a configuration change (a
 * new target), entry 1 the queues. Otherwise legacy INTx: the line firmware
 * assigned (the PCI interrupt-line register, which OVMF fills from its PIRQ
 * routing on the q35 and pc machines; QEMU's MADT says how those ISA lines
 * are signalled), routed through the I/O APIC; reading the ISR byte tells
 * queue (bit 0) from configuration change (bit 1) and lowers the line. The
 * handlers only count: the work loop wakes on any interrupt and runs the
 * balloon's poller at once. With neither, the poller runs every
 * BALLOON_BUSY_NS and says so once. */
static struct pci_msix msix;
static void config_irq(void)
{
	vb.irq_config++;
	vb.config_irq_ns = clock_ns();
}

static int on_config_irq(struct trap_frame *tf) { config_irq(); lapic_eoi(); return 1; }
static int on_queue_irq(struct trap_frame *tf) { vb.irq_queue++; lapic_eoi(); return 1; }

/* Shared line: 0 if our device did not raise it. The EOI is the line's. */
static int on_intx(struct trap_frame *tf)
{
	uint8_t isr = vp_read_isr(&vb.vp);
	if (isr & VIRTIO_PCI_ISR_QUEUE)
		vb.irq_queue++;
	if (isr & VIRTIO_PCI_ISR_CONFIG)
		config_irq();
	return isr != 0;
}

static int setup_msix(struct virtio_balloon_dev *d, const char **why)
{
	if (once.vec_config < 0)
		once.vec_config = irq_alloc_vector(on_config_irq);
	if (once.vec_queue < 0)
		once.vec_queue = irq_alloc_vector(on_queue_irq);
	if (once.vec_config >= 0 && once.vec_queue >= 0 && !once.table_tried++)
		once.table_mapped = pci_msix_init(&msix, d->pd, why) == 0;   /* maps the table: once */
	if (once.vec_config < 0 || once.vec_queue < 0)
		*why = "no free interrupt vectors";
	else if (!once.table_mapped)
		;   /* pci_msix_init said why (the first time) */
	else if (msix.entries < 2)
		*why = "fewer than 2 MSI-X entries";
	else {
		pci_msix_route(&msix, 0, lapic_id(), (uint8_t)once.vec_config);
		pci_msix_route(&msix, 1, lapic_id(), (uint8_t)once.vec_queue);
		pci_msix_enable(&msix, 1);
		if (vp_set_config_vector(&d->vp, 0) == 0) {
			d->vp.queue_vector = 1;
			return 0;
		}
		pci_msix_enable(&msix, 0);
		*why = "the device refused the configuration vector";
	}
	return -1;
}

/* Route the function's INTx line once; it stays routed across resets. */
static int setup_intx(struct virtio_balloon_dev *d, const char **why)
{
	if (once.intx_routed < 0) {
		uint8_t pin = (uint8_t)pci_read(d->pd, PCI_INTERRUPT_PIN, 1);
		d->intx_line = (uint8_t)pci_read(d->pd, PCI_INTERRUPT_LINE, 1);
		once.intx_routed = 0;
		if (!pin)
			once.intx_why = "the function has no INTx pin";
		else if (d->intx_line == 0 || d->intx_line == 0xff)
			once.intx_why = "firmware assigned no interrupt line";
		else if (irq_request_line(d->intx_line, on_intx, &once.intx_why) >= 0) {
			pci_command(d->pd, 0, PCI_COMMAND_INTX_OFF);
			once.intx_routed = 1;
		}
	}
	*why = once.intx_why;
	return once.intx_routed ? 0 : -1;
}

/* After FEATURES_OK, before the queues: vp_setup_queue uses vp.queue_vector.
 * Called again after every reset (the device forgets its MSI-X vectors then);
 * vectors, the table mapping and the INTx route are made once and reused,
 * and the mode is said once. */
static void setup_interrupts(struct virtio_balloon_dev *d)
{
	const char *why_msix = NULL, *why_intx = NULL;
	if (setup_msix(d, &why_msix) == 0)
		d->irq_mode = VB_IRQ_MSIX;
	else if (setup_intx(d, &why_intx) == 0)
		d->irq_mode = VB_IRQ_INTX;
	else
		d->irq_mode = VB_IRQ_POLL;
	if (once.irq_logged++)
		return;
	if (d->irq_mode == VB_IRQ_MSIX)
		klog("virtio-balloon: interrupts: MSI-X");
	else if (d->irq_mode == VB_IRQ_INTX)
		klog("virtio-balloon: interrupts: INTx line %u (no MSI-X: %s)", d->intx_line, why_msix);
	else
		klog("virtio-balloon: no interrupts (MSI-X: %s; INTx: %s); polling every millisecond",
		     why_msix, why_intx);
}

/* ---- bring-up */

static int setup_queues(struct virtio_balloon_dev *d)
{
	const struct balloon_vq_layout *l = &d->layout;
	d->has_stats = d->has_report = 0;   /* a re-init decides again */
	if (vp_setup_queue(&d->vp, (uint16_t)l->inflate, &d->inflate_vq, "balloon-inflate", 128) != 0 ||
	    vp_setup_queue(&d->vp, (uint16_t)l->deflate, &d->deflate_vq, "balloon-deflate", 128) != 0) {
		vp_fail(&d->vp, "inflate/deflate queues missing or unusable");
		return -1;
	}
	if (d->vp.features & (1ull << VIRTIO_BALLOON_F_STATS_VQ)) {
		int rc = vp_setup_queue(&d->vp, (uint16_t)l->stats, &d->stats_vq, "balloon-stats", 8);
		if (rc == -ENOENT)
			klog("virtio-balloon: STATS_VQ offered but queue %d is absent; no statistics", l->stats);
		else if (rc != 0)
			return -1;
		else
			d->has_stats = 1;
	}
	if ((d->vp.features & (1ull << VIRTIO_BALLOON_F_REPORTING)) && l->reporting >= 0) {
		int rc = vp_setup_queue(&d->vp, (uint16_t)l->reporting, &d->report_vq, "balloon-report",
		                        BALLOON_REPORT_DESCS);
		if (rc == -ENOENT)
			klog("virtio-balloon: PAGE_REPORTING offered but queue %d is absent; no reporting",
			     l->reporting);
		else if (rc != 0)
			return -1;
		else
			d->has_report = 1;
	}
	return 0;
}

/* The balloon core on the live queues. Its DMA (PFN arrays, stats) and
 * tracking memory are allocated at the first start and reused by every
 * re-init (balloon_init zeroes them): recovering from a broken device must
 * not cost memory each time. `first`: boot (lines a re-init need not repeat). */
static int track_populate(void *ctx, void *p, size_t bytes) { return kmem_lazy_populate(p, bytes); }

static void start_core(struct virtio_balloon_dev *d, int first)
{
	/* The balloon covers the RAM there was at its first bring-up: memory
	 * hot-added later (virtio-mem) is never lent to it, and a bring-up after
	 * a reset reuses the books, which are that size. */
	uint64_t max_pfn = d->max_pfn ? d->max_pfn : balloon_kernel_max_pfn();
	d->max_pfn = max_pfn;
	if (!max_pfn) {
		if (first)
			klog("virtio-balloon: memory manager not running; device ready, balloon idle");
		return;
	}
	/* PFNs are le32 on the wire: frames at or above 16 TiB cannot be named.
	 * They stay ordinary memory (the memory ops never hand them over). */
	if (max_pfn > BALLOON_MAX_PFN) {
		if (first)
			klog("virtio-balloon: %llu MiB of RAM above 16 TiB cannot be named in the protocol's "
			     "32-bit PFNs; it stays ordinary memory",
			     (unsigned long long)PAGES_TO_MIB(max_pfn - BALLOON_MAX_PFN));
		max_pfn = BALLOON_MAX_PFN;
	}
	balloon_kernel_limit_pfn(max_pfn);
	/* The PFN arrays and stats are read by the device: DMA memory, a few
	 * pages. The books are the CPU's alone and cover all RAM (130 bytes per
	 * 2 MiB: 68 MiB at 1 TiB), but only what the balloon ever holds is
	 * written: reserved in the lazy window and backed by the core a 128 MiB
	 * chunk at a time (balloon.h track_populate), so boot does not zero
	 * megabytes on a big guest and a balloon that stays small costs little. */
	size_t track_bytes = (balloon_track_bytes(max_pfn) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (!d->dma)
		d->dma = dma_alloc_pages(BALLOON_DMA_BYTES / PAGE_SIZE, &d->dma_pa);
	int fresh = !d->track;
	if (!d->track) {
		d->track = kmem_lazy_reserve(track_bytes);   /* reads as zero once backed */
		d->track_len = d->track ? track_bytes : 0;
	}
	if (!d->b)
		d->b = balloon_alloc();
	if (!d->dma || !d->track || !d->b) {
		klog("virtio-balloon: no memory for %u pages of DMA buffers and %zu KiB of books; balloon idle",
		     (unsigned)(BALLOON_DMA_BYTES / PAGE_SIZE), track_bytes >> 10);
		return;
	}
	struct balloon_setup s = {
		.tops = &transport_ops, .tctx = d,
		.mops = &balloon_kernel_mem_ops, .mctx = NULL,
		.inflate_vq = &d->inflate_vq, .deflate_vq = &d->deflate_vq,
		.stats_vq = d->has_stats ? &d->stats_vq : NULL,
		.report_vq = d->has_report ? &d->report_vq : NULL,
		.rops = &balloon_kernel_reclaim_ops, .rctx = NULL,
		.features = d->vp.features,
		.dma = d->dma, .dma_pa = d->dma_pa, .dma_len = BALLOON_DMA_BYTES,
		.track = d->track, .track_len = d->track_len, .track_zeroed = fresh, .max_pfn = max_pfn,
		.track_populate = track_populate,
		.layout = balloon_knob_single_desc() ? BALLOON_LAYOUT_SINGLE : BALLOON_LAYOUT_CHAIN,
	};
	balloon_knobs_to_params(&s.params);
	if (balloon_init(d->b, &s) != 0)
		return;
	d->core_up = 1;
	/* Deflate on OOM, and reported blocks handed back early, both need
	 * the allocator to ask us when it runs dry. Once: the notifier checks
	 * core_up/transport_up, so it is harmless while the device is down. */
	if (d->has_report)
		balloon_kernel_watch_free_blocks();
	if (!once.oom_registered++ && balloon_kernel_register_oom() != 0)
		klog("virtio-balloon: cannot register an OOM notifier: no deflate on OOM");
}

void virtio_balloon_feature_names(uint64_t f, char *buf, size_t len)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ VIRTIO_BALLOON_F_MUST_TELL_HOST, "must-tell-host" }, { VIRTIO_BALLOON_F_STATS_VQ, "stats" },
		{ VIRTIO_BALLOON_F_DEFLATE_ON_OOM, "deflate-on-oom" },
		{ VIRTIO_BALLOON_F_FREE_PAGE_HINT, "free-page-hint" },
		{ VIRTIO_BALLOON_F_PAGE_POISON, "page-poison" },
		{ VIRTIO_BALLOON_F_REPORTING, "page-reporting" },
		{ VIRTIO_F_ACCESS_PLATFORM, "access-platform" },
	};
	size_t o = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
		if (f & (1ull << names[i].bit)) {
			int n = ksnprintf(buf + o, len - o, "%s%s", o ? " " : "", names[i].name);
			if (n < 0 || (size_t)n >= len - o)
				break;
			o += (size_t)n;
		}
	if (!o)
		ksnprintf(buf, len, "none");
}

/* The spec's init order, from reset to DRIVER_OK, then the balloon core.
 * The same path at boot (`first`) and after a reset. 0 if the transport
 * came up (core_up says whether the balloon runs), -1 (device FAILED, one
 * line) if not. */
static int bring_up(struct virtio_balloon_dev *d, int first)
{
	d->transport_up = d->core_up = 0;
	if (vp_begin(&d->vp) != 0)
		return -1;
	d->offered = vp_device_features(&d->vp);
	uint64_t wanted = balloon_features_wanted(d->offered);
	if (!wanted) {
		vp_fail(&d->vp, "device does not offer VERSION_1 (features 0x%llx)",
		        (unsigned long long)d->offered);
		return -1;
	}
	balloon_vq_layout(d->offered, &d->layout);
	if (first && d->vp.num_queues < d->layout.count)
		klog("virtio-balloon: device has %u queues, its features imply %u; using what exists",
		     d->vp.num_queues, d->layout.count);
	if (d->layout.stats >= d->vp.num_queues)
		wanted &= ~(1ull << VIRTIO_BALLOON_F_STATS_VQ);
	if (d->layout.reporting >= d->vp.num_queues && BALLOON_SPEC_VQ_REPORTING >= d->vp.num_queues)
		wanted &= ~(1ull << VIRTIO_BALLOON_F_REPORTING);
	if (vp_set_features(&d->vp, wanted) != 0)
		return -1;
	if (d->vp.features & (1ull << VIRTIO_BALLOON_F_REPORTING)) {
		/* Where is the reporting queue? Look, do not guess (balloon.h). */
		const char *conv;
		int consecutive = d->layout.reporting;
		d->layout.reporting = balloon_pick_reporting_vq(
			&d->layout, d->vp.num_queues,
			consecutive >= 0 ? vp_queue_size(&d->vp, (uint16_t)consecutive) : 0,
			vp_queue_size(&d->vp, BALLOON_SPEC_VQ_REPORTING), &conv);
		if (first && d->layout.reporting < 0)
			klog("virtio-balloon: PAGE_REPORTING offered but neither queue %d nor %d exists; "
			     "no reporting", consecutive, BALLOON_SPEC_VQ_REPORTING);
		else if (first)
			klog("virtio-balloon: reporting queue %d (%s)", d->layout.reporting, conv);
	}
	setup_interrupts(d);
	if (setup_queues(d) != 0)
		return -1;
	vp_driver_ok(&d->vp);
	if (d->vp.failed)
		return -1;
	d->transport_up = 1;
	d->down_why = NULL;
	if (first) {
		const struct pci_dev *pd = d->pd;
		const struct pci_bar *bar = &pd->bar[d->vp.r[VP_COMMON].bar];
		char names[96];
		virtio_balloon_feature_names(d->vp.features, names, sizeof names);
		klog("virtio-balloon: %02x:%02x.%u %s, BAR%u %#llx, features 0x%llx of 0x%llx, "
		     "queues inflate %u/%u deflate %u/%u stats %s reporting %s",
		     pd->bus, pd->dev, pd->fn, pd->device >= VIRTIO_PCI_MODERN_BASE ? "modern" : "transitional",
		     d->vp.r[VP_COMMON].bar, (unsigned long long)bar->addr, (unsigned long long)d->vp.features,
		     (unsigned long long)d->offered, d->layout.inflate, d->inflate_vq.num, d->layout.deflate,
		     d->deflate_vq.num, d->has_stats ? "yes" : "no",
		     d->has_report ? "yes" : "no");
		klog("virtio-balloon: using %s", names);
	}
	start_core(d, first);
	return 0;
}

int virtio_balloon_init(void)
{
	struct virtio_balloon_dev *d = &vb;
	const struct pci_dev *pd = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_BALLOON, 0);
	if (!pd)
		pd = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_TRANS_BALLOON, 0);
	if (!pd) {
		klog("virtio-balloon: no device");
		return 0;
	}
	found = 1;
	d->pd = pd;
	d->down_why = "not brought up";
	if (vp_hw_attach(&d->vp, pd, "virtio-balloon") != 0)
		return -1;
	if (bring_up(d, 1) != 0) {
		d->down_why = "bring-up failed";
		return -1;
	}
	return 0;
}
INITCALL(INIT_DRIVER, virtio_balloon_init);

/* ---- recovery (see virtio_balloon.h) */

enum vb_cause { VB_NEEDS_RESET, VB_LOST, VB_GONE, VB_BROKEN, VB_REQUESTED };

static const char *const cause_name[] = {
	[VB_NEEDS_RESET] = "device needs reset", [VB_LOST] = "device reset itself",
	[VB_GONE] = "device gone", [VB_BROKEN] = "balloon stopped (broken queue or config)",
	[VB_REQUESTED] = "reset requested",
};

static void leave_off(struct virtio_balloon_dev *d, const char *why)
{
	d->given_up = 1;
	d->down_why = why;
}

/* Reset the device; only when it confirmed the reset may the balloon's
 * frames go back to the allocator. Then bring it up again if the cause
 * allows and attempts are left. Called with the transport up. */
static void recover(struct virtio_balloon_dev *d, enum vb_cause cause)
{
	const char *what = cause_name[cause];
	char first[96] = "";
	/* A reset we chose on a healthy device: give the balloon back through
	 * the deflate queue first, so the host is told (Linux does the same).
	 * After a failure there is nobody to tell; the reset device forgets its
	 * balloon and release_all below hands the frames back. */
	if (cause == VB_REQUESTED && d->core_up) {
		uint64_t held = balloon_owned(d->b);
		uint64_t left = balloon_drain(d->b, VIRTIO_BALLOON_DRAIN_NS);
		d->drained += held - left;
		ksnprintf(first, sizeof first, "deflated %llu MiB first%s; ",
		         (unsigned long long)((held - left) * PAGE_SIZE / MIB),
		         left ? " (the host did not ack the rest in time)" : "");
	}
	/* From here the OOM notifier, the knobs and the poller leave it alone. */
	d->transport_up = 0;
	d->down_why = "resetting";
	if (vp_reset(&d->vp) != 0) {
		/* vp_reset said the device did not confirm. It may still write into
		 * what it was given: every frame stays the balloon's. */
		uint64_t held = d->core_up ? balloon_owned(d->b) : 0;
		d->held_for_good += held;
		klog("virtio-balloon: %s; reset not confirmed, keeping the %llu MiB (%llu pages) the "
		     "balloon holds for good; leaving it off", what,
		     (unsigned long long)(held * PAGE_SIZE / MIB), (unsigned long long)held);
		leave_off(d, "reset not confirmed");
		return;
	}
	d->resets++;
	uint64_t back = d->core_up ? balloon_release_all(d->b) : 0;
	d->core_up = 0;
	d->reclaimed += back;
	char freed[64];
	ksnprintf(freed, sizeof freed, "%llu MiB (%llu pages) reclaimed",
	         (unsigned long long)(back * PAGE_SIZE / MIB), (unsigned long long)back);
	if (cause == VB_GONE) {
		klog("virtio-balloon: %s; reset ok, %s; leaving it off", what, freed);
		leave_off(d, "device gone");
		return;
	}
	if (cause == VB_REQUESTED) {
		d->requested++;
		klog("virtio-balloon: %s; %sreset ok, %s, bringing it up again", what, first, freed);
	} else if (d->attempts >= VIRTIO_BALLOON_MAX_ATTEMPTS) {
		klog("virtio-balloon: %s; reset ok, %s; all %u attempts used, leaving it off", what, freed,
		     VIRTIO_BALLOON_MAX_ATTEMPTS);
		leave_off(d, "left off: every attempt used");
		return;
	} else {
		d->attempts++;
		klog("virtio-balloon: %s; reset ok, %s, bringing it up again (attempt %u of %u)", what,
		     freed, d->attempts, VIRTIO_BALLOON_MAX_ATTEMPTS);
	}
	if (bring_up(d, 0) != 0)
		leave_off(d, "bring-up after reset failed");   /* vp_fail said why */
}

void virtio_balloon_poll(uint64_t now)
{
	struct virtio_balloon_dev *d = &vb;
	if (!d->transport_up)
		return;
	/* After a recovery the poller looks again soon: the host's target stands
	 * and nothing else (no interrupt: the device was just reset) would wake
	 * the brought-up balloon to meet it. */
	switch (vp_health(&d->vp)) {   /* one line per new kind of trouble */
	case VP_HEALTHY:     break;
	case VP_NEEDS_RESET: recover(d, VB_NEEDS_RESET); wake_in(now, BALLOON_BUSY_NS); return;
	case VP_LOST:        recover(d, VB_LOST); wake_in(now, BALLOON_BUSY_NS); return;
	case VP_GONE:        recover(d, VB_GONE); return;
	}
	if (!d->core_up)
		return;
	if (d->config_irq_ns > d->config_seen_ns) {   /* the device's news reaches the core now */
		d->config_seen_ns = now;
		d->irq_to_poll_ns = now - d->config_irq_ns;
	}
	balloon_poll(d->b, now);
	if (balloon_state(d->b) == BALLOON_BROKEN) {
		recover(d, VB_BROKEN);   /* the core said why, once */
		wake_in(now, BALLOON_BUSY_NS);
		return;
	}
	/* Without interrupts the device is only seen by looking. */
	wake_at(d->irq_mode == VB_IRQ_POLL ? now + BALLOON_BUSY_NS : balloon_next_poll(d->b, now));
}
POLLER(virtio_balloon_poll);

uint64_t virtio_balloon_oom(uint64_t pages)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	if (!d || !d->core_up || !d->transport_up)
		return 0;
	uint64_t got = balloon_oom(d->b, pages);
	/* The OOM path says nothing (the allocator may be inside malloc); what
	 * it did (a deflate, a timeout) is logged by the next poll, and the
	 * poller may have asked for none (idle at target): ask now. */
	wake_at(0);
	return got;
}

#ifdef HOST_TEST
void virtio_balloon_forget(void)
{
	memset(&vb, 0, sizeof vb);
	memset(&msix, 0, sizeof msix);
	found = 0;
	once = (struct vb_once)VB_ONCE_INIT;
}
#endif

int virtio_balloon_reset(void)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	if (!d || !d->transport_up)
		return -1;
	recover(d, VB_REQUESTED);
	/* The host's target still stands and the reset device will not say so
	 * (no configuration change): the poller meets it again next round, not
	 * only if it happens to run after the caller's (console) poller. */
	wake_at(0);
	return d->transport_up ? 0 : -1;
}
