"""`python -m bench.callgrind [--rows N] [--json PATH]`: instructions per trade.

valgrind's callgrind counts the instructions of the replay (bench/workload.py, the same job as
`python -m bench`) of N and of 2N rows (default 1,000 and 2,000, the workload's seed 42) for
each workload (the memory store on the test profile, SQLite with a commit per trade, SQLite
with a commit per 1,000 rows) and both limit sets (open, default), in this tree and in the
baseline commit (e1cbd7b, extracted as `python -m bench` does); instructions per trade =
(I(2N) - I(N)) / N, so the wiring of an engine and a run's fixed costs cancel out.
One valgrind process a tree (the two at once) runs every replay, each counted alone (callgrind
dumps its counts at a mark between jobs), each workload after a warm-up replay of 50 rows (the
imports of a first use are not counted). The input files are written before, outside
valgrind. Prints a table and writes bench/callgrind.json. About 7 CPU-minutes (4 minutes on a
quiet 2-CPU machine, both trees at once).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from bench import data
from bench.__main__ import BASELINE, HERE, ROOT, baseline_tree, machine, table
from bench.workload import LIMITS, SEED, TOKENS

WORKLOADS = {
    "memory (test profile)": {"store": "memory", "profile": "test"},
    "sqlite, commit per trade": {"store": "sqlite", "commit_every": 1},
    "sqlite, commit per 1,000": {"store": "sqlite", "commit_every": 1000},
}


def instructions(tree: Path, jobs: list[dict[str, Any]], out_file: Path) -> list[int]:
    """The instructions (callgrind's Ir) of each of ``jobs`` run by ``python -m bench.workload
    --callgrind`` in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("COPYTRADER_CONFIG", None)
    res = subprocess.run(["valgrind", "--tool=callgrind", "--dump-before=os_getppid", f"--callgrind-out-file={out_file}",
                          sys.executable, "-m", "bench.workload", "--callgrind", json.dumps(jobs)],
                         cwd=tree, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"callgrind in {tree} failed: {res.stderr.strip()[-1500:]}")
    parts = {}
    for dump in out_file.parent.glob(out_file.name + "*"):
        fields = dict(line.split(": ", 1) for line in dump.read_text().splitlines()[:40] if line[:6] in ("part: ", "summar"))
        parts[int(fields.get("part", 0))] = int(fields["summary"])
    if len(parts) != len(jobs) + 2:  # the start-up, each job, the end
        raise RuntimeError(f"callgrind in {tree} dumped {len(parts)} parts for {len(jobs)} jobs: is {sys.executable} "
                           "stripped of its symbols (the mark is its os_getppid)?")
    return [parts[k + 2] for k in range(len(jobs))]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.callgrind", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1000, help="N: replays of N and 2N rows (default 1000)")
    ap.add_argument("--json", dest="json_path", default=str(HERE / "callgrind.json"), help="where to write the JSON")
    args = ap.parse_args(argv)
    if args.rows < 1:
        ap.error("--rows must be at least 1")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): instructions per trade need its callgrind tool.",
              file=sys.stderr)
        return 2
    n = args.rows
    results: dict[str, Any] = {"machine": machine(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "rows": [n, 2 * n], "seed": SEED, "tokens": TOKENS, "baseline": BASELINE}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sizes = (50, n, 2 * n)  # the warm-up, N, 2N
        src = {k: str(data.write_jsonl(tmp / f"rows{k}.jsonl", k, TOKENS, SEED)) for k in sizes}
        base, why = baseline_tree(tmp / "baseline")
        results["baseline_reason"] = why
        trees = {"today": ROOT, **({BASELINE: base} if base else {})}
        plan = [(name, limits, k) for name in WORKLOADS for limits in LIMITS for k in sizes]
        jobs = [{"kind": "replay", "n": k, "limits": limits, "src": src[k], **WORKLOADS[name]} for name, limits, k in plan]
        with ThreadPoolExecutor(len(trees)) as pool:
            counted = dict(zip(trees, pool.map(lambda t: instructions(trees[t], jobs, tmp / f"callgrind.{t}.out"),
                                               trees)))
    counts = {(t, *step): c for t in trees for step, c in zip(plan, counted[t])}
    per_trade = {(t, name, limits): (counts[(t, name, limits, 2 * n)] - counts[(t, name, limits, n)]) // n
                 for t in trees for name in WORKLOADS for limits in LIMITS}
    results["instructions_per_trade"] = [
        {"workload": name, "limits": limits, **{t: per_trade[(t, name, limits)] for t in trees}}
        for name in WORKLOADS for limits in LIMITS]
    results["totals"] = [{"tree": t, "workload": name, "limits": limits, "rows": k, "instructions": c}
                         for (t, name, limits, k), c in counts.items()]
    rows = [{"measure": f"{r['workload']}, {r['limits']} limits", "value": f"{r['today']:,}",
             "baseline": f"{BASELINE} {r[BASELINE]:,}" if BASELINE in r else why,
             "ratio": round(r["today"] / r[BASELINE], 3) if BASELINE in r else "", "target": "", "pass": None}
            for r in results["instructions_per_trade"]]
    print(f"instructions per trade, (I({2 * n:,}) - I({n:,})) / {n:,}, callgrind")
    print(table(rows))
    Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
