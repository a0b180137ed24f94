from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from copytrader.domain.model import CopyIntent, MarketInfo, OrderBook, OrderType, PriceLevel, Side
from copytrader.testing import CONDITION, LEADER, T0, TOKEN, make_trade  # noqa: F401

D = Decimal


def intent(side: str = "BUY", size: str = "20", limit: str = "0.50", leader_price: str = "0.50",
           token: str = TOKEN, condition: str = CONDITION, leader: str = LEADER) -> CopyIntent:
    return CopyIntent(id="i", trade_id="t", follower="default", leader=leader, token_id=token,
                      condition_id=condition, side=Side(side), size=D(size), limit_price=D(limit),
                      leader_price=D(leader_price), order_type=OrderType.FOK, created_at=T0)


def market(tick: str = "0.01", min_size: str = "5", closed: bool = False) -> MarketInfo:
    return MarketInfo(token_id=TOKEN, condition_id=CONDITION, tick_size=D(tick), min_order_size=D(min_size),
                      closed=closed)


def order_book(bid: str | None = "0.49", ask: str | None = "0.50", token: str = TOKEN) -> OrderBook:
    return OrderBook(token, bids=(PriceLevel(D(bid), D(1000)),) if bid else (),
                     asks=(PriceLevel(D(ask), D(1000)),) if ask else ())


@pytest.fixture
def now() -> datetime:
    return T0.astimezone(timezone.utc)
