"""Policy of tools/balloond (balloond_lib/policy.py) on recorded sequences of
host and guest observations: pressure on and off, hysteresis, idle-first and
shares, min/max/step clamps, a guest that cannot give, a guest that asks back,
guests joining and leaving - and a small simulated host with a hard limit."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from balloond_lib.policy import (MIB, GuestObs, GuestSettings, Host, Policy,  # noqa: E402
                                 Settings)

M = MIB


def settings(**kw):
    base = dict(low=100 * M, high=200 * M, step=64 * M, guest_low=64 * M, guest_keep=96 * M,
                balance_gap=128 * M, stuck_ticks=3, cooldown=10, psi_on=10.0, stale=10)
    base.update(kw)
    return Settings(**base)


def g(name, actual, avail, ram=512, t=None, mn=128, mx=0, shares=1000, event=None):
    """A guest observation in MiB; stats dated t (wall seconds)."""
    return GuestObs(name, ram * M, actual * M, None if avail is None else avail * M, t,
                    None if event is None else event * M, GuestSettings(mn * M, mx * M, shares))


class Run:
    """Feeds a policy one tick per call, the clock advancing 1 s per tick;
    guest stats are dated 'now', so they are always fresh."""

    def __init__(self, **kw):
        self.p = Policy(settings(**kw))
        self.now = 1000.0

    def tick(self, headroom, guests, psi=None):
        self.now += 1.0
        for o in guests:
            if o.stats_time is None and o.avail is not None:
                o.stats_time = self.now
        return self.p.tick(self.now, Host(headroom * M, psi), guests)


def mibs(plan):
    return {k: v // M for k, v in plan.targets.items()}


def kinds(plan):
    return [(d.kind, d.guest) for d in plan.decisions]


class Adopt(unittest.TestCase):
    def test_a_new_guest_is_adopted_at_its_size(self):
        r = Run()
        plan = r.tick(50, [g("a", 512, 400)])      # even under pressure
        self.assertEqual(plan.targets, {})
        self.assertIn(("joined", "a"), kinds(plan))
        self.assertIn("adopted at 512 MiB of 512 MiB", plan.decisions[0].text())


class Pressure(unittest.TestCase):
    def test_pressure_inflates_the_most_idle_guest_first(self):
        r = Run()
        guests = lambda: [g("a", 512, 200), g("b", 512, 400), g("c", 512, 90)]   # noqa: E731
        r.tick(1000, guests())
        r.tick(1000, guests())
        plan = r.tick(150 - 100, guests())            # headroom 50 < low 100: reclaim 150
        self.assertTrue(plan.pressure)
        self.assertEqual(mibs(plan), {"b": 512 - 64, "a": 512 - 64})   # b first; c keeps its 96 MiB
        self.assertEqual([d.guest for d in plan.decisions if d.kind == "inflate"], ["b", "a"])
        self.assertIn("host pressure", [d for d in plan.decisions if d.kind == "inflate"][0].reason)

    def test_shares_weight_the_choice(self):
        r = Run()
        guests = lambda: [g("big", 512, 400, shares=4000), g("small", 512, 300, shares=1000)]  # noqa: E731
        r.tick(1000, guests())
        plan = r.tick(150, guests())
        self.assertEqual(plan.targets, {})               # no pressure yet: 150 > low
        plan = r.tick(90, guests())                      # reclaim 110 -> 64 + 46
        self.assertEqual(mibs(plan), {"small": 448, "big": 512 - 46})
        self.assertEqual([d.guest for d in plan.decisions if d.kind == "inflate"], ["small", "big"])

    def test_never_below_min_and_a_step_per_tick(self):
        r = Run()
        r.tick(1000, [g("a", 300, 250, mn=256)])
        plan = r.tick(0, [g("a", 300, 250, mn=256)])
        self.assertEqual(mibs(plan), {"a": 256})
        r2 = Run(step=32 * M)
        r2.tick(1000, [g("a", 512, 400)])
        plan = r2.tick(0, [g("a", 512, 400)])
        self.assertEqual(mibs(plan), {"a": 480})

    def test_hysteresis_band(self):
        r = Run()
        seq = [(1000, False), (150, False), (90, True), (150, True), (199, True), (200, False), (150, False),
               (99, True)]
        for headroom, on in seq:
            # guests at their floor: nothing to give, so only the flag moves
            plan = r.tick(headroom, [g("a", 128, 100)])
            self.assertEqual(plan.pressure, on, f"headroom {headroom}")

    def test_psi_counts_as_pressure(self):
        r = Run()
        r.tick(1000, [g("a", 512, 400)])
        plan = r.tick(1000, [g("a", 512, 400)], psi=25.0)
        self.assertTrue(plan.pressure)
        self.assertIn("PSI some avg10 25.0%", plan.decisions[0].reason)
        self.assertTrue(r.tick(1000, [g("a", 448, 336)], psi=8.0).pressure)    # not below half yet
        self.assertFalse(r.tick(1000, [g("a", 448, 336)], psi=4.0).pressure)

    def test_no_donor_is_said_once(self):
        r = Run()
        r.tick(1000, [g("a", 512, 50)])
        plan = r.tick(10, [g("a", 512, 50)])
        self.assertIn(("no-donor", None), kinds(plan))
        plan = r.tick(10, [g("a", 512, 50)])
        self.assertNotIn(("no-donor", None), kinds(plan))

    def test_inflation_in_flight_is_not_asked_twice(self):
        r = Run()
        r.tick(1000, [g("a", 512, 400)])
        self.assertEqual(mibs(r.tick(40, [g("a", 512, 400)])), {"a": 448})
        # still moving: 480 of the way; host headroom not back yet
        plan = r.tick(70, [g("a", 480, 368)])
        self.assertEqual(plan.targets, {})


class GiveBack(unittest.TestCase):
    def test_pressure_gone_gives_back_least_idle_first_within_the_room(self):
        r = Run()
        guests = lambda: [g("a", 300, 200), g("b", 300, 100)]   # noqa: E731
        r.tick(300, guests())
        plan = r.tick(300, guests())            # room above high: 100
        self.assertFalse(plan.pressure)
        self.assertEqual(mibs(plan), {"b": 364, "a": 336})
        self.assertEqual([d.guest for d in plan.decisions], ["b", "a"])
        self.assertIn("pressure gone", plan.decisions[0].reason)

    def test_memory_handed_out_counts_until_used(self):
        r = Run()
        r.tick(300, [g("b", 300, 100)])
        self.assertEqual(mibs(r.tick(300, [g("b", 300, 100)])), {"b": 364})
        # reached, unused: the host still shows 300 headroom, but 64 are promised
        plan = r.tick(300, [g("b", 364, 164)])
        self.assertEqual(mibs(plan), {"b": 400})       # only 100 - 64 = 36 more
        self.assertEqual(r.tick(300, [g("b", 400, 200)]).targets, {})   # all 100 promised
        self.assertEqual(r.tick(300, [g("b", 400, 200)]).targets, {})
        # the guest uses 100 MiB: the promise is kept, the room is real again
        self.assertEqual(r.tick(300, [g("b", 400, 100)]).targets, {"b": 464 * M})

    def test_max_is_respected(self):
        r = Run()
        r.tick(5000, [g("a", 300, 10, mx=320)])
        plan = r.tick(5000, [g("a", 300, 10, mx=320)])
        self.assertEqual(mibs(plan), {"a": 320})
        r.tick(5000, [g("a", 320, 30, mx=320)])
        self.assertEqual(r.tick(5000, [g("a", 320, 30, mx=320)]).targets, {})

    def test_rebalance_moves_idle_memory_without_pressure(self):
        r = Run()
        guests = lambda: [g("idle", 512, 450), g("busy", 300, 70)]   # noqa: E731
        r.tick(200, guests())
        plan = r.tick(200, guests())                  # no room above high: move idle memory
        self.assertEqual(mibs(plan), {"idle": 448})
        self.assertIn("rebalance", plan.decisions[0].reason)
        plan = r.tick(264, [g("idle", 448, 386), g("busy", 300, 70)])
        self.assertEqual(mibs(plan), {"busy": 364})
        self.assertIn("pressure gone", plan.decisions[0].reason)


class Short(unittest.TestCase):
    def test_a_short_guest_gets_memory_first(self):
        r = Run()
        guests = lambda: [g("app", 256, 40), g("idle", 512, 400)]   # noqa: E731
        r.tick(500, guests())
        plan = r.tick(500, guests())
        self.assertEqual(mibs(plan), {"app": 320})
        self.assertIn("short: available 40 MiB < 64 MiB", plan.decisions[0].reason)

    def test_short_guest_without_room_waits_while_donors_give(self):
        r = Run()
        r.tick(120, [g("app", 256, 40), g("idle", 512, 400)])
        plan = r.tick(120, [g("app", 256, 40), g("idle", 512, 400)])   # room above low: 20
        self.assertEqual(mibs(plan), {"app": 276, "idle": 468})
        d = [x for x in plan.decisions if x.guest == "idle"][0]
        self.assertIn("for app", d.reason)
        # the donor gave (and the app used its 20 MiB): room is there, the short guest gets a step
        plan = r.tick(164, [g("app", 276, 40), g("idle", 468, 356)])
        self.assertEqual(mibs(plan), {"app": 340})

    def test_relief_time_is_reported(self):
        r = Run()
        r.tick(500, [g("app", 256, 40)])
        r.tick(500, [g("app", 256, 40)])
        plan = r.tick(500, [g("app", 320, 104)])
        rel = [d for d in plan.decisions if d.kind == "relief"]
        self.assertEqual(len(rel), 1)
        self.assertIn("1.00 s after it ran short", rel[0].reason)

    def test_guest_that_asks_back_is_accepted_and_left_alone(self):
        r = Run()
        r.tick(1000, [g("a", 512, 400), g("b", 512, 300)])
        self.assertEqual(mibs(r.tick(40, [g("a", 512, 400), g("b", 512, 300)])), {"a": 448, "b": 448})
        self.assertEqual(r.tick(200, [g("a", 448, 336), g("b", 448, 236)]).targets, {})
        # a deflated itself on OOM (448 -> 480): accepted; the reclaim takes from b only
        plan = r.tick(60, [g("a", 480, 10), g("b", 448, 236)])
        self.assertIn(("asked-back", "a"), kinds(plan))
        self.assertEqual(mibs(plan), {"a": 480, "b": 384})
        plan = r.tick(60, [g("a", 480, 300), g("b", 384, 172)])
        self.assertNotIn("a", plan.targets)          # idle again, but left alone for the cooldown

    def test_asking_back_seen_in_events_only(self):
        r = Run()
        r.tick(1000, [g("a", 400, 100)])
        plan = r.tick(1000, [g("a", 400, 100, event=450)])
        self.assertIn(("asked-back", "a"), kinds(plan))


class CannotGive(unittest.TestCase):
    def test_a_guest_that_does_not_move_is_left_alone(self):
        r = Run()
        guests = lambda a: [g("stubborn", a, 400), g("other", 512, 300)]   # noqa: E731
        r.tick(1000, guests(512))
        plan = r.tick(36, guests(512))            # reclaim 164: stubborn 64 first, other 64
        self.assertEqual(mibs(plan), {"stubborn": 448, "other": 448})
        plan = r.tick(36, [g("stubborn", 512, 400), g("other", 448, 236)])
        self.assertEqual(mibs(plan), {"other": 384})     # stubborn's 64 count as coming
        plan = r.tick(36, [g("stubborn", 512, 400), g("other", 384, 172)])
        self.assertEqual(mibs(plan), {"other": 320})     # the reclaim goes on elsewhere
        plan = r.tick(36, [g("stubborn", 512, 400), g("other", 320, 108)])
        self.assertIn(("stuck", "stubborn"), kinds(plan))
        self.assertEqual(plan.targets.get("stubborn"), 512 * M)
        self.assertIn("could not give", [d for d in plan.decisions if d.kind == "stuck"][0].reason)
        plan = r.tick(36, [g("stubborn", 512, 400), g("other", 308, 96)])
        self.assertNotIn("stubborn", plan.targets)      # left alone for the cooldown

    def test_unknown_stats_make_neither_donor_nor_short(self):
        r = Run()
        r.tick(1000, [g("a", 512, None)])
        plan = r.tick(10, [g("a", 512, None)])
        self.assertEqual(plan.targets, {})
        stale = g("b", 512, 400, t=1.0)          # statistics from long ago
        r.tick(10, [stale])
        self.assertEqual(r.tick(10, [stale]).targets, {})

    def test_waits_for_statistics_newer_than_its_change(self):
        r = Run()
        r.tick(500, [g("app", 256, 40)])
        self.assertEqual(mibs(r.tick(500, [g("app", 256, 40)])), {"app": 320})
        old = r.now
        # reached, but QEMU's statistics still date from before the change
        plan = r.tick(500, [g("app", 320, 40, t=old - 1)])
        self.assertEqual(plan.targets, {})

    def test_odd_settings_are_clamped(self):
        r = Run()
        r.tick(1000, [g("a", 512, 400, mn=2048, mx=4096)])
        plan = r.tick(0, [g("a", 512, 400, mn=2048, mx=4096)])
        self.assertEqual(plan.targets, {})           # min above RAM: the guest's RAM is its floor


class JoinLeave(unittest.TestCase):
    def test_guests_join_and_leave(self):
        r = Run()
        r.tick(1000, [g("a", 512, 400)])
        plan = r.tick(1000, [g("a", 512, 400), g("b", 256, 200)])
        self.assertIn(("joined", "b"), kinds(plan))
        plan = r.tick(1000, [g("b", 256, 200)])
        self.assertIn(("left", "a"), kinds(plan))
        self.assertNotIn("a", r.p.guests)
        plan = r.tick(1000, [g("a", 300, 200), g("b", 256, 200)])
        self.assertIn(("joined", "a"), kinds(plan))
        self.assertEqual(r.p.guests["a"].target, 300 * M)

    def test_a_guest_leaving_mid_reclaim_does_not_break_the_tick(self):
        r = Run()
        r.tick(1000, [g("a", 512, 400), g("b", 512, 400)])
        self.assertEqual(len(r.tick(20, [g("a", 512, 400), g("b", 512, 400)]).targets), 2)
        plan = r.tick(50, [g("b", 448, 336)])
        self.assertIn(("left", "a"), kinds(plan))


class Simulated(unittest.TestCase):
    """Three guests under one hard host limit, as the QEMU scenario runs them:
    a guest touches memory only when its app grows; the balloon releases
    touched free memory first. The limit must never be exceeded and guest
    1's app must get all it asks for; then guest 1 shrinks and memory flows back."""

    class Guest:
        def __init__(self, name, ram, actual, app, touched):
            self.name, self.ram, self.actual, self.target = name, ram, actual, actual
            self.app, self.touched = app, touched       # MiB held by the app, MiB resident
            self.kernel = 10

        def free(self):
            return self.actual - self.app - self.kernel

        def step(self):
            if self.target < self.actual:              # inflate: resident free blocks first
                give = min(self.actual - self.target, max(0, self.free() - 16))
                self.actual -= give
                self.touched = max(self.app + self.kernel, self.touched - give)
            else:
                self.actual = self.target

    def test_growth_under_a_limit(self):
        s = settings(low=96 * M, high=160 * M, guest_keep=96 * M)
        p = Policy(s)
        gs = [self.Guest("g1", 512, 256, 0, 40), self.Guest("g2", 512, 512, 64, 448),
              self.Guest("g3", 512, 512, 64, 448)]
        overhead = 3 * 90
        limit = overhead + sum(x.touched for x in gs) + 192
        now, peak, grown, log = 0.0, 0, 0, []

        def usage():
            return overhead + sum(x.touched for x in gs)

        def tick():
            nonlocal now, peak
            now += 1
            obs = [GuestObs(x.name, x.ram * M, x.actual * M, x.free() * M, now, None,
                            GuestSettings(192 * M, 0, 1000)) for x in gs]
            plan = p.tick(now, Host((limit - usage()) * M), obs)
            for x in gs:
                if x.name in plan.targets:
                    x.target = plan.targets[x.name] // M
                x.step()
            peak = max(peak, usage())
            log.append((now, usage(), [x.actual for x in gs]))

        for _ in range(3):
            tick()
        for step in range(6):                       # the app grows 64 MiB at a time
            for _ in range(30):
                if gs[0].free() >= 64 + 16 and limit - usage() >= 64:
                    break
                tick()
            self.assertGreaterEqual(gs[0].free(), 64 + 16, f"step {step}: guest 1 never got room: {log[-3:]}")
            gs[0].app += 64
            gs[0].touched = max(gs[0].touched, gs[0].app + gs[0].kernel)
            grown += 64
            peak = max(peak, usage())
            self.assertLessEqual(usage(), limit, f"over the limit at step {step}: {log[-3:]}")
            tick()
        for _ in range(5):
            tick()
        self.assertEqual(grown, 384)
        self.assertLessEqual(peak, limit)
        self.assertLess(gs[1].actual + gs[2].actual, 1024, "guests 2 and 3 gave nothing")
        g23 = gs[1].actual + gs[2].actual
        gs[0].app = 64                              # guest 1 shrinks
        for _ in range(60):
            tick()
        self.assertLessEqual(peak, limit)
        self.assertGreater(gs[1].actual + gs[2].actual, g23, f"nothing flowed back: {log[-3:]}")


if __name__ == "__main__":
    unittest.main()
