# drivers/virtio/module.mk - the split virtqueue and the virtio-pci modern
# transport (logic, host-tested), and the transport's hardware shell.
# See the top of Makefile for the variables.
VIRTIO_LOGIC := drivers/virtio/virtq.c drivers/virtio/virtio_pci.c
KERNEL_SRCS += $(VIRTIO_LOGIC) drivers/virtio/virtio_pci_hw.c

UNIT_TESTS += test_virtq
test_virtq_SRCS := tests/unit/test_virtq.c drivers/virtio/virtq.c tests/unit/fake_virtio_dev.c
