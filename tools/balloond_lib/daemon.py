"""daemon.py - balloond's loop: observe the host and the guests, ask the
policy, send the targets, say what it did.

Contract
  Trusts: policy.py for every decision; guests.py and host.py for bounded,
  exception-safe I/O (GuestError is the only error a guest can cause).
  Owns: the loop, the output (one line per decision, or one JSON object per
  line with --json), the state file `status` reads, signal handling.
  Fails soft: a guest that vanishes or a QMP error is one line and the loop
  goes on; a target QEMU refuses is one line and the policy sees the outcome
  (the guest does not move) on the next tick. SIGTERM/SIGINT end the loop at
  the next check (at most 0.1 s): every guest stays at the size it has,
  the stats polling intervals found on connect are put back, and the last
  line says so. A dry run sends no target and keeps no assumption.
"""
import json
import os
import signal
import sys
import time

from .guests import Fleet, GuestError
from .host import read_host
from .policy import MIB, Host, Policy, mib


class Daemon:
    def __init__(self, config, as_json=False, dry_run=False, out=None, state_path=None):
        self.c, self.as_json, self.dry_run = config, as_json, dry_run
        self.out = out or sys.stdout
        self.state_path = state_path if state_path is not None else config.state
        self.policy = Policy(config.policy)
        self.fleet = Fleet(config, self.note)
        self.stop_signal = None
        self.last_obs = []
        self.last_host = None
        self.said = set()           # dry run: decisions already printed
        self.state_ok = True

    # ------------------------------------------------------------ output
    def emit(self, record, text):
        if self.as_json:
            record = dict(record, ts=round(time.time(), 3))
            self.out.write(json.dumps(record, sort_keys=True) + "\n")
        else:
            self.out.write(time.strftime("%H:%M:%S ") + text + "\n")
        self.out.flush()

    def note(self, text):
        self.emit({"action": "note", "reason": text}, text)

    # ------------------------------------------------------------ one tick
    def tick(self):
        self.fleet.refresh()
        obs = self.fleet.observe()
        hv = read_host(self.c.cgroup, self.c.hugetlb)
        for p in hv.problems:
            if p not in self.said:
                self.said.add(p)
                self.note(f"host: {p}")
        plan = self.policy.tick(time.time(), Host(hv.headroom, hv.psi), obs)
        extra = {"headroom_mib": round(hv.headroom / MIB, 1), "pressure": plan.pressure}
        printed = set()
        for d in plan.decisions:
            text = d.text()
            if self.dry_run:
                if d.kind in ("inflate", "deflate", "accept"):
                    text = "would " + text
                printed.add(text)
                if text in self.said:
                    continue
            rec = dict(d.as_dict(), **extra)
            if self.dry_run:
                rec["dry_run"] = True
            self.emit(rec, text)
        if self.dry_run:
            self.said = {t for t in self.said if not t.startswith("would ")} | printed
            self.policy.forget_assumptions(obs)
        else:
            for name, size in plan.targets.items():
                g = self.fleet.live.get(name)
                if g is None:
                    continue
                try:
                    g.set_target(size)
                except GuestError as e:
                    self.note(f"guest {name}: target {mib(size)} not sent: {e}")
                    if "lost QMP" in str(e):
                        self.fleet.drop(name, str(e), restore=False)
        self.last_obs, self.last_host = obs, hv
        self.write_state(plan.pressure)

    # ------------------------------------------------------------ state for `status`
    def state(self, pressure):
        guests = []
        for o in self.last_obs:
            st = self.policy.guests.get(o.name)
            g = self.fleet.live.get(o.name)
            guests.append({"name": o.name, "where": g.where() if g else None, "ram": o.ram, "actual": o.actual,
                           "target": st.target if st else None, "available": o.avail,
                           "min": self.policy.floor(o), "max": self.policy.cap(o), "shares": o.settings.shares,
                           "reason": st.reason if st else ""})
        unreachable = {n: m for n, (_, m) in self.fleet.failed.items()}
        hv = self.last_host
        return {"pid": os.getpid(), "ts": time.time(), "interval": self.c.interval, "dry_run": self.dry_run,
                "pressure": pressure, "host": {"headroom": hv.headroom, "psi": hv.psi, "sources": hv.sources,
                                               "detail": hv.detail},
                "settings": {"low": self.c.policy.low, "high": self.c.policy.high},
                "guests": guests, "unreachable": unreachable}

    def write_state(self, pressure):
        if not self.state_path:
            return
        tmp = f"{self.state_path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.state(pressure), f)
            os.replace(tmp, self.state_path)
            self.state_ok = True
        except OSError as e:
            if self.state_ok:
                self.note(f"cannot write the state file {self.state_path} ({e.strerror}); "
                          f"`balloond status` will not see this daemon")
            self.state_ok = False

    # ------------------------------------------------------------ the loop
    def _on_signal(self, signum, frame):
        self.stop_signal = signum

    def run(self, once=False):
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            srcs = ["MemAvailable"] + (["hugetlbfs pool"] if self.c.hugetlb else []) + \
                   ([f"cgroup {self.c.cgroup}"] if self.c.cgroup else [])
            p = self.c.policy
            self.note(f"balloond: {'dry run (no target is sent), ' if self.dry_run else ''}every "
                      f"{self.c.interval:g} s; host headroom from {', '.join(srcs)}"
                      f"{', PSI' if p.psi_on > 0 else ''}; pressure below {mib(p.low)}, over until {mib(p.high)}; "
                      f"guests: {len(self.c.guests)} configured"
                      f"{', sockets in ' + self.c.discover if self.c.discover else ''}")
            while self.stop_signal is None:
                t0 = time.monotonic()
                try:
                    self.tick()
                except Exception as e:      # a bug must not leave guests unattended silently
                    self.note(f"balloond: tick failed ({type(e).__name__}: {e}); going on")
                if once:
                    break
                while self.stop_signal is None and time.monotonic() - t0 < self.c.interval:
                    time.sleep(min(0.1, max(0.0, self.c.interval - (time.monotonic() - t0))))
        finally:
            try:
                self.last_obs = self.fleet.observe() or self.last_obs    # where they are now
            except Exception:
                pass
            sizes = ", ".join(f"{o.name} {mib(o.actual)}" for o in self.last_obs) or "no guests"
            restored = self.fleet.close(restore=True)
            if self.state_path:
                try:
                    os.unlink(self.state_path)
                except OSError:
                    pass
            why = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}.get(self.stop_signal, "done")
            self.emit({"action": "exit", "reason": why, "sizes_mib": {o.name: round(o.actual / MIB, 1)
                                                                      for o in self.last_obs},
                       "restored": restored},
                      f"balloond: {why}: leaving every guest where it is ({sizes})"
                      + (f"; {'; '.join(restored)}" if restored else ""))
            for s, h in old.items():
                signal.signal(s, h)
        return 0
