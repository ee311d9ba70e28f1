# drivers/pci/module.mk - PCI: enumeration logic (pci.c, host-tested through a
# config-space seam), the hardware shell (ECAM / port I/O), MSI-X.
# See the top of Makefile for the variables.
PCI_LOGIC := drivers/pci/pci.c
KERNEL_SRCS += $(PCI_LOGIC) drivers/pci/pci_hw.c drivers/pci/msix.c drivers/pci/pci_cmd.c

UNIT_TESTS += test_pci_msix
test_pci_msix_SRCS := tests/unit/test_pci_msix.c drivers/pci/msix.c
