"""The resolution push (issue 18 item 1, ``market_resolved``): a market the CLOB market channel
says resolved reaches the resolution watch (``ResolutionWatch.step`` through
``MarketData.resolved_markets``) and the position resolves at once, without waiting for the
periodic check: engine level, against the loopback CLOB and its market channel."""
from __future__ import annotations

from decimal import Decimal

import pytest

from copytrader.testing import CONDITION, TOKEN, make_app, make_trade
from tests.standins.clob import ClobStandIn
from tests.standins.clob_ws import ClobMarketWs

D = Decimal
KEY = "0x" + "4c" * 32
LOSER = str(10**70 + 3)


@pytest.fixture
def venue():
    with ClobStandIn() as clob:
        clob.set_book(TOKEN, bids=[("0.49", "500")], asks=[("0.50", "500")], market=CONDITION)
        clob.set_book(LOSER, bids=[("0.49", "500")], asks=[("0.51", "500")], market=CONDITION)
        with ClobMarketWs(clob) as ws:
            yield clob, ws


def test_a_pushed_resolution_resolves_the_position_before_the_periodic_check(venue):
    clob, ws = venue
    app, fakes = make_app({"live": {"host": clob.url, "gamma_host": clob.url, "timeout_s": "2"},
                           "market": {"ws_url": ws.url}}, profile="dry-run", environ={"COPYTRADER_PRIVATE_KEY": KEY})
    market = app.container.market()
    try:
        assert app.process(make_trade()).status == "filled"
        [position] = app.positions()
        assert position.size > 0
        watch = app.service.resolutions
        assert watch.step() == 0               # the periodic pass ran: the next one is INTERVAL_S away
        assert ws.wait_for(lambda: ws.subscribed(TOKEN))
        clob.resolved[CONDITION] = TOKEN       # the venue resolves the market ...
        ws.market_resolved(CONDITION, [TOKEN, LOSER], TOKEN)   # ... and the channel says so
        assert ws.wait_for(lambda: watch.step() > 0 or not app.positions())
        # the engine clock never moved: no periodic pass was due, the push alone resolved it
        assert app.positions() == []
        [closed] = app.positions(include_closed=True)
        assert closed.realised == position.size - position.cost  # paid 1 a share at once (dry-run: off-chain)
    finally:
        market.close()


def test_without_the_push_the_position_waits_for_the_periodic_check(venue):
    clob, ws = venue
    app, fakes = make_app({"live": {"host": clob.url, "gamma_host": clob.url, "timeout_s": "2"},
                           "market": {"ws_url": ws.url}}, profile="dry-run", environ={"COPYTRADER_PRIVATE_KEY": KEY})
    market = app.container.market()
    try:
        app.process(make_trade())
        watch = app.service.resolutions
        watch.step()
        clob.resolved[CONDITION] = TOKEN       # resolved at the venue, nothing pushed
        assert watch.step() == 0 and len(app.positions()) == 1
        fakes.clock.advance(61)                # the periodic check comes round
        market.rules_ttl_s = 0                 # its cached status too old by then (market.rules_ttl_s)
        assert watch.step() == 1 and app.positions() == []
    finally:
        market.close()
