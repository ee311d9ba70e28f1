"""b_balloond.py - tools/balloond on the three-guest cgroup scenario
(tests/qemu/scn_balloond.py): reaction time (guest 1 found short -> the memory
it was given is there, as the daemon measures it each time), memory moved per
second between guests (the daemon's inflate + deflate volume over its run),
memory flowing back after guest 1 shrinks, and the host's peak against its
limit (goal: never over, and failcnt 0: the limit never even reached).
RUNS runs; medians, plus every run's figures."""
import statistics

from scenarios import Context
from scn_balloond import three_guests

RUNS = 3


def bench(build, image):
    runs = []
    for i in range(RUNS):
        ctx = Context(build, image, f"bench_balloond{i}")
        try:
            runs.append(three_guests(ctx))
        finally:
            ctx.cleanup()
    med = statistics.median
    reactions = [x for r in runs for x in r["reaction_s"]]
    return {
        "runs": len(runs),
        "reaction_s_median": round(med(reactions), 3) if reactions else None,
        "reaction_s_max": round(max(reactions), 3) if reactions else None,
        "pressure_on_to_off_s_median": round(med([x for r in runs for x in r["pressure_on_to_off_s"]] or [0]), 3),
        "moved_mib_per_s": round(med(r["moved_mib"] / max(r["moved_span_s"], 1e-3) for r in runs), 1),
        "flow_back_mib_per_s": round(med(r["flowed_back_mib"] / max(r["flow_back_s"], 1e-3) for r in runs), 1),
        "peak_over_limit_mib": max(r["peak_over_limit_mib"] for r in runs),
        "peak_headroom_left_mib": round(min(r["limit_mib"] - r["peak_usage_mib"] for r in runs), 1),
        "limit_hits_failcnt": sum(r["failcnt"] for r in runs),
        "oom_kills": sum(r["oom_kills"] for r in runs),
        "per_run": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                     if k not in ("reaction_s", "pressure_on_to_off_s")} for r in runs],
    }
