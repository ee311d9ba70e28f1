# drivers/module.mk - see the top of Makefile for what these variables mean.

UNIT_TESTS += test_virtq
test_virtq_SRCS := tests/unit/test_virtq.c drivers/virtq.c tests/unit/fake_virtio_dev.c

UNIT_TESTS += test_balloon
test_balloon_SRCS := tests/unit/test_balloon.c drivers/balloon.c drivers/virtq.c \
                     tests/unit/fake_virtio_dev.c tests/unit/fake_balloon_mem.c

UNIT_TESTS += test_balloon_features
test_balloon_features_SRCS := tests/unit/test_balloon_features.c drivers/balloon.c drivers/virtq.c \
                              tests/unit/fake_virtio_dev.c tests/unit/fake_balloon_mem.c \
                              kernel/shrinker.c

UNIT_TESTS += test_virtio_pci
test_virtio_pci_SRCS := tests/unit/test_virtio_pci.c drivers/pci.c drivers/virtio_pci.c \
                        drivers/virtq.c drivers/balloon.c tests/unit/fake_virtio_pci.c

KERNEL_SRCS += drivers/pci.c drivers/pci_hw.c drivers/virtq.c drivers/virtio_pci.c \
               drivers/virtio_pci_hw.c drivers/balloon.c drivers/virtio_balloon.c \
               tests/guest/virtio_balloon_tests.c \
               tests/guest/balloon_feature_tests.c tests/guest/balloon_recovery_tests.c

UNIT_TESTS += test_pci_msix
test_pci_msix_SRCS := tests/unit/test_pci_msix.c drivers/pci_msix.c
KERNEL_SRCS += drivers/pci_msix.c
