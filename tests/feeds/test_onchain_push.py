"""The on-chain feed pushed over eth_subscribe (feed.ws_url) against the loopback
RPC WebSocket stand-in, on the same chain as the JSON-RPC stand-in: pushed fills
are the trades polling reads, reorgs, drops, silence, gaps, duplicates,
reordered and malformed frames; without a WebSocket URL the feed polls."""
from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

from copytrader.adapters.execution.polymarket.settings import EXCHANGE_V3, V2_EXCHANGE, V2_NEG_RISK_EXCHANGE
from copytrader.adapters.feeds.onchain import OnchainFeed
from copytrader.adapters.feeds.onchain_push import Coverage, Frames, Head, Malformed
from copytrader.adapters.streams import Stream
from copytrader.domain.model import LeaderTrade
from copytrader.ports import Quarantined, SourceHealth
from tests.standins import FakeTime
from tests.standins.rpc import RpcStandIn, fill_log, v3_fill_log
from tests.standins.rpc_ws import RpcWsStandIn, logs_bloom
from tests.standins.ws import MonotonicClock as Clock

T = 1_795_000_000
LEADER, OTHER = "0x" + "a1" * 20, "0x" + "b2" * 20
TOKEN = 10**70 + 12345678901234567890
POSITION = (1 << 248) | ((0xC0FFEE << 100) << 104)
EXCHANGES = [V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, EXCHANGE_V3]


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def buy(n: int, maker: str = LEADER) -> dict:
    return fill_log(V2_EXCHANGE, maker, OTHER, 0, TOKEN, 1_000_000 * n, 2_000_000 * n, tx(n))



@pytest.fixture
def chain():
    with RpcStandIn() as rpc, RpcWsStandIn(rpc) as ws:
        yield rpc, ws


def feed_of(rpc, ws, clock=None, **kw):
    kw.setdefault("start_block", rpc.block + 1)
    kw.setdefault("confirmations", 0)
    return OnchainFeed(rpc.url, kw.pop("leaders", [LEADER]), EXCHANGES, ws_url=ws.url if ws else "", idle_s=0.02,
                       poll_interval_s=kw.pop("poll_interval_s", 60), monotonic=clock or Clock(),
                       clock_s=FakeTime(T).time, stream=functools.partial(Stream, backoff_s=(0.01, 0.05), poll_s=0.02),
                       **kw)


class Reader:
    """Reads the feed in a thread of its own, as the engine does (cursors stored as items come)."""

    def __init__(self, feed, cursors=None) -> None:
        self.feed, self.cursors, self.items, self.error = feed, dict(cursors or {}), [], None
        self.stop, self.cond = threading.Event(), threading.Condition()
        feed.stop_when(self.stop.is_set, self.stop.wait)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for item in self.feed.read(lambda k: self.cursors.get(k)):
                with self.cond:
                    if not isinstance(item.payload, SourceHealth):
                        self.cursors[item.key or self.feed.name] = item.cursor
                    self.items.append(item.payload)
                    self.cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    @property
    def trades(self) -> list[LeaderTrade]:
        return [p for p in self.items if isinstance(p, LeaderTrade)]

    @property
    def done(self):
        return json.loads(self.cursors.get("onchain") or '{"done": null}')["done"]

    def wait(self, predicate, timeout_s: float = 5.0) -> bool:
        """Until ``predicate()`` holds (checked as items come, and every 10 ms); False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate():
                if time.monotonic() > deadline:
                    return False
                self.cond.wait(0.01)
            return True

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive() and self.error is None, self.error


def trusted(reader, rpc, ws, connections=1):
    """Subscribed, and a first head read: the socket is trusted from the next block on."""
    assert ws.wait_subscribed(2 * connections)
    number = rpc.mine(T)
    assert reader.wait(lambda: reader.feed._coverage.trusted_after == number)


def polled(rpc, start_block):
    feed = OnchainFeed(rpc.url, [LEADER], EXCHANGES, confirmations=0, start_block=start_block,
                       clock_s=FakeTime(T).time, max_polls=1)
    return [i.payload for i in feed.read(lambda k: None) if isinstance(i.payload, LeaderTrade)]


def ranges(rpc):
    return [(int(f["fromBlock"], 16), int(f["toBlock"], 16)) for f in rpc.get_logs_filters]


def test_pushed_fills_are_the_trades_polling_reads_and_no_eth_getlogs_reads_them(chain):
    rpc, ws = chain
    start = rpc.block + 1
    with Reader(feed_of(rpc, ws)) as reader:
        trusted(reader, rpc, ws)
        first = rpc.mine(T + 2, [buy(1), fill_log(V2_NEG_RISK_EXCHANGE, LEADER, OTHER, 1, TOKEN, 7_500_000, 2_250_000,
                                                  tx(2)), buy(3, maker=OTHER)])
        last = rpc.mine(T + 4, [v3_fill_log(LEADER, EXCHANGE_V3, 1, POSITION, 4_000_000, 2_600_000, tx(4))])
        assert reader.wait(lambda: len(reader.trades) == 3)
        assert reader.wait(lambda: reader.done == last)
    pushed = reader.trades
    assert pushed == polled(rpc, start)  # the same LeaderTrades, ids included
    assert [t.id for t in pushed] == [t.id for t in polled(rpc, start)]
    assert [(t.tx_hash, t.side, t.size) for t in pushed] == [
        (tx(1), "BUY", Decimal(2)), (tx(2), "SELL", Decimal("7.5")), (tx(4), "SELL", Decimal(4))]
    assert not any(lo <= first <= hi or lo <= last <= hi for lo, hi in ranges(rpc)[:-2])  # the last two: polled()


def test_a_reorg_before_confirmation_never_shows_the_replaced_fill(chain):
    rpc, ws = chain
    with Reader(feed_of(rpc, ws, confirmations=1)) as reader:
        trusted(reader, rpc, ws)
        rpc.mine(T + 4, [buy(1)])
        rpc.mine(T + 6, [buy(2)])
        rpc.reorg(1, T + 6, ([buy(3)],))  # removed: true for tx 2, then the new block with tx 3
        rpc.mine(T + 8)
        assert reader.wait(lambda: reader.done == rpc.block - 1)
    assert [t.tx_hash for t in reader.trades] == [tx(1), tx(3)]


def test_a_reorg_of_a_read_block_rewinds_and_reads_the_new_one(chain):
    rpc, ws = chain
    feed = feed_of(rpc, ws)
    with Reader(feed) as reader:
        trusted(reader, rpc, ws)
        rpc.mine(T + 2, [buy(1)])
        rpc.mine(T + 4, [buy(2)])
        assert reader.wait(lambda: len(reader.trades) == 2 and reader.done == rpc.block)
        rpc.reorg(1, T + 4, ([buy(3)],))
        assert reader.wait(lambda: len(reader.trades) == 3 and reader.done == rpc.block)
    assert [t.tx_hash for t in reader.trades] == [tx(1), tx(2), tx(3)] and feed.reorgs


def test_a_dropped_socket_reconnects_and_the_gap_is_read_by_range_once(chain, caplog):
    rpc, ws = chain
    feed = feed_of(rpc, ws)
    with caplog.at_level(logging.WARNING, "copytrader"), Reader(feed) as reader:
        trusted(reader, rpc, ws)
        rpc.mine(T + 2, [buy(1)])
        assert reader.wait(lambda: len(reader.trades) == 1)
        ws.inject("refuse")
        ws.inject("drop")
        assert reader.wait(lambda: feed.stream_status().last_error.startswith("connect to"))  # refused
        assert reader.wait(lambda: feed._degraded)  # the feed noticed: polling until the socket is back
        gap = [rpc.mine(T + 4, [buy(2)]), rpc.mine(T + 6), rpc.mine(T + 8, [buy(3)])]
        ws.clear()
        trusted(reader, rpc, ws, connections=2)
        rpc.mine(T + 10, [buy(4)])
        assert reader.wait(lambda: len(reader.trades) == 4 and reader.done == rpc.block)
    assert [t.tx_hash for t in reader.trades] == [tx(1), tx(2), tx(3), tx(4)]
    assert any(lo <= gap[0] and gap[-1] <= hi for lo, hi in ranges(rpc))  # the backfill
    assert ws.connections >= 2
    assert len([r for r in caplog.records if "polling eth_getLogs every" in r.getMessage()]) == 1, [r.getMessage() for r in caplog.records]


def test_silence_reconnects_by_the_watchdog_and_polls_meanwhile_with_one_log_line(chain, caplog):
    rpc, ws = chain
    clock = Clock()
    with caplog.at_level(logging.WARNING, "copytrader"), \
            Reader(feed_of(rpc, ws, clock, ws_stale_s=5, poll_interval_s=10)) as reader:
        trusted(reader, rpc, ws)
        ws.inject("silent")
        rpc.mine(T + 2, [buy(1)])  # not pushed: the socket is silent
        clock.advance(11)  # stale (and a poll due)
        assert reader.wait(lambda: len(reader.trades) == 1)  # read by the fallback poll
        assert ws.wait_for(lambda: ws.connections >= 2)  # the watchdog reconnected
        ws.clear()
        clock.advance(6)  # the reconnect's subscriptions were swallowed: the watchdog again
        trusted(reader, rpc, ws, connections=ws.connections)
        rpc.mine(T + 4, [buy(2)])
        assert reader.wait(lambda: len(reader.trades) == 2)
    assert [t.tx_hash for t in reader.trades] == [tx(1), tx(2)]
    lines = [r.getMessage() for r in caplog.records if r.name == "copytrader.feeds"]
    assert len([m for m in lines if "polling eth_getLogs every 10s" in m]) == 1, lines
    assert len([m for m in lines if "is back:" in m]) == 1, lines


def test_skipped_blocks_are_read_by_range(chain):
    rpc, ws = chain
    with Reader(feed_of(rpc, ws)) as reader:
        trusted(reader, rpc, ws)
        ws.skip_blocks(2)
        skipped = [rpc.mine(T + 2, [buy(1)]), rpc.mine(T + 4, [buy(2)])]
        rpc.mine(T + 6, [buy(3)])
        assert reader.wait(lambda: len(reader.trades) == 3 and reader.done == rpc.block)
    assert [t.tx_hash for t in reader.trades] == [tx(1), tx(2), tx(3)]
    assert any(lo <= skipped[0] and skipped[1] <= hi for lo, hi in ranges(rpc))


def test_duplicated_and_reordered_frames_give_each_fill_once_in_log_order(chain):
    rpc, ws = chain
    with Reader(feed_of(rpc, ws)) as reader:
        trusted(reader, rpc, ws)
        before = len(rpc.get_logs_filters)
        ws.inject("duplicate")  # the first log twice
        ws.inject("reorder")  # the second log after the third
        rpc.mine(T + 2, [buy(1), buy(2), buy(3)])
        assert reader.wait(lambda: reader.done == rpc.block)
    assert [(t.tx_hash, t.log_index) for t in reader.trades] == [(tx(1), 0), (tx(2), 1), (tx(3), 2)]
    assert len(rpc.get_logs_filters) == before  # all of it pushed


def test_logs_pushed_after_their_head_are_read_by_range_without_doubles(chain):
    rpc, ws = chain
    ws.head_first = True  # the head comes before the block's logs: its bloom says a fill may be there
    with Reader(feed_of(rpc, ws)) as reader:
        trusted(reader, rpc, ws)
        rpc.mine(T + 2, [buy(1), buy(2)])
        rpc.mine(T + 4)
        assert reader.wait(lambda: reader.done == rpc.block)
    assert [t.tx_hash for t in reader.trades] == [tx(1), tx(2)]


def test_malformed_frames_are_quarantined_and_the_feed_reads_on(chain):
    rpc, ws = chain
    with Reader(feed_of(rpc, ws)) as reader:
        trusted(reader, rpc, ws)
        ws.inject("malformed")
        assert reader.wait(lambda: any(isinstance(p, Quarantined) for p in reader.items))
        rpc.mine(T + 2, [buy(1)])
        rpc.mine(T + 4, [buy(2)])
        assert reader.wait(lambda: len(reader.trades) == 2)
    [bad] = [p for p in reader.items if isinstance(p, Quarantined)]
    assert bad.source.startswith("onchain-ws:") and "unreadable eth_subscription frame" in bad.reason
    assert [t.tx_hash for t in reader.trades] == [tx(1), tx(2)]


def test_without_a_websocket_url_the_feed_polls_as_before(chain):
    rpc, _ = chain
    rpc.mine(T, [buy(1)])
    feed = feed_of(rpc, None, start_block=rpc.block, max_polls=1)
    trades = [i.payload for i in feed.read(lambda k: None) if isinstance(i.payload, LeaderTrade)]
    assert [t.tx_hash for t in trades] == [tx(1)] and feed.stream_status() is None
    assert "websockets" not in sys.modules or feed._stream is None


# -- the pure parts -----------------------------------------------------------------
def test_frames_and_the_bloom_of_a_head():
    frames = Frames()
    assert isinstance(frames.parse("{not json"), Malformed)
    assert frames.parse(json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0xaa"})).kind == "newHeads"
    assert isinstance(frames.parse(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                               "params": {"subscription": "0xaa", "result": {"number": "12"}}})),
                      Malformed)
    topic0 = bytes.fromhex(fill_log(V2_EXCHANGE, LEADER, OTHER, 0, TOKEN, 1, 1, tx(1))["topics"][0][2:])
    cover = Coverage([bytes.fromhex(e[2:]) for e in EXCHANGES], topic0, [bytes(12) + bytes.fromhex(LEADER[2:])])
    ours, theirs = logs_bloom([buy(1)]), logs_bloom([buy(1, maker=OTHER)])
    assert cover.matches(int(ours, 16)) and not cover.matches(int(theirs, 16)) and not cover.matches(0)
    for rid, sub in ((1, "0xaa"), (2, "0xbb")):
        cover.frames.parse(json.dumps({"jsonrpc": "2.0", "id": rid, "result": sub}))
    cover.subscribed()
    cover.head(Head(10, "0x" + "01" * 32, "0x" + "00" * 32, T, 0))  # the trusting head
    cover.head(Head(11, "0x" + "02" * 32, "0x" + "01" * 32, T, 0))
    cover.head(Head(12, "0x" + "03" * 32, "0x" + "02" * 32, T, int(ours, 16)))
    assert cover.covered(10) is None and cover.covered(11)[1] == [] and cover.covered(12) is None


# -- the CLI: a live run copies pushed fills -----------------------------------------
def test_run_onchain_with_a_websocket_copies_pushed_fills(chain, tmp_path):
    rpc, ws = chain
    markets = tmp_path / "markets.json"
    markets.write_text(json.dumps({"markets": [{"condition_id": "0x" + "c3" * 32, "tokens": [
        {"token_id": str(TOKEN), "book": {"asks": [["0.50", "1000"]], "bids": [["0.45", "1000"]]}}]}]}))
    env = {**os.environ, "COPYTRADER_LEADERS": LEADER, "COPYTRADER_FEED__RPC_URL": rpc.url,
           "COPYTRADER_FEED__WS_URL": ws.url, "COPYTRADER_FEED__CONFIRMATIONS": "0",
           "COPYTRADER_FEED__POLL_INTERVAL_S": "60", "COPYTRADER_FEED__START_BLOCK": str(rpc.block + 1), "COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000"}
    env.pop("COPYTRADER_CONFIG", None)
    cmd = [os.path.join(os.path.dirname(sys.executable), "copytrader"), "--log-level", "warning", "--db", str(tmp_path / "ct.db"), "run",
           "--feed", "onchain", "--markets", str(markets), "--max-items", "2", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert ws.wait_subscribed(2, timeout_s=30), proc.stderr.read() if proc.poll() is not None else ""
        rpc.mine(T)  # the trusting head
        rpc.mine(T + 2, [buy(1)])
        rpc.mine(T + 4, [buy(2)])
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["copied"] == 2, (summary, err[-2000:])


def test_a_ws_url_that_is_not_a_websocket_is_one_sentence_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from copytrader.entrypoints.cli import main

    env = {"COPYTRADER_CONFIG": None, "COPYTRADER_LEADERS": LEADER, "COPYTRADER_FEED__RPC_URL": "http://127.0.0.1:9",
           "COPYTRADER_FEED__WS_URL": "https://node.example/v2/SECRETKEY"}
    res = CliRunner().invoke(main, ["--db", str(tmp_path / "ct.db"), "watch", "--feed", "onchain", "--once"], env=env)
    assert res.exit_code == 2 and "feed.ws_url" in res.output and "ws:// or wss://" in res.output
    assert "SECRETKEY" not in res.output and "Traceback" not in res.output
