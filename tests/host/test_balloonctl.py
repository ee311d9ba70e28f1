"""tools/balloonctl without QEMU: sizes, the argument parsing of every
subcommand, and `vmem` / `vmem set` against a stand-in that answers the few
QMP commands they send (the real QEMU is scn_balloonctl and scn_vmem)."""
import contextlib
import importlib.machinery
import importlib.util
import io
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CTL = os.path.join(HERE, "..", "..", "tools", "balloonctl")


def load():
    loader = importlib.machinery.SourceFileLoader("balloonctl", CTL)
    spec = importlib.util.spec_from_loader("balloonctl", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


bc = load()
M, G = 1 << 20, 1 << 30


class FakeVmemQmp:
    """query-memory-devices, qom-get size/memdev, qom-set requested-size,
    qom-list; plugged follows requested after `lag` polls (or never: stuck)."""

    def __init__(self, devices=None, lag=0, stuck=False, stop_at=None):
        self.devices = devices if devices is not None else [
            {"id": "vm0", "memdev": "/objects/vmem0", "memaddr": 4 * G, "block-size": 2 * M,
             "size": 0, "requested-size": 0, "max-size": 8 * G, "node": 0}]
        self.lag, self.stuck, self.stop_at = lag, stuck, stop_at
        self.dimm = 0
        self.sent = []

    def execute(self, cmd, args=None):
        self.sent.append((cmd, args))
        if cmd == "query-memory-devices":
            return [{"type": "virtio-mem", "data": dict(d)} for d in self.devices] + \
                   [{"type": "dimm", "data": {"id": "d0"}}]
        if cmd == "query-memory-size-summary":
            return {"base-memory": 1 * G, "plugged-memory": sum(d["size"] for d in self.devices) + self.dimm}
        if cmd == "qom-list":
            return [{"name": f"device[{i}]", "type": "child<virtio-mem-pci>"} for i in range(len(self.devices))]
        dev = self._dev(args["path"])
        if cmd == "qom-get" and args["property"] == "size":
            if not self.stuck and dev["size"] != dev["requested-size"]:
                if self.lag:
                    self.lag -= 1
                else:
                    dev["size"] = dev["requested-size"] if self.stop_at is None else self.stop_at
            return dev["size"]
        if cmd == "qom-get" and args["property"] == "memdev":
            return dev["memdev"]
        if cmd == "qom-set" and args["property"] == "requested-size":
            dev["requested-size"] = args["value"]
            return {}
        raise RuntimeError(f"unexpected {cmd} {args}")

    def _dev(self, path):
        for i, d in enumerate(self.devices):
            if path in (d.get("id"), f"/machine/peripheral-anon/device[{i}]"):
                return d
        raise RuntimeError(f"no device at {path}")

    def sets(self):
        return [a["value"] for c, a in self.sent if c == "qom-set"]


def run(q, *argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        args = bc.parse_args(list(argv))
        try:
            rc = {"vmem": bc.cmd_vmem}[args.cmd](q, args)
        except bc.Usage as e:
            print(f"balloonctl: {e}", file=sys.stderr)
            rc = bc.EXIT_USAGE
        except bc.NoDevice as e:
            print(f"balloonctl: {e}", file=sys.stderr)
            rc = bc.EXIT_NOCONN
    return rc, out.getvalue() + err.getvalue()


def main_rc(*argv):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        rc = bc.main(list(argv))
    return rc, err.getvalue()


class Sizes(unittest.TestCase):
    def test_suffixes(self):
        self.assertEqual(bc.parse_size("2G"), 2 * G)
        self.assertEqual(bc.parse_size("512M"), 512 * M)
        self.assertEqual(bc.parse_size("1536MiB"), 1536 * M)
        self.assertEqual(bc.parse_size("2gb"), 2 * G)
        self.assertEqual(bc.parse_size("64K"), 64 << 10)
        self.assertEqual(bc.parse_size("1T"), 1 << 40)

    def test_bare_number_is_mib_and_B_is_bytes(self):
        self.assertEqual(bc.parse_size("2048"), 2 * G)
        self.assertEqual(bc.parse_size("4096B"), 4096)

    def test_malformed(self):
        for bad in ("", "lots", "512iB", "-1G", "1.5G", "2X", "G"):
            with self.assertRaises(bc.Usage, msg=bad):
                bc.parse_size(bad)


class Parsing(unittest.TestCase):
    def test_vmem_forms(self):
        a = bc.parse_args(["vmem"])
        self.assertEqual((a.cmd, a.action, a.size, a.wait, a.id), ("vmem", "get", None, None, None))
        a = bc.parse_args(["vmem", "get", "--id", "vm1"])
        self.assertEqual((a.action, a.id), ("get", "vm1"))
        a = bc.parse_args(["vmem", "set", "2G", "--wait", "30"])
        self.assertEqual((a.action, a.size, a.wait), ("set", "2G", 30.0))
        a = bc.parse_args(["--socket", "/tmp/x.sock", "vmem", "set", "512"])
        self.assertEqual((a.socket, a.size, a.wait), ("/tmp/x.sock", "512", None))

    def test_vmem_usage_errors_exit_2(self):
        for argv in (["vmem", "set"], ["vmem", "2G"], ["vmem", "get", "2G"], ["vmem", "--wait", "5"],
                     ["vmem", "set", "2G", "--wait", "soon"], ["vmem", "set", "2G", "--wait", "-1"],
                     ["vmem", "set", "1G", "2G"], ["vmem", "plug", "1G"]):
            rc, err = main_rc(*argv)
            self.assertEqual(rc, bc.EXIT_USAGE, f"{argv}: {err}")
            self.assertIn("error:", err, argv)

    def test_balloon_forms_unchanged(self):
        a = bc.parse_args(["set", "512M", "--wait", "30"])
        self.assertEqual((a.cmd, a.size, a.wait), ("set", "512M", 30.0))
        self.assertEqual(bc.parse_args(["watch"]).seconds, 0)
        self.assertEqual(main_rc("frobnicate")[0], bc.EXIT_USAGE)
        self.assertEqual(main_rc()[0], bc.EXIT_USAGE)

    def test_help_lists_vmem(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = bc.main(["--help"])
        self.assertEqual(rc, bc.EXIT_OK)
        self.assertIn("vmem set SIZE", out.getvalue())
        self.assertIn("vmem", out.getvalue().split("positional arguments:")[1])

    def test_no_socket_is_3(self):
        rc, err = main_rc("--socket", "/nonexistent/qmp.sock", "vmem")
        self.assertEqual(rc, bc.EXIT_NOCONN)
        self.assertIn("no QMP socket", err)


class BalloonRam(unittest.TestCase):
    def test_virtio_mem_is_not_balloon_ram(self):
        """QEMU's balloon counts boot RAM and DIMMs, not virtio-mem's plugged memory."""
        q = FakeVmemQmp()
        q.devices[0]["size"] = 1 * G
        self.assertEqual(bc.ram_bytes(q), 1 * G)
        q.dimm = 512 * M
        self.assertEqual(bc.ram_bytes(q), 1 * G + 512 * M)
        self.assertEqual(bc.ram_bytes(FakeVmemQmp(devices=[])), 1 * G)


class SizeChecks(unittest.TestCase):
    def test_whole_blocks_within_region(self):
        bc.check_vmem_size(0, 2 * M, 8 * G)
        bc.check_vmem_size(8 * G, 2 * M, 8 * G)
        bc.check_vmem_size(6 * M, 2 * M, 8 * G)

    def test_not_a_multiple(self):
        with self.assertRaises(bc.Usage) as c:
            bc.check_vmem_size(3 * M, 2 * M, 8 * G)
        self.assertIn("not a multiple of the device's block size (2 MiB)", str(c.exception))
        self.assertIn("try 2 MiB or 4 MiB", str(c.exception))
        with self.assertRaises(bc.Usage):
            bc.check_vmem_size(1 * G + 2 * M, 128 * M, 8 * G)

    def test_beyond_region(self):
        with self.assertRaises(bc.Usage) as c:
            bc.check_vmem_size(8 * G + 2 * M, 2 * M, 8 * G)
        self.assertIn("more than the device's region (8192 MiB)", str(c.exception))


class VmemCommands(unittest.TestCase):
    def test_show(self):
        q = FakeVmemQmp()
        q.devices[0].update({"size": 1 * G, "requested-size": 2 * G})
        rc, out = run(q, "vmem")
        self.assertEqual(rc, 0)
        self.assertIn("virtio-mem vm0: plugged 1024 MiB, requested 2048 MiB, region 8192 MiB at 0x100000000, "
                      "block 2 MiB", out)

    def test_set_and_wait(self):
        q = FakeVmemQmp(lag=2)
        rc, out = run(q, "vmem", "set", "2G", "--wait", "10")
        self.assertEqual(rc, 0, out)
        self.assertEqual(q.sets(), [2 * G])
        self.assertIn("reached: plugged 2048 MiB", out)

    def test_bare_number_is_mib(self):
        q = FakeVmemQmp()
        rc, _ = run(q, "vmem", "set", "512")
        self.assertEqual((rc, q.sets()), (0, [512 * M]))

    def test_refused_before_asking_qemu(self):
        for size, text in (("3M", "not a multiple"), ("9G", "more than the device's region"),
                           ("lots", "bad size 'lots'")):
            q = FakeVmemQmp()
            rc, out = run(q, "vmem", "set", size)
            self.assertEqual(rc, bc.EXIT_USAGE, size)
            self.assertIn(text, out)
            self.assertEqual(q.sets(), [], f"{size} reached QEMU")

    def test_wait_bounded_says_where_it_stopped(self):
        q = FakeVmemQmp(stop_at=1 * G)
        q.devices[0].update({"size": 2 * G, "requested-size": 2 * G})
        rc, out = run(q, "vmem", "set", "0", "--wait", "0.3")
        self.assertEqual(rc, bc.EXIT_TIMEOUT)
        self.assertIn("not reached in 0.3 s: stopped at 1024 MiB plugged (from 2048 MiB)", out)
        self.assertIn("stopped short of unplugging", out)

    def test_wait_guest_never_moved(self):
        q = FakeVmemQmp(stuck=True)
        rc, out = run(q, "vmem", "set", "1G", "--wait", "0.2")
        self.assertEqual(rc, bc.EXIT_TIMEOUT)
        self.assertIn("the guest plugged nothing", out)
        q = FakeVmemQmp(stuck=True)
        q.devices[0].update({"size": 1 * G, "requested-size": 1 * G})
        rc, out = run(q, "vmem", "set", "0", "--wait", "0.2")
        self.assertEqual(rc, bc.EXIT_TIMEOUT)
        self.assertIn("stopped at 1024 MiB plugged (from 1024 MiB); the guest unplugged nothing", out)

    def test_no_device(self):
        rc, out = run(FakeVmemQmp(devices=[]), "vmem")
        self.assertEqual(rc, bc.EXIT_NOCONN)
        self.assertIn("no virtio-mem device", out)

    def test_several_devices_need_an_id(self):
        d2 = {"id": "vm1", "memdev": "/objects/vmem1", "memaddr": 16 * G, "block-size": 4 * M,
              "size": 0, "requested-size": 0, "max-size": 4 * G, "node": 0}
        q = FakeVmemQmp()
        q.devices.append(d2)
        rc, out = run(q, "vmem", "set", "1G")
        self.assertEqual(rc, bc.EXIT_USAGE)
        self.assertIn("say which with --id", out)
        rc, out = run(q, "vmem", "set", "6M", "--id", "vm1")   # vm1's blocks are 4 MiB
        self.assertEqual(rc, bc.EXIT_USAGE)
        rc, out = run(q, "vmem", "set", "8M", "--id", "vm1")
        self.assertEqual((rc, q.devices[1]["requested-size"]), (0, 8 * M))
        rc, out = run(q, "vmem", "--id", "vm9")
        self.assertEqual(rc, bc.EXIT_NOCONN)
        self.assertIn("no virtio-mem device with id 'vm9'", out)

    def test_device_without_id(self):
        q = FakeVmemQmp()
        del q.devices[0]["id"]
        rc, out = run(q, "vmem", "set", "1G")
        self.assertEqual(rc, 0, out)
        self.assertIn(("qom-set", {"path": "/machine/peripheral-anon/device[0]", "property": "requested-size",
                                   "value": 1 * G}), q.sent)


if __name__ == "__main__":
    unittest.main()
