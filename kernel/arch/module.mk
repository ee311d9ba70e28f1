# kernel/arch/module.mk - x86-64: entry, descriptor tables and traps, panic,
# TSC and local APIC time, the 16550 console UART, power-off. Uses kernel/lib/
# only. See the top of Makefile for the variables.
KERNEL_SRCS += kernel/arch/entry.S kernel/arch/trap.S kernel/arch/arch.c kernel/arch/panic.c \
               kernel/arch/power.c kernel/arch/time.c kernel/arch/tsc_rate.c kernel/arch/lapic.c kernel/arch/serial.c \
               kernel/arch/irq.c

# The clock's arithmetic is pure; time.c's hardware parts are never called on the host.
UNIT_TESTS += test_time
test_time_SRCS := tests/unit/test_time.c kernel/arch/tsc_rate.c
