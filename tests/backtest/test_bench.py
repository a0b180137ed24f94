"""The benchmark suite runs (tiny sizes) and writes a valid JSON table; timings are never asserted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_writes_json_and_prints_the_table(tmp_path):
    pytest.importorskip("polymarket")
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["machine"]["nproc"] >= 1 and data["machine"]["python"]
    measures = [row["measure"] for row in data["table"]]
    for word in ("signed order, p99", "replay, memory", "replay, sqlite", "backtest, sqlite", "CPU/trade", "--help", "chain push",
                 "on-chain"):
        assert any(word in m for m in measures), word
    for row in data["table"]:
        assert set(row) == {"measure", "value", "baseline", "ratio", "target", "pass"}
        assert row["pass"] in (True, False, None)
        assert row["measure"] in res.stdout
    assert data["latency"]["n"] > 0 and data["replay_memory"]["copied"] > 0
    assert data["replay_sqlite"]["copied"] > 0 and data["onchain"]["logs"] > 0
    assert data["replay_sqlite_chunked"]["copied"] == data["replay_sqlite"]["copied"]  # same decisions
    assert data["replay_sqlite_chunked"]["commit_every"] == 1000 and data["replay_sqlite"]["commit_every"] == 1
    assert data["floor_feed"]["rows"] == data["replay_memory"]["trades"] and data["floor_sqlite"]["trades_per_s"] > 0
    replay_rows = {row["measure"]: row for row in data["table"] if row["measure"].startswith("replay")}
    assert all(isinstance(row["ratio"], float) for row in replay_rows.values())  # against the floors
