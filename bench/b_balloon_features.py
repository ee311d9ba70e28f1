"""b_balloon_features.py - free page reporting and the inflation rate limit.

reporting: a 512 MiB guest with free-page-reporting=on; the appliance takes
  and writes 256 MiB, then frees it. Measured: seconds from the guest's
  "shrink done" line (host clock of the serial reader) until the QEMU
  process's RSS has dropped by 90% of the 256 MiB, and the MiB dropped in
  total within 10 s; with the default report delay (2 s, like Linux) and
  with balloon.report_delay=0 (what the delay costs). RUNS boots each, medians.
rate_limit: balloon.rate=N MiB/s, the host asks for a 240 MiB balloon; the
  achieved rate is the slope of `actual` (query-balloon, sampled every 20 ms)
  between 10% and 90% of the way, for N = 8 and 32; also the seconds from
  the QMP command to the target. Unlimited (N = 0) for reference: there the
  whole 240 MiB takes about one sample, so only seconds_to_target is given.
  One boot per rate.
"""
import statistics
import time

from balloon_host import boot_to_prompt, console, guest_mib, rss_mib
from qemu import Qemu

MIB = 1 << 20
RAM, FREED, RUNS = 512, 256, 3


def report_run(build, image, name, delay_ms):
    cmdline = None if delay_ms is None else f"balloon.report_delay={delay_ms}"
    vm = Qemu(build, image, name, mem_mb=RAM, cmdline=cmdline,
              balloon_props={"free-page-reporting": "on"})
    try:
        boot_to_prompt(vm)
        time.sleep(3)    # boot-time free blocks are reported first
        console(vm, "app grow 256M", r"app: grow done: \+256 MiB", 180)
        time.sleep(0.5)
        full = rss_mib(vm)
        start = len(vm.lines)
        vm.send("app shrink 256M")
        _, _, t_freed = vm.wait_for(r"app: shrink done: -256 MiB", 60, start=start)
        t_freed += vm.t0            # serial timestamps are relative to QEMU's start
        t90 = None
        while time.monotonic() - t_freed < 10:
            drop = full - rss_mib(vm)
            if t90 is None and drop >= 0.9 * FREED:
                t90 = time.monotonic() - t_freed
            time.sleep(0.01)
        return t90, full - rss_mib(vm)
    finally:
        vm.stop()


def reporting(build, image, tag, delay_ms):
    runs = [report_run(build, image, f"bench_report_{tag}{i}", delay_ms) for i in range(RUNS)]
    times = [r[0] for r in runs if r[0] is not None]
    return {"seconds_to_90pct_rss_drop": round(statistics.median(times), 3) if len(times) == RUNS else None,
            "rss_drop_mib_in_10s": round(statistics.median(r[1] for r in runs), 1),
            "runs": [[None if r[0] is None else round(r[0], 3), round(r[1], 1)] for r in runs]}


def rate_run(build, image, rate, size=240):
    vm = Qemu(build, image, f"bench_rate_{rate}", mem_mb=RAM, cmdline=f"balloon.rate={rate}")
    try:
        boot_to_prompt(vm)
        vm.qmp.execute("balloon", {"value": (RAM - size) * MIB})
        samples, t0 = [], time.monotonic()
        while time.monotonic() - t0 < 120:
            b = RAM - guest_mib(vm)
            samples.append((time.monotonic(), b))
            if b >= size - 1:
                break
            time.sleep(0.02)
        if samples[-1][1] < size - 1:
            raise RuntimeError(f"rate {rate}: the balloon reached only {samples[-1][1]:.0f} MiB")
        lo, hi = 0.1 * size, 0.9 * size
        t_lo = next(t for t, b in samples if b >= lo)
        t_hi = next(t for t, b in samples if b >= hi)
        return (hi - lo) / max(t_hi - t_lo, 1e-3), samples[-1][0] - t0
    finally:
        vm.stop()


def bench(build, image):
    out = {"guest_mib": RAM, "freed_mib": FREED,
           "reporting_default_delay": reporting(build, image, "default", None),
           "reporting_no_delay": reporting(build, image, "nodelay", 0)}
    rates = {}
    for rate in (8, 32, 0):
        got, secs = rate_run(build, image, rate)
        if rate:
            rates[f"{rate}_mib_s"] = {"asked_mib_s": rate, "achieved_mib_s": round(got, 2),
                                      "error": round(got / rate - 1, 4), "seconds_to_target": round(secs, 2)}
        else:
            rates["unlimited"] = {"seconds_to_target": round(secs, 3)}
    out["rate_limit"] = rates
    return out
