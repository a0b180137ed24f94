"""The on-chain fill watcher against a loopback Polygon JSON-RPC stand-in
(POA blocks, real ABI-encoded OrderFilled logs of the CTF exchanges V2 and of
ExchangeV3)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from dependency_injector import providers

from copytrader.adapters.execution.polymarket.settings import EXCHANGE_V3, V2_EXCHANGE, V2_NEG_RISK_EXCHANGE
from copytrader.adapters.feeds.http import FeedError
from copytrader.adapters.feeds.onchain import OnchainFeed, order_filled_event
from copytrader.entrypoints.cli import main
from copytrader.ports import Quarantined
from copytrader.testing import book, make_app
from tests.standins import FakeTime
from tests.standins.data_api import DataApiStandIn, activity_row
from tests.standins.rpc import RpcStandIn, fill_log, v3_fill_log

D = Decimal
T = 1_795_000_000
LEADER, OTHER, EXCHANGE_SELF = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "ee" * 20
TOKEN = 10**70 + 12345678901234567890  # a CTF token id (keccak-like)
EXCHANGES = [V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, EXCHANGE_V3]  # as the container wires the watcher


def position(condition: int, outcome: int = 0, module: int = 1) -> int:
    """A Protocol V2 position id: module, condition bits, outcome index."""
    return (module << 248) | (condition << 104) | outcome


POSITION = position(0xC0FFEE << 100)


@pytest.fixture
def rpc():
    with RpcStandIn() as server:
        yield server


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def watcher(rpc, leaders=(LEADER,), clock=None, **kw):
    clock = clock or FakeTime(T)
    kw.setdefault("start_block", rpc.block + 1)
    return OnchainFeed(rpc.url, leaders, EXCHANGES, confirmations=kw.pop("confirmations", 0),
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


# -- ExchangeV3 (Protocol V2 markets) ------------------------------------------------
def test_the_fill_event_is_the_one_every_exchange_emits():
    # topic0 of OrderFilled as Polygon logs it for the CTF exchange V2, the neg-risk
    # exchange V2 and ExchangeV3 (keccak256 of the signature in Exchange.sol of
    # Polymarket/polymarket-v2-external); the stand-in encodes from that text itself
    topic0, types = order_filled_event()
    assert topic0 == "0xd543adfd945773f1a62f74f0ee55a5e3b9b1a28262980ba90b1a89f2ea84d8ee"
    assert fill_log(EXCHANGE_V3, LEADER, OTHER, 0, POSITION, 1, 1, tx(1))["topics"][0] == topic0
    assert types == ["uint8", "uint256", "uint256", "uint256", "uint256", "bytes32", "bytes32"]


def test_a_v3_fill_of_a_leader_as_maker_and_as_taker_is_a_trade_of_its_position_id(rpc):
    feed = watcher(rpc)
    rpc.mine(T, [
        # the leader's resting BUY order filled: 12.6 pUSD (making) for 30 shares (taking)
        v3_fill_log(LEADER, OTHER, 0, POSITION, 12_600_000, 30_000_000, tx(1)),
        # the leader's taker SELL order: ExchangeV3 logs itself as the taker
        v3_fill_log(LEADER, EXCHANGE_V3, 1, POSITION, 4_000_000, 2_600_000, tx(2)),
        # a counterparty's order the leader took: theirs, not ours to copy
        v3_fill_log(OTHER, LEADER, 1, POSITION, 9_000_000, 5_000_000, tx(3)),
    ])
    trades, _ = drain(feed)
    assert [(t.side, t.size, t.price, t.usdc_size, t.tx_hash) for t in trades] == [
        ("BUY", D(30), D("0.42"), D("12.6"), tx(1)), ("SELL", D(4), D("0.65"), D("2.6"), tx(2))]
    assert all(t.leader == LEADER and t.token_id == str(POSITION) and t.kind == "TRADE" for t in trades)


def test_v2_neg_risk_and_v3_fills_of_a_range_come_from_one_get_logs(rpc):
    leaders = [LEADER, OTHER]
    neg_risk_position = position(0xBEEF << 90, outcome=1, module=2)
    rpc.mine(T, [fill_log(V2_EXCHANGE, LEADER, EXCHANGE_SELF, 0, TOKEN, 1_000_000, 2_000_000, tx(1)),
                 v3_fill_log(OTHER, EXCHANGE_V3, 0, POSITION, 3_000_000, 5_000_000, tx(2))])
    rpc.mine(T + 2, [fill_log(V2_NEG_RISK_EXCHANGE, OTHER, LEADER, 1, TOKEN + 1, 6_000_000, 1_200_000, tx(3)),
                     v3_fill_log(LEADER, OTHER, 1, neg_risk_position, 2_000_000, 1_800_000, tx(4))])
    trades, _ = drain(watcher(rpc, leaders, start_block=rpc.block - 1))
    [flt] = rpc.get_logs_filters
    assert {a.lower() for a in flt["address"]} == {e.lower() for e in EXCHANGES}
    assert flt["topics"][0] == order_filled_event()[0] and len(flt["topics"][2]) == 2
    assert [(t.tx_hash, t.leader, t.token_id, t.side, t.price) for t in trades] == [
        (tx(1), LEADER, str(TOKEN), "BUY", D("0.5")), (tx(2), OTHER, str(POSITION), "BUY", D("0.6")),
        (tx(3), OTHER, str(TOKEN + 1), "SELL", D("0.2")), (tx(4), LEADER, str(neg_risk_position), "SELL", D("0.9"))]


def test_malformed_v3_logs_are_quarantined_and_the_range_read_on(rpc):
    feed, good = watcher(rpc), v3_fill_log(LEADER, OTHER, 0, POSITION, 1_000_000, 2_000_000, tx(9))
    rpc.mine(T, [
        {**good, "data": good["data"][:-64], "transactionHash": tx(1)},  # a data word short
        v3_fill_log(LEADER, OTHER, 0, POSITION, 1_000_000, 0, tx(2)),  # a BUY that took no shares
        v3_fill_log(LEADER, OTHER, 2, POSITION, 1_000_000, 2_000_000, tx(3)),  # side 2 is no Side
        good,
    ])
    items, cursors = drain(feed)
    bad, trades = items[:3], items[3:]
    assert all(isinstance(q, Quarantined) for q in bad) and [q.source for q in bad] == [
        f"onchain:{rpc.block}:{i}" for i in range(3)]
    assert "side 2" in bad[2].reason and tx(3) in bad[2].raw and EXCHANGE_V3 in bad[2].raw
    assert [(t.tx_hash, t.side, t.size) for t in trades] == [(tx(9), "BUY", D(2))]
    assert json.loads(cursors["onchain"])["done"] == rpc.block  # the range is read past the bad logs


# -- wiring: `watch` and `run` read ExchangeV3 through the container -------------------
@pytest.fixture
def api():
    with DataApiStandIn() as server:
        yield server


def cli(tmp_path, api, rpc, *args):
    env = {"COPYTRADER_CONFIG": None, "COPYTRADER_FEED__URL": api.url, "COPYTRADER_FEED__LOOKBACK_S": "100000000",
           "COPYTRADER_FEED__TIMEOUT_S": "2", "COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000",
           "COPYTRADER_LEADERS": LEADER, "COPYTRADER_FEED__RPC_URL": rpc.url, "COPYTRADER_FEED__CONFIRMATIONS": "0",
           "COPYTRADER_FEED__START_BLOCK": str(rpc.block)}
    return CliRunner().invoke(main, ["--log-level", "error", "--db", str(tmp_path / "ct.db"), *args], env=env)


def test_watch_onchain_reads_exchange_v3_fills(rpc, api, tmp_path):
    rpc.mine(T, [v3_fill_log(LEADER, EXCHANGE_V3, 0, POSITION, 5_000_000, 10_000_000, tx(1))])
    res = cli(tmp_path, api, rpc, "watch", "--feed", "onchain", "--once", "--json")
    assert res.exit_code == 0, res.output
    [line] = [json.loads(x) for x in res.stdout.splitlines()]
    assert (line["side"], D(line["size"]), D(line["price"]), line["token_id"]) == ("BUY", 10, D("0.5"), str(POSITION))
    assert EXCHANGE_V3.lower() in {a.lower() for a in rpc.get_logs_filters[0]["address"]}


def test_both_copies_a_v2_market_fill_once_from_the_chain(rpc, api, tmp_path):
    markets = tmp_path / "markets.json"
    markets.write_text(json.dumps({"markets": [{"condition_id": "0x" + "c3" * 32, "version": "v2", "tokens": [
        {"token_id": str(POSITION), "book": {"asks": [["0.50", "1000"]], "bids": [["0.49", "1000"]]}}]}]}))
    # the same fill as the Data API and ExchangeV3 report it: the Data API is asked for non-fills only
    api.add({**activity_row(LEADER, T, 1, asset=str(POSITION), size=10.0, price=0.5), "transactionHash": tx(1)})
    rpc.mine(T, [v3_fill_log(LEADER, OTHER, 0, POSITION, 5_000_000, 10_000_000, tx(1))])
    res = cli(tmp_path, api, rpc, "run", "--feed", "both", "--markets", str(markets), "--once", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["copied"] == 1 and api.requests[0]["type"] == "REDEEM,MERGE,SPLIT"
