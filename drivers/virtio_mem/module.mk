# drivers/virtio_mem/module.mk - the virtio-mem driver: its core (books,
# choices, request state machine; host-tested against a fake device and fake
# memory) and the kernel shells. See the top of Makefile for the variables.
VMEM_LOGIC := drivers/virtio_mem/config.c drivers/virtio_mem/blocks.c drivers/virtio_mem/vmem.c \
              drivers/virtio_mem/show.c
KERNEL_SRCS += $(VMEM_LOGIC) drivers/virtio_mem/virtio_mem.c drivers/virtio_mem/kernel.c \
               drivers/virtio_mem/vmem_cmd.c

UNIT_TESTS += test_vmem
test_vmem_SRCS := tests/unit/test_vmem.c $(VMEM_LOGIC) drivers/virtio/virtq.c \
                  tests/unit/fake_virtio_dev.c tests/unit/fake_vmem.c
