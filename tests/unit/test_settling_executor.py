"""The settlement watch on the paper-like SettlingExecutor: a fill it is told to fail is reversed."""
from __future__ import annotations

from decimal import Decimal

from dependency_injector import providers

from copytrader.adapters.execution.mock import SettlingExecutor
from copytrader.application.settlement_watch import FIRST_CHECK_S
from copytrader.domain.model import Settlement
from copytrader.testing import book, make_app, make_trade


def test_a_fill_the_mock_fails_is_reversed_and_one_it_confirms_is_final():
    app, fakes = make_app()
    fakes.market.put(*book(asks=[("0.50", "1000")]))
    executor = SettlingExecutor(fakes.market, fakes.clock)
    app.container.executor.override(providers.Object(executor))
    executor.fail_next(1)
    app.process(make_trade(seq=1))
    app.process(make_trade(seq=2))
    assert {r.settlement for r in app.history()} == {Settlement.PROVISIONAL}
    executor.settle_all()
    fakes.clock.advance(FIRST_CHECK_S)
    assert app.service.settlements.step() == 2
    states = {r.trade_id: r.settlement for r in app.history()}
    assert states == {make_trade(seq=1).id: Settlement.REVERSED, make_trade(seq=2).id: Settlement.FINAL}
    [position] = app.positions()
    assert position.size == Decimal("20") and fakes.alerter.kinds().count("trade_failed") == 1
