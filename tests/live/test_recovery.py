"""Orders whose fate is not known, against the loopback CLOB: looked up by
hash (the order, then its trades), posted again only as the same stored
signed order while the copy is still valid, and fills that cannot be true
booked at most at the order's size."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from dependency_injector import providers

from copytrader.adapters.clock import ManualClock
from copytrader.domain.model import IntentStatus, TradingState
from copytrader.ports import StoredState
from copytrader.testing import T0, TOKEN, make_trade

D = Decimal


class CrashBeforePost:
    """Dies (like kill -9) after the intent and its signed order are durable,
    before the POST leaves the process."""

    def __init__(self, inner):
        self.inner = inner

    def prepare(self, intent, market):
        return self.inner.prepare(intent, market)

    def submit(self, order, intent, market):
        raise SystemExit("killed before the POST")


class CrashAfterPost(CrashBeforePost):
    """Dies right after the exchange accepted the order."""

    def submit(self, order, intent, market):
        self.inner.submit(order, intent, market)
        raise SystemExit("killed after the POST")


def _crash(app, crash, trade):
    real = app.container.executor()
    app.container.executor.override(providers.Object(crash(real)))
    app.container.service.reset()  # the engine sends through the crashing executor
    with pytest.raises(SystemExit):
        app.process(trade)
    app.container.executor.reset_override()
    app.container.service.reset()  # a fresh engine on the same store, as after a restart
    return app.history()[0]


def test_an_order_that_never_left_is_posted_again_at_restart_as_the_same_signed_order(live_app, clob):
    app, fakes = live_app("live")
    pending = _crash(app, CrashBeforePost, make_trade())
    assert pending.status is IntentStatus.PENDING and clob.posts == []
    signed = fakes.store.get_order(pending.execution_id).payload["order"]
    assert app.service.start() == 0
    [rec] = app.history()
    assert rec.status is IntentStatus.FILLED and rec.execution_id == pending.execution_id
    assert [p["order"] for p in clob.posts] == [signed]  # the stored order, not a new one
    assert app.positions()[0].size == clob.fills(TOKEN) == rec.filled_size


def test_without_a_trades_endpoint_the_order_lookup_is_the_record(live_app, clob):
    """A venue that shows every order under /data/order and has no /data/trades
    (404): an order it does not show was never received, and is posted again."""
    app, _ = live_app("live")
    clob.order_visibility, clob.trades_endpoint = "all", False
    _crash(app, CrashBeforePost, make_trade())
    assert app.service.start() == 0
    [rec] = app.history()
    assert rec.status is IntentStatus.FILLED and len(clob.posts) == 1 and ("GET", "/data/trades") in clob.requests
    app.container.service.reset()
    _crash(app, CrashAfterPost, make_trade(seq=2))
    assert app.service.start() == 0 and len(clob.posts) == 2  # found under /data/order: not posted again


def test_a_stale_copy_is_not_posted_at_restart_and_says_why(live_app, clob):
    app, fakes = live_app("live")
    _crash(app, CrashBeforePost, make_trade())
    fakes.clock.advance(301)  # the engine was down longer than follower.max_trade_age_s
    assert app.service.start() == 0
    [rec] = app.history()
    assert (rec.status, rec.decision, rec.reason) == (IntentStatus.SKIPPED, "rejected", "stale_after_restart")
    assert "301 s old" in rec.detail and "never reached the exchange" in rec.detail
    assert clob.posts == [] and app.positions() == []
    assert "rejected" in fakes.alerter.kinds()


@pytest.mark.parametrize("change, reason", [
    ("book", "slippage"),
    ("halt", "trading_halted"),
])
def test_a_copy_that_is_no_longer_valid_is_not_posted_at_restart(live_app, clob, change, reason):
    app, fakes = live_app("live", sections={"market": {"book_ttl_s": "0"}})  # a restart reads the book afresh
    _crash(app, CrashBeforePost, make_trade())
    if change == "book":  # the market moved away from the leader's price while we were down
        clob.set_book(TOKEN, asks=[("0.60", "500")], bids=[("0.49", "500")])
    else:
        fakes.store.set_state(StoredState(TradingState.HALTED, "manual halt"))
    app.service.start()
    [rec] = app.history()
    assert (rec.status, rec.reason) == (IntentStatus.SKIPPED, reason) and clob.posts == []


def test_an_order_accepted_before_the_crash_is_found_by_its_trades(live_app, clob):
    """The exchange stops showing a fully matched order under /data/order: the
    lookup reads /data/trades and never posts it again."""
    app, _ = live_app("live")
    assert clob.order_visibility == "open"
    _crash(app, CrashAfterPost, make_trade())
    assert app.service.start() == 0
    [rec] = app.history()
    assert rec.status is IntentStatus.FILLED and (rec.filled_size, rec.avg_price) == (D("20"), D("0.5"))
    assert ("GET", "/data/trades") in clob.requests and len(clob.attempts) == 1


@pytest.mark.parametrize("fault", ["400-empty", "400-object"])
def test_a_4xx_we_cannot_read_is_unknown_and_looked_up(live_app, clob, fault):
    app, fakes = live_app("live")
    clob.inject("POST /order", fault)
    out = app.process(make_trade())
    [rec] = app.history()
    assert ("GET", f"/data/order/{rec.execution_id}") in clob.requests  # not taken as a refusal
    assert out.status == "filled" and len(clob.orders) == 1 and clob.attempts[0] == clob.attempts[1]
    assert "unreadable" in rec.error or "error" in fakes.alerter.kinds()


def test_a_matched_size_above_the_order_is_an_anomaly_booked_at_most_at_the_order(live_app, clob):
    """The exchange's order answer in micro-units (5.76 shares reported as
    5760000) once made a 5.76-share order a 5,760,005.76-share position."""
    app, fakes = live_app("live", sections={"sizing": {"fixed_usdc": "2.88"}})
    clob.order_visibility = "all"
    clob.inject("POST /order", "timeout-after-accept")  # acted, then no answer: looked up
    clob.order_overrides = {"size_matched": "5760000", "original_size": "5760000"}
    out = app.process(make_trade())
    [rec] = app.history()
    assert rec.size == D("5.76") and rec.filled_size == D("5.76") and rec.status is IntentStatus.UNKNOWN
    assert out.anomaly and "5760000" in rec.error and "anomaly" in fakes.alerter.kinds()
    assert app.service.anomalies == 1
    [pos] = app.positions()
    assert pos.size == D("5.76")
    # the next orders are not refused for lack of headroom
    clob.order_overrides = {}
    assert app.process(make_trade(seq=2)).status == "filled"
    # each start-up looks at it again, and books nothing twice
    app.container.service.reset()
    clob.order_overrides = {"size_matched": "5760000", "original_size": "5760000"}
    assert app.service.start() == 1
    assert sum(p.size for p in app.positions()) == D("5.76") * 2


def test_signed_timestamps_and_reconciliation_use_the_wall_clock_in_a_replay(live_app, clob):
    """A replay's clock follows the rows (here 2024); what the exchange sees and
    start-up reconciliation use real time."""
    app, fakes = live_app("live")
    replayed = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    wall = ManualClock(T0 + timedelta(days=30))
    fakes.clock.set(replayed)
    app.container.wall_clock.override(providers.Object(wall))
    ts = int(replayed.timestamp())
    assert app.process(make_trade(timestamp=ts, seq=1)).status == "filled"
    first = clob.posts[0]["order"]
    assert int(first["timestamp"]) == int(wall.now().timestamp() * 1000)
    _crash(app, CrashAfterPost, make_trade(side="SELL", price="0.49", timestamp=ts + 1, seq=2))
    wall.advance(5)
    assert app.service.start() == 0
    sold = next(r for r in app.history() if r.side == "SELL")
    assert sold.status is IntentStatus.FILLED and sold.updated_at == wall.now()
    assert int(clob.posts[1]["order"]["timestamp"]) > int(first["timestamp"])
    realised = fakes.store.daily_realised(wall.now().date().isoformat())
    assert realised != 0 and fakes.store.daily_realised("1970-01-01") == 0
    assert fakes.store.daily_realised(replayed.date().isoformat()) == 0


def test_a_run_that_ends_halted_by_the_breaker_exits_4(clob, tmp_path):
    """A circuit-breaker HALT used to keep calling the network for every later
    trade and the run exited 0."""
    import json

    from click.testing import CliRunner

    from copytrader.entrypoints.cli import main
    from tests.reliability.crash import leader_rows

    import random

    from .conftest import KEY

    feed = tmp_path / "feed.jsonl"
    rows = leader_rows(8, random.Random(3), int(T0.timestamp()) + 10**8)
    for r in rows:
        r["asset"], r["price"] = TOKEN, 0.5
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    clob.inject("GET /book", *["503"] * 50)
    args = ["--db", str(tmp_path / "ct.db"), "--profile", "dry-run", "run", "--replay", str(feed), "--json"]
    env = {"COPYTRADER_PRIVATE_KEY": KEY, "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_RISK__MAX_CONSECUTIVE_FAULTS": "3",
           "COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000", "COPYTRADER_CONFIG": None}
    res = CliRunner().invoke(main, args, env=env)
    assert res.exit_code == 4, res.output
    report = json.loads(res.stdout)
    assert report["halted_by_circuit_breaker"] and report["rejected_by_reason"] == {"market_data_error": 3,
                                                                                    "trading_halted": 5}
    assert sum(1 for m, p in clob.requests if p == "/book") == 3
    assert "circuit breaker" in res.stderr and "copytrader resume" in res.stderr
