"""scn_balloond.py - tools/balloond end to end: three of our guests in one
host memory limit (a cgroup v1 memory controller) smaller than what they
would touch without ballooning. The app in guest 1 grows step by step; the
daemon inflates guests 2 and 3 (idle memory first) and deflates guest 1, so
guest 1's growth succeeds, no QEMU is killed and the limit is never reached;
every app's checksums hold. Then guest 1 shrinks and memory flows back.
Prints the timeline (host headroom, each guest's size) and the reaction time
from a shortage to relief.

The cgroup is created for the test and removed afterwards, even when the test
fails (the QEMUs are stopped first). A host without a usable cgroup v1 memory
controller fails the scenario with the reason, as hugetlbfs does in
scn_balloon.py: an unrunnable test is never counted as passed.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

from balloon_host import app_check, boot_to_prompt, console, guest_mib, set_target
from host_cgroup import CgroupQemu, Unavailable, cg_int, cg_read, cg_write, memory_cgroup
from scenarios import check, scenario

HERE = os.path.dirname(os.path.abspath(__file__))
BALLOOND = os.path.join(HERE, "..", "..", "tools", "balloond")
MIB = 1 << 20
RAM = 512
GUEST_LOW_MIB = 80     # the daemon keeps a short guest at this much available memory
BALLOON_QOM = "/machine/peripheral/balloon0"


class Sampler(threading.Thread):
    """Every 0.2 s: cgroup usage and each guest's size (QMP query-balloon) and
    guest 1's available memory (QMP guest-stats, polled by the daemon)."""

    def __init__(self, cg, vms, limit):
        super().__init__(daemon=True)
        self.cg, self.vms, self.limit = cg, vms, limit
        self.rows = []          # (t, usage MiB, [actual MiB], g1 available MiB or None)
        self.stop_flag = False
        self.t0 = time.monotonic()
        self.error = None

    def run(self):
        while not self.stop_flag:
            try:
                usage = cg_int(self.cg, "memory.usage_in_bytes") / MIB
                sizes = [v.qmp.execute("query-balloon")["actual"] / MIB for v in self.vms]
                st = self.vms[0].qmp.execute("qom-get", {"path": BALLOON_QOM, "property": "guest-stats"})
                av = st.get("stats", {}).get("stat-available-memory") if st.get("last-update") else None
                self.rows.append((time.monotonic() - self.t0, usage, sizes,
                                  av / MIB if isinstance(av, int) and 0 <= av < 1 << 50 else None))
            except (OSError, RuntimeError, ValueError) as e:
                self.error = f"{type(e).__name__}: {e}"
                return
            time.sleep(0.2)

    def latest(self):
        return self.rows[-1] if self.rows else None

    def stop(self):
        self.stop_flag = True
        self.join(5)


# How much must flow back to guests 2 and 3 once guest 1 shrank. Only that
# it flows: how much is the policy's (idle memory is balanced between guests
# to within balance_gap, and guests 2 and 3 keep idle memory of their own),
# so it depends on the stats of the moment - 114 MiB in one run, 48 MiB (one
# rebalance step) in a CI run with a fuzzer running beside it.
FLOW_MIN_MIB = 32


def daemon_config(path, sockdir, cg, state):
    text = f"""[daemon]
interval = 0.5
discover = {sockdir}
cgroup = {cg}
psi = 0          ; host-wide PSI would mix in other tests' load
low = 96M
high = 160M
step = 64M
guest_low = {GUEST_LOW_MIB}M   ; guest 1's next 64 MiB step needs this: the daemon's promise is the test's wait
guest_keep = 96M
balance_gap = 64M
stats_interval = 1
state = {state}

[defaults]
min = 192M
max = 0
shares = 1000
"""
    with open(path, "w") as f:
        f.write(text)


def read_log(path):
    recs = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return recs


@scenario("balloond_three_guests")
def balloond_three_guests(ctx):
    three_guests(ctx)


def three_guests(ctx):
    """The whole scenario; returns its figures (bench/b_balloond.py uses them)."""
    d = os.path.abspath(os.path.join(ctx.build, "qemu", ctx.name))
    sockdir = os.path.join(d, "qmp")
    os.makedirs(sockdir, exist_ok=True)
    for f in os.listdir(sockdir):
        os.unlink(os.path.join(sockdir, f))
    try:
        cgctx = memory_cgroup(f"balloond-test-{os.getpid()}")
        cg = cgctx.__enter__()
    except Unavailable as e:
        raise AssertionError(f"cannot set up a memory cgroup: {e}")
    daemon = None
    sampler = None
    try:
        vms = [CgroupQemu(ctx.build, ctx.image, f"{ctx.name}_g{i}", cgroup=cg, mem_mb=RAM,
                          balloon_props={"deflate-on-oom": "on"},
                          extra=["-qmp", f"unix:{sockdir}/g{i}.qmp,server=on,wait=off"])
               for i in (1, 2, 3)]
        ctx.vms.extend(vms)             # ctx.cleanup() stops them
        t_boot = time.monotonic()
        for v in vms:
            v.start()
        for v in vms:
            v.wait_for(r"boot: ready", 180)
        boot_s = time.monotonic() - t_boot
        u_boot = cg_int(cg, "memory.usage_in_bytes") / MIB
        rss_boot = [v.status_kb("VmRSS") // 1024 for v in vms]
        # The operator's overcommit: guest 1 starts small; guests 2 and 3 have
        # touched memory their apps no longer hold (idle, resident on the host).
        got, _ = set_target(vms[0], RAM // 2)
        check(abs(got - RAM // 2) < 2, f"guest 1 did not go to {RAM // 2} MiB: {got:.0f}")
        for v in vms[1:]:
            v.send("app grow 384M")
        for v in vms[1:]:
            v.wait_for(r"app: grow done: \+384 MiB", 60)
        for v in vms[1:]:
            console(v, "app shrink 320M", r"app: shrink done: .*held 64 MiB", 60)
        time.sleep(0.5)
        u_start = cg_int(cg, "memory.usage_in_bytes") / MIB
        limit = int(u_start) + 192
        cg_write(cg, "memory.limit_in_bytes", limit * MIB)
        failcnt0 = cg_int(cg, "memory.failcnt")
        ctx.note(f"3 guests of {RAM} MiB booted in {boot_s:.1f} s; QEMU RSS at boot {rss_boot} MiB, "
                 f"cgroup usage {u_boot:.0f} MiB; after guest 1 -> {RAM // 2} MiB and guests 2, 3 touched "
                 f"384 MiB and freed 320 MiB: {u_start:.0f} MiB")
        ctx.note(f"limit {limit} MiB = usage + 192 MiB; guest 1's app will grow by 384 MiB: without "
                 f"ballooning the guests would need {u_start + 384:.0f} MiB")

        conf = os.path.join(d, "balloond.conf")
        state = os.path.join(d, "balloond.json")
        logp = os.path.join(d, "balloond.log")
        daemon_config(conf, sockdir, cg, state)
        stats_before = [v.qmp.execute("qom-get", {"path": BALLOON_QOM,
                                                  "property": "guest-stats-polling-interval"}) for v in vms]
        with open(logp, "w") as log:
            daemon = subprocess.Popen([sys.executable, BALLOOND, "run", "--config", conf, "--json"],
                                      stdout=log, stderr=subprocess.STDOUT)
        t_wall0 = time.time()
        sampler = Sampler(cg, vms, limit)
        sampler.start()
        deadline = time.monotonic() + 15
        while not any(r.get("action") == "joined" and r.get("guest") == "g3" for r in read_log(logp)):
            check(daemon.poll() is None, f"balloond exited with {daemon.returncode}:\n{open(logp).read()}")
            check(time.monotonic() < deadline, f"balloond did not adopt the guests:\n{open(logp).read()}")
            time.sleep(0.1)

        # Phase 1: guest 1's app grows 64 MiB at a time (at most one step per
        # 2 s, and only into memory the guest has: a short guest waits for
        # the daemon, up to 30 s). Its own deflate-on-OOM is the last resort.
        last_step, held = 0.0, 0
        for step in range(6):
            t_wait = time.monotonic()
            while True:
                row = sampler.latest()
                room = row and row[3] is not None and row[3] >= GUEST_LOW_MIB
                if room and time.monotonic() - last_step >= 2.0:
                    break
                check(sampler.error is None, f"sampling failed: {sampler.error}")
                check(time.monotonic() - t_wait < 30,
                      f"step {step + 1}: guest 1 never got room (available {row and row[3]} MiB); "
                      f"daemon log tail:\n" + "".join(open(logp).readlines()[-8:]))
                time.sleep(0.1)
            last_step = time.monotonic()
            m = console(vms[0], "app grow 64M", r"app: grow (done|stopped)[^;]*;? ?held (\d+) MiB", 60)
            check(m.group(1) == "done", f"guest 1's app could not grow at step {step + 1}:\n{vms[0].tail(6)}")
            held = int(m.group(2))
        check(held >= 384, f"guest 1's app holds {held} MiB after six 64 MiB steps")
        app_check(vms[0])
        time.sleep(2.0)
        g23_grown = sum(sampler.latest()[2][1:])

        # Phase 2: guest 1 gives its app memory back; memory flows back to 2 and 3.
        t_shrink = time.monotonic()
        console(vms[0], "app shrink 320M", r"app: shrink done: .*held 64 MiB", 60)
        flowed, last_sizes, still_since, flow_s = 0, None, time.monotonic(), 0.0
        while time.monotonic() - t_shrink < 25:       # until it flowed and settled for 3 s
            sizes_now = sampler.latest()[2]
            if sizes_now != last_sizes:
                last_sizes, still_since = sizes_now, time.monotonic()
                flowed = sum(sizes_now[1:]) - g23_grown
                flow_s = time.monotonic() - t_shrink
            elif flowed >= FLOW_MIN_MIB and time.monotonic() - still_since >= 3:
                break
            time.sleep(0.2)
        for v in vms:
            app_check(v)

        # SIGTERM: every guest stays where it is; stats polling put back.
        sampler.stop()
        sizes = [guest_mib(v) for v in vms]
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(10)
        time.sleep(1.0)
        sizes_after = [guest_mib(v) for v in vms]
        stats_after = [v.qmp.execute("qom-get", {"path": BALLOON_QOM,
                                                 "property": "guest-stats-polling-interval"}) for v in vms]
        recs = read_log(logp)

        # ---- figures and timeline
        rows = sampler.rows
        peak = max(r[1] for r in rows)
        max_usage = cg_int(cg, "memory.max_usage_in_bytes") / MIB
        failcnt = cg_int(cg, "memory.failcnt") - failcnt0
        oom = cg_read(cg, "memory.oom_control")
        oom_kills = int(oom.split("oom_kill ")[1].split()[0]) if "oom_kill " in oom else 0
        t0 = rows[0][0]
        ctx.note("timeline (s since the daemon started: host headroom in the cgroup, guest sizes, "
                 "guest 1 available):")
        next_t = 0.0
        for t, usage, sz, av in rows:
            if t - t0 >= next_t:
                next_t += 1.0
                ctx.note(f"  {t - t0:5.1f} s  headroom {limit - usage:5.0f} MiB  usage {usage:5.0f}/{limit}  "
                         f"g1 {sz[0]:4.0f}  g2 {sz[1]:4.0f}  g3 {sz[2]:4.0f} MiB  "
                         f"g1 avail {'?' if av is None else f'{av:.0f}'}")
        reliefs = [float(r["reason"].split(" s after")[0].split()[-1]) for r in recs
                   if r.get("action") == "relief"]
        press = [float(r["reason"].split(", ")[-1].split(" s after")[0]) for r in recs
                 if r.get("action") == "pressure" and r["reason"].startswith("off")]
        moved = sum(abs(r["to_mib"] - r["from_mib"]) for r in recs if r.get("action") in ("inflate", "deflate"))
        moves = [r["ts"] for r in recs if r.get("action") in ("inflate", "deflate")]
        span = max(moves) - min(moves) if len(moves) > 1 else 1.0
        for r in recs:
            if r.get("action") in ("inflate", "deflate", "pressure", "relief", "asked-back", "stuck", "no-donor"):
                ctx.note(f"  daemon {r['ts'] - t_wall0:5.1f} s: {r['action']} {r.get('guest', '')} "
                         f"{r.get('from_mib', '')}{' -> ' if 'to_mib' in r else ''}{r.get('to_mib', '')} "
                         f"{r['reason']}")
        ctx.note(f"reaction (guest 1 short -> its memory there): {len(reliefs)} times, "
                 f"median {sorted(reliefs)[len(reliefs) // 2] if reliefs else 0:.2f} s, "
                 f"max {max(reliefs) if reliefs else 0:.2f} s; pressure on -> off: "
                 f"{', '.join(f'{p:.2f}' for p in press) or 'none'} s")
        ctx.note(f"memory moved by the daemon: {moved:.0f} MiB between its first and last move, {span:.1f} s apart; flowed back to guests 2+3 "
                 f"after guest 1 shrank: {flowed:.0f} MiB in {flow_s:.1f} s")
        ctx.note(f"peak cgroup usage {peak:.0f} MiB sampled, {max_usage:.0f} MiB by the kernel, limit {limit} MiB; "
                 f"failcnt {failcnt}, oom kills {oom_kills}; app checks: ok in all three guests")
        ctx.note(f"SIGTERM: exit {rc}, sizes {[round(s) for s in sizes]} -> {[round(s) for s in sizes_after]} MiB, "
                 f"stats polling {stats_before} -> {stats_after}")

        figures = {
            "reaction_s": reliefs, "pressure_on_to_off_s": press,
            "moved_mib": moved, "moved_span_s": span, "flowed_back_mib": flowed, "flow_back_s": flow_s,
            "limit_mib": limit, "peak_usage_mib": max_usage, "peak_over_limit_mib": max(0.0, max_usage - limit),
            "failcnt": failcnt, "oom_kills": oom_kills}
        # ---- verdict
        check(all(v.proc.poll() is None for v in vms), "a QEMU died (killed at the cgroup limit?)")
        check(oom_kills == 0, f"the cgroup OOM-killed {oom_kills} process(es)")
        check(max_usage < limit, f"the cgroup reached its limit: max usage {max_usage:.0f} of {limit} MiB")
        check(failcnt == 0, f"the cgroup hit its limit {failcnt} times")
        check(any(r.get("action") == "inflate" and r.get("guest") in ("g2", "g3") for r in recs),
              "the daemon never inflated guests 2 or 3")
        check(any(r.get("action") == "deflate" and r.get("guest") == "g1" for r in recs),
              "the daemon never deflated guest 1")
        check(flowed >= FLOW_MIN_MIB, f"only {flowed:.0f} MiB flowed back to guests 2 and 3 in {flow_s:.0f} s")
        check(rc == 0, f"balloond exited {rc} on SIGTERM")
        check(recs and recs[-1].get("action") == "exit" and recs[-1].get("reason") == "SIGTERM",
              f"balloond's last line is not its SIGTERM exit: {recs[-1] if recs else None}")
        check(all(abs(a - b) < 2 for a, b in zip(sizes, sizes_after)),
              f"guests moved after SIGTERM: {sizes} -> {sizes_after}")
        check(stats_after == stats_before, f"stats polling not restored: {stats_before} -> {stats_after}")
        return figures
    finally:
        if sampler is not None:
            sampler.stop()
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(5)
        ctx.cleanup()
        cgctx.__exit__(None, None, None)
