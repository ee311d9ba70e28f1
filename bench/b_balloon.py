"""b_balloon.py - inflate/deflate rate and host memory released per ballooned
byte, on 4 KiB-backed and hugetlbfs-backed guest RAM.

Scenario (issue 4): a 2 GiB guest whose memory has been touched (the appliance
fills it, then frees it: free but resident on the host), inflated by 1 GiB,
then deflated; RUNS times per backing, medians.

Timing uses QEMU's own clock: the rate is the ballooned bytes over the time
from just before the QMP `balloon` command to the timestamp of the
BALLOON_CHANGE event that reports the target reached.
Released: 4 KiB backing - drop of the QEMU process's RSS; hugetlbfs (share=on,
the backing that can give pages to others) - what a separate process then
takes from the same pool, allocating and touching it, beyond the pool's slack
(`released_per_ballooned_byte`; HugePages_Free's rise is kept as
`huge_pages_free_rise_per_ballooned_byte` for comparison).
"""
import statistics
import time

from balloon_host import app_fill, app_release_all, boot_to_prompt
from hugetlb import hugetlb_pool, meminfo, take_huge_pages
from qemu import Qemu

MIB = 1 << 20
RAM, DELTA, RUNS = 2048, 1024, 3


def move(vm, target_mib, timeout=120):
    """Set the target; return seconds until QEMU reported it reached."""
    q = vm.qmp
    q.events.clear()
    t0 = time.time()
    q.execute("balloon", {"value": target_mib * MIB})
    deadline = time.monotonic() + timeout
    while True:
        e = q.wait_event("BALLOON_CHANGE", max(0.1, deadline - time.monotonic()))
        if abs(e["data"]["actual"] - target_mib * MIB) < 2 * MIB:
            ts = e["timestamp"]
            return ts["seconds"] + ts["microseconds"] / 1e6 - t0


def one_run(build, image, name, hugetlb_path=None):
    vm = Qemu(build, image, name, mem_mb=RAM, hugetlb_path=hugetlb_path)
    try:
        boot_to_prompt(vm)
        app_fill(vm)
        app_release_all(vm)
        used = (lambda: meminfo("HugePages_Free") * -2) if hugetlb_path else \
               (lambda: vm.status_kb("VmRSS") / 1024)
        before = used()
        slack = (meminfo("HugePages_Free") - meminfo("HugePages_Rsvd")) * 2 if hugetlb_path else 0
        t_in = move(vm, RAM - DELTA)
        released = before - used()
        free_rise = released
        if hugetlb_path:   # reuse, not a counter: another process takes them
            released = take_huge_pages(hugetlb_path, DELTA + slack) - slack
        t_out = move(vm, RAM)
        return DELTA / 1024 / t_in, DELTA / 1024 / t_out, released / DELTA, free_rise / DELTA
    finally:
        vm.stop()


def series(build, image, tag, hugetlb_path=None):
    runs = [one_run(build, image, f"bench_balloon_{tag}{i}", hugetlb_path) for i in range(RUNS)]
    med = statistics.median
    out = {"inflate_gib_per_s": round(med(r[0] for r in runs), 3),
           "deflate_gib_per_s": round(med(r[1] for r in runs), 3),
           "released_per_ballooned_byte": round(med(r[2] for r in runs), 4),
           "runs": [[round(x, 4) for x in r[:3]] for r in runs]}
    if hugetlb_path:
        out["huge_pages_free_rise_per_ballooned_byte"] = round(med(r[3] for r in runs), 4)
    return out


def bench(build, image):
    out = {"guest_mib": RAM, "ballooned_mib": DELTA, "backing_4k": series(build, image, "4k")}
    with hugetlb_pool(mib=RAM + 64) as mount:
        out["backing_hugetlbfs"] = series(build, image, "huge", mount)
    return out
