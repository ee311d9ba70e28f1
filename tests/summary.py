#!/usr/bin/env python3
"""Add up every test layer's results (BUILD/results/*.txt) into one closing line.

Each line of a results file is "PASS name" or "FAIL name[: why]". Prints the
failures, then "N passed, N failed"; exits 1 if anything failed or nothing ran.
"""
import glob
import os
import sys

def main():
    passed, failed = 0, []
    for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.txt"))):
        for line in open(path):
            line = line.strip()
            if line.startswith("PASS "):
                passed += 1
            elif line.startswith("FAIL "):
                failed.append(line[5:])
    for f in failed:
        print(f"FAILED: {f}")
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed or passed == 0 else 0

if __name__ == "__main__":
    sys.exit(main())
