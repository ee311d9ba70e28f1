"""b_idle.py - what an idle guest costs the host, and how fast the balloon
reacts to a new target when it is woken only by the device.

Guest: 1 GiB, `make run`'s devices (modern virtio-balloon behind a root port,
deflate-on-oom, free-page-reporting). After the prompt and a settling pause:
- idle: the QEMU process's CPU time (utime + stime from /proc/PID/stat) over
  IDLE_S seconds of wall time, as a share of one host core; and the guest's
  own count of work-loop wake-ups over the same window (`uptime`; absent on
  kernels before the tickless loop, reported as null).
- reaction: host QMP `balloon` (64 MiB more) -> the first BALLOON_CHANGE event
  (the guest wrote `actual` after its first acked element) and -> the event
  that reports the target reached; QEMU's event timestamps against the host
  clock just before the command. Medians of RUNS, deflating in between.
Guest side (`balloon`): configuration interrupt -> the poll that reads the
new target, and new target -> its first element on a queue, medians.
The interrupt path the driver uses (`balloon`: MSI-X, INTx or polling) is
reported with the figures. BENCH_IMAGE=path runs the same bench on another
image (an older build, for a before/after in one run).
"""
import os
import re
import statistics
import time

from balloon_host import boot_to_prompt, console
from qemu import Qemu

MIB = 1 << 20
RAM, STEP, IDLE_S, RUNS = 1024, 64, 20, 5


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(vm):
    m = console(vm, "uptime", r"up \d+\.\d+ s, (\d+) timer ticks(?:, (\d+) wake-ups)?")
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def reaction(vm, target_mib, timeout=60):
    """Seconds from the command to the first BALLOON_CHANGE and to the target."""
    q = vm.qmp
    q.events.clear()
    t0 = time.time()
    q.execute("balloon", {"value": target_mib * MIB})
    first = None
    deadline = time.monotonic() + timeout
    while True:
        e = q.wait_event("BALLOON_CHANGE", max(0.1, deadline - time.monotonic()))
        ts = e["timestamp"]
        t = ts["seconds"] + ts["microseconds"] / 1e6 - t0
        first = t if first is None else first
        if abs(e["data"]["actual"] - target_mib * MIB) < MIB:
            return first, t


def guest_reaction(vm):
    """The guest's own figures for the last target (kernels that print them)."""
    start = len(vm.lines)
    vm.send("balloon")
    try:
        m, _, _ = vm.wait_for(r"reaction: configuration interrupt -> poll (\d+) us, "
                              r"new target -> first element (\d+) us", 5, start=start)
        return int(m.group(1)), int(m.group(2))
    except TimeoutError:
        return None


def bench(build, image):
    image = os.environ.get("BENCH_IMAGE", image)
    vm = Qemu(build, image, "bench_idle", mem_mb=RAM,
              balloon_props={"deflate-on-oom": "on", "free-page-reporting": "on"})
    try:
        boot_to_prompt(vm)
        time.sleep(5)          # boot-time free page reporting settles
        m = console(vm, "balloon", r"^interrupts: (\S+)")
        mode = m.group(1).rstrip(",")
        ticks0, wake0 = wakeups(vm)
        c0, t0 = cpu_seconds(vm.proc.pid), time.monotonic()
        time.sleep(IDLE_S)
        c1, t1 = cpu_seconds(vm.proc.pid), time.monotonic()
        ticks1, wake1 = wakeups(vm)
        secs = t1 - t0
        runs, guest = [], []
        for _ in range(RUNS):
            runs.append(reaction(vm, RAM - STEP))
            g = guest_reaction(vm)
            if g:
                guest.append(g)
            reaction(vm, RAM)
        med = statistics.median
        return {
            "guest_mib": RAM,
            "interrupts": mode,
            "idle_seconds": round(secs, 1),
            "idle_host_cpu_share": round((c1 - c0) / secs, 4),
            "idle_timer_ticks_per_s": round((ticks1 - ticks0) / secs, 2),
            "idle_wakeups_per_s": round((wake1 - wake0) / secs, 2) if wake0 is not None else None,
            "reaction_first_change_ms": round(med(r[0] for r in runs) * 1000, 2),
            "reaction_64mib_reached_ms": round(med(r[1] for r in runs) * 1000, 2),
            "reaction_runs_ms": [[round(a * 1000, 2), round(b * 1000, 2)] for a, b in runs],
            "guest_irq_to_poll_us": med(g[0] for g in guest) if guest else None,
            "guest_target_to_first_element_us": med(g[1] for g in guest) if guest else None,
            "goal_idle_host_cpu_share": 0.004,
            "reference_linux_6_1_idle_host_cpu_share": 0.004,
        }
    finally:
        vm.stop()
