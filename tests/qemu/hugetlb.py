"""hugetlb.py - back guest RAM with 2 MiB host pages for a test, then put the
host back as it was, even when the test fails.

    with hugetlb_pool(mib=1024) as mount:    # raises Unavailable if not root
        Qemu(..., hugetlb_path=mount)

Adds the pages to /proc/sys/vm/nr_hugepages (never lowers what others set),
mounts a private hugetlbfs, and on exit unmounts it and restores nr_hugepages.
Pools are taken one at a time in this process (a lock), so parallel scenarios
cannot restore each other's settings.
"""
import contextlib
import os
import subprocess
import sys
import tempfile
import threading

NR = "/proc/sys/vm/nr_hugepages"
_lock = threading.Lock()


class Unavailable(Exception):
    pass


def meminfo(field):
    """A /proc/meminfo field (HugePages_Free is a count, others KiB)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _write_nr(n):
    with open(NR, "w") as f:
        f.write(str(n))


@contextlib.contextmanager
def hugetlb_pool(mib):
    if os.geteuid() != 0:
        raise Unavailable("hugetlbfs tests need root (nr_hugepages, mount)")
    with _lock:
        pages = (mib + 1) // 2
        with open(NR) as f:
            before = int(f.read())
        mount = tempfile.mkdtemp(prefix="balloon-hugetlb-")
        mounted = False
        try:
            _write_nr(before + pages)
            free = meminfo("HugePages_Free")
            if free < pages:
                raise Unavailable(f"asked the kernel for {pages} huge pages, {free} are free")
            subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", mount], check=True)
            mounted = True
            yield mount
        finally:
            if mounted:
                subprocess.run(["umount", mount], check=False)
            os.rmdir(mount)
            _write_nr(before)


TAKE = r"""
import mmap, os, sys
path, want = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
got = 0
try:
    while got < want:
        try:   # allocate one huge page; ENOSPC when the pool has none left
            os.posix_fallocate(fd, got << 21, 1 << 21)
        except OSError:
            break
        got += 1
    if got:   # and touch every page, as a guest or a database would
        m = mmap.mmap(fd, got << 21)
        for i in range(got):
            m[i << 21] = 1
        m.close()
finally:
    os.close(fd)
    os.unlink(path)
print(got * 2)
"""


def take_huge_pages(mount, mib):
    """What another process can really get from the pool now: a separate
    process allocates (fallocate on a hugetlbfs file, which fails cleanly
    where a touch would SIGBUS) and touches up to `mib` MiB of huge pages,
    then exits and gives them back. Returns the MiB it got."""
    path = os.path.join(mount, f"taker-{os.getpid()}-{threading.get_ident()}")
    p = subprocess.run([sys.executable, "-c", TAKE, path, str(int(mib) // 2)], capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"huge page taker failed: {p.stderr.strip()[-300:]}")
    return int(p.stdout.strip())


@contextlib.contextmanager
def pool_for_scenario(ctx, mib):
    """hugetlb_pool for a QEMU scenario: a host that cannot give one makes
    the scenario skipped (with the reason), and the scenario's guests are
    stopped before the pool goes away."""
    from scenarios import Skip
    try:
        pool = hugetlb_pool(mib)
        mount = pool.__enter__()
    except Unavailable as e:
        raise Skip(f"cannot set up hugetlbfs: {e}") from None
    try:
        yield mount
    finally:
        ctx.cleanup()
        pool.__exit__(None, None, None)
