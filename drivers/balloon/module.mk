# drivers/balloon/module.mk - the virtio balloon: its core (policy and books,
# host-tested against a fake device and allocator) and the kernel shells.
# See the top of Makefile for the variables.
BALLOON_LOGIC := drivers/balloon/balloon.c drivers/balloon/books.c drivers/balloon/policy.c \
                 drivers/balloon/inflate.c drivers/balloon/report.c drivers/balloon/oom.c \
                 drivers/balloon/stats.c drivers/balloon/show.c
KERNEL_SRCS += $(BALLOON_LOGIC) drivers/balloon/virtio_balloon.c drivers/balloon/kernel.c \
               drivers/balloon/balloon_cmd.c

UNIT_TESTS += test_balloon test_balloon_features test_virtio_pci
test_balloon_SRCS := tests/unit/test_balloon.c $(BALLOON_LOGIC) drivers/virtio/virtq.c \
                     tests/unit/fake_virtio_dev.c tests/unit/fake_balloon_mem.c
test_balloon_features_SRCS := tests/unit/test_balloon_features.c $(BALLOON_LOGIC) drivers/virtio/virtq.c \
                              tests/unit/fake_virtio_dev.c tests/unit/fake_balloon_mem.c mm/shrinker.c
test_virtio_pci_SRCS := tests/unit/test_virtio_pci.c $(PCI_LOGIC) $(VIRTIO_LOGIC) $(BALLOON_LOGIC) \
                        tests/unit/fake_virtio_pci.c
