"""b_mm_instructions.py - instructions per allocator operation, counted by
valgrind's callgrind on `mm_bench --quick` (repeatable where times are not).

Each bench_* function in bench/mm_bench.c runs one kind of operation a known
number of times (the `ops` the quick run prints); its inclusive instruction
count divided by that number is the cost per operation. bench_4k_bulk runs
twice (a warm-up pass, then the timed pass).
"""
import json
import os
import re
import subprocess
import tempfile

PER_OP = {  # bench function -> (key in ops, passes)
    "bench_4k_bulk": ("4k_pair", 2),
    "bench_4k_hot": ("4k_hot_pair", 1),
    "bench_2m_bulk": ("2m_pair", 1),
    "bench_random": ("random_pair", 1),
    "bench_blocks_request": ("blocks_request", 1),
}


def bench(build, image):
    exe = os.path.join(build, "bench", "mm_bench")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", exe, "--quick"],
                           capture_output=True, text=True, check=True)
        ops = json.loads(p.stdout)["mm_host"]["ops"]
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
                             capture_output=True, text=True, check=True).stdout
    result = {}
    for line in ann.splitlines():
        m = re.match(r"\s*([\d,]+) \(.*\)\s+\S*mm_bench\.c:(bench_\w+?)(?:\.\w+\.\d+)? \[", line)
        if m and m.group(2) in PER_OP:
            key, passes = PER_OP[m.group(2)]
            result[f"{key}_instructions"] = round(int(m.group(1).replace(",", "")) / (ops[key] * passes), 1)
    missing = [f for f, (k, _) in PER_OP.items() if f"{k}_instructions" not in result]
    if missing:
        raise RuntimeError(f"callgrind output has no counts for {', '.join(missing)}")
    return result
