#!/usr/bin/env python3
"""Run the host unit-test binaries, one per module, and record each cmocka case.

Usage: run_unit.py BUILD_DIR test_name...
Writes BUILD_DIR/results/unit.txt (one "PASS name" / "FAIL name: why" line per
case) for tests/summary.py, prints each binary's verdict, and exits non-zero if
any case failed or a binary crashed (ASan/UBSan reports abort the binary).
"""
import os
import re
import subprocess
import sys

def main():
    build, names = sys.argv[1], sys.argv[2:]
    os.makedirs(os.path.join(build, "results"), exist_ok=True)
    lines, bad = [], 0
    for name in names:
        exe = os.path.join(build, "unit", name)
        try:
            p = subprocess.run([exe], capture_output=True, text=True, timeout=300)
            out, rc = p.stdout + p.stderr, p.returncode
        except subprocess.TimeoutExpired:
            out, rc = "timed out after 300 s", -1
        except OSError as e:
            out, rc = f"cannot run {exe}: {e}", -1
        ok = re.findall(r"^\[\s+OK \] (\S+)", out, re.M)
        # cmocka names a failed case twice (when it fails, and in the summary)
        failed = list(dict.fromkeys(re.findall(r"^\[\s+FAILED\s+\] (\S+)$", out, re.M)))
        for case in ok:
            lines.append(f"PASS unit/{name}/{case}")
        for case in failed:
            lines.append(f"FAIL unit/{name}/{case}")
        if rc != 0 and not failed:
            failed = ["(binary)"]
            lines.append(f"FAIL unit/{name}: exit status {rc}")
        verdict = "ok" if rc == 0 and not failed else "FAILED"
        print(f"unit  {name:<28} {len(ok):3d} passed {len(failed):3d} failed  {verdict}")
        if verdict != "ok":
            bad += 1
            sys.stdout.write("".join("    " + l + "\n" for l in out.splitlines()[-40:]))
    with open(os.path.join(build, "results", "unit.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
