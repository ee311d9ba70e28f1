# mm/module.mk - see the top of Makefile for what these variables mean.
#
# mm/ logic (frame allocator, page tables, compactor, metrics, movable region)
# compiles for the kernel and for host tests alike.

MM_LOGIC := mm/frame.c mm/frame_balloon.c mm/frame_check.c mm/pgtable.c \
            mm/compact.c mm/metrics.c mm/vregion.c mm/anon.c
MM_SIM   := tests/unit/test_mm_sim.c

# In the kernel: the logic, the shells that own the hardware-facing parts
# (boot_init: tables + CR3; kmem: kernel/kmem.h; heap: sbrk), and the
# in-guest self-tests.
KERNEL_SRCS += $(MM_LOGIC) mm/boot_init.c mm/kmem.c mm/heap.c mm/balloon_ops.c \
               mm/mm_console.c tests/guest/mm_tests.c

UNIT_TESTS += test_mm_frame test_mm_pgtable test_mm_compact test_mm_vregion test_mm_anon
test_mm_frame_SRCS   := tests/unit/test_mm_frame.c $(MM_SIM) $(MM_LOGIC)
test_mm_pgtable_SRCS := tests/unit/test_mm_pgtable.c $(MM_SIM) $(MM_LOGIC)
test_mm_compact_SRCS := tests/unit/test_mm_compact.c $(MM_SIM) $(MM_LOGIC)
test_mm_vregion_SRCS := tests/unit/test_mm_vregion.c $(MM_SIM) $(MM_LOGIC)
test_mm_anon_SRCS    := tests/unit/test_mm_anon.c $(MM_SIM) $(MM_LOGIC)

BENCH_HOST += mm_bench
mm_bench_SRCS := bench/mm_bench.c $(MM_SIM) $(MM_LOGIC)
