/*
 * pci_cmd.c - PCI on the console: `lspci` lists the functions found at boot
 * and how config space is reached.
 */
#include <stdio.h>
#include "drivers/pci/pci.h"
#include "kernel/lib/console.h"
#include "kernel/lib/fmt.h"

static int cmd_lspci(int argc, char **argv)
{
	kprintf("pci: config space through %s\n", pci_access_name());
	unsigned n;
	const struct pci_dev *devs = pci_devices(&n);
	for (unsigned i = 0; i < n; i++) {
		const struct pci_dev *d = &devs[i];
		kprintf("%02x:%02x.%u %04x:%04x class %02x%02x%s", d->bus, d->dev, d->fn, d->vendor,
		       d->device, d->class_code, d->subclass, d->header_type == 1 ? " bridge" : "");
		for (unsigned b = 0; b < 6; b++)
			if (d->bar[b].size)
				kprintf(" BAR%u %s %#llx+%#llx", b,
				       d->bar[b].io ? "io" : d->bar[b].mem64 ? "mem64" : "mem32",
				       (unsigned long long)d->bar[b].addr, (unsigned long long)d->bar[b].size);
		kprintf("\n");
	}
	return 0;
}
CONSOLE_CMD("lspci", "list the PCI functions found at boot", cmd_lspci);
