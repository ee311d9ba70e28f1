#!/usr/bin/env python3
"""Add up every test layer's results (BUILD/results/*.txt) into one closing line.

Each line of a results file is "PASS name", "FAIL name[: why]" or "SKIP name:
why" (a test the host cannot run: never counted as passed). Prints the skips
and failures, then "N passed, N failed[, N skipped]"; exits 1 if anything
failed or nothing ran.
"""
import glob
import os
import sys

def main():
    passed, failed, skipped = 0, [], []
    for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.txt"))):
        for line in open(path):
            line = line.strip()
            if line.startswith("PASS "):
                passed += 1
            elif line.startswith("FAIL "):
                failed.append(line[5:])
            elif line.startswith("SKIP "):
                skipped.append(line[5:])
    for s in skipped:
        print(f"SKIPPED: {s}")
    for f in failed:
        print(f"FAILED: {f}")
    print(f"{passed} passed, {len(failed)} failed" + (f", {len(skipped)} skipped" if skipped else ""))
    return 1 if failed or passed == 0 else 0

if __name__ == "__main__":
    sys.exit(main())
