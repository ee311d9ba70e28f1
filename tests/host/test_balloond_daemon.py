"""balloond's shells against fake QEMUs (tests/host/fake_qmp.py): discovery,
guests joining and leaving, a socket that is not QMP, a target QEMU refuses,
stats polling restored, SIGTERM leaving every guest where it is, and the
command line's exit statuses and status view."""
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, TOOLS)
sys.path.insert(0, HERE)
from balloond_lib.config import parse  # noqa: E402
from balloond_lib.daemon import Daemon  # noqa: E402
from fake_qmp import M, FakeQemu, NotQmp  # noqa: E402

BALLOOND = os.path.join(TOOLS, "balloond")


class Env(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "vms")
        self.cg = os.path.join(self.tmp.name, "cg")
        os.mkdir(self.dir)
        os.mkdir(self.cg)
        self.fakes = []
        self.headroom(1000)

    def tearDown(self):
        for f in self.fakes:
            f.close()
        self.tmp.cleanup()

    def headroom(self, mib):
        with open(os.path.join(self.cg, "memory.max"), "w") as f:
            f.write(str(2000 * M))
        with open(os.path.join(self.cg, "memory.current"), "w") as f:
            f.write(str((2000 - mib) * M))

    def fake(self, name, **kw):
        f = FakeQemu(os.path.join(self.dir, name + ".qmp"), **kw)
        self.fakes.append(f)
        return f

    def config_text(self, extra=""):
        return (f"[daemon]\ninterval = 0.2\ndiscover = {self.dir}\ncgroup = {self.cg}\npsi = 0\n"
                f"low = 100M\nhigh = 200M\nstep = 64M\nguest_low = 64M\nguest_keep = 96M\n"
                f"state = {self.tmp.name}/state.json\n[defaults]\nmin = 128M\n{extra}")

    def daemon(self, extra="", **kw):
        self.out = io.StringIO()
        d = Daemon(parse(self.config_text(extra), "t.conf"), out=self.out, **kw)
        self.addCleanup(d.fleet.close, restore=False)
        return d

    def lines(self):
        return self.out.getvalue().splitlines()


class Loop(Env):
    def test_short_guest_gets_memory_then_pressure_inflates_the_idle_one(self):
        g1 = self.fake("g1", actual_mib=256, avail_mib=30)
        g2 = self.fake("g2", actual_mib=512, avail_mib=400)
        d = self.daemon()
        d.tick()                                               # adopted, and already short
        self.assertEqual(g1.interval, 1)                       # stats polling on
        self.assertTrue(any("joined g1" in x for x in self.lines()))
        self.assertEqual(g1.last("balloon"), [{"value": 320 * M}])
        self.assertTrue(any("deflate g1 256 MiB -> 320 MiB: short" in x for x in self.lines()), self.lines())
        self.headroom(20)
        d.tick()
        self.assertEqual(g2.last("balloon"), [{"value": 448 * M}])
        self.assertTrue(any("pressure: on" in x for x in self.lines()))
        st = json.load(open(os.path.join(self.tmp.name, "state.json")))
        self.assertTrue(st["pressure"])
        self.assertEqual({g["name"]: g["target"] // M for g in st["guests"]}, {"g1": 320, "g2": 448})

    def test_guests_come_and_go_and_bad_sockets_are_one_line(self):
        g1 = self.fake("g1")
        d = self.daemon()
        d.tick()
        bad = NotQmp(os.path.join(self.dir, "ssh.sock"))
        try:
            for _ in range(3):
                d.tick()
        finally:
            bad.close()
        said = [x for x in self.lines() if "guest ssh:" in x]
        self.assertEqual(len(said), 1, self.lines())
        self.assertIn("does not speak QMP", said[0])
        g2 = self.fake("g2")
        d.tick()
        self.assertIn("g2", d.policy.guests)
        g1.close()                                   # QEMU quits
        d.tick()
        self.assertNotIn("g1", d.policy.guests)
        self.assertTrue(any("guest g1: dropped" in x for x in self.lines()), self.lines())
        self.assertTrue(any("left g1" in x for x in self.lines()), self.lines())
        d.tick()                                     # and the daemon goes on
        self.assertEqual(g2.interval, 1)

    def test_a_refused_target_is_one_line_and_a_stuck_guest_is_left_alone(self):
        g1 = self.fake("g1", actual_mib=256, avail_mib=30)
        g1.refuse = True
        d = self.daemon()
        d.tick()
        self.assertTrue(any("guest g1: target 320 MiB not sent: QEMU refused: QMP balloon: no balloon today" in x
                            for x in self.lines()), self.lines())
        g2 = self.fake("g2", actual_mib=512, avail_mib=400)
        g2.stuck = True
        self.headroom(20)
        for _ in range(8):
            d.tick()
        self.assertTrue(any("stuck g2: could not give" in x for x in self.lines()), self.lines())
        self.assertEqual(g2.last("balloon")[-1], {"value": 512 * M})   # told to stay where it is

    def test_self_deflate_is_asking_back(self):
        g1 = self.fake("g1", actual_mib=512, avail_mib=400)
        d = self.daemon()
        d.tick()
        self.headroom(20)
        d.tick()
        self.assertEqual(g1.actual, 448 * M)
        self.headroom(200)
        d.tick()                                       # sees 448
        g1.actual, g1.avail = 500 * M, 20 * M          # deflate-on-OOM in the guest
        d.tick()
        self.assertTrue(any("asked-back g1" in x for x in self.lines()), self.lines())
        self.assertGreaterEqual(g1.last("balloon")[-1]["value"], 500 * M)   # never pushed back down

    def test_dry_run_sends_nothing_and_says_it_once(self):
        g1 = self.fake("g1", actual_mib=256, avail_mib=30)
        d = self.daemon(dry_run=True)
        for _ in range(4):
            d.tick()
        self.assertEqual(g1.last("balloon"), [])
        would = [x for x in self.lines() if "would deflate g1" in x]
        self.assertEqual(len(would), 1, self.lines())

    def test_json_lines(self):
        self.fake("g1", actual_mib=256, avail_mib=30)
        d = self.daemon(as_json=True)
        d.tick()
        recs = [json.loads(x) for x in self.lines()]
        dec = [r for r in recs if r.get("action") == "deflate"]
        self.assertEqual((dec[0]["guest"], dec[0]["from_mib"], dec[0]["to_mib"]), ("g1", 256, 320))
        self.assertIn("ts", dec[0])
        self.assertIn("headroom_mib", dec[0])


class Cli(Env):
    def run_cli(self, *args, timeout=30):
        p = subprocess.run([sys.executable, BALLOOND, *args], capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def write_config(self, text=None):
        path = os.path.join(self.tmp.name, "b.conf")
        with open(path, "w") as f:
            f.write(text if text is not None else self.config_text())
        return path

    def test_usage_errors_exit_2_with_one_line(self):
        rc, out, err = self.run_cli("run", "--config", os.path.join(self.tmp.name, "none.conf"))
        self.assertEqual(rc, 2)
        self.assertIn("cannot read the configuration", err)
        rc, out, err = self.run_cli("run", "--config", self.write_config("[daemon]\nlow = 9Q\n"))
        self.assertEqual(rc, 2)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("bad size '9Q'", err)
        rc, out, err = self.run_cli("frobnicate")
        self.assertEqual(rc, 2)
        rc, out, err = self.run_cli("run", "--config", self.write_config(self.config_text().replace(
            self.dir, self.dir + "/nope")))
        self.assertEqual(rc, 2)
        self.assertIn("no such directory", err)

    def test_status_without_a_daemon(self):
        g1 = self.fake("g1", actual_mib=384)
        rc, out, err = self.run_cli("status", "--config", self.write_config())
        self.assertEqual(rc, 0, err)
        self.assertIn("balloond is not running", out)
        self.assertRegex(out, r"g1\s+384 MiB\s+-\s+512 MiB")
        self.assertEqual(g1.interval, 0)            # a look changes nothing
        self.assertEqual(g1.last("balloon"), [])
        g1.close()
        self.fakes.remove(g1)
        rc, out, err = self.run_cli("status", "--config", self.write_config())
        self.assertEqual(rc, 3)
        self.assertIn("no daemon running and no guest found", err)

    def test_sigterm_leaves_guests_where_they_are_and_restores_stats(self):
        g1 = self.fake("g1", actual_mib=256, avail_mib=30)
        # One step, then SIGTERM: a tick interval no loaded host overruns
        # between the first step and the signal (at 0.2 s a slow `status`
        # let the daemon take a second step, and the test failed under load).
        conf = self.write_config(self.config_text().replace("interval = 0.2", "interval = 10"))
        p = subprocess.Popen([sys.executable, BALLOOND, "run", "--config", conf, "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while not g1.last("balloon") and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(g1.last("balloon"), [{"value": 320 * M}])
            rc, out, err = self.run_cli("status", "--config", conf)
            self.assertIn("balloond running (pid", out)
            self.assertRegex(out, r"g1\s+\d+ MiB\s+320 MiB")
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0, err)
        last = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(last["action"], "exit")
        self.assertEqual(last["reason"], "SIGTERM")
        self.assertEqual(last["sizes_mib"], {"g1": 320})
        self.assertEqual(g1.interval, 0)                      # put back
        self.assertEqual(len(g1.last("balloon")), 1)          # nothing sent on the way out
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "state.json")))


if __name__ == "__main__":
    unittest.main()
