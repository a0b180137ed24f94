"""The delay-aware fill model (adapters.market.delayed) through `backtest --delay-s`:
the same engine and paper executor, a book made of the market's trades after the delay."""
from __future__ import annotations

import json

from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from tests.standins.data_api import activity_row

LEADER, TOKEN = "0x" + "ab" * 20, str(10**70 + 1)


def tape_row(ts, n, price, size, side="BUY", wallet="0x" + "cc" * 20):
    row = activity_row(wallet, ts, n, price=price, size=size, asset=TOKEN, side=side)
    del row["type"]  # GET /trades rows carry no type
    return row


def _files(tmp_path, leader_rows, tape):
    a, t = tmp_path / "a.jsonl", tmp_path / "t.jsonl"
    a.write_text("\n".join(json.dumps(r) for r in leader_rows))
    t.write_text("\n".join(json.dumps(r) for r in tape))
    return a, t


def _run(tmp_path, delay, a, t, *extra, config=None):
    db = tmp_path / f"bt{delay}-{len(extra)}.db"
    args = [*(["--config", str(config)] if config else []), "--db", str(db), "backtest", str(a), "--delay-s",
            str(delay), "--trades", str(t), "--no-report", "--json", *extra]
    res = CliRunner().invoke(main, args, env={"COPYTRADER_CONFIG": None}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    hist = CliRunner().invoke(main, ["--db", str(db), "history", "--json"], env={"COPYTRADER_CONFIG": None})
    return json.loads(res.stdout)["runs"][0], json.loads(hist.stdout)[0]


TAPE = [tape_row(1000, 1, 0.50, 100, wallet=LEADER),  # the leader's own print
        tape_row(1003, 2, 0.51, 20), tape_row(1004, 3, 0.49, 50, side="SELL"), tape_row(1006, 4, 0.53, 50)]


def test_the_copy_is_priced_by_the_first_prints_after_the_delay(tmp_path):
    """fixed 10 USDC at the leader's 0.50 = 20 shares, limit 0.51 (max_slippage 2 %)."""
    a, t = _files(tmp_path, [activity_row(LEADER, 1000, 1, price=0.5, size=100, asset=TOKEN)], TAPE)
    outcomes = {d: _run(tmp_path, d, a, t) for d in (0, 3, 5, 100)}
    assert outcomes[0][1]["avg_price"] == "0.500000" and outcomes[0][1]["status"] == "filled"
    # 3 s late: the 0.51 print (a SELL print is a bid, not for a buyer)
    assert outcomes[3][1]["avg_price"] == "0.510000" and outcomes[3][1]["slippage"] == "0.010000"
    # 5 s late: the first ask printed is 0.53, beyond risk.max_slippage (5 % of 0.50)
    assert outcomes[5][1]["reason"] == "slippage" and outcomes[5][1]["detail"] == "best ask 0.53 vs leader 0.5"
    # nothing printed in the window after the delay: not copied, with the engine's reason
    assert outcomes[100][1]["reason"] == "no_liquidity"
    assert outcomes[100][1]["created_at"].endswith("00:18:20+00:00")  # decided delay_s after the leader's fill


def test_a_copy_larger_than_the_prints_within_the_limit_is_not_filled(tmp_path):
    """FOK of 40 shares 3 s late: 20 printed at 0.51, then 0.53 is beyond the limit: not filled."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[follower.sizing]\nfixed_usdc = "20"\n[risk]\nmax_slippage = "0.1"\n')
    a, t = _files(tmp_path, [activity_row(LEADER, 1000, 1, price=0.5, size=100, asset=TOKEN)], TAPE)
    summary, row = _run(tmp_path, 3, a, t, config=cfg)
    assert summary["outcomes"] == {"unfilled": 1} and row["status"] == "rejected", (summary, row)
    assert row["error"] == "FOK not filled: 20 of 40.00 available at limit 0.51", row


def test_a_sell_copy_meets_the_bids(tmp_path):
    """The leader sells 2 s after buying; 1 s late, our sell meets the 0.49 SELL print."""
    rows = [activity_row(LEADER, 1000, 1, price=0.5, size=100, asset=TOKEN),
            activity_row(LEADER, 1003, 2, price=0.5, size=100, asset=TOKEN, side="SELL")]
    a, t = _files(tmp_path, rows, TAPE)
    summary, row = _run(tmp_path, 1, a, t)
    assert row["side"] == "SELL" and row["avg_price"] == "0.490000", row


def test_delay_without_trades_is_refused_in_one_line(tmp_path):
    a, _ = _files(tmp_path, [activity_row(LEADER, 1000, 1, asset=TOKEN)], [])
    res = CliRunner().invoke(main, ["--db", str(tmp_path / "x.db"), "backtest", str(a), "--delay-s", "2"],
                             env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 2 and "--trades" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.db").exists()
