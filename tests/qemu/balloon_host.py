"""balloon_host.py - host-side steps shared by the balloon scenarios and the
balloon benchmark: boot a guest to its prompt, move the balloon through QMP and
wait for `actual`, make the guest touch memory with the appliance workload, and
read what the QEMU process really holds on the host.
"""
import re
import time

from scenarios import check

MIB = 1 << 20


def boot_to_prompt(vm, timeout=180):
    """Start `vm` (not self-test mode) and wait until the kernel is ready and
    the balloon driver is up. Returns the serial line index after boot."""
    vm.start()
    _, idx, _ = vm.wait_for(r"boot: ready", timeout)
    return idx


def console(vm, command, expect, timeout=120):
    """Type a console command and wait for a line matching `expect` after it."""
    start = len(vm.lines)
    vm.send(command)
    m, _, _ = vm.wait_for(expect, timeout, start=start)
    return m


def guest_mib(vm):
    """Guest memory as QEMU sees it: RAM minus what the balloon holds."""
    return vm.qmp.execute("query-balloon")["actual"] / MIB


def set_target(vm, target_mib, timeout=120, settle=3.0):
    """Ask for `target_mib` of guest memory and wait until `actual` reaches it
    (within 2 MiB: the guest works in 2 MiB blocks) or stops moving for
    `settle` seconds. Returns (final guest MiB, seconds from the command)."""
    vm.qmp.execute("balloon", {"value": int(target_mib * MIB)})
    t0 = time.monotonic()
    last, last_change = None, t0
    while True:
        now = guest_mib(vm)
        t = time.monotonic()
        if abs(now - target_mib) < 2:
            return now, t - t0
        if now != last:
            last, last_change = now, t
        elif t - last_change > settle:
            return now, t - t0
        if t - t0 > timeout:
            return now, t - t0
        time.sleep(0.01)


def rss_mib(vm):
    """What the QEMU process holds: RSS for 4 KiB backing, plus hugetlbfs pages."""
    return (vm.status_kb("VmRSS") + vm.status_kb("HugetlbPages")) / 1024


def app_fill(vm, timeout=300):
    """Make the appliance workload take (and write) all memory it can get.
    Returns the MiB it holds."""
    m = console(vm, "app fill", r"app: fill (?:done|stopped).*?held (\d+) MiB", timeout)
    return int(m.group(1))


def app_release_all(vm, timeout=120):
    console(vm, "app shrink all", r"app: shrink done: .*held 0 MiB", timeout)


def app_check(vm, timeout=300):
    m = console(vm, "app check", r"app: check (ok|FAILED)", timeout)
    check(m.group(1) == "ok", f"the appliance found corrupted memory:\n{vm.tail()}")


# ---- statistics and the guest's own view (used by scn_balloon_features.py)

BALLOON_QOM = "/machine/peripheral/balloon0"
STAT_ABSENT = (1 << 64) - 1   # QEMU's value for a tag the guest did not send


def enable_stats(vm, interval=1):
    """Ask QEMU to poll the guest's statistics every `interval` seconds."""
    vm.qmp.execute("qom-set", {"path": BALLOON_QOM, "property": "guest-stats-polling-interval",
                               "value": interval})


def guest_stats(vm, newer_than=0, timeout=30):
    """QMP guest-stats once QEMU has a buffer from the guest newer than
    `newer_than` (its last-update, seconds). Returns (stats dict, last-update)."""
    deadline = time.monotonic() + timeout
    while True:
        r = vm.qmp.execute("qom-get", {"path": BALLOON_QOM, "property": "guest-stats"})
        if r.get("last-update", 0) > newer_than:
            return r["stats"], r["last-update"]
        check(time.monotonic() < deadline, f"QEMU got no statistics from the guest in {timeout} s")
        time.sleep(0.2)


def mem_info(vm):
    """The guest's `mem` line: {'total': MiB, 'free': MiB, 'balloon': MiB, 'reported': MiB}."""
    m = console(vm, "mem", r"mem: total (\d+) MiB, free (\d+) MiB .*balloon (\d+) MiB, reported (\d+) MiB", 20)
    return {k: int(v) for k, v in zip(("total", "free", "balloon", "reported"), m.groups())}


def ram_mib(vm):
    return vm.qmp.execute("query-memory-size-summary")["base-memory"] / MIB


def wait_guest_mib(vm, want_mib, timeout=60, tol=2):
    """Wait (without asking for anything) until the guest's memory as QEMU
    sees it is within `tol` MiB of want_mib. Returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        now = guest_mib(vm)
        if abs(now - want_mib) < tol:
            return time.monotonic() - t0
        check(time.monotonic() - t0 < timeout,
              f"guest memory is {now:.0f} MiB after {timeout} s, expected {want_mib:.0f}:\n{vm.tail(8)}")
        time.sleep(0.05)


def balloon_details(vm):
    """The `balloon` console command's lines, as one string."""
    start = len(vm.lines)
    vm.send("balloon")
    vm.wait_for(r"balloon: shortfall: ", 20, start=start)
    return "\n".join(t for _, t in vm.lines[start:])
