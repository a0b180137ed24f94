"""Paper executor, replay feed, static market data and alerts against their ports."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from copytrader.adapters.alerts.log import LogAlerter
from copytrader.adapters.clock import ManualClock
from copytrader.adapters.execution.mock import PaperExecutor
from copytrader.adapters.feeds.replay import FeedError, ReplayFeed
from copytrader.adapters.market.static import MarketDataError, StaticMarketData
from copytrader.domain.model import CopyIntent, ExecStatus, LeaderTrade, OrderType, Side
from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS
from copytrader.ports import Quarantined
from copytrader.testing import CONDITION, LEADER, T0, TOKEN, book

D = Decimal


def order(side="BUY", size="100", limit="0.52", kind=OrderType.FOK):
    return CopyIntent(id="i1", trade_id="t", follower="f", leader=LEADER, token_id=TOKEN, condition_id=CONDITION,
                      side=Side(side), size=D(size), limit_price=D(limit), leader_price=D("0.50"),
                      order_type=kind, created_at=T0)


def execute(paper, intent):
    return paper.submit(paper.prepare(intent, None), intent, None)


@pytest.fixture
def paper():
    market = StaticMarketData()
    market.put(*book(asks=[("0.50", "40"), ("0.51", "40"), ("0.53", "1000")],
                     bids=[("0.49", "30"), ("0.47", "1000")]))
    return PaperExecutor(market, ManualClock(T0), fee_rate=D("0.02"))


def test_buy_walks_the_asks_up_to_the_limit(paper):
    res = execute(paper, order(size="70", kind=OrderType.FAK))
    assert res.status is ExecStatus.FILLED and res.filled_size == D("70")
    assert res.avg_price == ((D("40") * D("0.50") + D("30") * D("0.51")) / 70).quantize(D("0.000001"))
    # fee = rate x min(p, 1-p) x shares per level
    assert res.fee == (D("0.02") * D("0.50") * 40 + D("0.02") * D("0.49") * 30).quantize(D("0.000001"))


def test_fok_fills_all_or_nothing(paper):
    res = execute(paper, order(size="100"))  # only 80 at or under 0.52
    assert res.status is ExecStatus.REJECTED and res.filled_size == 0 and "80 of 100" in res.error
    assert not res.fault  # a market outcome, not an error


def test_fak_fills_what_it_can(paper):
    res = execute(paper, order(size="100", kind=OrderType.FAK))
    assert res.status is ExecStatus.PARTIAL and res.filled_size == D("80")


def test_sell_walks_the_bids_down_to_the_limit(paper):
    res = execute(paper, order(side="SELL", size="50", limit="0.48", kind=OrderType.FAK))
    assert (res.status, res.filled_size, res.avg_price) == (ExecStatus.PARTIAL, D("30"), D("0.49"))


def test_execution_is_deterministic_and_lookup_agrees(paper):
    from copytrader.domain.model import IntentRecord, IntentStatus
    first, second = execute(paper, order(size="60")), execute(paper, order(size="60"))
    assert first == second and first.execution_id == paper.prepare(order(), None).order_id
    rec = IntentRecord(intent_id="i1", trade_id="t", follower="f", leader=LEADER, token_id=TOKEN,
                       condition_id=CONDITION, side="BUY", leader_size=D(1), leader_price=D("0.50"), created_at=T0,
                       decision="approved", status=IntentStatus.PENDING, size=D("60"), limit_price=D("0.52"),
                       order_type="FOK", execution_id=first.execution_id)
    assert paper.lookup(rec, None) == first


def _rows():
    return [json.loads(line) for line in SAMPLE_ACTIVITY.read_text().splitlines()]


def test_replay_reads_jsonl_and_json_arrays_alike(tmp_path):
    array = tmp_path / "rows.json"
    array.write_text(json.dumps(_rows()))
    a, b = list(ReplayFeed(SAMPLE_ACTIVITY).read(lambda key: None)), list(ReplayFeed(array).read(lambda key: None))
    strip = lambda p: p.reason if isinstance(p, Quarantined) else p  # noqa: E731 (sources name the file)
    assert [strip(i.payload) for i in a] == [strip(i.payload) for i in b] and len(a) == len(_rows())
    assert sum(isinstance(i.payload, Quarantined) for i in a) == 1


def test_replay_numbers_are_exact_decimals():
    first = next(ReplayFeed(SAMPLE_ACTIVITY).read(lambda key: None)).payload
    assert isinstance(first, LeaderTrade)
    assert first.price == D(str(_rows()[0]["price"])) and isinstance(first.size, Decimal)


def test_replay_resumes_after_the_cursor_and_moves_the_clock(tmp_path):
    clock = ManualClock()
    items = list(ReplayFeed(SAMPLE_ACTIVITY, clock=clock).read(lambda key: "30"))
    assert [i.cursor for i in items] == [str(n) for n in range(31, len(_rows()) + 1)]
    assert clock.now().timestamp() == max(r["timestamp"] for r in _rows())


def test_replay_quarantines_broken_lines_and_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = _rows()[0]
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps({**good, "side": 7}),
                               json.dumps({k: v for k, v in good.items() if k != "asset"}), "[1, 2]"]) + "\n")
    payloads = [i.payload for i in ReplayFeed(path).read(lambda key: None)]
    assert isinstance(payloads[0], LeaderTrade)
    reasons = [p.reason for p in payloads[1:]]
    assert all(isinstance(p, Quarantined) for p in payloads[1:])
    assert reasons[0].startswith("not JSON") and "side is not text" in reasons[1]
    assert "missing asset" in reasons[2] and "not an object" in reasons[3]


def test_missing_or_broken_files_are_clear_errors(tmp_path):
    with pytest.raises(FeedError, match="not found"):
        ReplayFeed(tmp_path / "nope.jsonl")
    bad = tmp_path / "m.json"
    bad.write_text('{"markets": [{"tokens": [{"token_id": "1"}]}]}')
    with pytest.raises(MarketDataError, match="condition_id"):
        StaticMarketData.from_file(bad)


def test_static_market_follows_the_clock_through_book_history_and_resolution():
    clock = ManualClock()
    market = StaticMarketData.from_file(SAMPLE_MARKETS, clock)
    data = json.loads(SAMPLE_MARKETS.read_text())
    resolved = next(m for m in data["markets"] if m.get("resolved_at"))
    winner = next(t for t in resolved["tokens"] if t["winner"])
    open_book = next((b for b in winner.get("books", []) if b["asks"]), winner.get("book"))
    clock.set(T0.fromtimestamp(resolved["resolved_at"] - 1, T0.tzinfo))
    assert market.book(winner["token_id"]).best_ask == min(D(p) for p, _ in open_book["asks"])
    assert market.market(winner["token_id"]).closed is False
    clock.set(T0.fromtimestamp(resolved["resolved_at"], T0.tzinfo))
    info = market.market(winner["token_id"])
    assert info.closed and info.payout == 1 and market.book(winner["token_id"]).best_ask is None


def test_log_alerter_logs_by_kind(caplog):
    with caplog.at_level(logging.INFO, logger="copytrader.alerts"):
        LogAlerter().send("fill", "BUY 10 @ 0.5")
        LogAlerter().send("error", "timeout")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "[fill] BUY 10 @ 0.5"), (logging.ERROR, "[error] timeout")]
