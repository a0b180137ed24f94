"""Exchange answers → the one ``ExecutionResult`` type.

Amounts the exchange reports are read exactly; one that cannot be read (not
a number) is never taken as zero: the result is ``unknown`` with an
``anomaly`` saying what was read, and the application books nothing for it.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Optional

from ....domain.model import (
    ONE, ZERO, CopyIntent, ExecStatus, ExecutionResult, IntentRecord, SettlementReport, SettlementState, Side, micro,
)


class Unreadable(ValueError):
    """An amount in an answer that is not a finite number."""


def _num(answer: dict, key: str) -> Optional[Decimal]:
    """``answer[key]`` as a Decimal; None when absent or empty; Unreadable otherwise."""
    value = answer.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise Unreadable(f"{key} is not a number: {str(value)[:40]!r}")
    try:
        out = Decimal(str(value).strip())
    except InvalidOperation:
        raise Unreadable(f"{key} is not a number: {str(value)[:40]!r}") from None
    if not out.is_finite():
        raise Unreadable(f"{key} is not a number: {str(value)[:40]!r}")
    return out


def fill_from_amounts(side: Side, making: Decimal, taking: Decimal) -> tuple[Decimal, Optional[Decimal]]:
    """(shares, average price) from the maker/taker amounts of a match.
    BUY: we give collateral (making) for shares (taking); SELL: the reverse."""
    shares, collateral = (taking, making) if side is Side.BUY else (making, taking)
    return shares, (micro(collateral / shares) if shares > 0 else None)


def is_unfilled(message: str) -> bool:
    text = message.lower()
    return "fully filled or killed" in text or "no orders found to match" in text or "not enough liquidity" in text


def is_duplicate(message: str) -> bool:
    """The exchange already has this very order (INVALID_ORDER_DUPLICATED): its
    fate is found by looking it up, not by posting it again."""
    text = message.lower()
    return "duplicated" in text or "already been placed" in text or "already exists" in text


def _anomaly(intent_id: str, order_id: str, problem: str) -> ExecutionResult:
    return ExecutionResult(intent_id, ExecStatus.UNKNOWN, execution_id=order_id, error=f"anomaly: {problem}",
                           anomaly=problem, fault=True)


def from_post(answer: Any, intent: CopyIntent, order_id: str, at: datetime) -> ExecutionResult:
    """Map the answer of ``POST /order``: matched, delayed, live, unmatched or an error."""
    if not isinstance(answer, dict):
        return ExecutionResult(intent.id, ExecStatus.UNKNOWN, execution_id=order_id, submitted_at=at,
                               error=f"unexpected answer {str(answer)[:120]!r}", fault=True)
    message = answer.get("errorMsg") or (answer.get("error") if answer.get("success") is False else "")
    if answer.get("success") is False or message:
        text = str(message or "refused")
        if is_duplicate(text):  # it is there already: look it up
            return ExecutionResult(intent.id, ExecStatus.DUPLICATE, execution_id=order_id, submitted_at=at,
                                   error=text)
        return ExecutionResult(intent.id, ExecStatus.REJECTED, execution_id=order_id, submitted_at=at,
                               completed_at=at, error=text, fault=not is_unfilled(text))
    status = str(answer.get("status", "")).lower()
    exec_id = str(answer.get("orderID") or order_id)
    try:
        making, taking = _num(answer, "makingAmount") or ZERO, _num(answer, "takingAmount") or ZERO
    except Unreadable as exc:
        return _anomaly(intent.id, exec_id, str(exc))
    shares, price = fill_from_amounts(intent.side, making, taking)
    if status == "matched" and shares > 0:
        full = shares >= intent.size
        # matched is not settled: its trades may still fail on chain (the settlement watch)
        return ExecutionResult(intent.id, ExecStatus.FILLED if full else ExecStatus.PARTIAL, filled_size=shares,
                               avg_price=price, execution_id=exec_id, submitted_at=at, completed_at=at,
                               provisional=True)
    if status == "unmatched":
        return ExecutionResult(intent.id, ExecStatus.REJECTED, execution_id=exec_id, submitted_at=at,
                               completed_at=at, error="unmatched: no liquidity at the limit price")
    # delayed (matching deferred), live (resting), or matched without amounts: look it up
    return ExecutionResult(intent.id, ExecStatus.UNKNOWN, filled_size=shares, avg_price=price,
                           execution_id=exec_id, submitted_at=at, error=f"order {status or 'status missing'}",
                           provisional=True)


def from_order(answer: Any, record: IntentRecord, at: datetime) -> ExecutionResult:
    """Map ``GET /data/order/{hash}`` (None: the venue does not show the order)."""
    if not answer:
        return ExecutionResult(record.intent_id, ExecStatus.NOT_FOUND, execution_id=record.execution_id,
                               error="the exchange does not know the order")
    if not isinstance(answer, dict):
        return _anomaly(record.intent_id, record.execution_id, f"unreadable order answer {str(answer)[:80]!r}")
    status = str(answer.get("status", "")).upper().removeprefix("ORDER_STATUS_")  # both spellings are seen
    try:
        matched = _num(answer, "size_matched") or ZERO
        original = _num(answer, "original_size") or (record.size or ZERO)
        price = _num(answer, "price") or record.limit_price
    except Unreadable as exc:
        return _anomaly(record.intent_id, record.execution_id, str(exc))
    if status in ("LIVE", "DELAYED", "PENDING"):
        return ExecutionResult(record.intent_id, ExecStatus.UNKNOWN, filled_size=matched,
                               execution_id=record.execution_id, error=f"order still {status.lower()}",
                               provisional=True)
    if matched == 0:
        return ExecutionResult(record.intent_id, ExecStatus.REJECTED, execution_id=record.execution_id,
                               completed_at=at, error=f"order {status.lower() or 'closed'} without a fill")
    # the order's price is its limit: a conservative average until trades are read
    return ExecutionResult(record.intent_id, ExecStatus.FILLED if matched >= original else ExecStatus.PARTIAL,
                           filled_size=matched, avg_price=price, execution_id=record.execution_id, completed_at=at,
                           provisional=True)


def trade_status(trade: dict) -> str:
    """A trade's status in its plain form: REST answers may send the prefixed
    constant ("TRADE_STATUS_CONFIRMED"), streams the plain one ("CONFIRMED")."""
    return str(trade.get("status", "")).strip().upper().removeprefix("TRADE_STATUS_")


TERMINAL = ("CONFIRMED", "FAILED")  # MATCHED, MATCHED_NOT_BROADCASTED, MINED, RETRYING are not


def _ours(trades: Iterable[Any], record: IntentRecord) -> list[tuple[dict, str, Decimal, Decimal]]:
    """(trade, status, shares, collateral) of each trade our order is in: as
    the taker (``taker_order_id``: the trade's ``size`` at its ``price``) or
    as one of the makers (``maker_orders[].matched_amount`` at that maker's
    price). Unreadable amounts raise ``Unreadable``."""
    order_id, found = record.execution_id.lower(), []
    for trade in trades:
        if not isinstance(trade, dict):
            continue
        if str(trade.get("taker_order_id", "")).lower() == order_id:
            size, price = _num(trade, "size") or ZERO, _num(trade, "price") or ZERO
            found.append((trade, trade_status(trade), size, size * price))
            continue
        for maker in trade.get("maker_orders") or ():
            if isinstance(maker, dict) and str(maker.get("order_id", "")).lower() == order_id:
                size, price = _num(maker, "matched_amount") or ZERO, _num(maker, "price") or ZERO
                if str(maker.get("asset_id", record.token_id)) != record.token_id:
                    price = ONE - price  # matched against the other outcome
                found.append((trade, trade_status(trade), size, size * price))
    return found


def from_trades(trades: Iterable[Any], record: IntentRecord, at: datetime) -> Optional[ExecutionResult]:
    """Our order's fill from ``GET /data/trades`` rows, or None when no trade is
    of it. The exchange stops showing an order under ``/data/order`` once it has
    matched in full (a FOK or FAK fill): its trades are then the record. A
    FAILED trade never happened; the fill is provisional until every trade
    of it is CONFIRMED."""
    try:
        ours = [row for row in _ours(trades, record) if row[1] != "FAILED"]
    except Unreadable as exc:
        return _anomaly(record.intent_id, record.execution_id, str(exc))
    shares, cost = sum((r[2] for r in ours), ZERO), sum((r[3] for r in ours), ZERO)
    if shares == 0:
        return None
    full = record.size is not None and shares >= record.size
    return ExecutionResult(record.intent_id, ExecStatus.FILLED if full else ExecStatus.PARTIAL, filled_size=shares,
                           avg_price=micro(cost / shares), execution_id=record.execution_id, completed_at=at,
                           provisional=any(r[1] != "CONFIRMED" for r in ours))


def settlement_from_trades(trades: Iterable[Any], record: IntentRecord) -> SettlementReport:
    """Where the trades of our order stand: pending while one is not terminal
    (or none is shown yet), failed when every one FAILED, else confirmed with
    the shares and average price of the CONFIRMED ones."""
    try:
        ours = _ours(trades, record)
    except Unreadable as exc:
        return SettlementReport(SettlementState.PENDING, detail=f"unreadable trade: {exc}")
    detail = ", ".join(f"{str(t.get('id', '?'))[:16]} {status}"
                       + (f" tx {str(t.get('transaction_hash'))[:18]}" if t.get("transaction_hash") else "")
                       for t, status, _, _ in ours)
    if not ours:
        return SettlementReport(SettlementState.PENDING, detail="no trade of the order shown yet")
    if any(status not in TERMINAL for _, status, _, _ in ours):
        return SettlementReport(SettlementState.PENDING, detail=detail)
    confirmed = [(size, cost) for _, status, size, cost in ours if status == "CONFIRMED"]
    shares, cost = sum((c[0] for c in confirmed), ZERO), sum((c[1] for c in confirmed), ZERO)
    if shares == 0:
        return SettlementReport(SettlementState.FAILED, detail=detail)
    return SettlementReport(SettlementState.CONFIRMED, filled_size=shares, avg_price=micro(cost / shares),
                            detail=detail)
