"""CLOB market data: rules from the book, caching, tick-size changes, closed and resolved markets."""
from __future__ import annotations

from decimal import Decimal

import pytest

from copytrader.adapters.market.clob import ClobMarketData
from copytrader.testing import CONDITION, TOKEN, make_trade
from tests.standins.clob import ClobStandIn

D = Decimal


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clob():
    with ClobStandIn() as server:
        server.set_book(TOKEN, bids=[("0.49", "100")], asks=[("0.51", "100")])
        yield server


def test_rules_and_book_in_one_request_then_cached(clob):
    ticks = Ticks()
    md = ClobMarketData(clob.url, rules_ttl_s=60, book_ttl_s=1, monotonic=ticks, gamma_host=clob.url)
    assert md.book(TOKEN).best_ask == D("0.51")
    info = md.market(TOKEN)
    assert (info.tick_size, info.min_order_size, info.neg_risk, info.condition_id) == (D("0.01"), D(5), False, CONDITION)
    assert [p for _, p in clob.requests].count("/book") == 1
    ticks.now = 2.0
    md.book(TOKEN)
    assert [p for _, p in clob.requests].count("/book") == 2


def test_a_tick_size_change_is_used_by_the_next_trade(clob):
    from tests.live.conftest import KEY
    from copytrader.testing import make_app
    app, fakes = make_app({"live": {"host": clob.url, "gamma_host": clob.url}, "market": {"book_ttl_s": "0"}}, profile="dry-run",
                          environ={"COPYTRADER_PRIVATE_KEY": KEY})
    app.process(make_trade(price="0.50", seq=1))
    clob.set_book(TOKEN, bids=[("0.499", "100")], asks=[("0.501", "100")], tick_size="0.001")
    app.process(make_trade(price="0.500", seq=2))
    limits = [r.limit_price for r in reversed(app.history())]
    assert limits == [D("0.51"), D("0.510")] and app.history()[0].status.value == "filled"


def test_closed_market_is_not_bought_and_resolution_pays_out(clob):
    from tests.live.conftest import KEY
    from copytrader.testing import make_app
    app, _ = make_app({"live": {"host": clob.url, "gamma_host": clob.url}, "market": {"rules_ttl_s": "0", "book_ttl_s": "0"}},
                      profile="dry-run", environ={"COPYTRADER_PRIVATE_KEY": KEY})
    assert app.process(make_trade(seq=1)).status == "filled"
    clob.resolved[CONDITION] = TOKEN
    assert app.process(make_trade(seq=2)).reason == "market_closed"
    out = app.process(make_trade(kind="REDEEM", side="", price="0", size="100", seq=3))
    assert out.status == "observed"
    [pos] = app.positions(include_closed=True)
    assert pos.settled and pos.size == 0 and pos.realised == D(20) - D("10.2")


def test_unknown_token_has_no_market(clob):
    md = ClobMarketData(clob.url, gamma_host=clob.url)
    assert md.book("999") is None and md.market("999") is None
