"""The benchmark suite runs (tiny sizes) and writes a valid JSON table; timings are never asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_writes_json_and_prints_the_table(tmp_path):
    pytest.importorskip("polymarket")
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["machine"]["nproc"] >= 1 and data["machine"]["python"]
    measures = [row["measure"] for row in data["table"]]
    for word in ("backtest, sqlite, commit per 1,000 (open limits", "backtest, sqlite, commit per 1,000 (default limits",
                 "replay, memory store, test profile", "durable run, sqlite, commit per trade (default limits",
                 "against bare sqlite3 commit per trade", "CPU/trade, last vs first", "signed order, p50 (open limits",
                 "signed order, p50 (default limits", "CPU time of the thread, p99", "backtest --each-file --jobs 2",
                 "scout --jobs 2", "--help", "chain push", "on-chain"):
        assert any(word in m for m in measures), word
    for row in data["table"]:
        assert set(row) == {"measure", "value", "baseline", "ratio", "target", "pass"}
        assert row["pass"] in (True, False, None)
        assert row["measure"] in res.stdout
    I = data["issue20"]
    if sys.platform == "linux":
        assert isinstance(I["cpu"], int)  # the replays ran pinned to one CPU
    for limits in ("open", "default"):
        R = I[limits]
        runs = [R[path][tree][0] for path in ("backtest", "durable", "memory") for tree in R[path]]
        assert {(r["trades"], r["copied"], r["rejected"]) for r in runs} == {(runs[0]["trades"], runs[0]["copied"],
                                                                           runs[0]["rejected"])}  # same decisions
        assert R["backtest"]["today"][0]["commit_every"] == 1000 and R["durable"]["today"][0]["commit_every"] == 1
        assert R["memory"]["today"][0]["profile"] == "test"
        trades, copied = runs[0]["trades"], runs[0]["copied"]
        for floor in ("floor_chunked", "floor_per_trade"):  # the engine's rows: trade, holding, cursor, intent, fill
            assert R[floor][0]["trades"] == trades and R[floor][0]["statements"] == 4 * trades + copied
        assert I["latency"][limits]["today"][0]["rows"] > 0
    assert I["open"]["durable"]["today"][0]["copied"] > I["default"]["durable"]["today"][0]["copied"] > 0
    assert I["feed_floor"][0]["rows"] == I["rows"]
    assert I["baseline"]["commit"] == "e1cbd7b" and (I["baseline"]["available"] or I["baseline"]["reason"])
    if I["baseline"]["available"]:
        assert all(I["open"][path]["baseline"][0]["copytrader"].endswith("baseline/copytrader")
                   for path in ("backtest", "durable", "memory"))
    assert data["cores"]["available"] or data["cores"]["reason"]
    floored = [row for row in data["table"] if row["measure"].startswith(("backtest, sqlite", "replay, memory",
                                                                           "  same, against bare sqlite3"))]
    assert len(floored) == 6 and all(isinstance(row["ratio"], float) for row in floored)  # against the floors


def test_callgrind_without_valgrind_is_one_sentence_and_exit_2(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no valgrind there
    res = subprocess.run([sys.executable, "-m", "bench.callgrind", "--json", str(tmp_path / "cg.json")], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 2 and "valgrind is not installed" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "cg.json").exists()
