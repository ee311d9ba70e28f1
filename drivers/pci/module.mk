# drivers/pci/module.mk - PCI: enumeration logic (pci.c, host-tested through a
# config-space seam), the hardware shell (ECAM / port I/O), MSI-X, `lspci`.
# See the top of Makefile for the variables.
KERNEL_SRCS += drivers/pci/pci.c drivers/pci/pci_hw.c drivers/pci/msix.c drivers/pci/pci_cmd.c
# What a host test links to use pci.c (it finds MCFG through kernel/lib/acpi.c).
PCI_LOGIC := drivers/pci/pci.c kernel/lib/acpi.c

UNIT_TESTS += test_pci_msix
test_pci_msix_SRCS := tests/unit/test_pci_msix.c drivers/pci/msix.c $(PCI_LOGIC)
