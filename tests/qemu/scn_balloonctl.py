"""scn_balloonctl.py - the host CLI against a running guest, as a script uses
it: the output it prints and the exit status it promises (tools/balloonctl)."""
import os
import subprocess

from balloon_host import boot_to_prompt
from scenarios import check, scenario

HERE = os.path.dirname(os.path.abspath(__file__))
CTL = os.path.join(HERE, "..", "..", "tools", "balloonctl")


def ctl(sock, *args, timeout=60):
    p = subprocess.run([CTL, "--socket", sock, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


@scenario("balloonctl")
def balloonctl(ctx):
    missing = os.path.join(ctx.build, "qemu", "no-such.sock")
    rc, out = ctl(missing, "get")
    check(rc == 3 and "no QMP socket" in out, f"absent socket: rc {rc}, {out!r}")

    vm = ctx.vm(mem_mb=512)
    boot_to_prompt(vm)
    sock = vm.qmp_path
    rc, out = ctl(sock, "get")
    check(rc == 0 and "guest memory 512 MiB of 512 MiB (balloon 0 MiB)" in out, f"get: rc {rc}, {out!r}")
    rc, out = ctl(sock, "set", "384M", "--wait", "30")
    check(rc == 0 and "reached: guest memory 384 MiB" in out, f"set 384M: rc {rc}, {out!r}")
    rc, out = ctl(sock, "get")
    check("balloon 128 MiB" in out, f"get after set: {out!r}")
    rc, out = ctl(sock, "set", "1G")
    check(rc == 2 and "more than the guest's RAM" in out, f"set 1G: rc {rc}, {out!r}")
    rc, out = ctl(sock, "set", "lots")
    check(rc == 2 and "bad size 'lots'" in out, f"set lots: rc {rc}, {out!r}")
    rc, out = ctl(sock, "set", "512iB")
    check(rc == 2 and "bad size '512iB'" in out, f"set 512iB: rc {rc}, {out!r}")
    # a bare number is MiB (it used to be bytes: the guest shrank to min_free)
    rc, out = ctl(sock, "set", "448", "--wait", "30")
    check(rc == 0 and "reached: guest memory 448 MiB" in out, f"set 448: rc {rc}, {out!r}")
    rc, out = ctl(sock, "set", "8M", "--wait", "5")
    check(rc == 4 and "not reached" in out and "stopped short" in out, f"unreachable target: rc {rc}, {out!r}")
    rc, out = ctl(sock, "stats")
    check(rc == 0 and "free memory" in out and "total memory" in out, f"stats: rc {rc}, {out!r}")
    interval = vm.qmp.execute("qom-get", {"path": "/machine/peripheral/balloon0",
                                          "property": "guest-stats-polling-interval"})
    vm.qmp.close()      # QEMU serves one QMP client at a time: give the socket back
    vm._qmp = None
    check(interval == 0, f"stats left QEMU polling the guest every {interval} s")
    rc, out = ctl(sock, "watch", "--seconds", "1.2")
    check(rc == 0 and "guest memory" in out, f"watch: rc {rc}, {out!r}")
    rc, out = ctl(sock, "set", "512M", "--wait", "30")
    check(rc == 0, f"deflate: rc {rc}, {out!r}")
