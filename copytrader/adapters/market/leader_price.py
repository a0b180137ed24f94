"""Market data for backtests without book history: the book is the leader's
last traded price in that token, with ample size on both sides.

A copy then fills at the leader's price (no slippage, no liquidity limit):
an optimistic bound, useful to study sizing and risk limits on a bare
activity dump. Pass real book snapshots (``--markets``) for fills that walk a
book. The tick size is the coarsest of 0.01 / 0.001 / 0.0001 that fits every
price seen so far in the token.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

from ...domain.model import LeaderTrade, MarketInfo, OrderBook, PriceLevel
from ...domain.positions import V1, version_of

_TICKS = (Decimal("0.01"), Decimal("0.001"), Decimal("0.0001"))
_DEPTH = Decimal(10**9)


def _tick_for(price: Decimal) -> Decimal:
    for tick in _TICKS:
        if price % tick == 0:
            return tick
    return _TICKS[-1]


class LeaderPriceMarket:
    """Implements MarketData from the leaders' own trades (``observe``)."""

    def __init__(self, min_order_size: Decimal = Decimal("5")) -> None:
        self.min_order_size = Decimal(min_order_size)
        self._markets: dict[str, MarketInfo] = {}
        self._books: dict[str, OrderBook] = {}

    def observe(self, trade: LeaderTrade) -> None:
        price = trade.price
        if not trade.is_trade or not trade.token_id or not price.is_finite() or not 0 < price < 1:
            return
        tick = _tick_for(price)
        known = self._markets.get(trade.token_id)
        if known is None or tick < known.tick_size or (trade.condition_id and not known.condition_id):
            self._markets[trade.token_id] = MarketInfo(
                token_id=trade.token_id, condition_id=trade.condition_id or (known.condition_id if known else ""),
                tick_size=min(tick, known.tick_size) if known else tick, min_order_size=self.min_order_size,
                version=version_of(trade.token_id) or V1)  # no market metadata here: the id tells
        level = (PriceLevel(price, _DEPTH),)
        self._books[trade.token_id] = OrderBook(trade.token_id, bids=level, asks=level)

    def market(self, token_id: str) -> Optional[MarketInfo]:
        return self._markets.get(token_id)

    def book(self, token_id: str) -> Optional[OrderBook]:
        return self._books.get(token_id)
