"""policy.py - balloond's decisions, with no I/O: whom to inflate, whom to
deflate, by how much, and why.

Contract
  Trusts: nothing it is given beyond its types. Every tick gets one Host
  observation (headroom in bytes: what the tightest host limit still allows;
  PSI `some avg10` or None) and one GuestObs per reachable guest (RAM, the
  balloon's `actual` as QEMU reports it, the guest's available memory or None,
  when QEMU last got statistics, the highest `actual` any BALLOON_CHANGE event
  showed since the last tick). Sizes are bytes of *guest memory* (RAM minus
  balloon), as QMP's `balloon` and `query-balloon` mean them.
  Owns: one GuestState per guest (the target it asked for, memory it handed
  out that the guest has not used yet, cooldowns), the host pressure flag.
  A guest missing from a tick's observations is forgotten; one that appears is
  adopted at its current size (the daemon never resizes a guest on sight).
  Returns: a Plan - the new targets to send (only those that change) and one
  Decision per change or event, each with its reason in words. It never
  assumes a target was reached: the next tick reads `actual` again.
  Fails: never raises on odd input (unknown stats, sizes past RAM, min above
  max); it clamps and says so in the reason.

The rules, in the order a tick applies them
  1. A guest whose `actual` rose above both its target and its last size
     deflated itself (deflate-on-OOM): it asked back. Its size is accepted as
     its target and it is not a donor for `cooldown` seconds.
  2. A guest that does not move toward an inflation target for `stuck_ticks`
     ticks cannot give (its min_free, max, or its app holds the memory): its
     target becomes its size and it is not a donor for `cooldown` seconds.
  3. Host pressure: on when headroom < low or PSI >= psi_on; off again only
     when headroom >= high and PSI < psi_on / 2 (hysteresis).
  4. Guests short of memory (available < guest_low, below their max) get a
     step back first, as far as headroom above `low` (minus memory handed out
     and not yet used) allows; what it does not allow is reclaimed from donors.
  5. Under pressure, donors are inflated until headroom is back at `high`:
     the most idle memory per share first (available / shares), a step per
     guest per tick, never below min, never below guest_keep of available.
  6. Without pressure and with nobody short: memory goes back to ballooned
     guests, least idle per share first, a step per tick, as far as headroom
     above `high` minus memory handed out and not yet used (for at most
     `promise_ttl` seconds) allows; and when
     the host has no room for that, idle memory is moved: the idlest guest
     (per share) gives a step if it has more than `balance_gap` more idle
     memory per 1000 shares than a ballooned guest.
  Guests still moving toward a target, or whose statistics predate their last
  change, sit a tick out (their numbers do not show the outcome yet).
"""
from dataclasses import dataclass, field

MIB = 1 << 20
BLOCK = 2 * MIB         # the guest balloons in 2 MiB blocks
TOL = 2 * MIB           # sizes within a block count as reached


def mib(n):
    return f"{n / MIB:.0f} MiB"


def down(n):
    """Round down to whole 2 MiB blocks (never below 0)."""
    return max(0, int(n) // BLOCK * BLOCK)


def up(n):
    return max(0, -(-int(n) // BLOCK) * BLOCK)


@dataclass
class Settings:
    low: int = 256 * MIB          # host headroom under which pressure starts
    high: int = 512 * MIB         # host headroom at which pressure ends
    psi_on: float = 10.0          # PSI some avg10 (%) that counts as pressure; 0 = ignore PSI
    step: int = 64 * MIB          # most a guest moves per tick
    guest_low: int = 64 * MIB     # a guest with less available memory is short
    guest_keep: int = 128 * MIB   # a donor keeps at least this much available
    balance_gap: int = 128 * MIB  # idle memory difference (per 1000 shares) that moves memory without pressure
    stuck_ticks: int = 4          # ticks without progress toward an inflation target = cannot give
    cooldown: float = 20.0        # seconds a guest that asked back or could not give is left alone
    stale: float = 10.0           # statistics older than this are unknown
    promise_ttl: float = 30.0     # memory handed out and not used counts against headroom this long


@dataclass
class GuestSettings:
    min: int = 0                  # bytes; the daemon never shrinks the guest below
    max: int = 0                  # bytes; 0 = the guest's RAM
    shares: int = 1000


@dataclass
class GuestObs:
    name: str
    ram: int
    actual: int
    avail: int = None             # stat-available-memory, None when unknown
    stats_time: float = None      # QEMU's last-update (wall clock seconds), None when none
    event_max: int = None         # highest actual seen in BALLOON_CHANGE events since the last tick
    settings: GuestSettings = field(default_factory=GuestSettings)


@dataclass
class Host:
    headroom: int                 # bytes the tightest host limit still allows
    psi: float = None             # /proc/pressure/memory some avg10, None when absent


@dataclass
class GuestState:
    target: int
    last_actual: int
    changed_at: float             # wall time of the last target change
    grant: int = 0                # handed out and not yet used by the guest
    granted_at: float = 0.0
    last_used: int = None
    stuck: int = 0
    hands_off_until: float = 0.0  # not a donor before this (asked back / could not give)
    reason: str = "joined"
    short_since: float = None     # when it was first seen short (for the relief time)
    relief_pending: bool = False  # given memory because short; relief when reached


@dataclass
class Decision:
    kind: str                     # inflate, deflate, accept, joined, left, pressure, relief, stuck, asked-back, no-donor
    guest: str = None
    old: int = None
    new: int = None
    reason: str = ""

    def text(self):
        if self.guest is None:
            return f"{self.kind}: {self.reason}"
        if self.old is not None and self.new is not None and self.old != self.new:
            return f"{self.kind} {self.guest} {mib(self.old)} -> {mib(self.new)}: {self.reason}"
        return f"{self.kind} {self.guest}: {self.reason}"

    def as_dict(self):
        d = {"action": self.kind, "reason": self.reason}
        if self.guest is not None:
            d["guest"] = self.guest
        if self.old is not None:
            d["from_mib"] = round(self.old / MIB, 1)
        if self.new is not None:
            d["to_mib"] = round(self.new / MIB, 1)
        return d


@dataclass
class Plan:
    targets: dict                 # name -> bytes to send now
    decisions: list
    pressure: bool


class Policy:
    def __init__(self, settings=None):
        self.s = settings or Settings()
        self.guests = {}          # name -> GuestState
        self.pressure = False
        self.pressure_since = None
        self.no_donor_said = False

    # ------------------------------------------------------------ helpers
    @staticmethod
    def cap(o):
        m = o.settings.max
        return o.ram if m <= 0 or m > o.ram else m

    def floor(self, o):
        return min(max(0, o.settings.min), self.cap(o))

    def fresh_avail(self, o, now):
        if o.avail is None or o.stats_time is None or now - o.stats_time > self.s.stale:
            return None
        return max(0, o.avail)

    @staticmethod
    def per_share(idle, o):
        return idle * 1000 / max(1, o.settings.shares)

    # ------------------------------------------------------------ the tick
    def tick(self, now, host, observations):
        s, out, send = self.s, [], {}
        obs = {o.name: o for o in observations}

        def set_target(o, st, new, kind, why):
            new = int(new)
            if new == st.target:
                return
            out.append(Decision(kind, o.name, st.target, new, why))
            st.target, st.changed_at, st.reason = new, now, why
            send[o.name] = new

        # joined / left
        for name in [n for n in self.guests if n not in obs]:
            del self.guests[name]
            out.append(Decision("left", name, reason="guest gone; forgotten"))
        for o in observations:
            if o.name not in self.guests:
                self.guests[o.name] = GuestState(target=o.actual, last_actual=o.actual, changed_at=now)
                out.append(Decision("joined", o.name, reason=f"adopted at {mib(o.actual)} of {mib(o.ram)} "
                                    f"(min {mib(self.floor(o))}, max {mib(self.cap(o))}, shares {o.settings.shares})"))

        # 1-2: read the outcome of what was asked before
        settled = {}
        for o in observations:
            st = self.guests[o.name]
            seen = max(o.actual, o.event_max or 0)
            if seen > max(st.last_actual, st.target) + TOL:
                out.append(Decision("asked-back", o.name, reason=f"deflated itself to {mib(seen)} "
                                    f"(deflate-on-OOM); accepted, not a donor for {s.cooldown:.0f} s"))
                set_target(o, st, o.actual, "accept", "the guest took memory back on its own")
                st.hands_off_until = now + s.cooldown
                st.stuck = 0
                st.grant = 0
            elif abs(o.actual - st.target) > TOL:
                inflating = o.actual > st.target
                progress = (st.last_actual - o.actual) if inflating else (o.actual - st.last_actual)
                st.stuck = 0 if progress >= BLOCK else st.stuck + 1
                if st.stuck >= s.stuck_ticks:
                    why = (f"could not give: stays at {mib(o.actual)} (its min_free or max, or its app "
                           f"holds the memory); left alone for {s.cooldown:.0f} s") if inflating else \
                          f"did not take memory back: stays at {mib(o.actual)}"
                    out.append(Decision("stuck", o.name, reason=why))
                    st.grant = max(0, st.grant - max(0, st.target - o.actual))
                    set_target(o, st, o.actual, "accept", why)
                    st.hands_off_until = now + s.cooldown
                    st.stuck = 0
            else:
                st.stuck = 0
            if st.grant and now - st.granted_at > s.promise_ttl:
                st.grant = 0      # not used in promise_ttl: if it ever is, pressure will say so
            avail = self.fresh_avail(o, now)
            reached = abs(o.actual - st.target) <= TOL
            stats_after = o.stats_time is not None and o.stats_time >= st.changed_at + 1
            if avail is not None and reached and stats_after:
                # (statistics from before a size change would show a false jump in use)
                used = o.actual - avail
                # Used memory that grows eats the promise; memory the guest frees
                # is still resident and is reused before anything new is touched.
                if st.last_used is not None and used != st.last_used:
                    st.grant = max(0, st.grant - abs(used - st.last_used))
                st.last_used = used
            st.last_actual = o.actual
            if reached and st.relief_pending and st.short_since is not None:
                out.append(Decision("relief", o.name, reason=f"has {mib(o.actual)} "
                                    f"{now - st.short_since:.2f} s after it ran short"))
                st.relief_pending, st.short_since = False, None
            if reached and (stats_after or now - st.changed_at >= s.stale) and avail is not None:
                settled[o.name] = avail

        # 3: host pressure with hysteresis
        psi_hot = s.psi_on > 0 and host.psi is not None and host.psi >= s.psi_on
        psi_cool = s.psi_on <= 0 or host.psi is None or host.psi < s.psi_on / 2
        was = self.pressure
        if not self.pressure and (host.headroom < s.low or psi_hot):
            self.pressure, self.pressure_since = True, now
            why = f"headroom {mib(host.headroom)} < low {mib(s.low)}" if host.headroom < s.low \
                else f"PSI some avg10 {host.psi:.1f}% >= {s.psi_on:.1f}%"
            out.append(Decision("pressure", reason=f"on: {why}"))
        elif self.pressure and host.headroom >= s.high and psi_cool:
            self.pressure = False
            out.append(Decision("pressure", reason=f"off: headroom {mib(host.headroom)} >= high {mib(s.high)}, "
                                f"{now - self.pressure_since:.2f} s after it came"))
        if was and not self.pressure:
            self.no_donor_said = False

        grants = sum(st.grant for st in self.guests.values())
        inflight_reclaim = sum(max(0, o.actual - self.guests[o.name].target) for o in observations)

        # 4: short guests first
        short = []
        for o in observations:
            st = self.guests[o.name]
            if o.name in settled and settled[o.name] < s.guest_low and st.target < self.cap(o) - TOL:
                short.append(o)
        short.sort(key=lambda o: self.per_share(settled[o.name], o))
        for o in observations:
            st = self.guests[o.name]
            if o in short and st.short_since is None:
                st.short_since = now
            elif o.name in settled and o not in short and not st.relief_pending:
                st.short_since = None
        budget = host.headroom - s.low - grants
        unmet = 0
        for o in short:
            st = self.guests[o.name]
            want = down(min(s.step, self.cap(o) - st.target))
            give = down(min(want, budget))
            why = f"short: available {mib(settled[o.name])} < {mib(s.guest_low)}"
            if give > 0:
                budget -= give
                st.grant, st.granted_at = st.grant + give, now
                st.relief_pending = True
                set_target(o, st, st.target + give, "deflate", why)
            if want > give:
                unmet += want - give
                st.reason = why + f"; waiting for {mib(want - give)} of host room"

        # 5: reclaim from donors
        reclaim = unmet + (max(0, s.high - host.headroom) if self.pressure else 0) - inflight_reclaim
        donors = []
        for o in observations:
            st = self.guests[o.name]
            if o.name not in settled or o in short or now < st.hands_off_until:
                continue
            giveable = down(min(st.target - self.floor(o), settled[o.name] - s.guest_keep))
            if giveable > 0:
                donors.append((o, giveable))
        donors.sort(key=lambda d: -self.per_share(settled[d[0].name], d[0]))
        took = set()
        if reclaim > 0:
            left = up(reclaim)
            for o, giveable in donors:
                if left <= 0:
                    break
                st = self.guests[o.name]
                take = down(min(s.step, giveable, left))
                if take <= 0:
                    continue
                why = (f"host pressure (headroom {mib(host.headroom)})" if self.pressure else "room for short guests") + \
                      f"; idle {mib(settled[o.name])}, shares {o.settings.shares}"
                if unmet:
                    why += f"; for {', '.join(g.name for g in short)}"
                set_target(o, st, st.target - take, "inflate", why)
                st.grant = max(0, st.grant - take)
                took.add(o.name)
                left -= take
            if left > 0 and not self.no_donor_said:
                self.no_donor_said = True
                out.append(Decision("no-donor", reason=f"{mib(left)} still needed and no guest can give more "
                                    f"(all at min, short, or keeping {mib(s.guest_keep)} available)"))
        elif not self.pressure and not short:
            # 6: pressure gone: give back, least idle per share first; else rebalance idle memory
            receivers = [o for o in observations if o.name in settled and o.name not in took
                         and self.guests[o.name].target < self.cap(o) - TOL]
            receivers.sort(key=lambda o: self.per_share(settled[o.name], o))
            budget = host.headroom - s.high - grants
            gave = False
            for o in receivers:
                st = self.guests[o.name]
                give = down(min(s.step, self.cap(o) - st.target, budget))
                if give <= 0:
                    continue
                budget -= give
                st.grant, st.granted_at = st.grant + give, now
                gave = True
                set_target(o, st, st.target + give, "deflate",
                           f"pressure gone: host has room (headroom {mib(host.headroom)}); idle {mib(settled[o.name])}")
            if not gave and receivers and donors and inflight_reclaim <= 0 and budget > -TOL:
                o_rx = receivers[0]
                o_dn, giveable = donors[0]
                gap = self.per_share(settled[o_dn.name], o_dn) - self.per_share(settled[o_rx.name], o_rx)
                if o_dn is not o_rx and gap > s.balance_gap:
                    st = self.guests[o_dn.name]
                    take = down(min(s.step, giveable, gap / 2))
                    if take > 0:
                        set_target(o_dn, st, st.target - take, "inflate",
                                   f"rebalance: idle {mib(settled[o_dn.name])} here, "
                                   f"{mib(settled[o_rx.name])} in {o_rx.name} (per 1000 shares)")
                        st.grant = max(0, st.grant - take)

        return Plan(targets=send, decisions=out, pressure=self.pressure)

    def forget_assumptions(self, observations):
        """Dry run: nothing was sent, so every target is the guest's size again."""
        for o in observations:
            st = self.guests.get(o.name)
            if st:
                st.target, st.last_actual, st.grant, st.stuck, st.changed_at = o.actual, o.actual, 0, 0, 0.0
