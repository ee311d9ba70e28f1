#!/usr/bin/env python3
"""run_fuzz.py - run the libFuzzer targets built in BUILD/fuzz/.

    run_fuzz.py --build BUILD --smoke --runs N  TARGET[:RUNS]...            (make fuzz-smoke, part of make test)
    run_fuzz.py --build BUILD [--runs N] [--seconds S] [--jobs J] TARGET... (make fuzz)

Smoke: each target runs its seed corpus (tests/fuzz/corpus/<target>/) and
then mutations up to N inputs (RUNS for that target if given), with a fixed seed, in a fresh working corpus
(BUILD/fuzz/smoke/<target>/: the repository's corpus is never written); one
line per target in BUILD/results/fuzz.txt, "PASS fuzz/<target>" or
"FAIL fuzz/<target>: why" (tests/summary.py adds them up).
Full: each target runs until N executions (libFuzzer -runs, make fuzz
FUZZ_RUNS=) or S seconds (FUZZ_SECONDS), whichever comes first, on a corpus
kept in BUILD/fuzz/corpus/<target>/ (the repository's seeds, from
make_seeds.py, are read too), so runs build on each other; J targets at a
time (FUZZ_JOBS). Per target it prints executions, executions per second,
the working corpus before and after, and the time; the same table goes to
BUILD/fuzz/summary.txt.
Either way a crash leaves its input in BUILD/fuzz/artifacts/<target>/ and the
summary prints the command that replays it. Exit status 1 if any target failed.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def stat(out, name):
    m = re.search(rf"^stat::{name}:\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else None


def why_failed(out, rc):
    """The most useful line of a failed run: our CHECK message, else the sanitizer's."""
    for pat in (r"^(fuzz_\w+: .*)$", r"^(SUMMARY: .*)$", r"^(==\d+==\s*ERROR: .*)$", r"^(.*runtime error: .*)$"):
        m = re.search(pat, out, re.M)
        if m:
            return m.group(1).strip()
    return f"exit status {rc}"


def corpus_size(d):
    return len(os.listdir(d)) if os.path.isdir(d) else 0


def run_one(build, target, smoke, runs, seconds):
    exe = os.path.join(build, "fuzz", target)
    seeds = os.path.join(HERE, "corpus", target)
    artifacts = os.path.join(build, "fuzz", "artifacts", target) + os.sep
    os.makedirs(artifacts, exist_ok=True)
    if not os.path.exists(exe):
        return False, "not built (see the compiler output above)", {}
    if smoke:
        work = os.path.join(build, "fuzz", "smoke", target)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        limits = [f"-runs={runs}", "-seed=1", "-max_total_time=120"]
    else:
        work = os.path.join(build, "fuzz", "corpus", target)
        os.makedirs(work, exist_ok=True)
        limits = [f"-max_total_time={seconds}"] + ([f"-runs={runs}"] if runs else [])
    before = corpus_size(work)
    cmd = [exe, work, seeds, *limits, "-timeout=25", "-rss_limit_mb=2048", "-max_len=4096",
           "-print_final_stats=1", f"-artifact_prefix={artifacts}"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    wall = time.monotonic() - t0
    out = p.stdout + p.stderr
    with open(os.path.join(build, "fuzz", target + ".log"), "w") as f:
        f.write(" ".join(cmd) + "\n" + out)
    execs = stat(out, "number_of_executed_units") or 0
    info = {
        "execs": execs,
        "exec_s": int(execs / wall) if wall > 0 else 0,
        "cov": (re.findall(r"cov: (\d+)", out) or ["?"])[-1],
        "corpus": corpus_size(work),
        "before": before,
        "seeds": corpus_size(seeds),
        "wall": wall,
    }
    if p.returncode != 0:
        m = re.search(r"Test unit written to (\S+)", out)
        crash = m.group(1) if m else None
        reason = why_failed(out, p.returncode)
        if crash:
            info["replay"] = f"{exe} {crash}"
            reason += f" (input: {crash})"
        return False, reason, info
    return True, "", info


def line(t, ok, info):
    if not info:
        return f"fuzz  {t:<22} FAILED"
    return (f"fuzz  {t:<22} {info['execs']:9d} inputs {info['exec_s']:7d}/s "
            f"cov {info['cov']:>5} corpus {info['before']:5d} -> {info['corpus']:5d} "
            f"(+{info['seeds']} seeds) {info['wall']:7.1f} s  {'ok' if ok else 'FAILED'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int, default=0, help="executions per target (0: no limit in full mode)")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=1, help="targets run at once (full mode)")
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.build, "fuzz"), exist_ok=True)
    todo = []
    for arg in a.targets:
        t, _, runs = arg.partition(":")
        todo.append((t, int(runs) if runs else (a.runs or (2000 if a.smoke else 0))))
    jobs = 1 if a.smoke else max(1, a.jobs)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = [(t, pool.submit(run_one, a.build, t, a.smoke, runs, a.seconds)) for t, runs in todo]
        results = [(t, *f.result()) for t, f in futs]
    lines, table, bad = [], [], 0
    for t, ok, why, info in results:
        lines.append(f"PASS fuzz/{t}" if ok else f"FAIL fuzz/{t}: {why}")
        table.append(line(t, ok, info))
        print(table[-1])
        if not ok:
            bad += 1
            print(f"    {why}")
            if info.get("replay"):
                print(f"    replay: {info['replay']}")
            if info:
                print(f"    log: {os.path.join(a.build, 'fuzz', t + '.log')}")
    if a.smoke:
        os.makedirs(os.path.join(a.build, "results"), exist_ok=True)
        with open(os.path.join(a.build, "results", "fuzz.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    else:
        total = f"fuzz  {len(results)} targets, {jobs} at a time, {time.monotonic() - t0:.1f} s"
        print(total)
        with open(os.path.join(a.build, "fuzz", "summary.txt"), "w") as f:
            f.write("\n".join(table + [total]) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
