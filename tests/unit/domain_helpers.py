"""Builders for the pure-domain unit tests (fixed times, Decimal everywhere)."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional

from copytrader.domain.model import (
    CopyIntent, LeaderTrade, MarketInfo, OrderBook, OrderType, PriceLevel, Side,
)

D = Decimal
T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)
DAY0 = "2026-11-01"
DAY1 = "2026-11-02"
LEADER = "0x" + "ab" * 20
LEADER2 = "0x" + "cd" * 20
TOKEN = "1" * 40
TOKEN_NO = "2" * 40
TOKEN_B = "3" * 40
CONDITION = "0x" + "ee" * 32
CONDITION_B = "0x" + "ff" * 32
TX = "0x" + "12" * 32


def trade(
    leader: str = LEADER, token_id: str = TOKEN, condition_id: str = CONDITION, side: str = "BUY",
    size: str | Decimal = "100", price: str | Decimal = "0.50", timestamp: Optional[int] = None,
    tx_hash: str = TX, kind: str = "TRADE", log_index: Optional[int] = None,
) -> LeaderTrade:
    size, price = D(size), D(price)
    return LeaderTrade(
        leader=leader, token_id=token_id, condition_id=condition_id, side=side, size=size, price=price,
        usdc_size=size * price if size.is_finite() and price.is_finite() else D(0),
        timestamp=int(T0.timestamp()) if timestamp is None else timestamp,
        tx_hash=tx_hash, kind=kind, log_index=log_index,
    )


def intent(
    side: str = "BUY", size: str | Decimal = "20", limit: str | Decimal = "0.50",
    leader_price: str | Decimal = "0.50", token_id: str = TOKEN, condition_id: str = CONDITION,
    leader: str = LEADER,
) -> CopyIntent:
    return CopyIntent(
        id="intent-1", trade_id="trade-1", follower="default", leader=leader, token_id=token_id,
        condition_id=condition_id, side=Side(side), size=D(size), limit_price=D(limit),
        leader_price=D(leader_price), order_type=OrderType.FOK, created_at=T0,
    )


def market(
    token_id: str = TOKEN, condition_id: str = CONDITION, tick: str = "0.01", min_size: str = "5",
    closed: bool = False,
) -> MarketInfo:
    return MarketInfo(token_id=token_id, condition_id=condition_id, tick_size=D(tick),
                      min_order_size=D(min_size), closed=closed)


def book(bid: Optional[str | Decimal] = "0.49", ask: Optional[str | Decimal] = "0.50",
         token_id: str = TOKEN) -> OrderBook:
    return OrderBook(
        token_id,
        bids=(PriceLevel(D(bid), D(1000)),) if bid is not None else (),
        asks=(PriceLevel(D(ask), D(1000)),) if ask is not None else (),
    )
