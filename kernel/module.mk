# kernel/module.mk - the kernel core. See the top of Makefile for the variables.
KERNEL_SRCS += kernel/entry.S kernel/trap.S kernel/arch.c kernel/panic.c kernel/power.c \
               kernel/console.c kernel/klog.c kernel/boot.c kernel/time.c kernel/lapic.c \
               kernel/cmdline.c kernel/selftest.c kernel/newlib_glue.c kernel/main.c \
               drivers/serial.c tests/guest/core_tests.c
# kernel/kmem.h and newlib's sbrk are implemented by mm/ (mm/kmem.c, mm/heap.c).

UNIT_TESTS += test_cmdline test_boot_info
test_cmdline_SRCS   := tests/unit/test_cmdline.c kernel/cmdline.c
test_boot_info_SRCS := tests/unit/test_boot_info.c kernel/boot.c
