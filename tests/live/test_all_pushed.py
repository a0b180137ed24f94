"""Everything pushed, end to end: `copytrader run --feed fast --live --yes` against
loopback stand-ins of the activity socket (hints), the chain over eth_subscribe
(`feed.ws_url`: the truth, and a fill the socket never showed), the Data API, the
CLOB's REST API, its market channel (the book mirror, `market.ws_url`) and its user
channel (`live.ws_user_url`). Each leader fill is copied exactly once, copies after the
first sight of the token are priced from the mirror, and our fills settle from the user
channel without a single GET /data/trades."""
from __future__ import annotations

import json
import threading
import time

from click.testing import CliRunner

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.application.service import BOOK_TELEMETRY
from copytrader.domain.model import Settlement
from copytrader.entrypoints.cli import main
from tests.feeds.test_activity_socket import CONDITION, LEADER, TOKEN, chain_fill, row, wait
from tests.standins.clob import ClobStandIn
from tests.standins.clob_ws import ClobMarketWs, ClobUserWs
from tests.standins.data_api import DataApiStandIn
from tests.standins.rpc import RpcStandIn
from tests.standins.rpc_ws import RpcWsStandIn
from tests.standins.rtds import RtdsStandIn

from .conftest import KEY


def _read(db, fn):
    """``fn(store)`` on a read-only store next to the running engine (None until it is made)."""
    try:
        with SqliteStore(db, read_only=True) as store:
            return fn(store)
    except Exception:  # not made yet, or its schema not written yet
        return None


def _copies(db) -> int:
    return _read(db, lambda s: len(s.history(limit=10))) or 0


def test_a_live_run_with_every_source_pushed_copies_each_fill_once_priced_and_settled_from_sockets(tmp_path):
    db, now = tmp_path / "ct.db", int(time.time())
    with DataApiStandIn() as api, ClobStandIn() as clob, ClobMarketWs(clob) as market_ws, \
            ClobUserWs(clob) as user_ws, RpcStandIn() as rpc, RpcWsStandIn(rpc) as rpc_ws, RtdsStandIn() as rtds:
        clob.set_book(str(TOKEN), asks=[("0.50", "1000")], bids=[("0.49", "1000")], market=CONDITION)
        env = {"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": KEY, "COPYTRADER_LEADERS": LEADER,
               "COPYTRADER_FEED__URL": api.url, "COPYTRADER_FEED__TIMEOUT_S": "2",
               "COPYTRADER_FEED__RPC_URL": rpc.url, "COPYTRADER_FEED__WS_URL": rpc_ws.url,
               "COPYTRADER_FEED__CONFIRMATIONS": "0", "COPYTRADER_FEED__START_BLOCK": str(rpc.block + 1),
               "COPYTRADER_FEED__RTDS_URL": rtds.url, "COPYTRADER_FEED__POLL_INTERVAL_S": "0.1",
               "COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000",
               "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_LIVE__GAMMA_HOST": clob.url,
               "COPYTRADER_LIVE__TIMEOUT_S": "2", "COPYTRADER_LIVE__AUTO_REDEEM": "false",
               "COPYTRADER_MARKET__WS_URL": market_ws.url, "COPYTRADER_LIVE__WS_USER_URL": user_ws.url}
        result: dict = {}

        def go():
            result["res"] = CliRunner().invoke(main, ["--log-level", "error", "--db", str(db), "run", "--feed", "fast",
                                                      "--max-items", "4", "--json", "--live", "--yes"], env=env)
        engine = threading.Thread(target=go, daemon=True)
        engine.start()
        # every socket up before the first fill (an order posted before the user channel is settled over REST)
        assert rtds.subscribed(timeout_s=20) and wait(lambda: rpc_ws.subscribed >= 2, 20)
        assert user_ws.wait_for(lambda: any("owner" in c.state for c in user_ws.clients), 20)

        rtds.noise(50, now + 30)
        rtds.trade(row(1, ts=now + 30, size=10.0))  # a hint: the first sight of the token (REST book)
        assert wait(lambda: _copies(db) >= 1, 20)
        assert market_ws.wait_for(lambda: any(str(TOKEN) in c.state.get("assets", ()) for c in market_ws.clients), 20)
        rtds.trade(row(2, ts=now + 31, size=20.0))
        assert wait(lambda: _copies(db) >= 2, 20)
        # the chain pushes the two hinted fills (they only confirm) and one the socket never showed
        rpc.mine(now + 32, [chain_fill(1, size=10), chain_fill(2, size=20), chain_fill(3, size=5)])
        settlements = lambda: _read(db, lambda s: [r.settlement for r in s.history(limit=10)])  # noqa: E731
        assert wait(lambda: settlements() == [Settlement.PROVISIONAL] * 3, 20), settlements()  # matched, booked

        clob.advance_trades(2)  # on chain: every trade CONFIRMED, told by the user channel
        assert wait(lambda: settlements() == [Settlement.FINAL] * 3, 20), settlements()
        rtds.trade(row(4, ts=now + 40, size=10.0))  # the fourth copy ends the run (--max-items 4)
        engine.join(30)
        assert not engine.is_alive()
        # the run closed what it opened: no socket's thread outlives it (an embedding app goes on)
        assert [t.name for t in threading.enumerate() if t.name.startswith("stream-")] == []
        orders, trade_reads = len(clob.orders), sum(1 for r in clob.requests if r == ("GET", "/data/trades"))
    res = result["res"]
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["copied"] == 4 and summary["outcomes"].get("duplicate", 0) == 0, summary
    assert orders == 4 and trade_reads == 0  # one order per fill; settled from the socket, never polled
    with SqliteStore(db, read_only=True) as store:
        sources = [data["book_source"] for kind, _, data in reversed(store.telemetry()) if kind == BOOK_TELEMETRY]
        history = store.history(limit=10)
    assert len({r.trade_id for r in history}) == 4 and sources[0] == "rest" and sources[1:] == ["stream"] * 3, sources
