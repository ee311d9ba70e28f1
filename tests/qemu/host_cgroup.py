"""host_cgroup.py - a memory limit around host processes for the scenarios:
a fresh child of the cgroup v1 memory controller (this host's), created for
one test and removed afterwards even when the test fails (its processes are
stopped first), and a Qemu that starts inside it so every page QEMU ever
touches is charged there."""
import contextlib
import os
import sys
import time

from qemu import Qemu

CGROUP_ROOT = "/sys/fs/cgroup/memory"
MIB = 1 << 20


class Unavailable(Exception):
    pass


def cg_read(cg, name):
    with open(os.path.join(cg, name)) as f:
        return f.read()


def cg_int(cg, name):
    return int(cg_read(cg, name).split()[0])


def cg_write(cg, name, value):
    with open(os.path.join(cg, name), "w") as f:
        f.write(str(value))


def cg_usage_mib(cg):
    return cg_int(cg, "memory.usage_in_bytes") / MIB


def cg_oom_kills(cg):
    """OOM kills inside the cgroup so far (v1 memory.oom_control), 0 if the
    kernel does not report them."""
    for line in cg_read(cg, "memory.oom_control").splitlines():
        k, _, v = line.partition(" ")
        if k == "oom_kill":
            return int(v)
    return 0


@contextlib.contextmanager
def memory_cgroup(name):
    """A fresh child of the v1 memory controller; removed on exit once its
    processes are gone (the caller stops them first)."""
    if os.geteuid() != 0:
        raise Unavailable("a memory cgroup needs root")
    if not os.path.exists(os.path.join(CGROUP_ROOT, "memory.limit_in_bytes")):
        raise Unavailable(f"no cgroup v1 memory controller at {CGROUP_ROOT}")
    path = os.path.join(CGROUP_ROOT, name)
    try:
        os.mkdir(path)
    except OSError as e:
        raise Unavailable(f"cannot create {path}: {e.strerror}") from None
    try:
        yield path
    finally:
        deadline = time.monotonic() + 15
        while cg_read(path, "cgroup.procs").strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            os.rmdir(path)
        except OSError as e:
            print(f"host_cgroup: could not remove {path}: {e}", file=sys.stderr)


def in_cgroup_argv(cg, argv):
    """argv run inside cgroup cg: a shell puts itself there and execs it (same
    pid), so the process is charged from its first page."""
    procs = os.path.join(cg, "cgroup.procs")
    return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"] + list(argv)


class CgroupQemu(Qemu):
    """Our guest, started inside a cgroup."""

    def __init__(self, *a, cgroup, **kw):
        super().__init__(*a, **kw)
        self.cgroup = cgroup

    def argv(self):
        return in_cgroup_argv(self.cgroup, super().argv())
