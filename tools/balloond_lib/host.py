"""host.py - how much memory the host still has for its guests.

Contract
  Trusts: the kernel's files, but parses them defensively: a missing or
  malformed source is left out (and named in `problems`), never fatal.
  Owns: nothing; reads only. The parse_* functions are pure (text in, numbers
  out) and host-tested; read_host() is the thin shell that opens the files.
  Headroom is the *smallest* of the sources present:
    meminfo  MemAvailable (always)
    hugetlb  (HugePages_Free - HugePages_Rsvd) * Hugepagesize, when the guests
             are hugepage-backed (config `hugetlb = on`): with share=off the
             pages a balloon frees stay reserved, so Free alone overstates
    cgroup   limit - usage of the guests' memory cgroup (v1: memory.limit_in_bytes,
             memory.usage_in_bytes; v2: memory.max, memory.current); an
             unlimited cgroup is no source
  PSI (/proc/pressure/memory `some avg10`) is reported next to it, None where
  the kernel has no PSI.
"""
import os
from dataclasses import dataclass, field

UNLIMITED = 1 << 60


@dataclass
class HostView:
    headroom: int
    psi: float = None
    sources: dict = field(default_factory=dict)    # name -> headroom bytes
    detail: dict = field(default_factory=dict)     # name -> {limit, usage...} for status
    problems: list = field(default_factory=list)


def parse_meminfo(text):
    """{field: value} with kB values in bytes, counts as they are."""
    out = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1]) * (1024 if len(parts) > 2 and parts[2] == "kB" else 1)
    return out


def parse_psi(text):
    """`some avg10` of /proc/pressure/memory, or None."""
    for line in text.splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                k, _, v = item.partition("=")
                if k == "avg10":
                    try:
                        return float(v)
                    except ValueError:
                        return None
    return None


def hugetlb_headroom(mi):
    """(free - reserved) huge pages in bytes, or None when there is no pool."""
    try:
        total, free, rsvd, size = (mi["HugePages_Total"], mi["HugePages_Free"],
                                   mi["HugePages_Rsvd"], mi["Hugepagesize"])
    except KeyError:
        return None
    if total == 0:
        return None
    return max(0, free - rsvd) * size


def parse_cgroup_value(text):
    t = text.strip()
    if t == "max":
        return UNLIMITED
    return int(t)


def headroom_of(sources):
    present = {k: v for k, v in sources.items() if v is not None}
    return min(present.values()) if present else 0


def _read(path):
    with open(path) as f:
        return f.read()


def read_cgroup(path):
    """(limit, usage) in bytes of a v1 or v2 memory cgroup directory."""
    for limit_f, usage_f in (("memory.limit_in_bytes", "memory.usage_in_bytes"), ("memory.max", "memory.current")):
        lp, up = os.path.join(path, limit_f), os.path.join(path, usage_f)
        if os.path.exists(lp) and os.path.exists(up):
            return parse_cgroup_value(_read(lp)), parse_cgroup_value(_read(up))
    raise OSError(f"{path} is not a memory cgroup (no memory.limit_in_bytes or memory.max)")


def read_host(cgroup=None, hugetlb=False, proc="/proc"):
    sources, detail, problems = {}, {}, []
    try:
        mi = parse_meminfo(_read(os.path.join(proc, "meminfo")))
        sources["meminfo"] = mi.get("MemAvailable")
        detail["meminfo"] = {"MemAvailable": mi.get("MemAvailable"), "MemTotal": mi.get("MemTotal")}
        if sources["meminfo"] is None:
            problems.append("no MemAvailable in /proc/meminfo")
    except OSError as e:
        mi = {}
        problems.append(f"cannot read /proc/meminfo: {e}")
    if hugetlb:
        h = hugetlb_headroom(mi)
        if h is None:
            problems.append("hugetlb = on but the host has no huge page pool")
        else:
            sources["hugetlb"] = h
            detail["hugetlb"] = {k: mi.get(k) for k in ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd")}
    if cgroup:
        try:
            limit, usage = read_cgroup(cgroup)
            detail["cgroup"] = {"limit": limit if limit < UNLIMITED else None, "usage": usage}
            if limit < UNLIMITED:
                sources["cgroup"] = max(0, limit - usage)
        except (OSError, ValueError) as e:
            problems.append(f"cgroup {cgroup}: {e}")
    psi = None
    try:
        psi = parse_psi(_read(os.path.join(proc, "pressure", "memory")))
    except OSError:
        pass      # no PSI on this kernel: not a problem
    return HostView(headroom=headroom_of(sources), psi=psi, sources=sources, detail=detail, problems=problems)
