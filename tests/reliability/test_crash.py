"""Crash consistency under kill -9 (see crash.py for the kill points)."""
from __future__ import annotations

import random
import sqlite3
from collections import Counter

import attrs
import pytest

from tests.reliability import FIGURES
from tests.reliability.crash import KINDS, check, harness, run_episode


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """One finished episode with a post killed before the exchange acted and
    one killed after it accepted."""
    episode = run_episode(tmp_path_factory.mktemp("clean"), random.Random(11), 0, rows=12,
                          plan=[("post", 2), ("post-accepted", 2), ("reconcile", 1)])
    return episode


def test_survives_random_kill_points(request, tmp_path):
    kills = request.config.getoption("--kills")
    result = harness(kills, seed=2026, folder=tmp_path)
    assert result["problems"] == []
    assert result["kills"] >= kills
    assert set(result["kills_by_point"]) == set(KINDS), "every kind of kill point is exercised"
    FIGURES["kill -9 points survived"] += result["kills"]
    FIGURES["leader trades under kill -9"] += result["leader_trades"]
    FIGURES["engine restarts after kill -9"] += result["runs"] - result["episodes"]


def test_planned_kills_leave_a_consistent_store(clean):
    assert clean.problems == []
    assert clean.kills == Counter({"post": 1, "post-accepted": 1, "reconcile": 1})
    assert sum(clean.exchange.attempts.values()) >= 1


def test_the_harness_catches_an_order_sent_twice(tmp_path):
    """Break the order-safety rule on purpose (resend an order the exchange
    does not know after a restart): the duplicate must be reported."""
    broken = run_episode(tmp_path, random.Random(11), 0, rows=6, plan=[("post", 1)],
                         env={"CT_SABOTAGE": "resend"})
    assert any("posted 2 times" in p for p in broken.problems), broken.problems


def test_the_checker_catches_a_lost_trade_and_a_position_drift(clean, tmp_path):
    db = tmp_path / "ct.db"
    with sqlite3.connect(clean.folder / "ct.db") as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    assert check(db, clean.rows, clean.exchange) == []
    token = next(iter(clean.exchange.fills))
    drifted = attrs.evolve(clean.exchange, fills={**clean.exchange.fills, token: clean.exchange.fills[token] + 1})
    assert any("we hold" in p for p in check(db, clean.rows, drifted))
    stranger = attrs.evolve(clean.exchange, orders=clean.exchange.orders | {"0xfeed"})
    assert any("not ours" in p for p in check(db, clean.rows, stranger))
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM intents WHERE rowid = (SELECT min(rowid) FROM intents)")
    assert any("accounted for" in p for p in check(db, clean.rows, clean.exchange))
