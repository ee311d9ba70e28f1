# kernel/lib/module.mk - base services with no dependencies: klog, the command
# line and its registry, the console's command registry, the boot_info copy,
# the self-test runner. See the top of Makefile for the variables.
LIB_LOGIC := kernel/lib/klog.c kernel/lib/fmt.c kernel/lib/cmdline.c kernel/lib/boot.c kernel/lib/acpi.c
KERNEL_SRCS += $(LIB_LOGIC) kernel/lib/cmdline_cmd.c kernel/lib/console.c kernel/lib/selftest.c \
               kernel/lib/wake.c

UNIT_TESTS += test_cmdline test_boot_info test_fmt
test_cmdline_SRCS   := tests/unit/test_cmdline.c kernel/lib/cmdline.c
test_boot_info_SRCS := tests/unit/test_boot_info.c kernel/lib/boot.c
test_fmt_SRCS       := tests/unit/test_fmt.c   # fmt.c comes with HOST_SUPPORT (klog uses it)
