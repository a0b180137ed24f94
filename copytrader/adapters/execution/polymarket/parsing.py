"""Exchange answers → the one ``ExecutionResult`` type."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from ....domain.model import ZERO, CopyIntent, ExecStatus, ExecutionResult, IntentRecord, Side, micro


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else ZERO
    except InvalidOperation:
        return ZERO


def fill_from_amounts(side: Side, making: Decimal, taking: Decimal) -> tuple[Decimal, Optional[Decimal]]:
    """(shares, average price) from the maker/taker amounts of a match.
    BUY: we give collateral (making) for shares (taking); SELL: the reverse."""
    shares, collateral = (taking, making) if side is Side.BUY else (making, taking)
    return shares, (micro(collateral / shares) if shares > 0 else None)


def from_post(answer: Any, intent: CopyIntent, order_id: str, at: datetime) -> ExecutionResult:
    """Map the answer of ``POST /order``: matched, delayed, live, unmatched or an error."""
    if not isinstance(answer, dict):
        return ExecutionResult(intent.id, ExecStatus.UNKNOWN, execution_id=order_id, submitted_at=at,
                               error=f"unexpected answer {str(answer)[:120]!r}", fault=True)
    if answer.get("success") is False or answer.get("errorMsg"):
        return ExecutionResult(intent.id, ExecStatus.REJECTED, execution_id=order_id, submitted_at=at,
                               completed_at=at, error=str(answer.get("errorMsg") or answer.get("error") or "refused"),
                               fault=not is_unfilled(str(answer.get("errorMsg", ""))))
    status = str(answer.get("status", "")).lower()
    exec_id = str(answer.get("orderID") or order_id)
    shares, price = fill_from_amounts(intent.side, _dec(answer.get("makingAmount")), _dec(answer.get("takingAmount")))
    if status == "matched" and shares > 0:
        full = shares >= intent.size
        return ExecutionResult(intent.id, ExecStatus.FILLED if full else ExecStatus.PARTIAL, filled_size=shares,
                               avg_price=price, execution_id=exec_id, submitted_at=at, completed_at=at)
    if status == "unmatched":
        return ExecutionResult(intent.id, ExecStatus.REJECTED, execution_id=exec_id, submitted_at=at,
                               completed_at=at, error="unmatched: no liquidity at the limit price")
    # delayed (matching deferred), live (resting), or matched without amounts: look it up
    return ExecutionResult(intent.id, ExecStatus.UNKNOWN, filled_size=shares, avg_price=price,
                           execution_id=exec_id, submitted_at=at, error=f"order {status or 'status missing'}")


def is_unfilled(message: str) -> bool:
    text = message.lower()
    return "fully filled or killed" in text or "no orders found to match" in text or "not enough liquidity" in text


def from_order(answer: Any, record: IntentRecord, at: datetime) -> ExecutionResult:
    """Map ``GET /data/order/{hash}`` (None: the venue does not know the order)."""
    if not answer:
        return ExecutionResult(record.intent_id, ExecStatus.REJECTED, execution_id=record.execution_id,
                               completed_at=at, error="order not found at the exchange: it was never accepted")
    status = str(answer.get("status", "")).upper().removeprefix("ORDER_STATUS_")  # both spellings are seen
    matched = _dec(answer.get("size_matched"))
    original = _dec(answer.get("original_size")) or (record.size or ZERO)
    price = _dec(answer.get("price")) or record.limit_price
    if status in ("LIVE", "DELAYED", "PENDING"):
        return ExecutionResult(record.intent_id, ExecStatus.UNKNOWN, filled_size=matched,
                               execution_id=record.execution_id, error=f"order still {status.lower()}")
    if matched <= 0:
        return ExecutionResult(record.intent_id, ExecStatus.REJECTED, execution_id=record.execution_id,
                               completed_at=at, error=f"order {status.lower() or 'closed'} without a fill")
    # the order's price is its limit: a conservative average until trades are read
    return ExecutionResult(record.intent_id, ExecStatus.FILLED if matched >= original else ExecStatus.PARTIAL,
                           filled_size=matched, avg_price=price, execution_id=record.execution_id, completed_at=at)
