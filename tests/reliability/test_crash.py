"""Crash consistency under kill -9 (see crash.py for the kill points)."""
from __future__ import annotations

import random
import sqlite3
from collections import Counter

import attrs
import pytest

from tests.reliability import FIGURES
from tests.reliability.crash import KINDS, check, compare, harness, run_episode


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
    assert result["lost_intents"] == 0 and result["fills_above_order_size"] == 0
    FIGURES["kill -9 points survived"] += result["kills"]
    FIGURES["leader trades under kill -9"] += result["leader_trades"]
    FIGURES["engine restarts after kill -9"] += result["runs"] - result["episodes"]
    FIGURES["lost intents (vs an uninterrupted run)"] += result["lost_intents"]
    FIGURES["fills above order size booked"] += result["fills_above_order_size"]


def test_planned_kills_leave_a_consistent_store(clean):
    assert clean.problems == []
    assert clean.kills == Counter({"post": 1, "post-accepted": 1, "reconcile": 1})
    assert sum(clean.exchange.attempts.values()) >= 1
    assert clean.lost == 0 and clean.stale == 0


def test_an_order_killed_before_the_exchange_acted_is_posted_again_at_restart(tmp_path):
    """The defect the kill -9 replay found: killed after the intent was
    committed and before the POST, the trade was marked rejected at restart
    and never copied. Now the same signed order goes out again, and the run
    ends as the uninterrupted one did."""
    episode = run_episode(tmp_path, random.Random(5), 0, rows=6, plan=[("post", 1), ("txn-after", 3)])
    assert episode.problems == [] and episode.lost == 0
    reposted = [salt for salt, n in episode.exchange.attempts.items() if n > 1]
    assert reposted, "the order the exchange never acted on was posted again"
    assert all(len(episode.exchange.signed[salt]) == 1 for salt in reposted)  # the same signed order


def test_the_harness_catches_an_order_sent_twice(tmp_path):
    """Break the order-safety rule on purpose (sign and send a new order for an
    intent the exchange does not know after a restart): it must be reported."""
    broken = run_episode(tmp_path, random.Random(11), 0, rows=6, plan=[("post", 1)],
                         env={"CT_SABOTAGE": "resend"})
    assert any("different signed orders" in p for p in broken.problems), broken.problems


def test_the_comparison_catches_a_lost_intent(clean, tmp_path):
    """A copy the uninterrupted run made and the killed one did not (as before
    the fix: rejected at restart) is a lost intent."""
    db = tmp_path / "ct.db"
    with sqlite3.connect(clean.folder / "ct.db") as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    base = clean.folder / "baseline" / "ct.db"
    assert compare(db, base).lost == 0
    with sqlite3.connect(db) as con:
        con.execute("UPDATE intents SET status = 'rejected', filled_size = '0', avg_price = NULL, "
                    "error = 'order not found at the exchange: it was never accepted' "
                    "WHERE rowid = (SELECT min(rowid) FROM intents WHERE status = 'filled')")
    found = compare(db, base)
    assert found.lost == 1 and any("uninterrupted" in p for p in found.problems)


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
