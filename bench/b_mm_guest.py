"""b_mm.py - the compaction scenario of bench/mm_bench.c, in the guest on real
page tables (TCG, so compare ratios, not absolute speeds): 1 GiB guest, the
movable heap filled and fragmented, then compacted. The guest prints one JSON
object on a line starting with `mm_guest_bench:` (tests/guest/mm_tests.c)."""
import json

from qemu import EXIT_PASS, Qemu


def bench(build, image):
    with Qemu(build, image, "bench_mm", cmdline="selftest selftest.tests=mm_bench_compact",
              mem_mb=1024) as vm:
        m, _, _ = vm.wait_for(r"mm_guest_bench: (\{.*\})", 300)
        status = vm.wait_exit(60)
        if status != EXIT_PASS:
            raise RuntimeError(f"guest bench ended with status {status}")
        return json.loads(m.group(1))
