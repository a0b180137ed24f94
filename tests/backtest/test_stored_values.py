"""Stored values do not move when the engine gets faster: a replay of the benchmark's
synthetic rows (buys, partial sells, several leaders) into SQLite stores, row for row and
text for text, what the engine stored at e1cbd7b (before issue 20). Each case is the sha256
of the sorted rows of the tables below; ``python -m tests.backtest.test_stored_values``
prints them (after a deliberate change of what is stored, and only then)."""
from __future__ import annotations

import hashlib
import sqlite3
import sys
from pathlib import Path

import pytest

from bench import data
from copytrader.adapters.alerts.log import NullAlerter
from copytrader.adapters.feeds.files import FilesFeed
from copytrader.application.runner import run
from copytrader.entrypoints.config import load_config
from copytrader.entrypoints.container import build_container

ROWS, TOKENS = 3000, 40
OPEN = {"risk": {"max_trade_usdc": "off", "max_market_usdc": "off", "max_total_exposure_usdc": "off",
                 "max_open_positions": "off", "daily_loss_limit_usdc": "off", "max_orders_per_window": "off",
                 "max_slippage": "1"},
        "follower": {"max_trade_age_s": 10**9}}
CASES = {
    "default limits": ({}, 1),
    "open limits": (OPEN, 1),
    "open limits, chunked": (OPEN, 500),
    # reduced to the trade cap, proportional sizing, FAK, a taker fee, the daily loss limit reached
    "caps, proportional, fee": ({"risk": {**OPEN["risk"], "max_trade_usdc": "15", "daily_loss_limit_usdc": "20",
                                          "max_total_exposure_usdc": "400"},
                                 "follower": {"max_trade_age_s": 10**9, "order_type": "fak", "max_slippage": "0.03"},
                                 "sizing": {"mode": "proportional", "multiplier": "0.37"},
                                 "paper": {"fee_rate": "0.02"}}, 1),
}
EXPECTED = {  # at e1cbd7b
    "default limits": "f38a40281caea375d5be7b28279f8b7f07e0036040b167fdf99870ea93d04721",
    "open limits": "fa707f37061498c0b4135aa2eb68f1848bb0d31f39c8c1dbd3c97295937681a8",
    "open limits, chunked": "fa707f37061498c0b4135aa2eb68f1848bb0d31f39c8c1dbd3c97295937681a8",
    "caps, proportional, fee": "9b7f78884f992542b7d2126eea2292b1508f9412a66ccf7492ff5410fc9ac26b",
}
TABLES = {
    "intents": "intent_id, trade_id, follower, leader, token_id, condition_id, side, leader_size, leader_price, "
               "created_at, decision, status, reason, detail, size, limit_price, order_type, filled_size, avg_price, "
               "fee, slippage, execution_id, error, updated_at, title, settlement, booked",
    "positions": "leader, token_id, condition_id, size, cost, realised, fees, bought, sold, last_price, settled, title, "
                 "is_open, payout",
    "trades": "id, leader, token_id, condition_id, side, size, price, usdc_size, timestamp, tx_hash, kind, outcome, "
              "title, log_index",
    "leader_holdings": "leader, token_id, size",
    "daily_pnl": "day, realised",
    "state": "state, reason, since",
}


def stored(tmp: Path, overrides: dict, commit_every: int) -> str:
    src = data.write_jsonl(tmp / "rows.jsonl", ROWS, TOKENS)
    db = tmp / "run.db"
    cfg = load_config(None, environ={}, overrides={
        **overrides, "": {"profile": "paper"}, "store": {"kind": "sqlite", "path": str(db)},
        "feed": {"kind": "replay", "path": str(src)}, "market": {"kind": "static"}})
    c = build_container(cfg)
    market = data.market(TOKENS)
    market.clock = c.clock()
    from dependency_injector import providers

    c.market.override(providers.Object(market))
    c.alerter.override(providers.Object(NullAlerter()))
    run(c.service(), FilesFeed([src], clock=c.clock()), commit_every=commit_every)
    c.store().close()
    con = sqlite3.connect(db)
    digest = hashlib.sha256()
    for table, columns in TABLES.items():
        for row in sorted(repr(r) for r in con.execute(f"SELECT {columns} FROM {table}")):
            digest.update(f"{table} {row}\n".encode())
    con.close()
    return digest.hexdigest()


@pytest.mark.parametrize("case", list(CASES))
def test_a_replay_stores_what_it_stored_before(tmp_path, case):
    overrides, commit_every = CASES[case]
    assert stored(tmp_path, overrides, commit_every) == EXPECTED[case]


if __name__ == "__main__":  # pragma: no cover - regenerates EXPECTED
    import tempfile

    for name, (overrides, commit_every) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            print(f"    {name!r}: {stored(Path(tmp), overrides, commit_every)!r},", file=sys.stdout)
