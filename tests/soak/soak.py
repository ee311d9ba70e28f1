#!/usr/bin/env python3
"""soak.py - a long run of the appliance under a moving balloon (`make soak`).

One QEMU guest (TCG, q35, the modern balloon with deflate-on-oom and
free-page-reporting) runs the appliance workload with checksummed memory: a
base it holds for the whole run plus a pattern that keeps growing, shrinking
(random chunks, small ones, so memory fragments) and checking itself. The
host meanwhile sets SOAK_CYCLES random balloon targets through QMP - most in
the range the guest can give, some at the extremes, a few far below what it
can give (the balloon runs short while the workload grows) - and every few cycles
runs the compactor by hand; with deflate-on-oom offered, every OOM_EVERY
cycles it squeezes the guest and lets the appliance fill memory, so the
allocator's OOM path must deflate the balloon; with free page reporting, the
guest reports free blocks on its own whenever memory is freed.

Every CHECK_EVERY cycles (and at the end) the workload pauses and the guest's
books are compared: QMP's actual == the driver's actual == the allocator's
balloon frames, `balloon check` consistent, `app check` ok. At the end the
appliance frees everything, the balloon goes back to 0, and the allocator's
free frames must be back at their baseline (less what the heap and page
tables legitimately kept, which `mem` reports to the KiB): 0 frames leaked.
The serial log must hold no panic, corruption or failed check.

Prints one summary line, also written to BUILD/soak/summary.txt; exit status
0 if the soak passed. The serial log with host timestamps is in
BUILD/qemu/soak/serial.log.

    python3 tests/soak/soak.py --build build --image build/balloon.img [--cycles N] [--seed S]
"""
import argparse
import os
import random
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "qemu"))
from qemu import Qemu  # noqa: E402

MIB = 1 << 20
APP_STATUS = (r"app: held (\d+) MiB in (\d+) chunks, cache (\d+) MiB, verified (\d+) MiB, "
              r"(\d+) corrupt, (\d+) alloc failures")
BALLOON_STATUS = (r"balloon: ([a-z ]+); actual (\d+) pages \(\d+ MiB\), target (\d+) \(host (\d+)\);.*"
                  r"in flight \+(\d+)/-(\d+)")
BAD_LINE = re.compile(r"PANIC|CORRUPTION|check FAILED|system halted|bad frees [1-9]")
PANIC = re.compile(r"PANIC")


class SoakError(Exception):
    pass


class Soak:
    def __init__(self, vm, mem_mb, rng, log):
        self.vm, self.mem_mb, self.rng, self.log = vm, mem_mb, rng, log
        self.stats = dict(targets=0, reached=0, settle_s=0.0, checkpoints=0, compactions=0,
                          oom_rounds=0, oom_deflates=0, oom_pages=0, reported_blocks=0,
                          corrupt_bytes=0)

    # ------------------------------------------------------------ console
    def cmd(self, line, pattern, timeout=60):
        """Type a command; wait for a line matching pattern after it."""
        start = len(self.vm.lines)
        self.vm.send(line)
        m, _, _ = self.vm.wait_for(pattern, timeout, start=start)
        return m

    def cmd_lines(self, line, last_pattern, timeout=30):
        """Type a command; return every line after it up to the one matching last_pattern."""
        start = len(self.vm.lines)
        self.vm.send(line)
        _, idx, _ = self.vm.wait_for(last_pattern, timeout, start=start)
        with self.vm.cond:
            return [t for _, t in self.vm.lines[start:idx + 1]]

    def mem(self):
        lines = "\n".join(self.cmd_lines("mem", r"^mm: heap"))
        g = lambda rx: int(re.search(rx, lines).group(1))  # noqa: E731
        return dict(balloon_mib=g(r"balloon (\d+) MiB"), kernel_mib=g(r"kernel (\d+) MiB"),
                    movable_mib=g(r"movable (\d+) MiB"), bad_frees=g(r"bad frees (\d+)"),
                    heap_kib=g(r"heap (\d+) KiB"), anon_kib=g(r"anonymous (\d+) KiB"),
                    pt_kib=g(r"page tables (\d+) KiB"))

    def free_pages(self):
        m = self.cmd("balloon stats", r"balloon: stats.* free-memory=(\d+) total-memory=(\d+)")
        return int(m.group(1)) // 4096, int(m.group(2)) // 4096

    def balloon(self):
        lines = self.cmd_lines("balloon", r"^balloon: shortfall")
        text = "\n".join(lines)
        m = re.search(BALLOON_STATUS, text)
        if not m:
            raise SoakError(f"no balloon status line in:\n{text}")
        st = dict(state=m.group(1), actual=int(m.group(2)), target=int(m.group(3)),
                  host=int(m.group(4)), inflating=int(m.group(5)), deflating=int(m.group(6)))
        oom = re.search(r"oom: \S+; (\d+) deflates \((\d+) pages\)", text)
        rep = re.search(r"reporting: on; (\d+) blocks", text)
        st["oom_deflates"], st["oom_pages"] = (int(oom.group(1)), int(oom.group(2))) if oom else (0, 0)
        st["reported_blocks"] = int(rep.group(1)) if rep else 0
        return st

    def app_status(self):
        return [int(x) for x in self.cmd("app", APP_STATUS, 30).groups()]

    def qmp_balloon_pages(self):
        return (self.mem_mb * MIB - self.vm.qmp.execute("query-balloon")["actual"]) // 4096

    # ------------------------------------------------------------ balloon
    def set_target(self, guest_mib, timeout=90, settle=1.5):
        """Ask for guest_mib of guest memory; wait until actual gets within
        2 MiB or stops moving. Returns True if reached."""
        self.vm.qmp.execute("balloon", {"value": int(guest_mib * MIB)})
        t0 = time.monotonic()
        last, last_change = None, t0
        while True:
            now = self.vm.qmp.execute("query-balloon")["actual"] / MIB
            t = time.monotonic()
            if abs(now - guest_mib) < 2:
                self.stats["settle_s"] += t - t0
                return True
            if now != last:
                last, last_change = now, t
            elif t - last_change > settle or t - t0 > timeout:
                self.stats["settle_s"] += t - t0
                return False
            time.sleep(0.02)

    def wait_quiet(self, timeout=60):
        """Until nothing is in flight (the workload is paused)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.balloon()
            if st["inflating"] == 0 and st["deflating"] == 0:
                return st
            if time.monotonic() > deadline:
                raise SoakError(f"balloon still busy after {timeout} s: {st}")
            time.sleep(0.2)

    # ------------------------------------------------------------ checkpoints
    def pause_app(self):
        self.cmd("app stop", r"app: stopped; held (\d+) MiB")

    def resume_app(self, pattern):
        self.cmd(f"app pattern {pattern}", r"app: pattern '.*' started")

    def books_agree(self, where):
        """QMP's actual, the driver's and the allocator's must be the same."""
        st = self.wait_quiet()
        # actual is written once per poll; give the host a moment to see the last write
        for _ in range(50):
            qmp = self.qmp_balloon_pages()
            if qmp == st["actual"]:
                break
            time.sleep(0.05)
            st = self.balloon()
        mem = self.mem()
        if qmp != st["actual"]:
            raise SoakError(f"{where}: QMP says the balloon holds {qmp} pages, the driver {st['actual']}")
        if mem["balloon_mib"] != st["actual"] // 256:
            raise SoakError(f"{where}: the allocator counts {mem['balloon_mib']} MiB of balloon frames, "
                            f"the driver {st['actual']} pages")
        if mem["bad_frees"]:
            raise SoakError(f"{where}: the allocator counted {mem['bad_frees']} bad frees")
        m = self.cmd("balloon check", r"balloon: (books consistent|check FAILED.*|core not running)")
        if m.group(1) != "books consistent":
            raise SoakError(f"{where}: balloon check: {m.group(1)}")
        return st

    def app_check(self, where):
        m = self.cmd("app check", r"app: check (ok|FAILED, (\d+) corrupt chunks \((\d+) bad words\))"
                                  r".*?(\d+) MiB verified", 600)
        if m.group(1) != "ok":
            self.stats["corrupt_bytes"] += int(m.group(3)) * 8
            raise SoakError(f"{where}: the appliance found corrupted memory: {m.group(0)}")

    def checkpoint(self, where, pattern, quiet_s=0.0):
        self.pause_app()
        # a quiet moment: free page reporting (2 s after frees by default) gets its turn
        time.sleep(quiet_s)
        self.books_agree(where)
        self.app_check(where)
        self.stats["checkpoints"] += 1
        self.scan_log(where)
        if pattern:
            self.resume_app(pattern)

    def scan_log(self, where):
        with self.vm.cond:
            bad = [t for _, t in self.vm.lines if BAD_LINE.search(t)]
        if bad:
            raise SoakError(f"{where}: bad lines in the serial log: {bad[:5]}")

    # ------------------------------------------------------------ deflate on OOM
    def oom_round(self, base_mib, pattern):
        """Squeeze the guest, then make the appliance grow by more than is
        free: the allocator's OOM path must deflate the balloon to feed it."""
        self.pause_app()
        before = self.balloon()
        held = self.app_status()[0]
        self.set_target(held + 80)
        squeezed = self.qmp_balloon_pages()
        free, _ = self.free_pages()
        want = free // 256 + 48
        m = self.cmd(f"app grow {want}M", r"app: grow (done|stopped).*?held (\d+) MiB", 600)
        held_after = int(m.group(2))
        after = self.balloon()
        now = self.qmp_balloon_pages()
        deflates = after["oom_deflates"] - before["oom_deflates"]
        self.stats["oom_rounds"] += 1
        self.stats["oom_deflates"] += deflates
        self.stats["oom_pages"] += after["oom_pages"] - before["oom_pages"]
        self.log(f"  oom: {free // 256} MiB free, appliance grows by {want} MiB: {m.group(1)}, "
                 f"{held} -> {held_after} MiB; balloon {squeezed // 256} -> {now // 256} MiB "
                 f"in {deflates} OOM deflates")
        if deflates <= 0 or now >= squeezed:
            raise SoakError(f"deflate-on-oom: the appliance grew past free memory but the balloon did not "
                            f"deflate ({squeezed} -> {now} pages, {deflates} OOM deflates)")
        if m.group(1) != "done" and now >= 4096:
            raise SoakError(f"deflate-on-oom: an allocation failed while the balloon still held {now} pages")
        self.app_check("after the OOM growth")
        if held_after > base_mib:
            self.cmd(f"app shrink {held_after - base_mib}M", r"app: shrink done", 120)
        self.resume_app(pattern)


def run(args):
    os.makedirs(os.path.join(args.build, "soak"), exist_ok=True)
    log_path = os.path.join(args.build, "soak", "progress.log")
    logf = open(log_path, "w")

    def log(text):
        print(text, flush=True)
        logf.write(text + "\n")
        logf.flush()

    rng = random.Random(args.seed)
    vm = Qemu(args.build, args.image, name="soak", mem_mb=args.mem,
              cmdline=f"app.chunk={args.chunk}",
              balloon_props={"deflate-on-oom": "on", "free-page-reporting": "on"})
    s = Soak(vm, args.mem, rng, log)
    t0 = time.monotonic()
    verdict, why = "PASS", ""
    leaked = None
    checked_mib = 0
    try:
        vm.start()
        vm.wait_for(r"boot: ready", 180)
        m, _, _ = vm.wait_for(r"virtio-balloon: using (.*)", 5)
        features = m.group(1)
        has_oom, has_rep = "deflate-on-oom" in features, "page-reporting" in features
        log(f"soak: {args.cycles} cycles, {args.mem} MiB guest, seed {args.seed}, features: {features}")

        # baseline: nothing held, nothing ballooned
        s.wait_quiet()
        base_free, total = s.free_pages()
        base_mem = s.mem()

        # the workload: a base held for the whole run, and a pattern on top
        base = args.base
        s.cmd(f"app grow {base}M", rf"app: grow done: \+{base} MiB", 300)
        pattern = f"grow:{args.swing}M,shrink:{args.swing}M,check,loop"
        s.resume_app(pattern)
        # targets the guest can meet: above what the workload and the kernel
        # need at the peak, up to all of RAM
        lo = base + args.swing + 16 + base_mem["kernel_mib"] + 24
        for i in range(1, args.cycles + 1):
            r = rng.random()
            # mostly what the guest can give; the extremes; and now and then far
            # below (the balloon runs short and the pattern's growth goes
            # through the OOM path while the host insists)
            target = (64 if r < 0.03 else lo if r < 0.08 else args.mem if r < 0.15
                      else rng.randint(lo, args.mem))
            reached = s.set_target(target)
            s.stats["targets"] += 1
            s.stats["reached"] += reached
            time.sleep(rng.uniform(0, 0.3))     # the workload runs at this size for a while
            if i % 7 == 0:
                s.cmd("compact", r"compact: moved \d+ frames", 120)
                s.stats["compactions"] += 1
            if has_oom and args.oom_every and i % args.oom_every == 0:
                s.oom_round(base, pattern)
            if i % args.check_every == 0 or i == args.cycles:
                s.checkpoint(f"cycle {i}", pattern if i < args.cycles else None, 2.5 if has_rep else 0)
                held, _, _, verified, corrupt, fails = s.app_status()
                log(f"  cycle {i}: last target {target} MiB {'reached' if reached else 'held short'}, "
                    f"guest now {args.mem - s.qmp_balloon_pages() // 256} MiB, app {held} MiB, "
                    f"{verified} MiB verified, {corrupt} corrupt, {fails} allocation failures, "
                    f"{time.monotonic() - t0:.0f} s")

        # the end: everything back
        s.cmd("app shrink all", r"app: shrink done: .* held 0 MiB", 120)
        if not s.set_target(args.mem, timeout=120):
            raise SoakError(f"the balloon did not deflate to 0: {s.qmp_balloon_pages()} pages left")
        st = s.books_agree("the end")
        if st["actual"] != 0:
            raise SoakError(f"the driver still holds {st['actual']} pages at the end")
        _, _, _, checked_mib, corrupt, _ = s.app_status()
        s.app_check("the end")
        end_free, _ = s.free_pages()
        end_mem = s.mem()
        kept = sum((end_mem[k] - base_mem[k]) // 4 for k in ("heap_kib", "anon_kib", "pt_kib"))
        leaked = base_free - end_free - kept
        if end_mem["balloon_mib"] != 0 or end_mem["movable_mib"] > base_mem["movable_mib"] + kept // 256 + 1:
            raise SoakError(f"allocator not back at its baseline: {base_mem} -> {end_mem}")
        if leaked != 0:
            raise SoakError(f"{leaked} frames leaked: free {base_free} -> {end_free} pages, "
                            f"heap/anon/page tables kept {kept} pages ({base_mem} -> {end_mem})")
        s.stats["reported_blocks"] = s.balloon()["reported_blocks"]
        if has_rep and s.stats["reported_blocks"] == 0:
            raise SoakError("free page reporting negotiated but no block was ever reported")
        log(f"  end: free {base_free} -> {end_free} pages; heap {base_mem['heap_kib']} -> "
            f"{end_mem['heap_kib']} KiB, anonymous {base_mem['anon_kib']} -> {end_mem['anon_kib']} KiB, "
            f"page tables {base_mem['pt_kib']} -> {end_mem['pt_kib']} KiB: {leaked} frames unaccounted")
        s.scan_log("the end")
        s.cmd("uptime", r"up \d+")
        if not has_oom:
            log("soak: deflate-on-oom not offered by the device: OOM rounds skipped")
        if not has_rep:
            log("soak: free page reporting not negotiated")
    except (SoakError, TimeoutError, AssertionError, OSError, KeyError) as e:
        verdict, why = "FAIL", str(e)
    finally:
        vm.stop()
    st = s.stats
    with vm.cond:
        panics = sum(1 for _, t in vm.lines if PANIC.search(t))
    if panics and verdict == "PASS":
        verdict, why = "FAIL", f"{panics} panics in the serial log"
    line = (f"soak: {verdict} {st['targets']} cycles in {time.monotonic() - t0:.0f} s "
            f"({st['reached']} targets reached, {st['targets'] - st['reached']} held short; "
            f"{st['compactions']} compactions, {st['oom_rounds']} OOM rounds with {st['oom_deflates']} "
            f"OOM deflates ({st['oom_pages'] // 256} MiB), {st['reported_blocks']} blocks reported); "
            f"{checked_mib} MiB checked, {st['corrupt_bytes']} bytes corrupted, "
            f"{'?' if leaked is None else leaked} frames leaked, actual == books == allocator at "
            f"{st['checkpoints']} checkpoints, {panics} panics")
    if why:
        line += f"\nsoak: FAILED: {why}\nsoak: serial log: {vm.log_path}"
    log(line)
    with open(os.path.join(args.build, "soak", "summary.txt"), "w") as f:
        f.write(line + "\n")
    return 0 if verdict == "PASS" else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--image", default=None)
    ap.add_argument("--cycles", type=int, default=int(os.environ.get("SOAK_CYCLES", "500")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "1")))
    ap.add_argument("--mem", type=int, default=512, help="guest MiB")
    ap.add_argument("--base", type=int, default=96, help="MiB the appliance holds all along")
    ap.add_argument("--swing", type=int, default=32, help="MiB the pattern grows and shrinks")
    ap.add_argument("--chunk", default="64K", help="appliance allocation size (small: fragmentation)")
    ap.add_argument("--check-every", type=int, default=25)
    ap.add_argument("--oom-every", type=int, default=50)
    a = ap.parse_args()
    a.image = a.image or os.path.join(a.build, "balloon.img")
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
