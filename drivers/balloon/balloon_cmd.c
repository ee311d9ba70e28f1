/*
 * balloon_cmd.c - the balloon's command line and console: the balloon.* knobs
 * (also `set balloon.<name> <value>` at run time, applied at once) and the
 * `balloon` command (status, `check`, `stats`, `reset`). What the knobs mean
 * is balloon.h's struct balloon_params; values beyond RAM are clamped there
 * with one line each.
 */
#include <stdio.h>
#include <string.h>
#include "drivers/balloon/kernel.h"
#include "drivers/balloon/virtio_balloon.h"
#include "kclock.h"
#include "kernel/lib/cmdline.h"
#include "kernel/lib/console.h"
#include "kernel/lib/wake.h"
#include "kernel/arch/irq.h"
#include "klog.h"
#include "units.h"
#include "kernel/lib/fmt.h"

/* ---- knobs: command line and `set` at run time (on_set applies them) */

static uint64_t opt_initial;
static uint64_t opt_max;
static uint64_t opt_min_free = 16 * MIB;
static uint64_t opt_rate;                  /* MiB/s */
static uint64_t opt_report_delay_ms = 2000;

static int apply_knobs(void);
static int opt_single_desc;

static int single_desc_later(void)
{
	kprintf("balloon.single_desc takes effect at the next bring-up (`balloon reset`)\n");
	return 0;
}

int balloon_knob_single_desc(void) { return opt_single_desc; }

/* These options act at once when `set` changes them (apply_knobs). */
CMDLINE_SIZE_ON_SET(balloon_initial, "balloon.initial", &opt_initial, 0, 1ull << 40,
                    "balloon size at boot, until the host sets a target (0 = none)", apply_knobs);
CMDLINE_SIZE_ON_SET(balloon_max, "balloon.max", &opt_max, 0, 1ull << 40,
                    "largest balloon (0 = only min_free limits it)", apply_knobs);
CMDLINE_SIZE_ON_SET(balloon_min_free, "balloon.min_free", &opt_min_free, 0, 1ull << 40,
                    "memory the balloon always leaves free", apply_knobs);
CMDLINE_U64_ON_SET(balloon_rate, "balloon.rate", &opt_rate, 0, 1ull << 20,
                   "inflation limit in MiB/s (0 = unlimited)", apply_knobs);
CMDLINE_OPT_ON_SET(balloon_single_desc, "balloon.single_desc", OPT_BOOL, &opt_single_desc, sizeof(int), 0, 1,
                   "one descriptor (<= 1 MiB) per element, for hosts that read only the head "
                   "descriptor (Firecracker); whole 2 MiB blocks otherwise", single_desc_later);
CMDLINE_U64_ON_SET(balloon_report_delay, "balloon.report_delay", &opt_report_delay_ms, 0, 3600000,
                   "free page reporting: milliseconds after frees before reporting", apply_knobs);

void balloon_knobs_to_params(struct balloon_params *p)
{
	p->initial_pages = opt_initial / PAGE_SIZE;
	p->max_pages = opt_max / PAGE_SIZE;
	p->min_free_pages = opt_min_free / PAGE_SIZE;
	p->rate_pages_per_s = opt_rate * (MIB / PAGE_SIZE);
	p->report_delay_ns = opt_report_delay_ms * NS_PER_MS;
}

static int apply_knobs(void)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	if (!d || !d->core_up || !d->transport_up)
		return -1;   /* `set` says it could not take effect */
	struct balloon_params p = *balloon_get_params(d->b);
	struct balloon_status st;
	balloon_get_status(d->b, &st);
	balloon_knobs_to_params(&p);
	if (p.initial_pages != balloon_get_params(d->b)->initial_pages && st.host_set)
		klog("balloon: the host has set a target (%u pages): balloon.initial no longer applies",
		     st.host_num_pages);
	balloon_set_params(d->b, &p);   /* clamps say so themselves, one line each */
	/* The console's poller runs after the balloon's in a round: without
	 * this the new knobs wait for the next interrupt (a key, the host). */
	wake_at(0);
	return 0;
}

/* ---- the `balloon` command */

static int cmd_balloon(int argc, char **argv)
{
	struct virtio_balloon_dev *d = virtio_balloon_get();
	if (!d) {
		kprintf("balloon: no device\n");
		return 1;
	}
	const char *sub = argc > 1 ? argv[1] : "";
	if (argc > 2 || (*sub && strcmp(sub, "check") && strcmp(sub, "stats") && strcmp(sub, "reset"))) {
		kprintf("usage: balloon [check | stats | reset]; knobs: set balloon.<initial|max|min_free|rate|"
		       "report_delay> <value>\n");
		return 1;
	}
	if (!strcmp(sub, "reset")) {
		if (!d->transport_up) {
			kprintf("balloon: device not up (%s)\n", d->down_why ? d->down_why : "down");
			return 1;
		}
		int rc = virtio_balloon_reset();
		kprintf("balloon: reset %s; device %s, %llu pages deflated first, %llu reclaimed in all\n",
		       rc ? "FAILED" : "done", d->transport_up ? "up again" : "down",
		       (unsigned long long)d->drained, (unsigned long long)d->reclaimed);
		return rc ? 1 : 0;
	}
	if (*sub && !d->core_up) {
		kprintf("balloon: core not running\n");
		return 1;
	}
	if (!strcmp(sub, "check")) {
		char why[160];
		if (balloon_check(d->b, why, sizeof why) != 0) {
			kprintf("balloon: check FAILED: %s\n", why);
			return 1;
		}
		kprintf("balloon: books consistent\n");
		return 0;
	}
	if (!strcmp(sub, "stats")) {
		struct virtio_balloon_stat st[BALLOON_STATS_MAX];
		unsigned n = balloon_stats_fill(d->b, st, BALLOON_STATS_MAX);
		kprintf("balloon: stats%s:", d->has_stats ? "" : " (no stats queue: not sent)");
		for (unsigned i = 0; i < n; i++)
			kprintf(" %s=%llu", balloon_stat_name(st[i].tag), (unsigned long long)st[i].val);
		kprintf("\n");
		return 0;
	}
	char names[96];
	virtio_balloon_feature_names(d->vp.features, names, sizeof names);
	kprintf("virtio-balloon: %s, status 0x%x, features 0x%llx (%s)\n",
	       d->transport_up ? "up" : d->down_why ? d->down_why : "down", vp_status(&d->vp),
	       (unsigned long long)d->vp.features, names);
	kprintf("recovery: %u resets (%u requested), %llu pages (%llu MiB) deflated before requested "
	       "resets, %llu pages (%llu MiB) reclaimed, %u of %u attempts left%s", d->resets,
	       d->requested, (unsigned long long)d->drained,
	       (unsigned long long)(d->drained * PAGE_SIZE / MIB), (unsigned long long)d->reclaimed,
	       (unsigned long long)(d->reclaimed * PAGE_SIZE / MIB),
	       VIRTIO_BALLOON_MAX_ATTEMPTS - d->attempts, VIRTIO_BALLOON_MAX_ATTEMPTS,
	       d->given_up ? ", left off" : "");
	if (d->held_for_good)
		kprintf(", %llu pages held for good (reset not confirmed)",
		       (unsigned long long)d->held_for_good);
	kprintf("\n");
	if (d->irq_mode == VB_IRQ_MSIX)
		kprintf("interrupts: MSI-X, %llu configuration changes, %llu queue interrupts\n",
		       (unsigned long long)d->irq_config, (unsigned long long)d->irq_queue);
	else if (d->irq_mode == VB_IRQ_INTX) {
		struct irq_line_info li = { 0 };
		irq_line_info(d->intx_line, &li);
		kprintf("interrupts: INTx line %u (GSI %u, %s, active %s, vector %d), %llu on the line, "
		       "%llu configuration changes, %llu queue interrupts\n", d->intx_line, li.gsi,
		       li.level ? "level" : "edge", li.active_low ? "low" : "high", li.vector,
		       (unsigned long long)li.count, (unsigned long long)d->irq_config,
		       (unsigned long long)d->irq_queue);
	} else
		kprintf("interrupts: none, polled every millisecond\n");
	if (!d->core_up) {
		kprintf("balloon: %s\n", !balloon_kernel_max_pfn() ? "idle (memory manager not running)" : "not running");
		return 0;
	}
	struct balloon_status st;
	balloon_get_status(d->b, &st);
	kprintf("reaction: configuration interrupt -> poll %llu us, new target -> first element %llu us\n",
	       (unsigned long long)(d->irq_to_poll_ns / 1000), (unsigned long long)(st.reaction_ns / 1000));
	kprintf("residency: %llu blocks made free by compaction before any block the host does not back "
	       "was taken\n", (unsigned long long)balloon_kernel_blocks_compacted());
	static char text[1400];
	balloon_format_status(d->b, text, sizeof text);
	kprintf("%s\n", text);
	balloon_format_details(d->b, text, sizeof text);
	kprintf("%s\n", text);
	return 0;
}
CONSOLE_CMD("balloon", "balloon status; `balloon check` verifies its books, `balloon stats` what the "
            "host gets, `balloon reset` resets the device and brings it up again", cmd_balloon);
