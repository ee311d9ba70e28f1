# mm/module.mk - see the top of Makefile for what these variables mean.
#
# mm/ logic (frame allocator, page tables, compactor, metrics, movable region,
# anonymous memory, shrinker registry) compiles for the kernel and for host
# tests alike.

MM_LOGIC := mm/frame.c mm/frame_init.c mm/frame_balloon.c mm/frame_check.c mm/pgtable.c \
            mm/compact.c mm/metrics.c mm/vregion.c mm/anon.c mm/hotplug.c
MM_SIM   := tests/unit/test_mm_sim.c

# In the kernel: the logic, bring-up (boot_init: tables + CR3), the public
# API (mm.c), kmem.h (kmem.c), newlib's sbrk (heap.c), the console (mm_cmd.c).
KERNEL_SRCS += $(MM_LOGIC) mm/shrinker.c mm/boot_init.c mm/mm.c mm/kmem.c mm/heap.c mm/mm_cmd.c

UNIT_TESTS += test_mm_frame test_mm_pgtable test_mm_compact test_mm_vregion test_mm_anon test_mm_hotplug
test_mm_frame_SRCS   := tests/unit/test_mm_frame.c $(MM_SIM) $(MM_LOGIC)
test_mm_pgtable_SRCS := tests/unit/test_mm_pgtable.c $(MM_SIM) $(MM_LOGIC)
test_mm_compact_SRCS := tests/unit/test_mm_compact.c $(MM_SIM) $(MM_LOGIC)
test_mm_vregion_SRCS := tests/unit/test_mm_vregion.c $(MM_SIM) $(MM_LOGIC)
test_mm_anon_SRCS    := tests/unit/test_mm_anon.c $(MM_SIM) $(MM_LOGIC)
test_mm_hotplug_SRCS := tests/unit/test_mm_hotplug.c $(MM_SIM) $(MM_LOGIC)

UNIT_TESTS += test_shrinker
test_shrinker_SRCS := tests/unit/test_shrinker.c mm/shrinker.c

BENCH_HOST += mm_bench
mm_bench_SRCS := bench/mm_bench.c $(MM_SIM) $(MM_LOGIC)
