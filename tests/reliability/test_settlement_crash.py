"""Settlement across kill -9: fills booked as provisional by one process, their
trades then CONFIRMED or FAILED on chain; the next process is SIGKILLed just
before or just after each transaction of its settlement pass, and a last one
runs to the end. Whatever was killed, every fill ends final or reversed
exactly once, and our positions equal what the exchange really moved."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.domain.model import Settlement
from tests.reliability import FIGURES
from tests.reliability.crash import KEY, ROOT, TOKENS, leader_rows, set_books, write_config
from tests.standins.clob import ClobStandIn


def child(config, point: str = "") -> int:
    env = {**os.environ, "COPYTRADER_PRIVATE_KEY": KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tests.reliability.child", str(config), point], cwd=ROOT,
                          env=env, capture_output=True, timeout=120).returncode


def books(db) -> tuple[list, dict]:
    with SqliteStore(db, read_only=True) as store:
        fills = [r for r in store.history(limit=1000) if r.filled_size > 0 or r.settlement is Settlement.REVERSED]
        held: dict = {}
        for p in store.positions(include_closed=True):  # one position per leader and token
            held[p.token_id] = held.get(p.token_id, Decimal(0)) + p.size
    return fills, held


@pytest.mark.parametrize("point", ["txn-before", "txn-after"])
def test_a_kill_during_the_settlement_pass_neither_loses_nor_doubles_a_reversal(tmp_path, point):
    rows = leader_rows(8, random.Random(5), int(time.time()))
    feed = tmp_path / "leaders.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with ClobStandIn() as clob:
        set_books(clob)
        config = write_config(tmp_path, clob.url, feed)
        assert child(config) == 0  # the feed copied: every fill provisional, its trades MATCHED
        fills, _ = books(tmp_path / "ct.db")
        assert fills and {r.settlement for r in fills} == {Settlement.PROVISIONAL}
        failing = sorted(r.execution_id for r in fills)[::2]  # every other order's trades fail on chain
        for order in failing:
            clob.fail_order(order)
        clob.advance_trades(2)
        kills = 0
        for n in range(1, len(fills) + 1):  # one kill at each transaction of the settlement pass
            code = child(config, f"{point}:{n}")
            if code == 0:  # fewer transactions than n: nothing left to settle
                break
            assert code == -9
            kills += 1
        assert kills >= 1 and child(config) == 0
        fills, held = books(tmp_path / "ct.db")
        exchange = {t: clob.fills(t) for t in TOKENS}
    FIGURES["kill -9 during settlement passes"] += kills
    settled = {r.execution_id: r.settlement for r in fills}
    assert settled == {o: Settlement.REVERSED if o in failing else Settlement.FINAL for o in settled}
    assert {t: held.get(t, Decimal(0)) for t in TOKENS} == exchange  # nothing booked that did not move
