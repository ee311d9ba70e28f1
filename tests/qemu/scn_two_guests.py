"""scn_two_guests.py - memory given by one running guest to another (what
VirtualBox's balloon service and VMware do): two guests on one hugetlbfs
pool that fits only 1.5 of them, both backed share=on,reserve=off (the
backing that lets released huge pages go to others, and lets one pool be
overcommitted). A guest that faults on an empty pool would die of SIGBUS:
the balloon must release what the other needs, resident pages first."""
import time

from balloon_host import app_check, boot_to_prompt, console, set_target
from hugetlb import meminfo, pool_for_scenario
from scenarios import check, scenario

RAM = 2048
POOL = RAM * 3 // 2          # MiB: 1.5 guests


def pool_line(step):
    free, rsvd = meminfo("HugePages_Free") * 2, meminfo("HugePages_Rsvd") * 2
    return f"{step}: pool free {free} MiB, reserved {rsvd} MiB", free


def grow(vm, mib, timeout=300):
    m = console(vm, f"app grow {mib}M", r"app: grow (done|stopped).*held (\d+) MiB", timeout)
    check(m.group(1) == "done", f"{vm.name}: the app's grow stopped: {vm.tail(3)}")
    return int(m.group(2))


def alive(*vms):
    for vm in vms:
        check(vm.proc.poll() is None, f"{vm.name}: QEMU died (exit {vm.proc.poll()}): SIGBUS on an empty pool?")


@scenario("two_guests_one_pool")
def two_guests_one_pool(ctx):
    """Guest A (2 GiB) has used all its memory and holds 512 MiB of app data;
    it inflates by 1 GiB. Guest B starts on the same pool and grows its app by
    1.5 GiB into the pages A gave up. Then B shrinks and balloons them back,
    A deflates and refills. Both apps' checksums hold, neither QEMU dies, and
    the pool's counts are printed at each step."""
    steps = []
    with pool_for_scenario(ctx, POOL) as mount:
        kw = dict(mem_mb=RAM, hugetlb_path=mount, hugetlb_share=True, hugetlb_reserve=False,
                  balloon_props={"deflate-on-oom": "on"})
        a = ctx.vm(name=f"{ctx.name}_a", **kw)
        boot_to_prompt(a)
        console(a, "app fill 64M", r"app: fill done", 300)     # A has touched (nearly) all its RAM
        console(a, "app shrink all", r"app: shrink done")
        grow(a, 512)
        line, free_a_full = pool_line("A used its memory, holds 512 MiB")
        steps.append(line)
        # without A's release the pool could not hold what B is about to use
        check(free_a_full < 1536, f"the pool still has {free_a_full} MiB free: it would fit B anyway")
        got, _ = set_target(a, RAM - 1024, timeout=120)
        check(abs(got - (RAM - 1024)) < 2, f"A's inflate stopped at {got:.0f} MiB")
        line, free_after_a = pool_line("A inflated by 1 GiB")
        steps.append(line)
        check(free_after_a >= free_a_full + 1000, f"the pool gained only {free_after_a - free_a_full} MiB")

        b = ctx.vm(name=f"{ctx.name}_b", **kw)
        boot_to_prompt(b)
        held_b = grow(b, 1536)
        alive(a, b)
        line, _ = pool_line(f"B grew its app to {held_b} MiB")
        steps.append(line)
        app_check(b)
        app_check(a)

        console(b, "app shrink all", r"app: shrink done")
        got, _ = set_target(b, RAM - 1536, timeout=120)         # B gives them back
        check(abs(got - (RAM - 1536)) < 2, f"B's inflate stopped at {got:.0f} MiB")
        line, _ = pool_line("B shrank and ballooned 1.5 GiB")
        steps.append(line)
        got, _ = set_target(a, RAM, timeout=120)
        check(abs(got - RAM) < 2, f"A's deflate stopped at {got:.0f} MiB")
        grow(a, 1024)
        alive(a, b)
        line, _ = pool_line("A deflated and refilled to 1.5 GiB")
        steps.append(line)
        app_check(a)
        for s in steps:
            ctx.note(s)
