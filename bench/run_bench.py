#!/usr/bin/env python3
"""make bench: every benchmark, one JSON document on stdout and in BUILD/bench.json.

Host benchmarks are the BENCH_HOST binaries from the module.mk files (each
prints one JSON object). Guest benchmarks are bench/b_*.py modules with a
function bench(build, image) -> dict. Figures are medians of several runs; see
each module for what it measures.
"""
import argparse
import glob
import importlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "qemu"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("host", nargs="*")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    out = {}
    for name in args.host:
        if only and name not in only:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        p = subprocess.run([os.path.join(args.build, "bench", name)], capture_output=True, text=True)
        if p.returncode != 0:
            out[name] = {"error": f"exit status {p.returncode}", "stderr": p.stderr[-2000:]}
            continue
        try:
            out.update(json.loads(p.stdout))
        except json.JSONDecodeError as e:
            out[name] = {"error": f"not JSON: {e}", "stdout": p.stdout[-2000:]}
    for path in sorted(glob.glob(os.path.join(HERE, "b_*.py"))):
        mod = os.path.basename(path)[:-3]
        if only and mod not in only:
            continue
        print(f"bench: {mod} ...", file=sys.stderr, flush=True)
        try:
            out[mod[2:]] = importlib.import_module(mod).bench(args.build, args.image)
        except Exception as e:  # report, keep the other figures
            out[mod[2:]] = {"error": f"{type(e).__name__}: {e}"}
    text = json.dumps(out, indent=2, sort_keys=True)
    with open(os.path.join(args.build, "bench.json"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 1 if any(isinstance(v, dict) and "error" in v for v in out.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
