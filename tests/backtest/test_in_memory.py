"""A backtest kept in memory (a scout's candidate) carries the report of the database the same backtest writes."""
from __future__ import annotations

import json

from copytrader.entrypoints.backtest import run_backtest
from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS, load_config
from copytrader.entrypoints.report import analyse_db


def _without_meta(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "meta"}


def _both(tmp_path, cfg, inputs, **options):
    on_disk = run_backtest(cfg, inputs, str(tmp_path / "bt.db"), label="x", **options)
    in_memory = run_backtest(cfg, inputs, None, label="x", **options)
    assert on_disk.analysis is None and in_memory.db is None
    same = lambda s: {k: v for k, v in s.items() if k != "rows_per_s"}  # noqa: E731
    assert same(in_memory.summary) == same(on_disk.summary)
    return analyse_db(tmp_path / "bt.db", label="x").summary, in_memory.analysis.summary


def test_the_sample_in_memory_reports_what_its_database_does(tmp_path):
    """Duplicates, a quarantined row, a redeem, rejections and a fill that failed: all as the database has them."""
    cfg = load_config(None, environ={})
    disk, memory = _both(tmp_path, cfg, [str(SAMPLE_ACTIVITY)], markets=str(SAMPLE_MARKETS))
    assert disk["counts"]["copied"] == 64 and disk["counts"]["non_trade_rows"] > 0
    assert _without_meta(memory) == _without_meta(disk)
    assert list(tmp_path.glob("*.db")) == [tmp_path / "bt.db"]  # the memory run wrote no file


def test_a_delayed_backtest_in_memory_reports_what_its_database_does(tmp_path):
    from bench.scout import _config, _history, _wallet

    rows, tapes = _history(3, 300)
    activity, trades = tmp_path / "activity.jsonl", tmp_path / "trades.jsonl"
    activity.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trades.write_text("".join(json.dumps(t) + "\n" for tape in tapes.values() for t in tape))
    cfg = _config(tmp_path)
    disk, memory = _both(tmp_path, cfg, [str(activity)], delay_s=5.0, trades=[str(trades)])
    assert disk["counts"]["copied"] > 0 and disk["slippage"]["count"] > 0
    assert _wallet(3) in {r["leader"] for r in disk["pnl_by_leader"]}
    assert _without_meta(memory) == _without_meta(disk)
