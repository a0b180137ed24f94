"""Checks that a leader trade, and the order we derive from it, make sense.
Each failure is a ``Reject`` with a reason that gets recorded."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from .model import ONE, SIDES, ZERO, CopyIntent, LeaderTrade, MarketInfo, Reason, Reject


def validate_trade(trade: LeaderTrade, now: datetime, max_age_s: int) -> Optional[Reject]:
    if trade.side not in SIDES:
        return Reject(Reason.UNKNOWN_SIDE, f"side {trade.side!r}")
    if not (trade.price.is_finite() and trade.size.is_finite()):
        return Reject(Reason.NOT_FINITE, f"price {trade.price}, size {trade.size}")
    if not ZERO < trade.price < ONE:
        return Reject(Reason.INVALID_PRICE, f"price {trade.price} outside (0, 1)")
    if trade.size <= ZERO:
        return Reject(Reason.INVALID_SIZE, f"size {trade.size} <= 0")
    age = now.timestamp() - trade.timestamp
    if age > max_age_s:
        return Reject(Reason.STALE, f"{int(age)} s old, max {max_age_s} s")
    return None


def validate_intent(intent: CopyIntent, market: MarketInfo) -> Optional[Reject]:
    if market.closed:
        return Reject(Reason.MARKET_CLOSED, f"market {market.condition_id} is closed")
    if not market.tick_size <= intent.limit_price <= ONE - market.tick_size:
        return Reject(Reason.INVALID_PRICE, f"limit {intent.limit_price} outside the tradable range")
    if intent.limit_price % market.tick_size != 0:
        return Reject(Reason.OFF_TICK, f"limit {intent.limit_price} not on tick {market.tick_size}")
    if intent.size < market.min_order_size:
        return Reject(Reason.BELOW_MIN_SIZE, f"{intent.size} shares < minimum {market.min_order_size}")
    return None
