#!/usr/bin/env python3
"""run_fuzz.py - run the libFuzzer targets built in BUILD/fuzz/.

    run_fuzz.py --build BUILD --smoke --runs N  TARGET[:OPT]...            (make fuzz-smoke, part of make test)
    run_fuzz.py --build BUILD [--runs N] [--seconds S] [--jobs J] TARGET[:OPT]... (make fuzz)

OPT, any of, separated by ':':  RUNS (a number: executions in smoke mode),
max_len=N (longest input, libFuzzer -max_len; 4096 if not given),
parts=N (full mode: the target's executions split into N runs of libFuzzer on
its one corpus, each with the whole time limit, which the job pool schedules
like targets, so a slow target uses every core once the fast ones are done;
its line adds them up).

Smoke: each target runs its seed corpus (tests/fuzz/corpus/<target>/) and
then mutations up to N inputs (RUNS for that target if given), with a fixed seed, in a fresh working corpus
(BUILD/fuzz/smoke/<target>/: the repository's corpus is never written); one
line per target in BUILD/results/fuzz.txt, "PASS fuzz/<target>" or
"FAIL fuzz/<target>: why" (tests/summary.py adds them up).
Full: each target runs until N executions (libFuzzer -runs, make fuzz
FUZZ_RUNS=) or S seconds (FUZZ_SECONDS, per libFuzzer run), whichever comes first, on a corpus
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


def run_one(build, target, smoke, runs, seconds, max_len, part=None):
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
    cmd = [exe, work, seeds, *limits, "-timeout=25", "-rss_limit_mb=2048", f"-max_len={max_len}",
           "-print_final_stats=1", f"-artifact_prefix={artifacts}"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    wall = time.monotonic() - t0
    out = p.stdout + p.stderr
    log = target + (f".part{part}" if part is not None else "") + ".log"
    with open(os.path.join(build, "fuzz", log), "w") as f:
        f.write(" ".join(cmd) + "\n" + out)
    info = {
        "execs": stat(out, "number_of_executed_units") or 0,
        "cov": int((re.findall(r"cov: (\d+)", out) or ["0"])[-1]),
        "seeds": corpus_size(seeds),
        "wall": wall,
        "log": os.path.join(build, "fuzz", log),
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


def add_up(parts):
    """One target's line from its parts: executions and seconds added, the
    best coverage, the first failure."""
    ok = all(p[0] for p in parts)
    why = next((p[1] for p in parts if not p[0]), "")
    infos = [p[2] for p in parts if p[2]]
    if not infos:
        return ok, why, {}
    info = dict(infos[0])
    info["execs"] = sum(i["execs"] for i in infos)
    info["wall"] = sum(i["wall"] for i in infos)
    info["cov"] = max(i["cov"] for i in infos)
    info["parts"] = len(infos)
    for i in infos:
        if i.get("replay"):
            info["replay"], info["log"] = i["replay"], i["log"]
    return ok, why, info


def line(t, ok, info):
    if not info:
        return f"fuzz  {t:<22} FAILED"
    exec_s = int(info["execs"] / info["wall"]) if info["wall"] > 0 else 0
    parts = f" in {info['parts']} parts" if info.get("parts", 1) > 1 else ""
    return (f"fuzz  {t:<22} {info['execs']:9d} inputs {exec_s:7d}/s "
            f"cov {info['cov']:>5} corpus {info['before']:5d} -> {info['corpus']:5d} "
            f"(+{info['seeds']} seeds) max_len {info['max_len']:4d} {info['wall']:7.1f} s{parts}  "
            f"{'ok' if ok else 'FAILED'}")


def parse_target(arg, runs, smoke):
    """TARGET[:RUNS][:max_len=N][:parts=N] -> (target, runs, max_len, parts)."""
    t, *opts = arg.split(":")
    max_len, parts = 4096, 1
    for o in opts:
        k, eq, v = o.partition("=")
        if not eq:
            runs = int(k)
        elif k == "max_len":
            max_len = int(v)
        elif k == "parts":
            parts = max(1, int(v))
        else:
            sys.exit(f"run_fuzz.py: unknown option {o!r} in {arg!r}")
    if smoke:
        parts = 1
    return t, runs, max_len, parts


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
    todo = [parse_target(arg, a.runs or (2000 if a.smoke else 0), a.smoke) for arg in a.targets]
    jobs = 1 if a.smoke else max(1, a.jobs)
    before = {t: corpus_size(os.path.join(a.build, "fuzz", "corpus", t)) for t, *_ in todo}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        # the parts of one target go out spread over the queue, so that they
        # run beside the other targets rather than after them all
        items = []
        for t, runs, max_len, parts in todo:
            for k in range(parts):
                r = -(-runs // parts) if runs else 0
                items.append((k, t, r, max_len, parts))
        items.sort(key=lambda i: i[0])
        futs = {}
        for k, t, r, max_len, parts in items:
            futs.setdefault(t, []).append(pool.submit(
                run_one, a.build, t, a.smoke, r, a.seconds, max_len,
                k if parts > 1 else None))
        results = []
        for t, runs, max_len, parts in todo:
            ok, why, info = add_up([f.result() for f in futs[t]])
            if info:
                work = os.path.join(a.build, "fuzz", "smoke" if a.smoke else "corpus", t)
                info.update(before=0 if a.smoke else before[t], corpus=corpus_size(work), max_len=max_len)
            results.append((t, ok, why, info))
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
                print(f"    log: {info['log']}")
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
