"""scn_vmem_balloon.py - virtio-balloon and virtio-mem in one guest (issue 13,
"Both devices at once"): neither takes the other's blocks, and the balloon's
idea of total memory follows plugged memory.

QEMU 7.2's balloon counts boot RAM only: its target and `actual`
(query-balloon) are against boot RAM, whatever virtio-mem plugged, while the
guest's own statistics (stat-total-memory: what it manages, less the
balloon) include plugged memory. The scenario checks both as they are."""
import time

from balloon_host import app_check, boot_to_prompt, console, enable_stats, guest_mib, guest_stats, set_target
from scenarios import Skip, check, scenario
from scn_vmem import ctl
from vmem_host import GIB, MIB, boot_mem, request, status, vmem_args, vmem_check, why_not

BOOT = 1024


def stat_total(vm, after):
    """stat-total-memory (MiB) from a stats buffer newer than `after`
    (QEMU's last-update); returns (MiB, last-update)."""
    stats, upd = guest_stats(vm, newer_than=after)
    return stats["stat-total-memory"] / MIB, upd


def wait_total(vm, want, after, tol=4, timeout=15):
    """Wait for the guest's reported total to be within `tol` MiB of `want`
    (the guest sends a buffer every second). Returns (MiB, last-update)."""
    deadline = time.monotonic() + timeout
    while True:
        total, after = stat_total(vm, after)
        if abs(total - want) <= tol or time.monotonic() > deadline:
            return total, after


@scenario("vmem_with_balloon")
def vmem_with_balloon(ctx):
    """Plug 1 GiB; the app writes 768 MiB (most of it in plugged memory) and
    frees 512 MiB there again (free, resident, plugged blocks: what a
    balloon that prefers resident blocks would take first); inflate the
    balloon by 512 MiB: it reaches it without a plugged block. Unplug 512
    MiB: reached with the balloon untouched. Deflate. The guest's reported
    total follows each step; checksums, `balloon check`, `vmem check` hold."""
    reason = why_not(3 * 1024)
    if reason:
        raise Skip(reason)
    vm = ctx.vm(mem_mb=boot_mem(BOOT, 5), extra=vmem_args(region="4G"))
    boot_to_prompt(vm)
    vm.wait_for(r"virtio-mem: region 0x[0-9a-f]+ \+ 4096 MiB, block 2 MiB", 10)
    enable_stats(vm)
    total0, upd = stat_total(vm, 0)

    got, _ = request(vm, 1 * GIB)
    check(got == 1 * GIB, f"plugged {got >> 20} MiB of 1024")
    summary = vm.qmp.execute("query-memory-size-summary")
    ctx.note(f"QEMU with 1 GiB plugged: query-balloon actual {guest_mib(vm):.0f} MiB, "
             f"query-memory-size-summary base {summary['base-memory'] >> 20} MiB, "
             f"plugged {summary.get('plugged-memory', 0) >> 20} MiB")
    check(guest_mib(vm) == BOOT, f"QEMU's balloon sees {guest_mib(vm):.0f} MiB of guest memory, expected "
                                 f"boot RAM ({BOOT}): QEMU 7.2 leaves virtio-mem out")
    total, upd = wait_total(vm, total0 + 1024, upd)
    check(abs(total - (total0 + 1024)) <= 4, f"stat-total-memory {total:.0f} MiB after plugging 1 GiB "
                                              f"(was {total0:.0f})")

    console(vm, "app grow 768M", r"app: grow done: \+768 MiB", 300)
    console(vm, "app shrink 512M", r"app: shrink done: -512 MiB, held 256 MiB", 120)
    app_check(vm)
    before = status(vm)
    check(before["free_resident"] >= 64, f"too few free resident plugged blocks to tempt the balloon: {before}")

    # Inflate by 512 MiB: only boot RAM may go.
    now, secs = set_target(vm, BOOT - 512)
    check(abs(now - (BOOT - 512)) < 2, f"balloon stopped at {now:.0f} MiB of guest memory, asked for {BOOT - 512}")
    inflated = status(vm)
    check(inflated["pinned"] == 0, f"ballooned (or pinned) blocks in plugged memory: {inflated}")
    rc, out = ctl(vm, "get")
    check(rc == 0 and f"guest memory {BOOT - 512} MiB of {BOOT} MiB (balloon 512 MiB)" in out,
          f"balloonctl get beside 1 GiB plugged: rc {rc}, {out!r}")
    rc, out = ctl(vm, "vmem")
    check(rc == 0 and "plugged 1024 MiB, requested 1024 MiB, region 4096 MiB" in out, f"balloonctl vmem: {out!r}")
    total, upd = wait_total(vm, total0 + 512, upd)
    check(abs(total - (total0 + 512)) <= 4, f"stat-total-memory {total:.0f} MiB with 1 GiB plugged and 512 "
                                             f"MiB ballooned (was {total0:.0f})")
    ctx.note(f"inflate 512 MiB beside 1 GiB plugged: {secs:.2f} s, no plugged block taken; free resident "
             f"plugged blocks {before['free_resident']} -> {inflated['free_resident']} (the balloon's "
             f"compaction moves frames, never takes these)")

    # Unplug 512 MiB: the balloon keeps what it has.
    got, secs = request(vm, 512 * MIB)
    check(got == 512 * MIB, f"unplug stopped at {got >> 20} MiB plugged, asked for 512: {vm.tail(5)}")
    m = console(vm, "balloon", r"balloon: target (\d+) MiB, actual (\d+) MiB", 20)
    check(int(m.group(2)) == 512, f"the balloon holds {m.group(2)} MiB after the unplug, had 512")
    check(abs(guest_mib(vm) - (BOOT - 512)) < 2, f"QEMU's balloon sees {guest_mib(vm):.0f} MiB after the "
                                                 f"unplug, expected {BOOT - 512} as before")
    after = status(vm)
    check(after["plugged"] == after["device"] == 512 and after["pinned"] == 0, f"vmem after unplug: {after}")
    total, upd = wait_total(vm, total0, upd)
    check(abs(total - total0) <= 4, f"stat-total-memory {total:.0f} MiB after unplugging 512 MiB "
                                    f"(expected {total0:.0f})")
    ctx.note(f"unplug 512 MiB beside a 512 MiB balloon: {secs:.2f} s")
    console(vm, "balloon check", r"balloon: books consistent", 30)
    ok, why = vmem_check(vm)
    check(ok, f"vmem check: {why}")

    # Deflate: all of boot RAM and the plugged 512 MiB are the guest's again.
    now, _ = set_target(vm, BOOT)
    check(abs(now - BOOT) < 2, f"deflate stopped at {now:.0f} MiB")
    total, upd = wait_total(vm, total0 + 512, upd)
    check(abs(total - (total0 + 512)) <= 4, f"stat-total-memory {total:.0f} MiB after deflating "
                                             f"(expected {total0 + 512:.0f})")
    app_check(vm)
    console(vm, "balloon check", r"balloon: books consistent", 30)
    ok, why = vmem_check(vm)
    check(ok, f"vmem check: {why}")

    # A reset of the balloon device with memory plugged: it comes back on
    # the books of its first bring-up (plugged memory is never the
    # balloon's) and inflates again; it used to size its books by the RAM
    # plugged now, which the books it kept were too small for: balloon idle.
    start = len(vm.lines)
    m = console(vm, "balloon reset", r"balloon: reset (done|FAILED)", 30)
    check(m.group(1) == "done", f"balloon reset: {vm.tail(6)}")
    check(not any("balloon idle" in line or "bring-up failed" in line for _, line in vm.lines[start:]),
          f"the balloon did not come back after a reset with memory plugged: {vm.tail(6)}")
    now, _ = set_target(vm, BOOT - 64)
    check(abs(now - (BOOT - 64)) < 2, f"after the reset the balloon stopped at {now:.0f} MiB, asked for "
                                       f"{BOOT - 64}")
    console(vm, "balloon check", r"balloon: books consistent", 30)
