"""b_boot.py - image sizes and boot time.

Boot time is split where each side can measure it:
  firmware_s: QEMU start -> the loader's first console line (host clock; OVMF
              under TCG dominates),
  loader_ms:  the loader's own run up to ExitBootServices (guest TSC),
  kernel_ms:  ExitBootServices -> kernel ready (guest TSC, printed by the kernel:
              memory, clock and timer up, the work loop about to run),
  ready_ms:   ExitBootServices -> ready (the late initcalls done: interrupt
              lines, PCI, drivers, the application),
  total_to_ready_s: QEMU start -> "boot: ready" line (host clock).
Medians of RUNS boots of the self-test image with only the cheapest test.
"""
import os
import re
import statistics

from qemu import EXIT_PASS, Qemu

RUNS = 3


def bench(build, image):
    sizes = {
        "loader_bytes": os.path.getsize(os.path.join(build, "BOOTX64.EFI")),
        "kernel_bytes": os.path.getsize(os.path.join(build, "kernel.stripped")),
        "kernel_elf_with_debug_bytes": os.path.getsize(os.path.join(build, "kernel.elf")),
        "disk_image_bytes": os.path.getsize(image),
    }
    fw, loader, kern, ready, total = [], [], [], [], []
    for i in range(RUNS):
        with Qemu(build, image, f"bench_boot{i}", cmdline="selftest selftest.tests=core_printf_formats",
                  mem_mb=512) as vm:
            _, _, t_loader = vm.wait_for(r"loader: ", 120)
            m, _, _ = vm.wait_for(r"boot: kernel ready (\d+) us after ExitBootServices \(loader ran (\d+) us\)", 120)
            r, _, t_ready = vm.wait_for(r"boot: ready (\d+) us after ExitBootServices", 120)
            status = vm.wait_exit(60)
            if status != EXIT_PASS:
                raise RuntimeError(f"boot {i} ended with status {status}")
            fw.append(t_loader)
            total.append(t_ready)
            kern.append(int(m.group(1)) / 1000.0)
            ready.append(int(r.group(1)) / 1000.0)
            loader.append(int(m.group(2)) / 1000.0)
    med = statistics.median
    return {**sizes, "runs": RUNS, "firmware_s": round(med(fw), 3), "loader_ms": round(med(loader), 3),
            "kernel_ms": round(med(kern), 3), "ready_ms": round(med(ready), 3), "total_to_ready_s": round(med(total), 3),
            "kernel_share_of_boot": round(med(kern) / 1000.0 / med(total), 5)}
