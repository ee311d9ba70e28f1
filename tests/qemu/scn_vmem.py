"""scn_vmem.py - virtio-mem end to end against QEMU 7.2 (TCG, q35): the host
plugs memory with QMP, the appliance fills it with checksummed data, the host
takes part of it back while the data is spread over the plugged range, and
the host's own accounting (QEMU's `size`, the process's RSS) shows it; then
asks for more than can be freed and the guest says how much and why.

Skipped (not passed) where QEMU has no virtio-mem-pci or the host has not
the ~4 GiB of free memory the guest may touch."""
import os
import re
import subprocess
import time

from balloon_host import console, rss_mib
from scenarios import Skip, check, scenario

MIB = 1 << 20
GIB = 1 << 30
CTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "balloonctl")
VMEM = ["-object", "memory-backend-ram,id=vmem0,size=8G",
        "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,block-size=2M"]


def host_can_run():
    try:
        out = subprocess.run(["qemu-system-x86_64", "-device", "help"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Skip(f"cannot ask QEMU for its devices: {e}") from None
    if "virtio-mem-pci" not in out:
        raise Skip("this QEMU has no virtio-mem-pci")
    with open("/proc/meminfo") as f:
        avail = next(int(l.split()[1]) for l in f if l.startswith("MemAvailable:"))
    if avail < 4 * 1024 * 1024:
        raise Skip(f"the host has {avail >> 10} MiB available, the scenario needs 4096")


def size(vm):
    return vm.qmp.execute("qom-get", {"path": "vm0", "property": "size"})


def request(vm, nbytes, timeout=120):
    """Set requested-size; wait until QEMU's plugged size stops moving.
    Returns (size, seconds)."""
    t0 = time.monotonic()
    vm.qmp.execute("qom-set", {"path": "vm0", "property": "requested-size", "value": nbytes})
    last, still = None, 0
    while time.monotonic() - t0 < timeout:
        s = size(vm)
        if s == nbytes:
            return s, time.monotonic() - t0
        still = still + 1 if s == last else 0
        if still >= 40:   # 2 s without progress
            return s, time.monotonic() - t0
        last = s
        time.sleep(0.05)
    return size(vm), time.monotonic() - t0


def ctl(vm, *args, timeout=120):
    """tools/balloonctl on the guest's QMP socket (QEMU serves one client
    at a time: ours is closed first and reopens on its next use)."""
    if vm._qmp:
        vm._qmp.close()
        vm._qmp = None
    p = subprocess.run([CTL, "--socket", vm.qmp_path, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def vmem_status(vm):
    m = console(vm, "vmem", r"virtio-mem: (.*); plugged (\d+) MiB \(device says (\d+)\)", 20)
    return m.group(1), int(m.group(2)), int(m.group(3))


@scenario("vmem_plug_unplug")
def vmem_plug_unplug(ctx):
    """Plug 2 GiB; the app fills memory with checksummed data and gives part
    of it back (what it keeps is spread over boot RAM and the plugged range);
    unplug 1 GiB: the checksums hold, QEMU's size is 1 GiB, QEMU's RSS drops
    by at least 0.9 of what was unplugged. Then ask for everything back: the
    guest keeps what its data needs and says how much it could not give and
    why, its books agree with the device, and the data still checks."""
    host_can_run()
    vm = ctx.vm(mem_mb="1024,maxmem=9G,slots=1", extra=VMEM)
    vm.start()
    vm.wait_for(r"virtio-mem: region 0x[0-9a-f]+ \+ 8192 MiB, block 2 MiB", 120)
    vm.wait_for(r"boot: ready", 60)

    # The host side through balloonctl: read, refuse what QEMU would refuse, plug.
    rc, out = ctl(vm, "vmem")
    check(rc == 0 and re.search(r"virtio-mem vm0: plugged 0 MiB, requested 0 MiB, region 8192 MiB at 0x[0-9a-f]+, "
                                r"block 2 MiB", out), f"balloonctl vmem: rc {rc}, {out!r}")
    for bad, why in (("3M", "not a multiple of the device's block size"), ("9G", "more than the device's region")):
        rc, out = ctl(vm, "vmem", "set", bad)
        check(rc == 2 and why in out, f"balloonctl vmem set {bad}: rc {rc}, {out!r}")
    t0 = time.monotonic()
    rc, out = ctl(vm, "vmem", "set", "2G", "--wait", "60")
    secs = time.monotonic() - t0
    check(rc == 0 and "reached: plugged 2048 MiB" in out, f"balloonctl vmem set 2G: rc {rc}, {out!r}")
    got = size(vm)
    check(got == 2 * GIB, f"QEMU's plugged size is {got >> 20} MiB, asked for 2048")
    ctx.note(f"plug 2048 MiB: {secs:.2f} s (balloonctl vmem set 2G --wait, a process start included)")
    state, plugged, dev = vmem_status(vm)
    check((state, plugged, dev) == ("at target", 2048, 2048), f"vmem says {state}, {plugged}/{dev} MiB")

    # Fill everything but 256 MiB (boot RAM and plugged memory both), then
    # give 1100 MiB back: what stays is spread over the plugged range.
    m = console(vm, "app fill 256M", r"app: fill done: \+(\d+) MiB .*held (\d+) MiB", 900)
    filled = int(m.group(2))
    check(filled > 2048, f"the app got only {filled} MiB of ~2800")
    m = console(vm, "app shrink 1100M", r"app: shrink done: -1100 MiB, held (\d+) MiB", 120)
    held = int(m.group(1))
    console(vm, "app check", rf"app: check ok, {held} MiB verified", 900)
    rss_before = rss_mib(vm)

    got, secs = request(vm, 1 * GIB)
    check(got == 1 * GIB, f"unplug stopped at {got >> 20} MiB, asked for 1024: {vm.tail(5)}")
    time.sleep(1)
    rss_after = rss_mib(vm)
    ctx.note(f"unplug 1024 MiB with {held} MiB of app data: {secs:.2f} s; QEMU RSS "
             f"{rss_before:.0f} -> {rss_after:.0f} MiB")
    check(rss_before - rss_after >= 0.9 * 1024,
          f"QEMU's RSS fell by {rss_before - rss_after:.0f} MiB for 1024 MiB unplugged")
    console(vm, "app check", rf"app: check ok, {held} MiB verified", 900)
    console(vm, "vmem check", r"vmem: books consistent", 20)
    state, plugged, dev = vmem_status(vm)
    check(plugged == dev == 1024, f"vmem says {plugged} MiB plugged, device {dev} MiB")
    m = vm.wait_for(r"2 MiB blocks online: (\d+) free resident, (\d+) free not resident, (\d+) movable", 5,
                    start=len(vm.lines) - 5)[0]
    free_blocks = int(m.group(1)) + int(m.group(2))

    # More than can be freed: the data needs more than boot RAM.
    start = len(vm.lines)
    got, _ = request(vm, 0, timeout=30)
    m, _, _ = vm.wait_for(r"virtio-mem: cannot unplug (\d+) MiB more \(plugged (\d+) MiB, requested 0 MiB\): "
                          r"(.*); retrying", 30, start=start)
    short, plugged_line = int(m.group(1)), int(m.group(2))
    ctx.note(f"unplug to 0 with {held} MiB held: stopped at {got >> 20} MiB plugged; guest: {m.group(3)}")
    check(short == plugged_line == got >> 20, f"shortfall {short} MiB, plugged {plugged_line}, QEMU {got >> 20}")
    check(re.search(r"min_free|no room|unmovable", m.group(3)), f"no reason given: {m.group(0)}")
    state, plugged, dev = vmem_status(vm)
    check(state == "short" and plugged == dev == got >> 20, f"vmem says {state}, {plugged}/{dev} MiB")
    # Past the free blocks, every block given back was emptied by moving app data.
    check(got >> 20 < 1024 - 2 * free_blocks,
          f"nothing beyond the {free_blocks} free blocks was unplugged ({got >> 20} MiB left)")
    console(vm, "app check", rf"app: check ok, {held} MiB verified", 900)
    console(vm, "vmem check", r"vmem: books consistent", 20)
    # balloonctl's bounded wait says where the guest stopped and why it may have.
    rc, out = ctl(vm, "vmem", "set", "0", "--wait", "1")
    check(rc == 4 and f"stopped at {got >> 20} MiB plugged" in out and "the guest unplugged nothing" in out
          and "minimum free memory" in out,
          f"balloonctl vmem set 0 --wait 1 on a guest that cannot: rc {rc}, {out!r}")
    rc, out = ctl(vm, "vmem")
    check(rc == 0 and f"plugged {got >> 20} MiB, requested 0 MiB" in out, f"balloonctl vmem: rc {rc}, {out!r}")
