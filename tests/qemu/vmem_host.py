"""vmem_host.py - host-side steps shared by the virtio-mem scenarios and the
virtio-mem benchmark: the QEMU arguments for a virtio-mem device, whether this
host can run one, QEMU's plugged size over QMP, and the guest's `vmem` lines.

The device is QEMU 7.2's virtio-mem-pci on q35 (issue 13):
    -m 1G,maxmem=9G,slots=1 -object memory-backend-ram,id=vmem0,size=8G
    -device virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,block-size=2M
The host sets `requested-size` (qom-set vm0) and reads the plugged `size`
(qom-get vm0, or query-memory-devices).
"""
import subprocess
import time

from balloon_host import console

MIB = 1 << 20
GIB = 1 << 30
VMEM_ID = "vm0"


def vmem_args(region="8G", requested=0, block="2M", dev_id=VMEM_ID):
    return ["-object", f"memory-backend-ram,id=vmem0,size={region}",
            "-device", f"virtio-mem-pci,id={dev_id},memdev=vmem0,requested-size={requested},block-size={block}"]


def boot_mem(boot_mib, max_gib=9):
    """The -m value: boot RAM plus room for the device region."""
    return f"{boot_mib},maxmem={max_gib}G,slots=1"


def why_not(need_mib):
    """None if this host can run a virtio-mem guest that may touch
    `need_mib` MiB, else the reason (for Skip, or a bench's "skipped")."""
    try:
        out = subprocess.run(["qemu-system-x86_64", "-device", "help"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot ask QEMU for its devices: {e}"
    if "virtio-mem-pci" not in out:
        return "this QEMU has no virtio-mem-pci"
    with open("/proc/meminfo") as f:
        avail = next(int(l.split()[1]) for l in f if l.startswith("MemAvailable:"))
    if avail < need_mib * 1024:
        return f"the host has {avail >> 10} MiB available, this needs {need_mib}"
    return None


def size(vm, dev_id=VMEM_ID):
    """QEMU's plugged size in bytes."""
    return vm.qmp.execute("qom-get", {"path": dev_id, "property": "size"})


def request(vm, nbytes, timeout=120, still_s=2.0, poll_s=0.001, dev_id=VMEM_ID):
    """Set requested-size and poll QEMU's plugged size until it equals
    `nbytes` or has not moved for `still_s`. Returns (size, seconds from just
    before the qom-set to the poll that saw the final size)."""
    q = vm.qmp
    t0 = time.monotonic()
    q.execute("qom-set", {"path": dev_id, "property": "requested-size", "value": nbytes})
    last, last_t = None, t0
    while True:
        s = size(vm, dev_id)
        t = time.monotonic()
        if s == nbytes:
            return s, t - t0
        if s != last:
            last, last_t = s, t
        elif t - last_t >= still_s or t - t0 >= timeout:
            return s, last_t - t0
        time.sleep(poll_s)


def status(vm):
    """The `vmem` command: {'state', 'plugged', 'device', 'requested' (MiB),
    'free_resident', 'free_not_resident', 'movable', 'pinned' (2 MiB blocks
    of plugged memory online)}."""
    start = len(vm.lines)
    m = console(vm, "vmem", r"virtio-mem: (.*?); plugged (\d+) MiB \(device says (\d+)\), requested (\d+) MiB", 20)
    c = vm.wait_for(r"2 MiB blocks online: (\d+) free resident, (\d+) free not resident, (\d+) movable, "
                    r"(\d+) pinned", 20, start=start)[0]
    out = {"state": m.group(1), "plugged": int(m.group(2)), "device": int(m.group(3)),
           "requested": int(m.group(4))}
    out.update(zip(("free_resident", "free_not_resident", "movable", "pinned"), map(int, c.groups())))
    return out


def vmem_check(vm):
    """`vmem check`: True when the guest's books are consistent."""
    m = console(vm, "vmem check", r"vmem: (books consistent|check FAILED.*)", 20)
    return m.group(1) == "books consistent", m.group(1)


def wait_device_line(vm, timeout=120):
    """The driver's bring-up line; returns (region MiB, block MiB)."""
    m = vm.wait_for(r"virtio-mem: region 0x[0-9a-f]+ \+ (\d+) MiB, block (\d+) MiB", timeout)[0]
    return int(m.group(1)), int(m.group(2))


def wait_all_online(vm, timeout=60):
    """Boot RAM comes online from the work loop after `boot: ready`; wait for
    the line that says it is all there (idle guest for timing)."""
    vm.wait_for(r"mm: all RAM online", timeout)


