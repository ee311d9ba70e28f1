/*
 * vmem_cmd.c - virtio-mem's command line and console: the vmem.* options
 * (also `set vmem.<name> <value>` at run time, applied at once) and the
 * `vmem` command (status, `check`). What the knobs mean is struct
 * vmem_params in vmem.h.
 */
#include <stdio.h>
#include <string.h>
#include "drivers/virtio_mem/virtio_mem.h"
#include "kernel/lib/cmdline.h"
#include "kernel/lib/console.h"
#include "units.h"
#include "kernel/lib/fmt.h"

static uint64_t opt_min_free = 16 * MIB;
static uint64_t opt_rate;   /* MiB/s */

static int apply_knobs(void);

CMDLINE_SIZE_ON_SET(vmem_min_free, "vmem.min_free", &opt_min_free, 0, 1ull << 40,
                    "virtio-mem: never unplug below this much free memory", apply_knobs);
CMDLINE_U64_ON_SET(vmem_rate, "vmem.rate", &opt_rate, 0, 1ull << 20,
                   "virtio-mem: unplug limit in MiB/s (0 = unlimited; plugging is never limited)", apply_knobs);

void vmem_knobs_to_params(struct vmem_params *p)
{
	p->min_free_pages = opt_min_free / PAGE_SIZE;
	p->rate_blocks_per_s = opt_rate ? max_u64(opt_rate * MIB / BLOCK_SIZE, 1) : 0;
}

static int apply_knobs(void)
{
	struct virtio_mem_dev *d = virtio_mem_get();
	if (!d || !d->core_up)
		return -1;   /* `set` says it could not take effect */
	struct vmem_params p = *vmem_get_params(d->v);
	vmem_knobs_to_params(&p);
	vmem_set_params(d->v, &p);
	return 0;
}

static int cmd_vmem(int argc, char **argv)
{
	struct virtio_mem_dev *d = virtio_mem_get();
	if (!d) {
		kprintf("vmem: no virtio-mem device\n");
		return 1;
	}
	const char *sub = argc > 1 ? argv[1] : "";
	if (argc > 2 || (*sub && strcmp(sub, "check"))) {
		kprintf("usage: vmem [check]; knobs: set vmem.<min_free|rate> <value>\n");
		return 1;
	}
	if (!d->core_up) {
		kprintf("vmem: device %s, core not running\n", d->transport_up ? "up" : "down");
		return 1;
	}
	if (!strcmp(sub, "check")) {
		char why[160];
		if (vmem_check(d->v, why, sizeof why) != 0) {
			kprintf("vmem: check FAILED: %s\n", why);
			return 1;
		}
		kprintf("vmem: books consistent\n");
		return 0;
	}
	static char text[1200];
	vmem_format_status(d->v, text, sizeof text);
	kprintf("%s\n", text);
	const struct vmem_params *p = vmem_get_params(d->v);
	kprintf("knobs: min_free %llu MiB, rate %llu MiB/s%s; interrupts: %s, %llu config, %llu queue; %llu polls\n",
	       (unsigned long long)PAGES_TO_MIB(p->min_free_pages),
	       (unsigned long long)(p->rate_blocks_per_s * BLOCK_SIZE / MIB),
	       p->rate_blocks_per_s ? "" : " (unlimited)",
	       d->irq_mode == VM_IRQ_MSIX ? "MSI-X" : d->irq_mode == VM_IRQ_INTX ? "INTx" : "none (polled)",
	       (unsigned long long)d->irq_config, (unsigned long long)d->irq_queue, (unsigned long long)d->polls);
	return 0;
}
CONSOLE_CMD("vmem", "virtio-mem status: plugged, requested, usable, blocks per state, last request, "
            "shortfall; `vmem check` verifies the books", cmd_vmem);
