# app/module.mk - the appliance workload. See the top of Makefile for the variables.

# Engine and pattern logic (host-compilable), kernel glue.
KERNEL_SRCS += app/app.c app/check.c app/pattern.c app/spec.c app/app_main.c

UNIT_TESTS += test_app_spec
test_app_spec_SRCS := tests/unit/test_app_spec.c app/spec.c app/pattern.c kernel/lib/cmdline.c
