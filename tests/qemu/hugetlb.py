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
