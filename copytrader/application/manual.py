"""Use case: one order of our own (``copytrader trade-once``), sized to at
least the market's minimum, validated and risk-checked, its intent and signed
order made durable before it is sent, like any copy."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Optional

import attrs

from ..domain.model import (
    CENT_SHARE, CopyIntent, IntentRecord, IntentStatus, MarketInfo, OrderType, PreparedOrder,
    Reduce, Reject, Side, dec_str, round_down, stable_id,
)
from ..domain.positions import market_rejection, token_rejection
from ..domain.validation import validate_intent

if TYPE_CHECKING:  # pragma: no cover
    from .service import CopyService

MANUAL = "manual"


@attrs.frozen
class ManualOrder:
    """What `trade-once` did: the record, the signed order, the result, timings."""

    record: IntentRecord
    order: PreparedOrder
    market: MarketInfo
    reference_price: Decimal  # best book price when the order was built
    timings_ms: dict


class OrderRefused(ValueError):
    """A manual order that validation or the risk kernel does not allow."""


def place_manual(service: "CopyService", token_id: str, side: Side, size: Optional[Decimal] = None,
                 usdc: Optional[Decimal] = None, max_price: Optional[Decimal] = None,
                 order_type: OrderType = OrderType.FOK) -> ManualOrder:
    refusal = token_rejection(token_id)
    if refusal is not None:  # no remote call for an id that is not one
        raise OrderRefused(f"{refusal.reason.value}: {refusal.detail}")
    if not service.started:
        service.start()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    market = service.market.market(token_id)
    book = service.market.book(token_id)
    timings["market_lookup_ms"] = (time.perf_counter() - started) * 1000
    if market is None:
        raise OrderRefused(f"token {token_id}: no market (unknown or closed)")
    refusal = market_rejection(market, token_id)
    if refusal is not None:
        raise OrderRefused(f"{refusal.reason.value}: {refusal.detail}")
    best = book.best_for(side) if book is not None else None
    price = max_price if max_price is not None else best
    if price is None:
        raise OrderRefused(f"no {'asks' if side is Side.BUY else 'bids'} in the book and no --max-price given")
    if size is None:
        size = round_down((usdc or Decimal(0)) / price, CENT_SHARE)
    size = max(size, market.min_order_size)
    now = service.clock.now()
    ident = stable_id(MANUAL, token_id, side.value, dec_str(size), dec_str(price), now.isoformat())
    intent = CopyIntent(id=ident, trade_id=f"{MANUAL}:{ident}", follower=service.settings.follower.id,
                        leader=MANUAL, token_id=token_id, condition_id=market.condition_id, side=side, size=size,
                        limit_price=price, leader_price=best if best is not None else price,
                        order_type=order_type, created_at=now)
    refusal = validate_intent(intent, market) or service.kernel.check(
        intent, service.portfolio, service.state.state, now, book, market.min_order_size)
    if isinstance(refusal, Reduce):
        raise OrderRefused(f"{refusal.reason.value}: the limit allows at most {refusal.size} shares")
    if isinstance(refusal, Reject):
        raise OrderRefused(f"{refusal.reason.value}: {refusal.detail}".rstrip(": "))
    started = time.perf_counter()
    prepared = service.executor.prepare(intent, market)
    timings["build_sign_ms"] = (time.perf_counter() - started) * 1000
    record = IntentRecord(
        intent_id=intent.id, trade_id=intent.trade_id, follower=intent.follower, leader=MANUAL,
        token_id=token_id, condition_id=market.condition_id, side=side.value, leader_size=size,
        leader_price=intent.leader_price, created_at=now, decision="approved", status=IntentStatus.PENDING,
        reason=MANUAL, size=size, limit_price=price, order_type=order_type.value,
        execution_id=prepared.order_id, title="trade-once")
    with service.transaction():
        service.store.put_intent(record)
        service.store.put_order(prepared, now)
        service.portfolio.note_order(now, service.settings.limits.window)
    started = time.perf_counter()
    result = service.send(prepared, intent, market)
    timings["post_ack_ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    record = service.conclude(record, result, market)
    timings["fill_ms"] = (time.perf_counter() - started) * 1000
    return ManualOrder(record, prepared, market, intent.leader_price, timings)


__all__ = ["MANUAL", "ManualOrder", "OrderRefused", "place_manual"]
