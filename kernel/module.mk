# kernel/module.mk - the top of the kernel: init order and the work loop
# (main.c), the serial console's line editor, newlib's system-call glue.
# See the top of Makefile for the variables.
KERNEL_SRCS += kernel/main.c kernel/console.c kernel/kernel_cmd.c kernel/newlib_glue.c
