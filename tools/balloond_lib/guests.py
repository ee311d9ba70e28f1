"""guests.py - the guests balloond manages: where they are, what they report,
and the one command it sends them.

Contract
  Trusts: nothing a socket says. Every call is bounded (QMP timeout), and any
  failure - no listener, a socket that does not speak QMP, a QEMU that quits
  mid-step, a target QEMU refuses - raises GuestError with one line; the
  caller drops or skips that guest and goes on.
  Owns: one connection per guest, and the guest-stats polling interval it
  set: the value found on connect is written back by restore() (on exit, and
  when a guest is dropped while still reachable).
  Reads outcomes only over QMP (query-balloon, guest-stats, BALLOON_CHANGE
  events), never the guest's console.
  Backends: QmpGuest (a QMP unix socket; tools/qmp.py) and LibvirtGuest
  (python3-libvirt, only when `import libvirt` works).
  Discovery: every unix socket in the `discover` directory is a guest named
  after the file (its extension dropped); a [guest NAME] section with the same
  name gives its min/max/shares.
"""
import os
import stat
import time

from qmp import QMP

from .policy import GuestObs

BALLOON = "/machine/peripheral/balloon0"
STAT_ABSENT = (1 << 64) - 1


class GuestError(Exception):
    pass


class _QMP(QMP):
    """tools/qmp.py's client, closing its socket when the greeting fails (a
    daemon retrying a bad socket every few seconds must not leak them)."""

    def __init__(self, *a, **kw):
        try:
            super().__init__(*a, **kw)
        except BaseException:
            sock = getattr(self, "sock", None)
            if sock is not None:
                sock.close()
            raise


class QmpGuest:
    kind = "qmp"

    def __init__(self, name, path, settings, stats_interval=1):
        self.name, self.path, self.settings = name, path, settings
        self.stats_interval = stats_interval
        self.q = None
        self.ram = None
        self.old_interval = None
        self.balloon_path = BALLOON

    def where(self):
        return self.path

    def connect(self):
        try:
            self.q = _QMP(self.path, timeout=3, connect_timeout=0.3)
        except TimeoutError as e:
            if "did not appear" in str(e):
                raise GuestError(f"nobody listens at {self.path}") from None
            raise GuestError(f"no QMP greeting at {self.path} within 3 s (not QMP, or another client "
                             f"holds it: QEMU serves one client per -qmp socket)") from None
        except (ValueError, KeyError) as e:
            raise GuestError(f"{self.path} does not speak QMP ({type(e).__name__}: {e})") from None
        except (OSError, ConnectionError, RuntimeError) as e:
            raise GuestError(f"cannot talk QMP at {self.path}: {e}") from None
        try:
            self.ram = self._x("query-memory-size-summary")["base-memory"]
            self._x("query-balloon")
            self.old_interval = self._x("qom-get", {"path": self.balloon_path,
                                                    "property": "guest-stats-polling-interval"})
            if self.stats_interval is not None and self.old_interval != self.stats_interval:
                self._x("qom-set", {"path": self.balloon_path, "property": "guest-stats-polling-interval",
                                    "value": self.stats_interval})
        except GuestError:
            self.close()
            raise

    def _x(self, cmd, args=None):
        if self.q is None:
            raise GuestError("not connected")
        try:
            return self.q.execute(cmd, args)
        except RuntimeError as e:
            raise GuestError(f"QEMU refused: {e}") from None
        except (OSError, ConnectionError, ValueError) as e:
            raise GuestError(f"lost QMP connection ({type(e).__name__}: {e or 'closed'})") from None

    def observe(self):
        actual = self._x("query-balloon")["actual"]
        st = self._x("qom-get", {"path": self.balloon_path, "property": "guest-stats"})
        stats = st.get("stats", {}) if isinstance(st, dict) else {}
        last = st.get("last-update", 0) if isinstance(st, dict) else 0
        avail = stats.get("stat-available-memory")
        if avail is None or avail == STAT_ABSENT or avail < 0:
            avail = stats.get("stat-free-memory")
        if avail is None or avail == STAT_ABSENT or avail < 0 or not last:
            avail = None
        ev = [e["data"]["actual"] for e in self.q.events
              if e.get("event") == "BALLOON_CHANGE" and isinstance(e.get("data", {}).get("actual"), int)]
        self.q.events.clear()
        return GuestObs(self.name, self.ram, actual, avail, float(last) if last else None,
                        max(ev) if ev else None, self.settings)

    def set_target(self, size):
        self._x("balloon", {"value": int(size)})

    def restore(self):
        """Put back the stats polling interval found on connect."""
        if self.q is not None and self.stats_interval is not None and self.old_interval is not None \
                and self.old_interval != self.stats_interval:
            self._x("qom-set", {"path": self.balloon_path, "property": "guest-stats-polling-interval",
                                "value": self.old_interval})

    def close(self):
        if self.q is not None:
            try:
                self.q.close()
            except OSError:
                pass
        self.q = None


class LibvirtGuest:
    """A libvirt domain (python3-libvirt). Sizes in libvirt are KiB."""
    kind = "libvirt"

    def __init__(self, name, domain, settings, uri, stats_interval=1):
        self.name, self.domain, self.settings, self.uri = name, domain, settings, uri
        self.stats_interval = stats_interval
        self.dom = None
        self.ram = None
        self.old_interval = None

    def where(self):
        return f"libvirt {self.uri} domain {self.domain}"

    def connect(self):
        try:
            import libvirt
        except ImportError:
            raise GuestError("libvirt = ... needs python3-libvirt (apt-get install python3-libvirt)") from None
        self.lv = libvirt
        try:
            conn = libvirt.open(self.uri)
            self.dom = conn.lookupByName(self.domain)
            self.ram = self.dom.maxMemory() * 1024
            if self.stats_interval is not None:
                self.dom.setMemoryStatsPeriod(self.stats_interval, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as e:
            raise GuestError(f"libvirt: {e}") from None

    def observe(self):
        try:
            ms = self.dom.memoryStats()
        except self.lv.libvirtError as e:
            raise GuestError(f"libvirt: {e}") from None
        avail = ms.get("usable", ms.get("unused"))
        last = ms.get("last_update")
        return GuestObs(self.name, self.ram, ms.get("actual", 0) * 1024,
                        avail * 1024 if avail is not None else None, float(last) if last else None,
                        None, self.settings)

    def set_target(self, size):
        try:
            self.dom.setMemoryFlags(int(size) // 1024, self.lv.VIR_DOMAIN_AFFECT_LIVE)
        except self.lv.libvirtError as e:
            raise GuestError(f"libvirt refused: {e}") from None

    def restore(self):
        pass      # libvirt keeps its own stats period in the domain; nothing of ours to undo

    def close(self):
        self.dom = None


def discover(directory):
    """{guest name: socket path} for every unix socket in `directory`."""
    out = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for f in names:
        p = os.path.join(directory, f)
        try:
            if stat.S_ISSOCK(os.stat(p).st_mode):
                out[f.rsplit(".", 1)[0] if "." in f else f] = p
        except OSError:
            continue
    return out


class Fleet:
    """The guests of one daemon: configured ones plus discovered sockets,
    connected lazily, dropped on any error and retried after `retry` seconds."""

    def __init__(self, config, log, retry=10.0, clock=time.monotonic):
        self.c, self.log, self.retry, self.clock = config, log, retry, clock
        self.live = {}          # name -> guest object (connected)
        self.failed = {}        # name -> (when, message) of the last failure

    def wanted(self):
        want = {}
        if self.c.discover:
            for name, path in discover(self.c.discover).items():
                want[name] = ("qmp", path)
        for name, g in self.c.guests.items():
            if g.qmp:
                want[name] = ("qmp", g.qmp)
            elif g.libvirt:
                want[name] = ("libvirt", g.libvirt)
        return want

    def _make(self, name, kind, where):
        s = self.c.settings_for(name)
        if kind == "qmp":
            return QmpGuest(name, where, s, self.c.stats_interval)
        return LibvirtGuest(name, where, s, self.c.libvirt_uri, self.c.stats_interval)

    def refresh(self):
        """Connect new guests, drop those whose socket went away."""
        want = self.wanted()
        for name in list(self.live):
            g = self.live[name]
            if name not in want or (g.kind == "qmp" and not os.path.exists(g.path)):
                self.drop(name, "its socket is gone")
        now = self.clock()
        for name, (kind, where) in want.items():
            if name in self.live:
                continue
            when, msg = self.failed.get(name, (None, None))
            if when is not None and now - when < self.retry:
                continue
            g = self._make(name, kind, where)
            try:
                g.connect()
            except GuestError as e:
                if msg != str(e):
                    self.log(f"guest {name}: {e}; retrying every {self.retry:.0f} s")
                self.failed[name] = (now, str(e))
                continue
            self.failed.pop(name, None)
            self.live[name] = g
        for name in list(self.failed):
            if name not in want:
                del self.failed[name]

    def drop(self, name, why, restore=True):
        g = self.live.pop(name, None)
        if g is None:
            return
        if restore:
            try:
                g.restore()
            except GuestError:
                pass
        g.close()
        self.log(f"guest {name}: dropped: {why}")
        self.failed[name] = (self.clock(), why)

    def observe(self):
        out = []
        for name in list(self.live):
            try:
                out.append(self.live[name].observe())
            except GuestError as e:
                self.drop(name, str(e), restore=False)
        return out

    def close(self, restore=True):
        said = []
        for name, g in list(self.live.items()):
            if restore:
                try:
                    g.restore()
                    if g.stats_interval is not None and g.old_interval is not None \
                            and g.old_interval != g.stats_interval:
                        said.append(f"{name}: stats polling back to {g.old_interval} s")
                except GuestError as e:
                    said.append(f"{name}: could not restore stats polling ({e})")
            g.close()
        self.live.clear()
        return said
