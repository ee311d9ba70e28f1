"""scn_balloon_features.py - the balloon's user features against real QEMU:
statistics the host can read, deflate on OOM (and the clean failure
without it), free page reporting (the QEMU process really gives memory
back), the initial balloon, max / min_free / rate knobs, and shrinkers asked
lowest priority first. Guests are small (512 MiB) and each scenario boots
once."""
import re
import time

from balloon_host import (MIB, STAT_ABSENT, app_check, balloon_details, boot_to_prompt, console,
                          enable_stats, guest_mib, guest_stats, mem_info, ram_mib, rss_mib,
                          set_target, wait_guest_mib)
from scenarios import check, scenario
from scn_boot import run_selftests
from qemu import EXIT_PASS

RAM = 512


def stats_mib(stats, name):
    return stats[f"stat-{name}"] / MIB


def compare_stats(vm):
    """QEMU's guest-stats, from a buffer the guest filled after this call
    began, against the guest's own `mem`; returns (stats, mem)."""
    stats, _ = guest_stats(vm, newer_than=int(time.time()))
    mem = mem_info(vm)
    # Linux's convention (drivers/balloon/stats.c): without deflate-on-oom the
    # ballooned memory is not part of the total, as libvirt expects
    expect_total = mem["total"] - mem["balloon"]
    check(int(stats_mib(stats, "total-memory")) == expect_total,
          f"stat-total-memory {stats_mib(stats, 'total-memory'):.1f} MiB, `mem` says total {mem['total']} "
          f"MiB with {mem['balloon']} MiB ballooned")
    check(abs(stats_mib(stats, "free-memory") - mem["free"]) <= 1,
          f"stat-free-memory {stats_mib(stats, 'free-memory'):.1f} MiB, `mem` says free {mem['free']} MiB")
    check(stats["stat-available-memory"] == stats["stat-free-memory"] + stats["stat-disk-caches"],
          f"available != free + caches: {stats}")
    for name in ("swap-in", "swap-out", "major-faults", "minor-faults"):
        check(stats[f"stat-{name}"] == 0, f"stat-{name} is {stats[f'stat-{name}']}: no swap, no faults")
    for name in ("htlb-pgalloc", "htlb-pgfail"):
        check(stats[f"stat-{name}"] == 0, f"stat-{name} is {stats[f'stat-{name}']}: there is no hugetlb pool")
    return stats, mem


@scenario("balloon_stats")
def balloon_stats(ctx):
    """QMP guest-stats agree with the guest's `mem` and `shrinkers`: free and
    total exactly (MiB), caches = the app cache, available = free + caches;
    swap and faults 0, hugetlb absent; the numbers follow the guest."""
    vm = ctx.vm(mem_mb=RAM)
    boot_to_prompt(vm)
    enable_stats(vm, 1)
    _, mem0 = compare_stats(vm)

    console(vm, "app cache 16M", r"app: cache target 16 MiB")
    for _ in range(100):
        m = console(vm, "shrinkers", r"app-cache\s+prio\s+\d+: can free (\d+) pages", 20)
        if int(m.group(1)) == 4096:
            break
        time.sleep(0.1)
    console(vm, "app grow 64M", r"app: grow done: \+64 MiB")
    got, _ = set_target(vm, RAM - 100)
    check(abs(got - (RAM - 100)) < 2, f"inflate stopped at {got:.0f} MiB")
    stats, mem1 = compare_stats(vm)
    check(abs(stats_mib(stats, "disk-caches") - 16) < 0.01,
          f"stat-disk-caches {stats_mib(stats, 'disk-caches'):.2f} MiB, the app cache holds 16 MiB")
    drop = mem0["free"] - mem1["free"]
    check(abs(drop - (100 + 64 + 16)) <= 3, f"free fell by {drop} MiB for a 100 MiB balloon, 64 MiB app, 16 MiB cache")
    # the guest's `balloon stats` shows the same bytes QEMU got
    m = console(vm, "balloon stats", r"balloon: stats: .*free-memory=(\d+) total-memory=(\d+)")
    check(int(m.group(2)) == stats["stat-total-memory"], "`balloon stats` total differs from QEMU's")
    check(abs(int(m.group(1)) - stats["stat-free-memory"]) <= MIB, "`balloon stats` free differs from QEMU's")
    ctx.note(f"guest-stats: free {stats_mib(stats, 'free-memory'):.1f} MiB (mem {mem1['free']}), "
             f"total {stats_mib(stats, 'total-memory'):.1f} MiB (mem {mem1['total']}), caches "
             f"{stats_mib(stats, 'disk-caches'):.0f} MiB, available {stats_mib(stats, 'available-memory'):.1f} MiB")


def oom_setup(ctx, props):
    vm = ctx.vm(mem_mb=RAM, balloon_props=props)
    boot_to_prompt(vm)
    got, _ = set_target(vm, 256)
    check(abs(got - 256) < 2, f"inflate stopped at {got:.0f} MiB")
    vm.wait_for(r"balloon: at target \d+ pages \(256 MiB\)", 10)
    return vm, mem_info(vm)


@scenario("balloon_deflate_on_oom")
def balloon_deflate_on_oom(ctx):
    """deflate-on-oom=on: an app allocation beyond free memory succeeds, the
    balloon gives the difference back (actual drops, in 8 MiB steps), the
    memory checks out, and the balloon does not re-inflate into the same
    shortage until the host sets a new target."""
    vm, mem = oom_setup(ctx, {"deflate-on-oom": "on"})
    want = mem["free"] + 64          # more than is free
    start = len(vm.lines)
    t0 = time.monotonic()
    console(vm, f"app grow {want}M", rf"app: grow done: \+{want} MiB, held {want} MiB", 180)
    secs = time.monotonic() - t0
    after = guest_mib(vm)
    check(after >= 256 + 64, f"guest has {after:.0f} MiB after the app took {want} MiB beyond "
                             f"{mem['free']} MiB free: the balloon did not give enough back")
    check(after <= 256 + 64 + 32, f"the balloon gave back {after - 256:.0f} MiB for a 64 MiB shortage")
    vm.wait_for(r"balloon: deflated on OOM: \d+ MiB in \d+ deflates", 5, start=start)
    details = balloon_details(vm)
    m = re.search(r"oom: deflate-on-oom; (\d+) deflates \((\d+) pages\), (\d+) timeouts", details)
    check(m and int(m.group(1)) > 0 and int(m.group(3)) == 0, f"OOM counters:\n{details}")
    check("held since a deflate on OOM" in details, f"no OOM hold:\n{details}")
    app_check(vm)
    ctx.note(f"app took {want} MiB with {mem['free']} MiB free in {secs:.1f} s; guest memory 256 -> "
             f"{after:.0f} MiB in {m.group(1)} OOM deflates")
    # the app lets go: no re-inflation into the same shortage
    console(vm, "app shrink all", r"app: shrink done", 60)
    time.sleep(3)
    check(abs(guest_mib(vm) - after) < 1, f"the balloon re-inflated without a new target: {guest_mib(vm):.0f} MiB")
    # a new host target ends the hold
    got, _ = set_target(vm, 300)
    check(abs(got - 300) < 2, f"new target 300 MiB ended at {got:.0f} MiB")
    console(vm, "balloon check", r"balloon: books consistent", 30)


@scenario("balloon_no_deflate_on_oom")
def balloon_no_deflate_on_oom(ctx):
    """Without deflate-on-oom the same allocation fails cleanly: the app says
    so, the balloon keeps every page, the memory the app has is intact."""
    vm, mem = oom_setup(ctx, {})
    want = mem["free"] + 64
    m = console(vm, f"app grow {want}M",
                rf"app: grow stopped at \+(\d+) MiB of {want} MiB: allocation failed; held (\d+) MiB", 180)
    check(int(m.group(1)) < want and int(m.group(1)) >= mem["free"] - 32,
          f"the app got {m.group(1)} MiB with {mem['free']} MiB free")
    time.sleep(1)
    check(abs(guest_mib(vm) - 256) < 1, f"the balloon gave memory back without DEFLATE_ON_OOM: {guest_mib(vm):.0f} MiB")
    details = balloon_details(vm)
    check(re.search(r"oom: off; 0 deflates", details), f"OOM counters:\n{details}")
    app_check(vm)
    console(vm, "uptime", r"up \d+\.\d+ s")
    console(vm, "balloon check", r"balloon: books consistent", 30)


@scenario("balloon_free_page_reporting")
def balloon_free_page_reporting(ctx):
    """free-page-reporting=on: after the app frees 256 MiB, the QEMU process's
    RSS drops by most of it within seconds (default 2 s delay); the reported
    memory is usable again at once and checks out."""
    vm = ctx.vm(mem_mb=RAM, balloon_props={"free-page-reporting": "on"})
    boot_to_prompt(vm)
    vm.wait_for(r"virtio-balloon: using .*page-reporting", 1)
    time.sleep(3)                     # boot-time free blocks get reported first
    console(vm, "app grow 256M", r"app: grow done: \+256 MiB", 180)
    time.sleep(0.5)
    rss_full = rss_mib(vm)
    m = console(vm, "app shrink 256M", r"app: shrink done: -256 MiB")
    t0 = time.monotonic()
    drop, secs = 0, None
    while time.monotonic() - t0 < 20:
        drop = rss_full - rss_mib(vm)
        if drop >= 0.8 * 256:
            secs = time.monotonic() - t0
            break
        time.sleep(0.05)
    ctx.note(f"RSS {rss_full:.0f} MiB with the app holding 256 MiB; dropped {drop:.0f} MiB "
             f"{'in %.2f s' % secs if secs is not None else 'at most'} after the frees")
    check(secs is not None, f"RSS dropped only {drop:.0f} MiB of 256 in 20 s")
    check(secs < 6, f"RSS took {secs:.1f} s to drop (report delay 2 s)")
    details = balloon_details(vm)
    m = re.search(r"reporting: on; (\d+) blocks", details)
    check(m and int(m.group(1)) >= 100, f"reporting counters:\n{details}")
    mem = mem_info(vm)
    check(mem["reported"] >= 200, f"`mem` shows {mem['reported']} MiB reported")
    # reported memory is reusable immediately and not corrupt
    console(vm, "app grow 256M", r"app: grow done: \+256 MiB", 180)
    app_check(vm)
    console(vm, "balloon check", r"balloon: books consistent", 30)


@scenario("balloon_initial")
def balloon_initial(ctx):
    """balloon.initial=128M: the balloon reaches 128 MiB at boot without any
    QMP command; the host's first target takes over, also a smaller one."""
    vm = ctx.vm(mem_mb=RAM, cmdline="balloon.initial=128M")
    idx = boot_to_prompt(vm)
    secs = wait_guest_mib(vm, RAM - 128, timeout=30)
    vm.wait_for(r"balloon: new target 32768 pages \(128 MiB\).*\(initial balloon\)", 5, start=0)
    details = balloon_details(vm)
    check("initial balloon until the host sets a target" in details, details)
    ctx.note(f"initial 128 MiB balloon reached {secs:.2f} s after the prompt")
    # Changed at the console, it takes effect at once: no interrupt comes
    # (the host is silent), so nothing but the console's own round may run
    # the balloon (it used to wait for the next interrupt).
    t0 = time.monotonic()
    vm.send("set balloon.initial 192M")
    wait_guest_mib(vm, RAM - 192, timeout=3)
    ctx.note(f"set balloon.initial 192M at the console: reached {time.monotonic() - t0:.2f} s later")
    got, _ = set_target(vm, RAM - 64)     # smaller than initial: the host decides now
    check(abs(got - (RAM - 64)) < 2, f"host target 64 MiB balloon ended at {RAM - got:.0f} MiB")
    got, _ = set_target(vm, RAM - 160)
    check(abs(got - (RAM - 160)) < 2, f"host target 160 MiB balloon ended at {RAM - got:.0f} MiB")


@scenario("balloon_max_min_free")
def balloon_max_min_free(ctx):
    """balloon.max and balloon.min_free hold when the host asks for more, on
    the command line and changed at run time with `set`; an absurd value is
    clamped with one line. Without deflate-on-oom a knob lowered at run time
    does not deflate what the host still asks for (the spec lets the guest
    use balloon pages only below num_pages): the host's lower target does."""
    vm = ctx.vm(mem_mb=RAM, cmdline="balloon.max=100M")
    idx = boot_to_prompt(vm)
    got, _ = set_target(vm, 200, settle=2)
    check(abs(got - (RAM - 100)) < 2, f"max 100 MiB: the balloon holds {RAM - got:.0f} MiB")
    vm.wait_for(r"balloon: host asks for \d+ pages .*max 25600\): clamped", 5, start=idx)
    check("clamped by balloon.max" in balloon_details(vm), "limit reason not shown")

    # min_free first: with the max lifted first, the balloon can take all the
    # host asks for before the second line is read (a knob raised later does
    # not deflate what the host still asks for: the spec's rule, above).
    vm.send("set balloon.min_free 300M")
    vm.send("set balloon.max 0")
    time.sleep(0.5)
    got, _ = set_target(vm, 200, settle=2)
    mem = mem_info(vm)
    check(mem["free"] >= 300, f"min_free 300 MiB: `mem` says {mem['free']} MiB free")
    check(mem["free"] <= 304, f"the balloon stopped early: {mem['free']} MiB free with min_free 300 MiB")
    check("clamped by balloon.min_free" in balloon_details(vm), "limit reason not shown")
    ctx.note(f"min_free 300 MiB: guest {got:.0f} MiB, free {mem['free']} MiB")

    start = len(vm.lines)
    vm.send("set balloon.min_free 1T")
    vm.wait_for(r"balloon: min_free 1048576 MiB is more than the \d+ MiB of RAM: using \d+ MiB", 10, start=start)
    time.sleep(1)
    check(abs(guest_mib(vm) - got) < 2, f"the balloon deflated to {guest_mib(vm):.0f} MiB of guest memory "
          f"although the host still asks for it")
    check("the host still asks for it" in balloon_details(vm), "held-by-host reason not shown")
    noise = [t for _, t in vm.lines[start:] if t.startswith("balloon:") and "min_free" in t]
    check(len(noise) == 1, f"{len(noise)} lines for one absurd value: {noise}")
    got, _ = set_target(vm, RAM, settle=2)       # the host lets go: the knob rules
    check(abs(got - RAM) < 2, f"the host's target {RAM} MiB ended at {got:.0f} MiB")
    start = len(vm.lines)
    vm.send("set balloon.rate lots")
    vm.wait_for(r"cmdline: bad value 'lots' for 'balloon.rate': expected a number; kept default", 10, start=start)


@scenario("balloon_rate")
def balloon_rate(ctx):
    """balloon.rate=16: the balloon grows at 16 MiB/s (within 10%) in whole
    2 MiB blocks; deflation is not limited."""
    vm = ctx.vm(mem_mb=RAM, cmdline="balloon.rate=16")
    boot_to_prompt(vm)
    vm.qmp.execute("balloon", {"value": (RAM - 200) * MIB})
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 40:
        b = RAM - guest_mib(vm)
        samples.append((time.monotonic(), b))
        if b >= 200 - 1:
            break
        time.sleep(0.05)

    def first_at(mib):
        return next(t for t, b in samples if b >= mib)
    check(samples[-1][1] >= 199, f"the balloon reached only {samples[-1][1]:.0f} MiB in 40 s")
    rate = (180 - 20) / (first_at(180) - first_at(20))
    ctx.note(f"asked 16 MiB/s, measured {rate:.2f} MiB/s between 20 and 180 MiB")
    check(abs(rate - 16) <= 1.6, f"inflation at {rate:.2f} MiB/s with balloon.rate=16")
    check("rate 16 MiB/s" in balloon_details(vm), "rate not shown")
    got, secs = set_target(vm, RAM)
    check(abs(got - RAM) < 2 and secs < 3, f"deflation took {secs:.1f} s (to {got:.0f} MiB): rate-limited?")


@scenario("balloon_shrinker_order")
def balloon_shrinker_order(ctx):
    """A target beyond free memory (minus min_free) is met by the shrinkers,
    lowest priority first: the in-guest test registers two caches (priority
    20 and 80) and inflates through the real device."""
    vm, passed, failed = run_selftests(
        ctx, ctx.vm(cmdline="selftest selftest.tests=balloon_shrinker_order", mem_mb=RAM), EXIT_PASS)
    check(passed == 1 and failed == 0, f"{passed} passed, {failed} failed")
    m, _, _ = vm.wait_for(r"balloon-test: shrinker calls: test-lo first at #(\d+) \((\d+) pages\), "
                          r"test-hi first at #(\d+) \((\d+) pages\)", 1)
    check(m.group(1) == "1" and m.group(3) == "2", f"order: {m.group(0)}")
    ctx.note(m.group(0))
