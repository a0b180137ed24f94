"""Polymarket's activity socket (RTDS) as a hint in front of the chain: ``feed.kind = "fast"``.

The socket's fill becomes the LeaderTrade the Data API row of it gives (same id);
the chain's event of a hinted fill confirms it and is not booked again; other
wallets' frames are not decoded; a stalled socket is replaced by the watchdog
while the chain still delivers every fill; garbage is logged and dropped."""
from __future__ import annotations

import functools
import json
import logging
import random
import threading
from decimal import Decimal

import pytest
from click.testing import CliRunner
from dependency_injector import providers

from copytrader.adapters.execution.polymarket.settings import EXCHANGE_V3, V2_EXCHANGE, V2_NEG_RISK_EXCHANGE
from copytrader.adapters.feeds import live_activity
from copytrader.adapters.feeds.activity import DECODER, parse_activity_row
from copytrader.adapters.feeds.live_activity import SUBSCRIBE, FastFeed, HintLedger, followed_wallet, parse_frame
from copytrader.adapters.feeds.onchain import OnchainFeed
from copytrader.adapters.streams import Stream
from copytrader.entrypoints.cli import main
from copytrader.testing import book, make_app
from tests.standins import FakeTime
from tests.standins.data_api import DataApiStandIn, activity_row
from tests.standins.rpc import RpcStandIn, fill_log
from tests.standins.rtds import RtdsStandIn, rtds_frame
from tests.standins.ws import MonotonicClock as StepClock

D = Decimal
T = 1_795_000_000
LEADER, OTHER = "0x" + "a1" * 20, "0x" + "b2" * 20
TOKEN = 10**70 + 12345678901234567890
CONDITION = "0x" + "c0" * 32
EXCHANGES = [V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, EXCHANGE_V3]


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def row(n: int, ts: int = T + 10, size: float = 20.0, price: float = 0.5, side: str = "BUY", leader: str = LEADER):
    return activity_row(leader, ts, n, asset=str(TOKEN), size=size, price=price, side=side, condition=CONDITION)


def data_api_trade(r):
    """The trade the Data API feed makes of the row (its JSON read with exact Decimals)."""
    return parse_activity_row(DECODER.decode(json.dumps(r)), "data_api")


def chain_fill(n: int, size: int = 20, price: str = "0.5", side: int = 0, leader: str = LEADER):
    shares, collateral = size * 10**6, int(D(price) * size * 10**6)
    making, taking = (collateral, shares) if side == 0 else (shares, collateral)
    return fill_log(V2_EXCHANGE, leader, OTHER, side, TOKEN, making, taking, tx(n))


class FakeStream:
    """Stands for the supervised connection where the socket does not matter."""

    def __init__(self, name, url, **kw):
        self.kw, self.started, self.closed = kw, False, False

    def start(self):
        self.started = True

    def close(self, timeout_s=2.0):
        self.closed = True

    def status(self):
        return None


@pytest.fixture
def rpc():
    with RpcStandIn() as server:
        yield server


def fast(rpc, clock, truth=None, **kw):
    chain = OnchainFeed(rpc.url, [LEADER], EXCHANGES, confirmations=0, start_block=rpc.block + 1,
                        clock_s=clock.time, sleep=clock.sleep)
    kw.setdefault("stream_factory", FakeStream)
    return FastFeed("ws://127.0.0.1:9", [LEADER], truth if truth is not None else [chain], clock_s=clock.time,
                    sleep=clock.sleep, max_polls=kw.pop("max_polls", 1), poll_interval_s=kw.pop("poll_interval_s", 0.01),
                    **kw)


def engine():
    app, fakes = make_app({"follower": {"max_trade_age_s": "1000000"}}, environ={"COPYTRADER_LEADERS": LEADER})
    fakes.clock.set(fakes.clock.now().fromtimestamp(T + 12, fakes.clock.now().tzinfo))
    fakes.market.put(*book(str(TOKEN), condition_id=CONDITION, asks=[("0.50", "1000")], bids=[("0.49", "1000")]))
    return app, fakes


def run(app, feed):
    app.container.feed.override(providers.Object(feed))
    return app.run()


def accounted_once(app, fills: int) -> None:
    """Each fill (transaction) is one leader trade with one decision."""
    history, store = app.history(limit=1000), app.container.store()
    assert len(history) == fills and len({store.get_trade(r.trade_id).tx_hash for r in history}) == fills


# -- the frame -----------------------------------------------------------------------
def test_a_socket_frame_is_the_trade_the_data_api_row_of_it_gives():
    r = row(1, size=2.7027, price=0.26)
    hinted, polled = parse_frame(rtds_frame(r)), data_api_trade(r)
    assert hinted.id == polled.id  # the same fill, the same LeaderTrade id: a re-delivery is a duplicate
    assert (hinted.leader, hinted.side, hinted.size, hinted.price, hinted.token_id, hinted.tx_hash, hinted.kind) == (
        LEADER, "BUY", D("2.7027"), D("0.26"), str(TOKEN), tx(1), "TRADE")
    assert hinted.usdc_size == D("2.7027") * D("0.26")  # the socket has no usdcSize: the notional
    assert parse_frame(rtds_frame(r, "orders_matched")).id == hinted.id
    assert parse_frame('{"topic":"comments","type":"comment_created","payload":{}}') is None


def test_the_subscription_is_the_activity_topic_trades_and_orders_matched():
    assert json.loads(SUBSCRIBE) == {"action": "subscribe", "subscriptions": [
        {"topic": "activity", "type": "trades"}, {"topic": "activity", "type": "orders_matched"}]}


def test_other_wallets_frames_are_not_decoded(monkeypatch):
    decoded = []

    class Counting:
        def decode(self, text):
            decoded.append(text)
            return live_activity.DECODER_REAL.decode(text)

    monkeypatch.setattr(live_activity, "DECODER_REAL", live_activity.DECODER, raising=False)
    monkeypatch.setattr(live_activity, "DECODER", Counting())
    feed = FastFeed("ws://127.0.0.1:9", [LEADER.upper().replace("0X", "0x")], [], stream_factory=FakeStream)
    rng = random.Random(3)
    for n in range(500):
        wallet = "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))
        feed.on_frame(rtds_frame(row(n, leader=wallet)))
    feed.on_frame(rtds_frame(row(999)))  # the followed wallet, sent in mixed case
    assert len(decoded) == 1 and feed.counts["frames"] == 501 and feed.counts["parsed"] == 1
    assert feed._queue.get_nowait().tx_hash == tx(999)
    assert followed_wallet(rtds_frame(row(1)), frozenset([OTHER])) is None


# -- hint and truth ------------------------------------------------------------------
def test_a_hinted_fill_is_copied_once_when_the_chain_delivers_it_too(rpc):
    clock = FakeTime(T)
    feed = fast(rpc, clock)
    feed.on_frame(rtds_frame(row(1)))
    feed.on_frame(rtds_frame(row(1), "orders_matched"))  # the taker's fill comes twice
    rpc.mine(T + 10, [chain_fill(1)])
    app, fakes = engine()
    summary = run(app, feed)
    assert summary.copied == 1 and summary.seen == 1  # the chain's event moved its cursor only
    assert feed.counts["hinted"] == 1 and feed.counts["duplicate"] == 1 and feed.counts["confirmed"] == 1
    assert fakes.store.has_trade(data_api_trade(row(1)).id)  # booked under the Data API row's id
    [pos] = app.positions()
    assert pos.size == D(20)  # one copy: the fixed 10 USDC at 0.50
    assert app.container.store().get_cursor("onchain")  # the chain's cursor moved past the confirmed fill
    assert json.loads(app.container.store().get_cursor("rtds")) == {"hints": []}  # then the ledger forgot it


def test_a_restart_still_recognises_the_chain_event_of_a_hinted_fill(rpc):
    app, fakes = engine()
    first = fast(rpc, FakeTime(T))
    first.on_frame(rtds_frame(row(1)))
    assert run(app, first).copied == 1
    rpc.mine(T + 10, [chain_fill(1), chain_fill(2, size=10)])  # the chain catches up after the restart
    second = fast(rpc, FakeTime(T + 30))
    second.truth[0].start_block = rpc.block - 1
    summary = run(app, second)
    assert summary.copied == 1 and second.counts["confirmed"] == 1  # only the unhinted fill 2 is new
    [pos] = app.positions()
    assert pos.size == D(40)  # two fills, one copy each (the fixed 10 USDC at 0.50)


def test_a_fill_the_chain_delivers_first_is_not_copied_again_from_a_late_hint(rpc):
    clock = FakeTime(T)
    feed = fast(rpc, clock, max_polls=2)
    rpc.mine(T + 10, [chain_fill(1)])
    original = feed._truth

    def then_hint(f, item):  # the socket's frame arrives after the chain's event
        out = original(f, item)
        if out.payload is not None:
            feed.on_frame(rtds_frame(row(1)))
        return out
    feed._truth = then_hint
    app, _ = engine()
    summary = run(app, feed)
    assert summary.copied == 1 and feed.counts["late"] == 1 and feed.counts["hinted"] == 0


def test_a_hint_never_confirmed_is_counted_once_and_never_booked_twice(rpc, caplog):
    clock = FakeTime(T)
    feed = fast(rpc, clock, confirm_s=60, max_polls=3)
    feed.on_frame(rtds_frame(row(1)))
    feed._sleep = lambda s: clock.sleep(40)  # each wait between rounds: 40 s of the fake clock
    feed._mono = clock.time
    app, _ = engine()
    with caplog.at_level(logging.WARNING, "copytrader.feeds"):
        assert run(app, feed).copied == 1
    assert feed.counts["unconfirmed"] == 1
    assert sum("not confirmed by the chain" in r.getMessage() for r in caplog.records) == 1
    rpc.mine(T + 10, [chain_fill(1)])  # the chain's event, far too late: still the same fill
    later = fast(rpc, FakeTime(T + 200))
    later.truth[0].start_block = rpc.block
    assert run(app, later).copied == 0 and later.counts["confirmed"] == 1


def test_hints_of_fills_before_the_feed_started_are_left_to_the_chain(rpc):
    feed = fast(rpc, FakeTime(T + 100))
    feed.on_frame(rtds_frame(row(1, ts=T + 10)))  # the chain resumes from its cursor and delivers it
    app, _ = engine()
    assert run(app, feed).copied == 0 and feed.counts["before_start"] == 1


def test_a_chain_event_that_disagrees_with_its_hint_is_logged_and_counted(rpc, caplog):
    feed = fast(rpc, FakeTime(T))
    feed.on_frame(rtds_frame(row(1, size=20.0)))
    rpc.mine(T + 10, [chain_fill(1, size=19)])
    app, _ = engine()
    with caplog.at_level(logging.WARNING, "copytrader.feeds"):
        assert run(app, feed).copied == 1
    assert feed.counts["mismatched"] == 1 and any("differs from its hint" in r.getMessage() for r in caplog.records)


def test_garbage_frames_are_logged_and_dropped_never_raised(caplog):
    feed = FastFeed("ws://127.0.0.1:9", [LEADER], [], stream_factory=FakeStream)
    bad_price = rtds_frame({**row(2), "price": "zero point five"})
    with caplog.at_level(logging.WARNING, "copytrader.feeds"):
        for frame in ("not json at all",
                      '{"topic":"activity","type":"trades","payload":{"proxyWallet":"' + LEADER + '","size":[unterm',
                      '{"topic":"activity","type":"trades","payload":[{"proxyWallet":"' + LEADER + '"}]}', bad_price,
                      f'{{"topic":"activity","type":"trades","proxyWallet":"{LEADER}"}}', "", "pong"):
            feed.on_frame(frame)
    assert feed._queue.empty() and feed.counts["malformed"] == 5
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 5  # one line each


def test_idle_rounds_give_settling_its_turn_hints_come_between_and_a_stop_ends_the_wait():
    """The polling feeds' contract: ``should_stop`` (the run loop's settling) after every round,
    a hint handed over while waiting for the next round, a stop ends the wait at once."""
    calls, stop, items = [], threading.Event(), []
    feed = FastFeed("ws://127.0.0.1:9", [LEADER], [], stream_factory=FakeStream, poll_interval_s=0.02,
                    clock_s=lambda: T)
    feed.stop_when(lambda: calls.append(1) or stop.is_set(), stop.wait)
    reader = threading.Thread(target=lambda: items.extend(feed.read({}.get)), daemon=True)
    reader.start()
    assert wait(lambda: len(calls) >= 3)  # idle: settling runs once a round
    feed.poll_interval_s = 60.0  # a long wait for the next round...
    assert wait(lambda: len(calls) >= 4)
    feed.on_frame(rtds_frame(row(1)))  # ...during which a hint is handed over at once
    assert wait(lambda: len(items) == 1)
    stop.set()  # and a stop ends that wait (no minute-long sleep)
    reader.join(2.0)
    assert not reader.is_alive() and feed.stream is None and items[0].payload.tx_hash == tx(1)


def test_the_ledger_dumps_and_loads_what_is_pending():
    ledger = HintLedger()
    t = parse_frame(rtds_frame(row(1)))
    assert ledger.offer(t, T) == "book"
    restored = HintLedger.load(ledger.dump())
    assert restored.confirm(parse_frame(rtds_frame(row(1)))) is not None and not restored.pending
    assert restored.expire(T + 10**6, 60) == []  # restored entries are not counted again


# -- the socket ----------------------------------------------------------------------
@pytest.fixture
def socket_server():
    with RtdsStandIn() as server:
        yield server


def streamed(server, rpc, clock, **kw):
    factory = functools.partial(Stream, clock=clock.time, poll_s=0.02, backoff_s=(0.01, 0.05), rng=random.Random(5),
                                open_timeout_s=2.0)
    feed = FastFeed(server.url, [LEADER], [OnchainFeed(rpc.url, [LEADER], EXCHANGES, confirmations=0,
                                                       start_block=rpc.block + 1, clock_s=clock.time,
                                                       sleep=lambda s: None)],
                    stream_factory=factory, clock_s=clock.time, sleep=lambda s: None, poll_interval_s=0.05,
                    stale_s=kw.pop("stale_s", 30.0), **kw)
    feed._since_s = clock.time()
    return feed


def wait(predicate, timeout_s=5.0):
    done = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


def test_the_socket_subscribes_pings_and_hands_over_only_followed_fills(socket_server, rpc):
    clock = StepClock(T)
    feed = streamed(socket_server, rpc, clock, ping_every_s=5.0)
    feed._start_stream()
    try:
        assert socket_server.subscribed()
        assert json.loads(socket_server.clients[0].received[0]) == json.loads(SUBSCRIBE)
        socket_server.noise(200, T + 10)
        socket_server.trade(row(1))
        assert wait(lambda: feed._queue.qsize() == 2)  # trades + orders_matched of the one followed fill
        assert feed.counts["parsed"] == 2 and feed.counts["frames"] >= 202
        clock.advance(5.1)
        assert socket_server.wait_for(lambda: socket_server.pings >= 1)  # "ping" on the 5 s schedule
    finally:
        feed.close()


@pytest.mark.parametrize("fault", ["silent", "mute"])
def test_a_stalled_socket_is_replaced_by_the_watchdog_with_one_log_line(socket_server, rpc, caplog, fault):
    clock = StepClock(T)
    feed = streamed(socket_server, rpc, clock, stale_s=30.0, ping_every_s=5.0)
    with caplog.at_level(logging.INFO, "copytrader.streams"):
        feed._start_stream()
        try:
            assert socket_server.subscribed()
            socket_server.inject(fault)  # connected (answering pings or not) and delivering nothing
            for _ in range(7):  # 35 s of pings answered (or not) without a data frame
                clock.advance(5.0)
                socket_server.wait_for(lambda: False, 0.05)
            assert socket_server.wait_connections(2)
            socket_server.clear()
            assert socket_server.subscribed()  # subscribed again on the new connection
            socket_server.trade(row(1), taker=False)
            assert wait(lambda: feed._queue.qsize() == 1)
        finally:
            feed.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no frame for 30s (watchdog)" in warnings[0]  # one line for the stall
    assert feed.stream is None  # closed with the feed


# -- wired: `copytrader run --feed fast` ----------------------------------------------
@pytest.mark.parametrize("profile", ["paper", "live"])
def test_run_feed_fast_copies_each_fill_once_against_the_stand_ins(socket_server, rpc, tmp_path, profile):
    """A run against the activity socket, the chain and the Data API stand-ins (and, live, the CLOB's):
    two fills booked from the socket's hints, their chain events only confirm them, a third fill the
    socket never showed comes from the chain: three copies, none twice."""
    import time as _time

    from tests.live.conftest import KEY
    from tests.standins.clob import ClobStandIn

    db, now = tmp_path / "ct.db", int(_time.time())
    with DataApiStandIn() as api, ClobStandIn() as clob:
        env = {"COPYTRADER_CONFIG": None, "COPYTRADER_FEED__URL": api.url, "COPYTRADER_FEED__TIMEOUT_S": "2",
               "COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000", "COPYTRADER_LEADERS": LEADER,
               "COPYTRADER_FEED__RPC_URL": rpc.url, "COPYTRADER_FEED__CONFIRMATIONS": "0",
               "COPYTRADER_FEED__START_BLOCK": str(rpc.block + 1), "COPYTRADER_FEED__RTDS_URL": socket_server.url,
               "COPYTRADER_FEED__POLL_INTERVAL_S": "0.1"}
        args = ["run", "--feed", "fast", "--max-items", "3", "--json"]
        if profile == "live":
            clob.set_book(str(TOKEN), asks=[("0.50", "1000")], bids=[("0.49", "1000")], market=CONDITION)
            env.update({"COPYTRADER_PRIVATE_KEY": KEY, "COPYTRADER_LIVE__HOST": clob.url,
                        "COPYTRADER_LIVE__GAMMA_HOST": clob.url, "COPYTRADER_LIVE__TIMEOUT_S": "2",
                        "COPYTRADER_LIVE__AUTO_REDEEM": "false"})
            args += ["--live", "--yes"]
        else:
            markets = tmp_path / "markets.json"
            markets.write_text(json.dumps({"markets": [{"condition_id": CONDITION, "tokens": [
                {"token_id": str(TOKEN), "book": {"asks": [["0.50", "1000"]], "bids": [["0.49", "1000"]]}}]}]}))
            args += ["--markets", str(markets)]
        result: dict = {}

        def go():
            result["res"] = CliRunner().invoke(main, ["--log-level", "error", "--db", str(db), *args], env=env)
        engine_thread = threading.Thread(target=go, daemon=True)
        engine_thread.start()
        assert socket_server.subscribed(timeout_s=20)
        for r in [row(n, ts=now + 30, size=10.0 * n) for n in (1, 2)]:
            socket_server.noise(50, now + 30)
            socket_server.trade(r)
        assert wait(lambda: _trades(db) >= 2, 20)  # booked from the hints: the chain has nothing yet
        # the chain's events of the two hinted fills, then one fill the socket never showed
        rpc.mine(now + 30, [chain_fill(1, size=10), chain_fill(2, size=20), chain_fill(3, size=5)])
        engine_thread.join(30)
        assert not engine_thread.is_alive()
        if profile == "live":
            assert len(clob.orders) == 3  # three orders posted, one per fill
    res = result["res"]
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["copied"] == 3 and summary["outcomes"].get("duplicate", 0) == 0, summary
    assert _trades(db) == 3 and _trades(db, "count(distinct tx_hash)") == 3  # three fills, each once
    assert _trades(db, "count(*) filter (where log_index is null)") == 2  # two booked from the socket's hints


def _trades(db, what: str = "count(*)") -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return con.execute(f"select {what} from trades").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0
