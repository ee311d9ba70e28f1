"""scenarios.py - registry for host-driven QEMU scenarios.

A scenario is a function(ctx) decorated with @scenario("name"). It boots
QEMU through ctx.vm(...), asserts with `check(cond, why)`, and may add extra
result lines with ctx.result(ok, name) (the self-test scenario records each
in-guest test that way). Returning normally means PASS; AssertionError or
TimeoutError means FAIL with its message. Files named tests/qemu/scn_*.py are
imported by run_boot_tests.py, so adding a scenario never edits the runner.
"""
import os

from qemu import Qemu

SCENARIOS = {}


def scenario(name, slow=False):
    def register(fn):
        SCENARIOS[name] = (fn, slow)
        return fn
    return register


class Skip(Exception):
    """Raised by a scenario the host cannot run: recorded as SKIP with the
    reason, never as a pass."""


def check(cond, why):
    if not cond:
        raise AssertionError(why)


class Context:
    def __init__(self, build, image, name):
        self.build, self.image, self.name = build, image, name
        self.results = []
        self.vms = []
        self.notes = []

    def vm(self, **kw):
        kw.setdefault("name", self.name)
        v = Qemu(self.build, kw.pop("image", self.image), **kw)
        self.vms.append(v)
        return v

    def result(self, ok, name, why=""):
        self.results.append(("PASS " if ok else "FAIL ") + name + (f": {why}" if why and not ok else ""))

    def note(self, text):
        self.notes.append(text)

    def cleanup(self):
        for v in self.vms:
            v.stop()
