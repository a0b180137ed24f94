"""`copytrader scout` from a warm cache: 50 candidates with 2,000 activity rows
each (``--quick``: 4 x 100), the cache written beforehand (each wallet's
activity span and each market's tape, as the Data API sends the rows; the Data
API URL points at a closed loopback port, so a request would fail the run).

Measured: the scout's wall time and rows per second per core with ``--jobs 1``
and ``--jobs 2``, next to the plain backtest (``copytrader backtest`` of each
candidate's same rows, each into its database, one process, no delay model)
as the floor; target: the scout's per-core rate within 1.5x of the floor's,
and ``--jobs 2`` twice as fast as ``--jobs 1`` on a machine with two cores or
more (at least 0.9x of it: issue 20's 1.8x). The same for the plain backtests
two at a time (``backtest --each-file --jobs 2``).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

UNTIL = 1_793_491_200 // 60 * 60
MARKETS = 10  # per candidate


def _wallet(i: int) -> str:
    return "0x" + f"{0x5c00 + i:040x}"


def _history(i: int, n: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """Candidate ``i``'s activity (ascending) and its markets' tapes: each leader fill
    prints on the tape, and another taker prints a cent away 2 s later."""
    import random

    from tests.standins.data_api import activity_row, trade_row

    rnd, wallet, start = random.Random(i), _wallet(i), UNTIL - 6 * 86_400
    held: dict[int, float] = {}
    rows, tapes = [], {}
    for k in range(n):
        m = rnd.randrange(MARKETS)
        asset, cond = str(10**70 + i * MARKETS + m), "0x" + f"{i * MARKETS + m:064x}"
        have = held.get(m, 0.0)
        sell = have >= 40 and rnd.random() < 0.4
        size = float(int(have // 2)) if sell else float(rnd.choice((20, 40, 60, 100)))
        held[m] = have - size if sell else have + size
        price = round(rnd.uniform(0.3, 0.7), 2)
        side = "SELL" if sell else "BUY"
        ts = start + k * 60
        rows.append(activity_row(wallet, ts, i * 10**6 + k, side=side, size=size, price=price, asset=asset,
                                 condition=cond))
        later = round(price + (0.01 if side == "BUY" else -0.01), 2)
        tapes.setdefault(cond, []).extend([
            trade_row(wallet, ts, i * 10**6 + k, side=side, size=size, price=price, asset=asset, condition=cond),
            trade_row("0x" + "ee" * 20, ts + 2, 5 * 10**8 + i * 10**6 + k, side=side, size=5000.0, price=later,
                      asset=asset, condition=cond)])
    return rows, tapes


def _warm_cache(path: Path, n_candidates: int, n_rows: int) -> None:
    """The cache as a finished scout of the window leaves it (ScoutHistory's tables)."""
    from copytrader.adapters.feeds.scout_history import PERIOD_S, ScoutCache, _dump

    cache = ScoutCache(path)
    try:
        for i in range(n_candidates):
            rows, tapes = _history(i, n_rows)
            cache.put("INSERT OR REPLACE INTO activity VALUES (?, ?, ?, ?)",
                      (_wallet(i), UNTIL - PERIOD_S["WEEK"], UNTIL, _dump(rows)))
            for cond, tape in tapes.items():
                cache.put("INSERT OR REPLACE INTO tapes VALUES (?, ?, ?, ?, ?, ?)",
                          (cond, tape[0]["timestamp"], UNTIL, 1, 0, _dump(tape)))
    finally:
        cache.close()


def _config(tmp: Path):
    from copytrader.entrypoints.config import load_config

    return load_config(None, environ={}, overrides={
        "": {"profile": "paper"}, "store": {"path": str(tmp / "ct.db")},
        "feed": {"url": "http://127.0.0.1:9"},  # closed: the warm cache must answer everything
        "scout": {"cache": str(tmp / "cache.db")}, "follower": {"max_trade_age_s": 10**9},
        "sizing": {"mode": "proportional", "multiplier": "0.1"}})


def bench(quick: bool) -> dict[str, Any]:
    from copytrader.entrypoints.backtest import Job, run_backtests
    from copytrader.entrypoints.scout import run_scout

    n_candidates, n_rows = (4, 100) if quick else (50, 2000)
    out: dict[str, Any] = {"candidates": n_candidates, "rows_per_candidate": n_rows, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        _warm_cache(tmp / "cache.db", n_candidates, n_rows)
        out["setup_s"] = round(time.perf_counter() - t0, 2)
        cfg = _config(tmp)
        addresses = [_wallet(i) for i in range(n_candidates)]
        for jobs in (1, 2):
            t0 = time.perf_counter()
            result = run_scout(cfg, category="OVERALL", period="WEEK", order="PNL", top=0, addresses=addresses,
                               delay_s=5.0, jobs=jobs, out=tmp / f"out{jobs}", until=UNTIL)
            wall = time.perf_counter() - t0
            rows = sum(r["rows"] for r in result["candidates"])
            out[f"jobs{jobs}"] = {"wall_s": round(wall, 2), "rows": rows, "requests": result["requests"],
                                  "rows_per_s": round(rows / wall), "rows_per_s_per_core": round(rows / wall / jobs),
                                  "seconds": result["seconds"],
                                  "copied": sum(r["copied"] for r in result["candidates"])}
        # the floor: a plain backtest (no delay model) of each candidate's same rows, into a database of its
        # own, one process; then the same runs two at a time (`backtest --each-file --jobs 2`)
        folders = sorted((tmp / "out1" / "candidates").iterdir())
        rows = sum(sum(1 for _ in open(f / "activity.jsonl")) for f in folders)
        for jobs, key in ((1, "plain_backtest"), (2, "backtest_jobs2")):
            batch = [Job(cfg, (str(f / "activity.jsonl"),), str(tmp / f"plain{jobs}" / f"{f.name}.db"))
                     for f in folders]
            t0 = time.perf_counter()
            run_backtests(batch, jobs)
            wall = time.perf_counter() - t0
            out[key] = {"wall_s": round(wall, 2), "rows": rows, "rows_per_s": round(rows / wall)}
    one, two, plain = out["jobs1"], out["jobs2"], out["plain_backtest"]
    out["ratio_per_core"] = round(plain["rows_per_s"] / one["rows_per_s_per_core"], 2)  # how many times slower
    out["speedup_jobs2"] = round(one["wall_s"] / two["wall_s"], 2)
    out["backtest_speedup_jobs2"] = round(plain["wall_s"] / out["backtest_jobs2"]["wall_s"], 2)
    return out


def rows(r: dict[str, Any]) -> list[tuple]:
    """(measure, value, baseline, ratio, target, pass) rows of the table."""
    if "scout" not in r:
        return []
    S = r["scout"]
    one, two, plain = S["jobs1"], S["jobs2"], S["plain_backtest"]
    ideal = min(2, S["cores"] or 1)
    label = f"{S['candidates']} candidates x {S['rows_per_candidate']:,} rows, warm cache"
    return [
        (f"scout --jobs 1, {label}", f"{one['wall_s']} s, {one['rows_per_s_per_core']:,} rows/s/core",
         f"plain backtest, same rows {plain['rows_per_s']:,} rows/s", S["ratio_per_core"], "≤ 1.5× slower",
         S["ratio_per_core"] <= 1.5),
        ("  scout --jobs 1, requests to the Data API", str(one["requests"]), "warm cache: none", "", "0",
         one["requests"] == 0 and two["requests"] == 0),
        (f"scout --jobs 2 ({S['cores']} cores)", f"{two['wall_s']} s, {two['rows_per_s_per_core']:,} rows/s/core",
         f"--jobs 1 {one['wall_s']} s", S["speedup_jobs2"], f"≥ {0.9 * ideal:.1f}× (linear: {ideal}×)",
         S["speedup_jobs2"] >= 0.9 * ideal),
    ] + ([] if "backtest_jobs2" not in S else [
        (f"backtest --each-file --jobs 2, the same {S['candidates']} files",
         f"{S['backtest_jobs2']['wall_s']} s, {S['backtest_jobs2']['rows_per_s']:,} rows/s",
         f"--jobs 1 {plain['wall_s']} s", S["backtest_speedup_jobs2"], f"≥ {0.9 * ideal:.1f}× (linear: {ideal}×)",
         S["backtest_speedup_jobs2"] >= 0.9 * ideal)])
