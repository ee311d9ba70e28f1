"""balloond's configuration parser (one clear line per mistake) and the host
readers (meminfo, hugetlbfs pool, cgroup v1/v2, PSI) on recorded files."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from balloond_lib import host  # noqa: E402
from balloond_lib.config import ConfigError, parse  # noqa: E402

M = 1 << 20
GOOD = """
[daemon]
interval = 0.5
discover = /run/vms      ; a directory of QMP sockets
cgroup = /sys/fs/cgroup/memory/vms
low = 96M
high = 160M
step = 32M
psi = 0
[defaults]
min = 192M
[guest web]
qmp = /run/web.qmp
max = 1G
shares = 2000
[guest g2]
min = 256M
"""


class Config(unittest.TestCase):
    def test_a_good_file(self):
        c = parse(GOOD, "x.conf")
        self.assertEqual((c.interval, c.discover, c.policy.low, c.policy.high, c.policy.step, c.policy.psi_on),
                         (0.5, "/run/vms", 96 * M, 160 * M, 32 * M, 0.0))
        self.assertEqual(c.guests["web"].qmp, "/run/web.qmp")
        self.assertEqual((c.guests["web"].settings.min, c.guests["web"].settings.max,
                          c.guests["web"].settings.shares), (192 * M, 1 << 30, 2000))
        self.assertEqual(c.settings_for("g2").min, 256 * M)     # matched to a discovered socket by name
        self.assertEqual(c.settings_for("other").min, 192 * M)  # discovered, no section: defaults

    def assertBad(self, text, *words):
        with self.assertRaises(ConfigError) as cm:
            parse(text, "x.conf")
        msg = str(cm.exception)
        self.assertNotIn("\n", msg)
        self.assertTrue(msg.startswith("x.conf"), msg)
        for w in words:
            self.assertIn(w, msg)

    def test_mistakes_are_one_clear_line(self):
        self.assertBad("[daemon]\ndiscover=/x\nlow = lots\n", "[daemon] low", "bad size 'lots'")
        self.assertBad("[daemon]\ndiscover=/x\nlow = 1G\nhigh = 512M\n", "low", "must be below high")
        self.assertBad("[daemon]\ndiscover=/x\nfrobnicate = 1\n", "unknown key 'frobnicate'")
        self.assertBad("[daemon]\ninterval = 1\n", "no guests")
        self.assertBad("[guest a]\nmin = 1G\n", "[guest a]", "qmp = SOCKET or libvirt = DOMAIN")
        self.assertBad("[guest a]\nqmp=/a\nlibvirt=b\n", "[guest a]")
        self.assertBad("[gest a]\nqmp=/a\n", "unknown section [gest a]")
        self.assertBad("[guest a]\nqmp=/a\nmin=1G\nmax=512M\n", "above its max")
        self.assertBad("[guest a]\nqmp=/a\nshares=0\n", "shares", "out of range")
        self.assertBad("[daemon]\ndiscover=/x\nstep = 1M\n", "step must be at least 2M")
        self.assertBad("no section here\n", "x.conf")
        self.assertBad("[daemon]\ndiscover=/x\n[daemon]\n", "x.conf")


MEMINFO = """MemTotal:       24684236 kB
MemFree:        23914696 kB
MemAvailable:   24131520 kB
HugePages_Total:     600
HugePages_Free:      500
HugePages_Rsvd:      120
HugePages_Surp:        0
Hugepagesize:       2048 kB
"""
PSI = """some avg10=12.50 avg60=3.00 avg300=0.50 total=123456
full avg10=1.00 avg60=0.00 avg300=0.00 total=1000
"""


class Host(unittest.TestCase):
    def test_meminfo_and_hugetlb(self):
        mi = host.parse_meminfo(MEMINFO)
        self.assertEqual(mi["MemAvailable"], 24131520 * 1024)
        self.assertEqual(mi["HugePages_Free"], 500)
        self.assertEqual(host.hugetlb_headroom(mi), (500 - 120) * 2 * M)   # reserved pages are not free
        self.assertIsNone(host.hugetlb_headroom(host.parse_meminfo("MemAvailable: 5 kB\n")))

    def test_psi(self):
        self.assertEqual(host.parse_psi(PSI), 12.5)
        self.assertIsNone(host.parse_psi("garbage"))
        self.assertIsNone(host.parse_psi("some avg10=x\n"))

    def write(self, d, files):
        for k, v in files.items():
            with open(os.path.join(d, k), "w") as f:
                f.write(v)

    def test_cgroup_v1_v2_and_the_smallest_source_wins(self):
        with tempfile.TemporaryDirectory() as proc, tempfile.TemporaryDirectory() as cg1, \
                tempfile.TemporaryDirectory() as cg2, tempfile.TemporaryDirectory() as cgu:
            os.mkdir(os.path.join(proc, "pressure"))
            self.write(proc, {"meminfo": MEMINFO, "pressure/memory": PSI})
            self.write(cg1, {"memory.limit_in_bytes": str(1000 * M), "memory.usage_in_bytes": str(900 * M)})
            self.write(cg2, {"memory.max": str(2000 * M), "memory.current": str(1500 * M)})
            self.write(cgu, {"memory.max": "max", "memory.current": str(1500 * M)})
            hv = host.read_host(cg1, hugetlb=True, proc=proc)
            self.assertEqual(hv.headroom, 100 * M)
            self.assertEqual(hv.sources["hugetlb"], 760 * M)
            self.assertEqual(hv.psi, 12.5)
            self.assertEqual(host.read_host(cg2, proc=proc).headroom, 500 * M)
            hv = host.read_host(cgu, proc=proc)             # an unlimited cgroup is no source
            self.assertEqual(hv.headroom, 24131520 * 1024)
            self.assertEqual(hv.problems, [])
            hv = host.read_host(proc, proc=proc)            # not a cgroup: named, not fatal
            self.assertIn("not a memory cgroup", hv.problems[0])
            hv = host.read_host(None, hugetlb=False, proc=cgu)   # no meminfo, no PSI
            self.assertEqual((hv.headroom, hv.psi), (0, None))
            self.assertIn("cannot read /proc/meminfo", hv.problems[0])


if __name__ == "__main__":
    unittest.main()
