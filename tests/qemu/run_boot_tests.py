#!/usr/bin/env python3
"""Run the host-driven QEMU scenarios (tests/qemu/scn_*.py) in parallel.

Usage: run_boot_tests.py --build DIR --image IMG [--jobs N] [--only a,b] [--slow]
Writes BUILD/results/qemu.txt for tests/summary.py; serial logs are in
BUILD/qemu/<scenario>/serial.log. Scenarios marked slow run only with --slow.
"""
import argparse
import concurrent.futures as cf
import glob
import importlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenarios import SCENARIOS, Context, Skip  # noqa: E402


def run_one(args, name):
    fn, _ = SCENARIOS[name]
    ctx = Context(args.build, args.image, name)
    t0 = time.monotonic()
    try:
        fn(ctx)
        ok, why = True, ""
    except Skip as e:
        ok, why = None, f"skipped: {e}"
    except (AssertionError, TimeoutError, RuntimeError, OSError) as e:
        ok, why = False, f"{type(e).__name__}: {e}"
    except Exception:
        ok, why = False, traceback.format_exc()
    finally:
        ctx.cleanup()
    return name, ok, why, time.monotonic() - t0, ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("QEMU_JOBS", "2")))
    ap.add_argument("--only", default="")
    ap.add_argument("--slow", action="store_true")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "scn_*.py"))):
        importlib.import_module(os.path.basename(path)[:-3])
    names = [n for n, (_, slow) in SCENARIOS.items() if args.slow or not slow]
    if args.only:
        want = args.only.split(",")
        unknown = [w for w in want if w not in SCENARIOS]
        if unknown:
            print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
            return 2
        names = want
    os.makedirs(os.path.join(args.build, "results"), exist_ok=True)
    lines, failed = [], 0
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = [pool.submit(run_one, args, n) for n in names]
        for fut in cf.as_completed(futs):
            name, ok, why, secs, ctx = fut.result()
            verdict = "ok" if ok else "SKIPPED" if ok is None else "FAILED"
            print(f"qemu  {name:<28} {verdict} ({secs:.1f} s)", flush=True)
            for n in ctx.notes:
                print(f"      {n}")
            if ok is None:
                print(f"      {why}")
                lines.append(f"SKIP qemu/{name}: {why}")
                continue
            if not ok:
                failed += 1
                print("      " + why.replace("\n", "\n      "))
            lines.append(("PASS " if ok else "FAIL ") + f"qemu/{name}" + ("" if ok else ": " + why.splitlines()[0]))
            lines.extend(ctx.results)
    with open(os.path.join(args.build, "results", "qemu.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
