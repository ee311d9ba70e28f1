# app/module.mk - the appliance workload and the shrinker registry.
# See the top of Makefile for what these variables mean.

# Engine and pattern logic (host-compilable), kernel glue, in-guest tests.
KERNEL_SRCS += app/app.c app/pattern.c app/spec.c app/app_main.c tests/guest/app_tests.c
# The shrinker registry is kernel-wide (the balloon calls shrinker_reclaim()).
KERNEL_SRCS += kernel/shrinker.c

UNIT_TESTS += test_shrinker
test_shrinker_SRCS := tests/unit/test_shrinker.c kernel/shrinker.c

UNIT_TESTS += test_app_spec
test_app_spec_SRCS := tests/unit/test_app_spec.c app/spec.c app/pattern.c kernel/cmdline.c
