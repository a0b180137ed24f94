"""The kill switch on the live profile, against the CLOB stand-in: `halt`
stops the very next leader trade and survives restarts (each command is a new
process state), REDUCING posts sells only, and the daily loss limit moves the
state to REDUCING by itself."""
from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.entrypoints.cli import main
from tests.reliability.crash import KEY, leader_rows, set_books, write_config
from tests.standins.clob import ClobStandIn


@pytest.fixture
def live(tmp_path):
    with ClobStandIn() as clob:
        set_books(clob)
        rows = leader_rows(40, random.Random(11), 1_900_000_000)
        feed = tmp_path / "leaders.jsonl"
        feed.write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = write_config(tmp_path, clob.url, feed)
        db = tmp_path / "ct.db"

        def cli(*args: str, **env: str):
            res = CliRunner().invoke(main, ["--config", str(config), *args],
                                     env={"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": KEY, **env})
            assert res.exit_code == 0, res.output
            return res

        def history():
            with SqliteStore(db, read_only=True) as store:
                return list(reversed(store.history(limit=1000)))

        def state():
            with SqliteStore(db, read_only=True) as store:
                return store.get_state().state.value

        yield cli, clob, rows, history, state


def sides(posts):
    return [p["order"]["side"] for p in posts]


def test_halt_stops_the_next_trade_and_persists_across_restarts(live):
    cli, clob, rows, history, state = live
    cli("run", "--live", "--yes", "--max-items", "4")
    posted = len(clob.posts)
    assert posted > 0
    cli("halt", "--reason", "operator")
    for _ in range(2):  # two restarts: still halted
        cli("run", "--live", "--yes", "--max-items", "5")
        assert state() == "HALTED"
    assert len(clob.posts) == posted
    after = history()[4:]
    assert len(after) == 10 and {h.decision for h in after} == {"rejected"}
    assert "trading_halted" in {h.reason for h in after}  # rows sizing refuses anyway keep their own reason
    cli("resume")
    cli("run", "--live", "--yes")
    assert len(clob.posts) > posted and len(history()) == len(rows)


def test_reducing_posts_sells_only(live):
    cli, clob, rows, history, _ = live
    cli("run", "--live", "--yes", "--max-items", "10")
    before = len(clob.posts)
    cli("halt", "--reduce-only", "--reason", "wind down")
    cli("run", "--live", "--yes")
    later = history()[10:]
    assert {h.reason for h in later if h.side == "BUY"} == {"reducing_only"}
    assert any(h.side == "SELL" and h.decision != "rejected" for h in later)
    assert set(sides(clob.posts[before:])) == {"SELL"}


def test_daily_loss_limit_moves_the_state_by_itself(live):
    """Every round trip loses the spread (buy at the ask, sell at the bid):
    a limit of 0.2 USDC trips after a few sells."""
    cli, clob, rows, history, state = live
    cli("run", "--live", "--yes", COPYTRADER_RISK__DAILY_LOSS_LIMIT_USDC="0.2")
    assert state() == "REDUCING"
    records = history()
    tripped = next((i for i, h in enumerate(records) if h.reason == "reducing_only"), None)
    assert tripped is not None, [(h.side, h.token_id[:3], h.reason, h.status.value) for h in records]
    assert all(h.reason != "reducing_only" for h in records[:tripped])
    assert {h.reason for h in records[tripped:] if h.side == "BUY"} <= {"reducing_only"}
    first_refused = records[tripped]
    buys_after = [p for p in clob.posts if p["order"]["side"] == "BUY"
                  and int(p["order"]["timestamp"]) > int(first_refused.created_at.timestamp() * 1000)]
    assert buys_after == []
