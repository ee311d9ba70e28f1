"""qemu.py - start the unikernel in QEMU and talk to it: serial console, QMP,
exit status, host memory of the QEMU process. Standard library only (Debian 12
has no python3-qemu.qmp).

    with Qemu(build, image, name="selftest", cmdline="selftest") as vm:
        vm.wait_for(r"selftest: (\\d+) passed, (\\d+) failed", timeout=120)
        status = vm.wait_exit(30)

Guest exit codes through isa-debug-exit (kernel/arch/power.h): 33 pass, 35 fail.
Every wait is bounded; a timeout raises TimeoutError with the tail of the log.
"""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from qmp import QMP  # noqa: E402

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
EXIT_PASS = 33
EXIT_FAIL = 35
ESP_OFFSET = "1M"   # the ESP starts at sector 2048 (Makefile, $(IMAGE) rule)


def image_variant(build, image, name, remove=(), add=None):
    """Copy `image` and change files on its ESP with mtools: remove names,
    add {name: bytes}. Returns the new image's path (under BUILD/qemu)."""
    os.makedirs(os.path.join(build, "qemu"), exist_ok=True)
    out = os.path.join(build, "qemu", name + ".img")
    shutil.copyfile(image, out)
    target = f"{out}@@{ESP_OFFSET}"
    for f in remove:
        subprocess.run(["mdel", "-i", target, "::/" + f], check=True)
    for f, data in (add or {}).items():
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            subprocess.run(["mcopy", "-o", "-i", target, tmp.name, "::/" + f], check=True)
        finally:
            os.unlink(tmp.name)
    return out


class Qemu:
    def __init__(self, build, image, name, cmdline=None, mem_mb=512,
                 balloon="modern", balloon_props=None, hugetlb_path=None,
                 debug_exit=True, extra=(), machine="q35", hugetlb_share=True, hugetlb_reserve=True):
        self.build, self.image, self.name = build, image, name
        self.cmdline, self.mem_mb = cmdline, mem_mb
        self.balloon, self.balloon_props = balloon, balloon_props or {}
        self.hugetlb_path, self.debug_exit, self.extra = hugetlb_path, debug_exit, list(extra)
        self.machine = machine   # "q35", or "pc" (i440fx: QEMU's and virt-install's default)
        # share=on: pages the balloon releases go back to the pool for anyone;
        # share=off (QEMU's default) keeps them reserved for this QEMU.
        self.hugetlb_share = hugetlb_share
        # reserve=off (MAP_NORESERVE): no pages reserved up front, so freed
        # ones go back to the pool even with share=off
        self.hugetlb_reserve = hugetlb_reserve
        self.dir = os.path.join(build, "qemu", name)
        os.makedirs(self.dir, exist_ok=True)
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.log_path = os.path.join(self.dir, "serial.log")
        self.lines = []          # (seconds since start, text)
        self.cond = threading.Condition()
        self.proc = None
        self._qmp = None

    def argv(self):
        vars_copy = os.path.join(self.dir, "ovmf_vars.fd")
        shutil.copyfile(OVMF_VARS, vars_copy)
        machine = f"{self.machine},accel=tcg"
        a = ["qemu-system-x86_64", "-cpu", "max", "-m", str(self.mem_mb),
             "-nodefaults", "-no-user-config", "-display", "none", "-net", "none",
             "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
             "-drive", f"if=pflash,format=raw,file={vars_copy}",
             "-drive", f"format=raw,file={self.image},if=virtio,snapshot=on",
             "-serial", "stdio", "-monitor", "none",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if self.hugetlb_path:
            machine += ",memory-backend=mem"
            a += ["-object", f"memory-backend-file,id=mem,size={self.mem_mb}M,"
                             f"mem-path={self.hugetlb_path},share={'on' if self.hugetlb_share else 'off'}"
                             + ("" if self.hugetlb_reserve else ",reserve=off")]
        a[1:1] = ["-machine", machine]
        if self.debug_exit:
            a += ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        props = "".join(f",{k}={v}" for k, v in self.balloon_props.items())
        if self.balloon == "modern":       # behind a root port: modern-only
            a += ["-device", "pcie-root-port,id=rp0,chassis=1",
                  "-device", "virtio-balloon-pci,id=balloon0,bus=rp0" + props]
        elif self.balloon == "transitional":  # on pcie.0: transitional
            a += ["-device", "virtio-balloon-pci,id=balloon0" + props]
        if self.cmdline is not None:
            # A file, not string=: QEMU's option syntax would split on commas.
            path = os.path.join(self.dir, "cmdline")
            with open(path, "w") as f:
                f.write(self.cmdline)
            a += ["-fw_cfg", f"name=opt/balloon/cmdline,file={path}"]
        return a + self.extra

    def start(self):
        if os.path.exists(self.qmp_path):
            os.unlink(self.qmp_path)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read_serial, daemon=True)
        self.reader.start()
        return self

    def _read_serial(self):
        ansi = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
        with open(self.log_path, "w") as log:
            partial = b""
            while True:
                chunk = self.proc.stdout.read1(4096)
                if not chunk:
                    break
                partial += chunk
                *done, partial = re.split(rb"\r?\n", partial)
                stamp = time.monotonic() - self.t0
                with self.cond:
                    for raw in done:
                        text = ansi.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace")
                        self.lines.append((stamp, text))
                        log.write(f"[{stamp:8.3f}] {text}\n")
                    # a prompt has no newline: keep it visible to wait_for
                    self.partial = partial.decode("utf-8", "replace")
                    self.cond.notify_all()
                log.flush()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def tail(self, n=25):
        with self.cond:
            return "\n".join(t for _, t in self.lines[-n:])

    def wait_for(self, pattern, timeout, start=0):
        """Wait for a serial line matching `pattern` (from line index `start`).
        Returns (match, index, seconds since QEMU start)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i][1])
                    if m:
                        return m, i, self.lines[i][0]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or getattr(self, "eof", False):
                    why = "QEMU exited" if getattr(self, "eof", False) else f"{timeout} s passed"
                    raise TimeoutError(f"{self.name}: no line matching {pattern!r} ({why}); "
                                       f"last lines:\n{self.tail()}")
                self.cond.wait(min(left, 0.5))

    def send(self, text):
        """Type a line on the guest's serial console."""
        self.proc.stdin.write(text.encode() + b"\r")
        self.proc.stdin.flush()

    @property
    def qmp(self):
        if self._qmp is None:
            self._qmp = QMP(self.qmp_path)
        return self._qmp

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name}: QEMU still running after {timeout} s; "
                               f"last lines:\n{self.tail()}")

    def status_kb(self, field):
        """A field of /proc/PID/status in KiB (VmRSS, HugetlbPages...)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self._qmp:
            try:
                self._qmp.close()
            except OSError:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
