"""Paper executor: fills simulated by walking the order book."""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

from ...domain.model import (
    ONE, ZERO, CopyIntent, ExecStatus, ExecutionResult, IntentRecord, MarketInfo, OrderType,
    PreparedOrder, Side, micro, stable_id,
)
from ...ports import Clock, MarketData


class PaperExecutor:
    """Takes liquidity from the book of ``market`` up to the limit price.

    FOK fills the whole size or nothing; FAK fills what it can and cancels the
    rest. Resting orders (GTC/GTD) are not simulated: the part that does not
    cross at once is cancelled, as with FAK. Fees follow Polymarket's taker
    formula ``fee_rate × min(p, 1 − p) × shares`` (0 by default). The book is
    a snapshot: paper orders do not consume it.
    """

    # Nothing leaves the process: the engine may commit a leader trade, its
    # intent and its fill in one transaction.
    simulated = True

    def __init__(self, market: MarketData, clock: Clock, fee_rate: Decimal = ZERO) -> None:
        self.market = market
        self.clock = clock
        self.fee_rate = Decimal(fee_rate)

    def prepare(self, intent: CopyIntent, market: MarketInfo) -> PreparedOrder:
        return PreparedOrder(intent.id, stable_id("paper", intent.id))

    def submit(self, order: PreparedOrder, intent: CopyIntent, market: Optional[MarketInfo]) -> ExecutionResult:
        return self.simulate(intent, order.order_id)

    def simulate(self, intent: CopyIntent, exec_id: str) -> ExecutionResult:
        """Fill ``intent`` against the current book (shared with dry-run)."""
        now = self.clock.now()
        book = self.market.book(intent.token_id)
        buy = intent.side is Side.BUY
        levels = (book.asks if buy else book.bids) if book is not None else ()
        remaining, filled, cost, fee = intent.size, ZERO, ZERO, ZERO
        for level in levels:
            if (buy and level.price > intent.limit_price) or (not buy and level.price < intent.limit_price):
                break
            take = min(remaining, level.size)
            filled += take
            cost += take * level.price
            fee += self.fee_rate * min(level.price, ONE - level.price) * take
            remaining -= take
            if remaining <= 0:
                break
        if filled == 0 or (intent.order_type is OrderType.FOK and remaining > 0):
            available = f"{filled} of {intent.size}" if filled else "nothing"
            return ExecutionResult(
                intent.id, ExecStatus.REJECTED, execution_id=exec_id, submitted_at=now, completed_at=now,
                error=f"{intent.order_type.value} not filled: {available} available at limit {intent.limit_price}")
        return ExecutionResult(
            intent.id, ExecStatus.FILLED if remaining <= 0 else ExecStatus.PARTIAL,
            filled_size=filled, avg_price=micro(cost / filled), fee=micro(fee),
            execution_id=exec_id, submitted_at=now, completed_at=now)

    def lookup(self, record: IntentRecord, market: Optional[MarketInfo]) -> ExecutionResult:
        """Nothing was sent anywhere: simulating again gives the answer."""
        return self.simulate(record.to_intent(), record.execution_id or stable_id("paper", record.intent_id))
