"""scn_app.py - the appliance workload driven over the serial console, the
way a person (or a balloon test) uses it: grow, check, shrink, the status
line, a rejected pattern, the cache and its shrinker, and `app fill` running
into the end of memory without harm.

The line formats asserted here are the stable ones documented in app/app.c.
"""
import time

from qemu import EXIT_PASS
from scenarios import check, scenario

STATUS = (r"app: held (\d+) MiB in (\d+) chunks, cache (\d+) MiB, verified (\d+) MiB, "
          r"(\d+) corrupt, (\d+) alloc failures")


# Answers that mean the expected one will not come: fail at once, not at the timeout.
WRONG = (r"app: (grow stopped|check FAILED|CORRUPTION|bad |fill done|shrink done|check already)"
         r"|unknown command|usage: app|PANIC")


def command(vm, line, pattern, timeout=60):
    """Type a command; wait for its answer (only lines after the command count)."""
    start = len(vm.lines)
    vm.send(line)
    m, _, _ = vm.wait_for(f"(?:{pattern})|(?P<wrong>{WRONG})", timeout, start=start)
    check(m.group("wrong") is None, f"'{line}' answered '{m.string}', expected /{pattern}/")
    return m


def status(vm):
    return [int(x) for x in command(vm, "app", STATUS, 20).groups()[:6]]


def boot(ctx, mem_mb=512, cmdline=None):
    vm = ctx.vm(mem_mb=mem_mb, cmdline=cmdline)
    vm.start()
    vm.wait_for(r"boot: ready", 120)
    return vm


@scenario("app_console")
def app_console(ctx):
    """app grow / check / shrink over the console: exact amounts, verified
    bytes add up, nothing corrupt; a bad pattern is one line and ignored."""
    vm = boot(ctx)
    check(status(vm) == [0, 0, 0, 0, 0, 0], "the workload must start idle with nothing held")

    command(vm, "app grow 64M", r"app: grow done: \+64 MiB, held 64 MiB in 32 chunks", 120)
    command(vm, "app check", r"app: check ok, 64 MiB verified", 120)
    command(vm, "app shrink 32M", r"app: shrink done: -32 MiB, held 32 MiB in 16 chunks")
    command(vm, "app check", r"app: check ok, 32 MiB verified", 120)
    held, chunks, cache, verified, corrupt, failures = status(vm)
    check((held, chunks, verified, corrupt, failures) == (32, 16, 96, 0, 0),
          f"status after grow/check/shrink/check: {vm.tail(3)}")

    command(vm, "app pattern grow:1x,loop", r"app: bad pattern 'grow:1x,loop': bad size '1x'.*; ignored")
    command(vm, "app pattern", r"app: no pattern running")

    # A cache of 4 MiB: the poller builds it; its shrinker shows 1024 pages.
    command(vm, "app cache 4M", r"app: cache target 4 MiB")
    for _ in range(50):
        m = command(vm, "shrinkers", r"app-cache\s+prio\s+10: can free (\d+) pages", 20)
        if int(m.group(1)) == 1024:
            break
    check(int(m.group(1)) == 1024, f"the 4 MiB cache offers {m.group(1)} pages, expected 1024")
    held, chunks, cache, verified, corrupt, failures = status(vm)
    check(cache == 4 and held == 32, f"status with the cache: {vm.tail(2)}")
    command(vm, "app check", r"app: check ok, 36 MiB verified", 120)

    command(vm, "app shrink all", r"app: shrink done: -32 MiB, held 0 MiB in 0 chunks")
    vm.send("poweroff")
    check(vm.wait_exit(30) == EXIT_PASS, "poweroff did not end QEMU with the pass status")


PATTERN = "grow:16M,check,shrink:8M,hold:100ms,loop"


@scenario("app_fill")
def app_fill(ctx):
    """A pattern and a cache from the command line: the pattern loops and checks
    itself. Then `app fill 32M` takes memory until 32 MiB are left free, and
    `app fill` the rest, meeting the end as a counted allocation failure;
    everything held still checks out and the kernel keeps answering."""
    vm = boot(ctx, mem_mb=256, cmdline=f"app.pattern={PATTERN} app.cache=2M")
    vm.wait_for(rf"app: pattern '{PATTERN}' started", 1)
    vm.wait_for(r"app: check ok, \d+ MiB verified", 60)
    for _ in range(100):
        m = command(vm, "app", r"app: activity pattern '.*' step \d/4 \w+, (\d+) loops", 20)
        if int(m.group(1)) >= 2:
            break
        time.sleep(0.2)
    check(int(m.group(1)) >= 2, "the pattern did not loop")

    start = len(vm.lines)
    m = command(vm, "app stop", r"app: stopped; held (\d+) MiB in (\d+) chunks")
    vm.wait_for(rf"app: pattern '{PATTERN}' stopped", 1, start=start)
    before = int(m.group(1))
    # With a reserve, fill stops while 32 MiB are still free: no failure.
    m = command(vm, "app fill 32M",
                r"app: fill done: \+(\d+) MiB until 32 MiB were left free; held (\d+) MiB in (\d+) chunks", 180)
    got, held = int(m.group(1)), int(m.group(2))
    check(got > 32 and held == before + got, f"fill got {got} MiB, holds {held} MiB, held {before} before")
    check(status(vm)[5] == 0, "a fill with a reserve must not run into an allocation failure")
    # Without one it runs into the end of memory: a counted failure, no harm.
    m = command(vm, "app fill",
                r"app: fill done: \+(\d+) MiB until allocation failed, 0 MiB given back; "
                r"held (\d+) MiB in (\d+) chunks", 180)
    got, held2 = int(m.group(1)), int(m.group(2))
    check(0 < got <= 32 and held2 == held + got, f"second fill got {got} MiB, holds {held2} MiB, held {held} before")
    held = held2
    vm.wait_for(r"app: allocation of 2 MiB failed after \d+ MiB held", 1)
    # At the end of memory the allocator's OOM path asked the shrinkers: the
    # cache gave whole pieces even for single-page requests (it used to give
    # nothing while asked for less than a piece).
    st = status(vm)
    cache = st[2]
    given = int(command(vm, "app", r"cache target \d+ MiB, (\d+) pages given back", 20).group(1))
    check(cache < 2 and given > 0, f"the cache kept {cache} MiB and gave back {given} pages at OOM")
    command(vm, "app check", rf"app: check ok, {held + cache} MiB verified", 180)
    st = status(vm)
    check(st[0] == held and st[4] == 0 and st[5] >= 1, f"status after fill: {vm.tail(2)}")
    command(vm, "uptime", r"up \d+\.\d+ s")
    command(vm, "app shrink all", rf"app: shrink done: -{held} MiB, held 0 MiB in 0 chunks")
    vm.send("poweroff")
    check(vm.wait_exit(30) == EXIT_PASS, "poweroff did not end QEMU with the pass status")
