"""scn_boot.py - boot scenarios of the foundation: the self-test verdict, a
deliberately failing test, the interactive console, and the clear errors for
a missing or corrupt kernel and a bad command line."""
import re

from qemu import EXIT_FAIL, EXIT_PASS, image_variant
from scenarios import Skip, check, scenario
from vmem_host import boot_mem, vmem_args, why_not

VERDICT = r"selftest: (\d+) passed, (\d+) failed"


def run_selftests(ctx, vm, expect_exit, timeout=240, expect_fail=()):
    """Boot to the guest's verdict; record every in-guest test as what the
    guest printed - only the tests named in `expect_fail` (failing on
    purpose) count as passed when they fail, and as failed when they pass.
    A test the guest skipped (a device it needs is not in this boot) is a
    note here, not a result: the boot that has the device runs it."""
    with vm:
        m, idx, _ = vm.wait_for(VERDICT, timeout)
        status = vm.wait_exit(30)
        for _, line in vm.lines[:idx]:
            sk = re.match(r"selftest: SKIP (\S+) \((.*)\)", line)
            if sk:
                ctx.note(f"guest skipped {sk.group(1)}: {sk.group(2)}")
            t = re.match(r"selftest: (PASS|FAIL) (\S+)", line)
            if t:
                name, passed_ = t.group(2), t.group(1) == "PASS"
                if name in expect_fail:
                    ctx.result(not passed_, f"guest/{ctx.name}/{name} fails on purpose", "it passed")
                else:
                    ctx.result(passed_, f"guest/{ctx.name}/{name}")
        passed, failed = int(m.group(1)), int(m.group(2))
        check(status in (EXIT_PASS, EXIT_FAIL), f"QEMU exit status {status}: the guest gave no verdict")
        # The guest's own line and its exit status must agree.
        check((status == EXIT_PASS) == (failed == 0 and passed > 0),
              f"verdict line says {passed} passed, {failed} failed but exit status is {status}")
        check(status == expect_exit, f"exit status {status}, expected {expect_exit}\n{vm.tail()}")
        return vm, passed, failed


@scenario("selftest_fwcfg")
def selftest_fwcfg(ctx):
    """The self-test boot, command line from QEMU's fw_cfg: every default test passes."""
    vm, passed, failed = run_selftests(ctx, ctx.vm(cmdline="selftest", mem_mb=512), EXIT_PASS)
    check(passed >= 5 and failed == 0, f"{passed} passed, {failed} failed")
    vm.wait_for(r"cmdline \(fw_cfg\): 'selftest'", 1)


VMEM_TESTS = ("vmem_device", "vmem_hot_movable", "vmem_books")


@scenario("selftest_vmem")
def selftest_vmem(ctx):
    """The virtio-mem self-tests on a guest with the device, 128 MiB already
    requested by the host when it boots (the driver plugs it at start): the
    device validated, plugged memory movable-only, the books consistent."""
    reason = why_not(1024)
    if reason:
        raise Skip(reason)
    vm = ctx.vm(cmdline="selftest selftest.tests=" + ",".join(VMEM_TESTS), mem_mb=boot_mem(512, 3),
                extra=vmem_args(region="2G", requested="128M"))
    vm, passed, failed = run_selftests(ctx, vm, EXIT_PASS)
    check(passed == len(VMEM_TESTS) and failed == 0, f"{passed} passed, {failed} failed of {len(VMEM_TESTS)}")
    m = vm.wait_for(r"^    (\d+) MiB anonymous \(a page in plugged memory at (0x[0-9a-f]+)\), unmovable: "
                    r"(\d+) blocks \+ (\d+) frames until refused, 0 of them in plugged memory, (\d+) plugged", 1)[0]
    ctx.note(f"anonymous memory reached plugged memory after {m.group(1)} MiB; unmovable refused after "
             f"{m.group(3)} blocks + {m.group(4)} frames with {m.group(5)} plugged 2 MiB blocks free")


@scenario("selftest_cmdline_txt")
def selftest_cmdline_txt(ctx):
    """The command line from cmdline.txt on the boot volume (no fw_cfg), with
    console.sync (output written at once rather than from the work loop)."""
    img = image_variant(ctx.build, ctx.image, ctx.name,
                        add={"cmdline.txt": b"selftest selftest.tests=core_malloc console.sync\n"})
    vm, passed, failed = run_selftests(ctx, ctx.vm(image=img, mem_mb=256), EXIT_PASS)
    check(passed == 1 and failed == 0, f"{passed} passed, {failed} failed: only core_malloc was asked for")
    vm.wait_for(r"cmdline \(cmdline.txt\): 'selftest selftest.tests=core_malloc console.sync'", 1)


@scenario("selftest_catches_failure")
def selftest_catches_failure(ctx):
    """The deliberately failing test makes the verdict fail, the others still run."""
    vm, passed, failed = run_selftests(
        ctx, ctx.vm(cmdline="selftest selftest.tests=default,deliberate_fail", mem_mb=256), EXIT_FAIL,
        expect_fail={"deliberate_fail"})
    check(failed == 1 and passed >= 5, f"{passed} passed, {failed} failed")
    vm.wait_for(r"selftest: FAIL deliberate_fail", 1)
    vm.wait_for(r"fails on purpose", 1)


@scenario("bad_cmdline")
def bad_cmdline(ctx):
    """Unknown options and malformed values: one clear line each, defaults kept,
    the kernel still boots, and a self-test boot does not claim success."""
    vm, passed, failed = run_selftests(
        ctx, ctx.vm(cmdline="selftest bogus.option=1 selftest.tests=core_malloc,nosuchtest", mem_mb=256), EXIT_FAIL,
        expect_fail={"nosuchtest", "cmdline"})
    vm.wait_for(r"cmdline: unknown option 'bogus.option'; ignored", 1)
    vm.wait_for(r"selftest: FAIL nosuchtest \(no test by that name\)", 1)
    vm.wait_for(r"selftest: FAIL cmdline \(1 error on the command line", 1)
    vm.wait_for(r"selftest: PASS core_malloc", 1)


@scenario("missing_kernel")
def missing_kernel(ctx):
    """No kernel.elf on the volume: the loader says so and returns to the firmware."""
    img = image_variant(ctx.build, ctx.image, ctx.name, remove=["kernel.elf"])
    with ctx.vm(image=img, mem_mb=256) as vm:
        vm.wait_for(r"loader: cannot open \\kernel\.elf", 60)
        # The firmware's own line proves the loader returned instead of hanging.
        vm.wait_for(r"BdsDxe: failed to start Boot0001", 30)


@scenario("corrupt_kernel")
def corrupt_kernel(ctx):
    """A kernel.elf that is not a valid kernel: the loader names the reason."""
    with open(ctx.image.replace("balloon.img", "kernel.stripped"), "rb") as f:
        elf = bytearray(f.read())
    elf[18] = 0x28   # e_machine: ARM
    img = image_variant(ctx.build, ctx.image, ctx.name, add={"kernel.elf": bytes(elf)})
    with ctx.vm(image=img, mem_mb=256) as vm:
        vm.wait_for(r"loader: \\kernel\.elf is not a valid kernel: .*x86-64", 60)
        vm.wait_for(r"BdsDxe: failed to start Boot0001", 30)


@scenario("interactive_console")
def interactive_console(ctx):
    """`make run`'s mode: banner with the memory summary, a prompt, commands answered."""
    with ctx.vm(mem_mb=512) as vm:
        m, _, _ = vm.wait_for(r"memory: (\d+) MiB usable", 120)
        check(400 < int(m.group(1)) <= 512, f"{m.group(1)} MiB usable of a 512 MiB guest")
        # Both milestones, in order, each naming its slowest steps: kernel
        # ready (mm among them) before everything up (the balloon's driver).
        k, _, _ = vm.wait_for(r"boot: kernel ready (\d+) us after ExitBootServices .*slowest set-up: (.*)", 30)
        r, idx, _ = vm.wait_for(r"boot: ready (\d+) us after ExitBootServices .*slowest: (.*)", 30)
        check(0 < int(k.group(1)) < int(r.group(1)), f"kernel ready {k.group(1)} us, ready {r.group(1)} us")
        check("mm_boot_init" in k.group(2) and "virtio_balloon_init" in r.group(2),
              f"slowest steps: '{k.group(2)}' / '{r.group(2)}'")
        vm.send("uptime")
        vm.wait_for(r"up \d+\.\d+ s, \d+ timer ticks, \d+ wake-ups", 20, start=idx)
        vm.send("frobnicate")
        vm.wait_for(r"unknown command 'frobnicate' \(try 'help'\)", 20, start=idx)
        vm.send("poweroff")
        check(vm.wait_exit(30) == EXIT_PASS, "poweroff did not end QEMU with the pass status")


@scenario("panic_report")
def panic_report(ctx):
    """A page fault in the kernel: the panic names the exception, the faulting
    address and registers, prints a backtrace, and the boot ends failing."""
    with ctx.vm(cmdline="selftest selftest.tests=panic_pagefault", mem_mb=256) as vm:
        _, idx, _ = vm.wait_for(r"PANIC: CPU exception 14 \(page fault\)", 120)
        vm.wait_for(r"CR2 ffff9ffffdead000", 5, start=idx)
        vm.wait_for(r"RAX [0-9a-f]{16}", 5, start=idx)
        vm.wait_for(r"page fault: not-present write to address ffff9ffffdead000", 5, start=idx)
        m, _, _ = vm.wait_for(r"^\s+(ffffffff8[0-9a-f]{7})$", 5, start=idx)
        check(vm.wait_exit(30) == EXIT_FAIL, "a panic in self-test mode must end with the fail status")


@scenario("poweroff_uefi")
def poweroff_uefi(ctx):
    """Without QEMU's isa-debug-exit device the kernel powers off through UEFI
    ResetSystem (QEMU then exits 0 on its own)."""
    with ctx.vm(cmdline="selftest selftest.tests=core_malloc", mem_mb=256, debug_exit=False) as vm:
        vm.wait_for(VERDICT, 120)
        status = vm.wait_exit(30)
        check(status == 0, f"QEMU exit status {status}: the guest did not power off")
