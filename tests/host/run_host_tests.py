#!/usr/bin/env python3
"""Run the host-side Python unit tests (tests/host/test_*.py, unittest from the
standard library) and record each test case.

Usage: run_host_tests.py BUILD_DIR [-v]
Writes BUILD_DIR/results/host.txt (one "PASS name" / "FAIL name: why" line per
test case) for tests/summary.py, prints one line per module, and exits non-zero
if any case failed or a module could not be imported.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class Recorder(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines = []

    def _name(self, test):
        return "host/" + test.id().replace(".", "/")

    def addSuccess(self, test):
        super().addSuccess(test)
        self.lines.append(f"PASS {self._name(test)}")

    def _fail(self, test, err):
        why = str(err[1]).strip().splitlines()[0] if str(err[1]).strip() else err[0].__name__
        self.lines.append(f"FAIL {self._name(test)}: {err[0].__name__}: {why}")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err)

    def addSkip(self, test, reason):      # never counted as passed
        super().addSkip(test, reason)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    verbosity = 2 if "-v" in sys.argv[2:] else 0
    sys.path.insert(0, HERE)
    suite = unittest.defaultTestLoader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    with open(os.devnull, "w") as null:
        runner = unittest.TextTestRunner(stream=sys.stderr if verbosity else null, verbosity=verbosity,
                                         resultclass=Recorder)
        res = runner.run(suite)
    by_module = {}
    for line in res.lines:
        mod = line.split()[1].split("/")[1]
        ok, bad = by_module.get(mod, (0, 0))
        by_module[mod] = (ok + line.startswith("PASS"), bad + line.startswith("FAIL"))
    for mod, (ok, bad) in sorted(by_module.items()):
        print(f"host  {mod:<28} {ok:3d} passed {bad:3d} failed  {'ok' if not bad else 'FAILED'}")
    for test, tb in res.failures + res.errors:
        print(f"    {test.id()}:\n" + "".join("      " + l + "\n" for l in tb.splitlines()[-12:]))
    if not res.lines and not res.errors:
        res.lines.append("FAIL host: no test ran")
    os.makedirs(os.path.join(build, "results"), exist_ok=True)
    with open(os.path.join(build, "results", "host.txt"), "w") as f:
        f.write("\n".join(res.lines) + "\n")
    return 0 if res.wasSuccessful() and res.testsRun else 1


if __name__ == "__main__":
    sys.exit(main())
