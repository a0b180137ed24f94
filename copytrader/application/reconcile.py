"""Use case: settle the orders whose fate is not known, at start-up and after
an answer that did not say what happened, before any new leader trade.

An order is looked up by its hash (the exchange's id for it). One the exchange
does not know at all (no order, no trade) never reached matching: it is
posted again as the *same stored signed order* (same hash: the exchange
cannot fill it twice), provided the copy is still valid (the leader trade
within ``follower.max_trade_age_s``, trading allowed, the market open, the
book within the price band and the slippage limit); otherwise it is recorded
as not copied, with the reason (``stale_after_restart``, ``slippage``, ...).
A new order is never signed for an old intent.

Start-up reconciliation runs on the wall clock: it deals with the exchange as
it is now, whatever a replay's clock says, and books on the day it runs.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Optional

import attrs

from ..domain.model import ExecStatus, ExecutionResult, IntentRecord, MarketInfo, Reject

if TYPE_CHECKING:  # pragma: no cover
    from .service import CopyService

log = logging.getLogger("copytrader")


def reconcile(service: "CopyService") -> int:
    """Settle every open (pending or unknown) intent; how many stay unknown."""
    now = service.wall.now()
    unresolved = 0
    for record in service.store.open_intents():
        try:
            market = service.market.market(record.token_id)
        except Exception as exc:  # noqa: BLE001 - the lookup by hash does not need it
            log.warning("market data for %s at start-up: %s", record.token_id[:12], describe(exc))
            market = None
        settled = recover(service, record, market, now)
        if settled.status.is_open:
            unresolved += 1
            service.alerter.send("unknown", f"order for intent {record.intent_id} still unknown: {settled.error}",
                                 intent_id=record.intent_id)
    return unresolved


def recover(service: "CopyService", record: IntentRecord, market: Optional[MarketInfo], now: datetime,
            first: Optional[ExecutionResult] = None, posted_again: bool = False) -> IntentRecord:
    """Settle ``record`` by its order's hash. ``first``: the answer that did
    not say what happened (its fault still counts); ``posted_again``: it was
    the answer to posting the stored order again (which happens once)."""
    found = _lookup(service, record, market, first)
    if found.status is not ExecStatus.NOT_FOUND:
        return service.settle(record, found, now)
    if first is not None and first.status is ExecStatus.DUPLICATE:
        return service.settle(record, _dead(found, first, now), now)
    if posted_again:  # nothing says what happened: it stays open for the next reconciliation
        return service.settle(record, attrs.evolve(found, status=ExecStatus.UNKNOWN, fault=True), now)
    return _post_again(service, record, market, now, found)


def _dead(found: ExecutionResult, answer: ExecutionResult, now: datetime) -> ExecutionResult:
    """The exchange had this very order, and shows neither it nor a trade of it:
    it matched nothing (a killed FOK/FAK)."""
    return attrs.evolve(found, status=ExecStatus.REJECTED, completed_at=now,
                        error=f"the exchange already had this order and shows no trade of it ({answer.error})")


def _lookup(service: "CopyService", record: IntentRecord, market: Optional[MarketInfo],
            first: Optional[ExecutionResult]) -> ExecutionResult:
    try:
        found = service.executor.lookup(record, market)
    except Exception as exc:  # noqa: BLE001 - the lookup itself failed: stays unknown
        found = ExecutionResult(record.intent_id, ExecStatus.UNKNOWN, execution_id=record.execution_id,
                                error=f"lookup failed: {describe(exc)}", fault=True)
    if first is None:
        return found
    # the fault that made it unknown still counts
    return attrs.evolve(found, fault=first.fault or found.fault or found.status is ExecStatus.UNKNOWN,
                        error="; ".join(e for e in (found.error, first.error) if e))


def _post_again(service: "CopyService", record: IntentRecord, market: Optional[MarketInfo], now: datetime,
                found: ExecutionResult) -> IntentRecord:
    """The exchange has never seen the order: post the stored one again, once, if still valid."""
    order = service.store.get_order(record.execution_id) if record.execution_id else None
    if order is None or not order.payload:
        return service.settle(record, attrs.evolve(
            found, status=ExecStatus.REJECTED, completed_at=now,
            error="the exchange never received the order and no signed copy of it is stored"), now)
    intent = record.to_intent()
    trade = service.store.get_trade(record.trade_id)
    try:
        book = service.market.book(record.token_id)
        market = service.market.market(record.token_id)
    except Exception as exc:  # noqa: BLE001 - cannot check the copy now: it stays open
        return service.settle(record, attrs.evolve(found, status=ExecStatus.UNKNOWN, fault=True,
                                                   error=f"not posted again yet: market data: {describe(exc)}"), now)
    refusal: Optional[Reject] = service.kernel.still_valid(
        intent, trade.time if trade is not None else record.created_at, now,
        service.settings.follower.max_trade_age_s, service.state.state, market, book)
    if refusal is not None:
        return service.refuse(record, refusal, now, "the signed order never reached the exchange and is not posted again")
    log.warning("posting the stored order %s of intent %s again: the exchange never received it",
                record.execution_id[:14], record.intent_id)
    result = service.send(order, intent, market)
    # the fault that made the first answer unknown still counts (the circuit breaker)
    result = attrs.evolve(result, fault=result.fault or found.fault)
    if result.status is ExecStatus.UNKNOWN or result.status is ExecStatus.DUPLICATE:
        return recover(service, record, market, now, first=result, posted_again=True)
    return service.settle(record, result, now)


def describe(exc: BaseException) -> str:
    """An exception in one line for the record (its class says what failed: timeout, refused, ...)."""
    return f"{type(exc).__name__}: {exc}"[:500]


__all__ = ["describe", "reconcile", "recover"]
