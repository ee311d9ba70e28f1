/* fake_hostile_sys.c - a guest around the kernel's balloon shell: PCI, interrupts, memory and the work loop; see the header. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_hostile_sys.h"
#include "host_support.h"
#include "drivers/balloon/kernel.h"
#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_pci_hw.h"
#include "kernel/arch/irq.h"
#include "kernel/arch/time.h"
#include "kernel/lib/wake.h"
#include "hw/io.h"
#include "mm/kmem.h"
#include "kclock.h"
#include "klog.h"

/* The guest the shell runs in (one at a time, like the kernel's one device). */
static struct hsys *cur;

/* ------------------------------------------------------------ PCI */

static uint32_t cfg_read(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w)
{
	struct hsys *x = ctx;
	uint32_t v = 0;
	if (off + w <= sizeof x->cfg)
		memcpy(&v, x->cfg + off, w);
	return v;
}

static void cfg_write(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, unsigned w, uint32_t v)
{
	struct hsys *x = ctx;
	if (off + w <= sizeof x->cfg && off != PCI_VENDOR_ID && off != PCI_INTERRUPT_PIN)
		memcpy(x->cfg + off, &v, w);
}

/* QEMU's virtio-balloon-pci (modern id), BAR4 its virtio registers. */
static void pci_setup(struct hsys *x)
{
	uint16_t vendor = VIRTIO_PCI_VENDOR, device = VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_BALLOON;
	memset(x->cfg, 0, sizeof x->cfg);
	memcpy(x->cfg + PCI_VENDOR_ID, &vendor, 2);
	memcpy(x->cfg + PCI_DEVICE_ID, &device, 2);
	x->cfg[PCI_COMMAND] = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	x->cfg[PCI_COMMAND + 1] = PCI_COMMAND_INTX_OFF >> 8;   /* as virtio_pci_hw leaves it */
	x->cfg[PCI_INTERRUPT_PIN] = x->intx_pin;
	x->cfg[PCI_INTERRUPT_LINE] = x->intx_line;
	x->acc = (struct pci_access){ cfg_read, cfg_write, x, 256, 0, 0, "fake" };
	x->pd = (struct pci_dev){ .acc = &x->acc, .bus = 0, .dev = 3, .fn = 0, .vendor = vendor, .device = device };
	x->pd.bar[4] = (struct pci_bar){ .addr = 0xfe000000ull, .size = 0x4000, .mem64 = 1, .prefetch = 1 };
}

struct pci_dev *pci_find(uint16_t vendor, uint16_t device, unsigned nth)
{
	if (!cur || nth || vendor != VIRTIO_PCI_VENDOR || device != VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_BALLOON)
		return NULL;
	pci_setup(cur);
	return &cur->pd;
}

int vp_hw_attach(struct vp_dev *vp, const struct pci_dev *pd, const char *name)
{
	hdev_attach_vp(&cur->dev, vp, name);
	return 0;
}

/* The simulated function has no MSI-X capability: pci_msix_find says so. */
int pci_msix_init(struct pci_msix *m, const struct pci_dev *d, const char **why)
{
	uint16_t cap, n;
	uint64_t pa;
	if (pci_msix_find(d, &cap, &pa, &n, why) == 0)
		*why = "MSI-X is not simulated";
	return -1;
}
int pci_msix_route(struct pci_msix *m, unsigned entry, uint32_t apic_id, uint8_t vector) { return -1; }
void pci_msix_enable(struct pci_msix *m, int on) {}

/* ------------------------------------------------------------ interrupts */

int irq_alloc_vector(trap_handler_fn fn) { return -1; }   /* vectors are MSI-X's only use */

int irq_request_line(uint8_t irq, trap_handler_fn fn, const char **why)
{
	cur->intx = fn;
	return 0x30 + irq;
}

void lapic_eoi(void) {}
uint32_t lapic_id(void) { return 0; }

void hsys_interrupts(struct hsys *x)
{
	uint16_t cmd;
	memcpy(&cmd, x->cfg + PCI_COMMAND, 2);
	if (!x->intx || !x->dev.pci.isr || x->dev.gone || (cmd & PCI_COMMAND_INTX_OFF))
		return;
	x->interrupts++;
	if (x->intx(NULL))
		x->irq_seen = 1;
}

/* A spin-wait (the OOM path waiting for acks): time passes, the host runs. */
void cpu_relax(void)
{
	host_clock_advance(NS_PER_MS);
	if (cur && !cur->host_paused)
		hdev_run(&cur->dev);
}

/* ------------------------------------------------------------ memory */

/* The shell's DMA buffers and books, one of each per guest (returned by
 * hsys_destroy; host_keep_alloc hands them to the next guest). */
void *dma_alloc_pages(size_t pages, uint64_t *pa)
{
	if (cur->dma)
		return NULL;
	cur->dma = host_keep_alloc(pages * 4096);
	cur->dma_len = pages * 4096;
	*pa = (uint64_t)(uintptr_t)cur->dma;
	return cur->dma;
}

void *kmem_anon_map(size_t bytes)
{
	if (cur->track)
		return NULL;
	cur->track = host_keep_alloc(bytes);
	cur->track_len = bytes;
	return cur->track;
}

/* The lazy window: reserved memory reads as garbage (0xa5) until populated,
 * so a core that reads books it never backed goes wrong visibly (the
 * books check fails); populating zeroes only pages not backed before. */
void *kmem_lazy_reserve(size_t bytes)
{
	size_t len = (bytes + 4095) & ~(size_t)4095;
	if (cur->track || !len)
		return NULL;
	cur->track = host_keep_alloc(len);
	cur->track_backed = calloc(len / 4096, 1);
	if (!cur->track || !cur->track_backed) {
		free(cur->track_backed);
		cur->track_backed = NULL;
		return NULL;
	}
	memset(cur->track, 0xa5, len);
	cur->track_len = len;
	return cur->track;
}

int kmem_lazy_populate(void *p, size_t bytes)
{
	uintptr_t base = (uintptr_t)cur->track, a = (uintptr_t)p & ~(uintptr_t)4095;
	uintptr_t e = ((uintptr_t)p + bytes + 4095) & ~(uintptr_t)4095;
	if (!cur->track || a < base || e > base + cur->track_len || e < a)
		return -1;
	for (; a < e; a += 4096)
		if (!cur->track_backed[(a - base) / 4096]) {
			memset((void *)a, 0, 4096);
			cur->track_backed[(a - base) / 4096] = 1;
		}
	return 0;
}

static unsigned m_take_blocks(void *c, uint64_t *p, unsigned max) { return fake_mem_ops.take_blocks(&cur->mem, p, max); }
static unsigned m_compact(void *c, unsigned want) { return fake_mem_ops.compact(&cur->mem, want); }
static int m_take_run(void *c, unsigned o, uint64_t *p) { return fake_mem_ops.take_run(&cur->mem, o, p); }
static void m_give_back(void *c, uint64_t p, unsigned o) { fake_mem_ops.give_back(&cur->mem, p, o); }
static uint64_t m_free_pages(void *c) { return fake_mem_ops.free_pages(&cur->mem); }
static uint64_t m_total_pages(void *c) { return fake_mem_ops.total_pages(&cur->mem); }
static uint64_t m_report_pending(void *c) { return fake_mem_ops.report_pending(&cur->mem); }
static unsigned m_report_isolate(void *c, uint64_t *p, unsigned max) { return fake_mem_ops.report_isolate(&cur->mem, p, max); }
static void m_report_done(void *c, const uint64_t *p, unsigned n, int r) { fake_mem_ops.report_done(&cur->mem, p, n, r); }

const struct balloon_mem_ops balloon_kernel_mem_ops = {
	.take_blocks = m_take_blocks, .compact = m_compact, .take_run = m_take_run,
	.give_back = m_give_back, .free_pages = m_free_pages, .total_pages = m_total_pages,
	.report_pending = m_report_pending, .report_isolate = m_report_isolate, .report_done = m_report_done,
};

/* No caches to shrink in this guest. */
static uint64_t r_count(void *c) { return 0; }
static uint64_t r_reclaim(void *c, uint64_t pages) { return 0; }
const struct balloon_reclaim_ops balloon_kernel_reclaim_ops = { r_count, r_reclaim };

uint64_t balloon_kernel_max_pfn(void) { return cur->mem.base_pfn + cur->mem.npages; }
void balloon_kernel_limit_pfn(uint64_t pfn) {}
void balloon_kernel_watch_free_blocks(void) { cur->watch_free = 1; }

/* kernel.c's OOM notifier. */
static uint64_t on_oom(void *ctx, uint64_t pages) { return virtio_balloon_oom(pages); }

int balloon_kernel_register_oom(void)
{
	cur->mem.oom = on_oom;
	cur->mem.octx = cur;
	return 0;
}

void balloon_knobs_to_params(struct balloon_params *p) { *p = cur->params; }
int balloon_knob_single_desc(void) { return cur->single_desc; }

/* ------------------------------------------------------------ the work loop */

static void note(struct hsys *x)
{
	x->vb = virtio_balloon_get();
	x->b = x->vb ? x->vb->b : NULL;
	/* the core's own "initialised" (balloon_release_all's test): a
	 * balloon_init that refused the setup leaves zeroed books behind */
	x->b_inited = x->b && x->b->s.mops;
}

int hsys_bring_up(struct hsys *x)
{
	int rc = virtio_balloon_init();
	note(x);
	x->due = 0;   /* the work loop's first round runs every poller */
	return rc;
}

void hsys_poll(struct hsys *x)
{
	hsys_interrupts(x);
	uint64_t now = clock_ns(), asked = wake_take();   /* outside the poller: OOM path, frees */
	if (asked < x->due)
		x->due = asked;
	if (x->irq_seen || x->due <= now) {
		x->irq_seen = 0;
		x->polls++;
		virtio_balloon_poll(now);
		x->due = wake_take();
		note(x);
	}
	hsys_interrupts(x);   /* raised during the round: the next one runs at once */
}

void hsys_tick(struct hsys *x)
{
	host_clock_advance(NS_PER_MS);
	if (!x->host_paused)
		hdev_run(&x->dev);
	hsys_poll(x);
	if (!x->app_paused) {
		uint64_t frees = x->mem.app_frees;
		fake_mem_app_step(&x->mem, x->step++, x->app_check_every);
		if (x->watch_free && x->mem.app_frees != frees)
			wake_at(0);   /* mm_on_free_block's callback (kernel.c) */
	}
}

/* ------------------------------------------------------------ set-up */

int hsys_init(struct hsys *x, uint64_t base_pfn, uint64_t npages, uint64_t min_free, uint64_t seed)
{
	/* all but the device, which hdev_init clears (without its big queues) */
	memset(x, 0, offsetof(struct hsys, dev));
	memset((char *)&x->dev + sizeof x->dev, 0, sizeof *x - offsetof(struct hsys, dev) - sizeof x->dev);
	virtio_balloon_forget();
	wake_take();
	cur = x;
	fake_mem_init(&x->mem, base_pfn, npages, seed);
	fake_mem_touch_all(&x->mem);      /* a guest that has been running: every block was written */
	hdev_init(&x->dev, &x->mem, seed * 7 + 1);
	x->params.min_free_pages = min_free;
	x->app_check_every = 32;
	x->intx_pin = 1;                  /* INTA#, routed by firmware to ISA IRQ 11 (as OVMF on q35) */
	x->intx_line = 11;
	x->due = WAKE_NEVER;
	if (!x->mem.st || !x->dev.host) {
		hsys_destroy(x);
		return -1;
	}
	return 0;
}

void hsys_destroy(struct hsys *x)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	if (d)
		free(d->b);   /* balloon_alloc's */
	virtio_balloon_forget();
	hdev_destroy(&x->dev);
	fake_mem_destroy(&x->mem);
	host_keep_free(x->dma, x->dma_len);
	host_keep_free(x->track, x->track_len);
	free(x->track_backed);
	x->track_backed = NULL;
	x->dma = x->track = NULL;
	x->vb = NULL;
	x->b = NULL;
	if (cur == x)
		cur = NULL;
}

/* ------------------------------------------------------------ checks */

/* What changes when the shell resets, recovers or brings the device up again. */
static uint64_t epoch(const struct hsys *x)
{
	uint64_t e = (uint64_t)x->dev.resets << 40 ^ (uint64_t)x->dev.driver_oks << 20 ^ (uint64_t)x->b_inited << 1;
	if (x->vb)
		e ^= (uint64_t)x->vb->resets << 48 ^ (uint64_t)x->vb->attempts << 32 ^ (uint64_t)x->vb->given_up << 4 ^
		     (uint64_t)x->vb->transport_up << 2 ^ (uint64_t)x->vb->core_up << 3 ^ (uint64_t)(uintptr_t)x->b;
	return e;
}

static int check(struct hsys *x, char *why, size_t len, int full)
{
	char b[200];
	note(x);
	/* the scans over every frame and the balloon's whole books: on every
	 * call, or (full_check_every) on every Nth, and whenever the shell reset
	 * or recovered since the last one */
	uint64_t e = epoch(x);
	if (full || x->full_check_every <= 1 || ++x->since_full >= x->full_check_every || e != x->epoch) {
		x->since_full = 0;
		x->epoch = e;
		x->full_checks++;
		if (x->b_inited && balloon_check(x->b, b, sizeof b) != 0) {
			snprintf(why, len, "balloon_check: %s", b);
			return -1;
		}
		fake_mem_consistent(&x->mem);
	}
	if (x->mem.errors) {
		snprintf(why, len, "memory: %s (%u errors)", x->mem.first_error, x->mem.errors);
		return -1;
	}
	if (x->dev.lied && x->dev.tolerate_lies)
		goto books;      /* see fake_hostile_dev.h: the device's view means nothing now */
	if (x->dev.protocol_errors) {
		snprintf(why, len, "device saw a driver error: %s", x->dev.first_error);
		return -1;
	}
	for (int q = 0; q < HD_NQ; q++)
		if (x->dev.vq[q].driver_errors) {
			snprintf(why, len, "queue %d: the device saw %u ring errors by the driver", q,
			         x->dev.vq[q].driver_errors);
			return -1;
		}
books:
	if (x->dev.pci.order_errors) {
		snprintf(why, len, "%u register order errors", x->dev.pci.order_errors);
		return -1;
	}
	/* isolated blocks are exactly the report in flight */
	uint64_t isolated = x->b_inited && x->b->rep.in_flight ? (uint64_t)x->b->rep.n * PAGES_PER_BLOCK : 0;
	if (x->mem.nisolated != isolated) {
		snprintf(why, len, "%llu frames isolated, the balloon reports %llu",
		         (unsigned long long)x->mem.nisolated, (unsigned long long)isolated);
		return -1;
	}
	/* the allocator's books and the balloon's agree on every frame */
	uint64_t owned = x->b_inited ? balloon_owned(x->b) : 0;
	if (x->mem.nballoon != owned) {
		snprintf(why, len, "the allocator counts %llu balloon frames, the balloon owns %llu",
		         (unsigned long long)x->mem.nballoon, (unsigned long long)owned);
		return -1;
	}
	return 0;
}

int hsys_check(struct hsys *x, char *why, size_t len) { return check(x, why, len, 0); }
int hsys_check_full(struct hsys *x, char *why, size_t len) { return check(x, why, len, 1); }
