"""The on-chain fill watcher against a loopback Polygon JSON-RPC stand-in
(POA blocks, real ABI-encoded OrderFilled logs)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from dependency_injector import providers

from copytrader.adapters.execution.polymarket.settings import V2_EXCHANGE, V2_NEG_RISK_EXCHANGE
from copytrader.adapters.feeds.http import FeedError
from copytrader.adapters.feeds.onchain import OnchainFeed
from copytrader.testing import book, make_app
from tests.standins import FakeTime
from tests.standins.rpc import RpcStandIn, fill_log

D = Decimal
T = 1_795_000_000
LEADER, OTHER, EXCHANGE_SELF = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "ee" * 20
TOKEN = 12345678901234567890


@pytest.fixture
def rpc():
    with RpcStandIn() as server:
        yield server


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def watcher(rpc, leaders=(LEADER,), clock=None, **kw):
    clock = clock or FakeTime(T)
    kw.setdefault("start_block", rpc.block + 1)
    return OnchainFeed(rpc.url, leaders, [V2_EXCHANGE, V2_NEG_RISK_EXCHANGE], confirmations=kw.pop("confirmations", 0),
                       clock_s=clock.time, sleep=clock.sleep, max_polls=kw.pop("max_polls", 1), **kw)


def drain(feed, cursors=None):
    store = dict(cursors or {})
    items = [i for i in feed.read(lambda k: store.get(k)) if not store.__setitem__(i.key or feed.name, i.cursor)]
    return [i.payload for i in items if i.payload is not None], store


def test_side_price_and_size_come_from_the_filled_amounts(rpc):
    feed = watcher(rpc)
    rpc.mine(T, [
        # BUY: the leader gave 10.20 pUSD (making) for 20 shares (taking)
        fill_log(V2_EXCHANGE, LEADER, EXCHANGE_SELF, 0, TOKEN, 10_200_000, 20_000_000, tx(1)),
        # SELL on the neg-risk exchange: 7.5 shares (making) for 2.25 pUSD (taking)
        fill_log(V2_NEG_RISK_EXCHANGE, LEADER, OTHER, 1, TOKEN, 7_500_000, 2_250_000, tx(2)),
        # the leader as taker of someone else's order: the counterparty's fill, not ours to copy
        fill_log(V2_EXCHANGE, OTHER, LEADER, 1, TOKEN, 5_000_000, 2_500_000, tx(3)),
    ])
    trades, _ = drain(feed)
    assert [(t.side, t.size, t.price, t.usdc_size) for t in trades] == [
        ("BUY", D(20), D("0.51"), D("10.2")), ("SELL", D("7.5"), D("0.3"), D("2.25"))]
    assert all(t.leader == LEADER and t.token_id == str(TOKEN) and t.timestamp == T for t in trades)
    assert [t.log_index for t in trades] == [0, 1] and trades[0].tx_hash == tx(1)


def test_one_request_per_block_range_however_many_leaders(rpc):
    leaders = ["0x" + f"{i:040x}" for i in range(1, 1001)]
    few, many = watcher(rpc, leaders[:1]), watcher(rpc, leaders)
    for n in range(5):
        rpc.mine(T + 2 * n, [fill_log(V2_EXCHANGE, leaders[n * 100], OTHER, 0, TOKEN, 1_000_000, 2_000_000, tx(n))])
    drain(few)
    calls_few = len(rpc.get_logs_filters)
    trades, _ = drain(many)
    assert calls_few == 1 and len(rpc.get_logs_filters) - calls_few == 1
    assert len(trades) == 5 and len(rpc.get_logs_filters[-1]["topics"][2]) == 1000


def test_confirmation_depth_holds_back_recent_blocks(rpc):
    feed = watcher(rpc, confirmations=2)
    rpc.mine(T, [fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 1_000_000, 2_000_000, tx(1))])
    assert drain(feed)[0] == []
    rpc.mine(T + 2)
    rpc.mine(T + 4)
    assert len(drain(watcher(rpc, confirmations=2, start_block=rpc.block - 2))[0]) == 1


def test_restart_resumes_inside_a_block_without_repeats(rpc):
    feed = watcher(rpc)
    rpc.mine(T, [fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 1_000_000, 2_000_000, tx(i)) for i in range(4)])
    store: dict = {}
    it = feed.read(lambda k: store.get(k))
    for _ in range(2):
        item = next(it)
        store[feed.name] = item.cursor
    rest, _ = drain(watcher(rpc, start_block=None), store)
    assert [t.log_index for t in rest] == [2, 3]


def test_a_reorg_is_detected_and_the_new_chain_read(rpc):
    clock = FakeTime(T)
    feed = watcher(rpc, clock=clock)
    rpc.mine(T, [fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 1_000_000, 2_000_000, tx(1))])
    rpc.mine(T + 2, [fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 3_000_000, 6_000_000, tx(2))])
    first, cursors = drain(feed)
    rpc.reorg(1, T + 2, ([fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 4_000_000, 8_000_000, tx(3))],))
    again = watcher(rpc, clock=clock, start_block=None)
    second, _ = drain(again, cursors)
    assert again.reorgs and [t.tx_hash for t in second] == [tx(3)]
    assert [t.tx_hash for t in first] == [tx(1), tx(2)]


def test_detection_delay_is_measured(rpc):
    clock = FakeTime(T + 3)
    feed = watcher(rpc, clock=clock)
    rpc.mine(T, [fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 1_000_000, 2_000_000, tx(1))])
    drain(feed)
    assert feed.delays == [3.0]


def test_rpc_down_is_one_clear_line():
    feed = OnchainFeed("http://127.0.0.1:9", [LEADER], [V2_EXCHANGE], max_polls=1, timeout_s=1)
    with pytest.raises(FeedError, match=r"JSON-RPC http://127.0.0.1:9 eth_blockNumber"):
        drain(feed)


def test_engine_copies_onchain_fills_with_the_market_from_market_data(rpc):
    rpc.mine(T, [fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 10_000_000, 20_000_000, tx(1))])
    app, fakes = make_app({"follower": {"max_trade_age_s": "60"}}, environ={"COPYTRADER_LEADERS": LEADER})
    fakes.clock.set(fakes.clock.now().fromtimestamp(T + 2, fakes.clock.now().tzinfo))
    fakes.market.put(*book(str(TOKEN), condition_id="0x" + "c0" * 32, asks=[("0.50", "100")], bids=[("0.49", "100")]))
    app.container.feed.override(providers.Object(watcher(rpc, start_block=rpc.block)))
    summary = app.run()
    assert summary.copied == 1
    [pos] = app.positions()
    assert pos.condition_id == "0x" + "c0" * 32 and pos.size == D(20)
