"""Paper executor: fills simulated by walking the order book."""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

import attrs

from ...domain.model import (
    BUY, ONE, ZERO, CopyIntent, ExecStatus, ExecutionResult, IntentRecord, MarketInfo, OrderType,
    PreparedOrder, SettlementReport, SettlementState, micro, text_id,
)
from ...ports import Clock, MarketData


# (see domain.model.BUY)
_FOK, _FILLED, _PARTIAL = OrderType.FOK, ExecStatus.FILLED, ExecStatus.PARTIAL
_NO_FEE = micro(ZERO)  # the fee of a fill without a fee rate: micro(ZERO), as computed, made once


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
        return PreparedOrder(intent.id, text_id("paper", intent.id))

    def submit(self, order: PreparedOrder, intent: CopyIntent, market: Optional[MarketInfo]) -> ExecutionResult:
        return self.simulate(intent, order.order_id)

    def simulate(self, intent: CopyIntent, exec_id: str) -> ExecutionResult:
        """Fill ``intent`` against the current book (shared with dry-run)."""
        now = self.clock.now()
        book = self.market.book(intent.token_id)
        buy = intent.side is BUY
        levels = (book.asks if buy else book.bids) if book is not None else ()
        remaining, filled, cost, fee = intent.size, ZERO, ZERO, ZERO
        rate, limit = self.fee_rate, intent.limit_price
        for level in levels:
            price = level.price
            if (buy and price > limit) or (not buy and price < limit):
                break
            size = level.size
            take = size if size < remaining else remaining  # min(remaining, size) without the builtin's call
            filled += take
            cost += take * price
            if rate:  # no fee: ZERO, as the sum of zeros quantizes to
                fee += rate * min(price, ONE - price) * take
            remaining -= take
            if remaining <= ZERO:
                break
        if filled == ZERO or (intent.order_type is _FOK and remaining > ZERO):
            available = f"{filled} of {intent.size}" if filled else "nothing"
            return ExecutionResult(
                intent.id, ExecStatus.REJECTED, execution_id=exec_id, submitted_at=now, completed_at=now,
                error=f"{intent.order_type.value} not filled: {available} available at limit {intent.limit_price}")
        # (intent_id, status, filled_size, avg_price, fee, execution_id, submitted_at, completed_at)
        return ExecutionResult(intent.id, _FILLED if remaining <= ZERO else _PARTIAL, filled, micro(cost / filled),
                               micro(fee) if rate else _NO_FEE, exec_id, now, now)

    def lookup(self, record: IntentRecord, market: Optional[MarketInfo]) -> ExecutionResult:
        """Nothing was sent anywhere: simulating again gives the answer."""
        return self.simulate(record.to_intent(), record.execution_id or text_id("paper", record.intent_id))

    def settlement(self, record: IntentRecord) -> SettlementReport:
        """A simulated fill is final when booked: nothing can fail on chain."""
        return SettlementReport(SettlementState.CONFIRMED, record.filled_size, record.avg_price, "simulated")


class SettlingExecutor(PaperExecutor):
    """A paper executor whose fills settle like a venue's (for tests): booked
    as provisional when matched, then CONFIRMED, or FAILED for the orders
    ``fail_next(n)`` picked (the next n filled orders) or ``fail(order_id)``
    named. Its orders are treated as sent (not ``simulated``): the intent is
    durable before the fill, as live."""

    simulated = False

    def __init__(self, market: MarketData, clock: Clock, fee_rate: Decimal = ZERO) -> None:
        super().__init__(market, clock, fee_rate)
        self.failing: set[str] = set()  # order ids whose trades FAIL
        self.settled: set[str] = set()  # order ids whose trades are terminal (CONFIRMED or FAILED)
        self.matched: set[str] = set()  # order ids that filled
        self._fail_next = 0

    def fail_next(self, n: int = 1) -> None:
        self._fail_next += n

    def fail(self, order_id: str) -> None:
        self.failing.add(order_id)

    def settle_all(self) -> None:
        """Every trade so far reaches its terminal status (CONFIRMED, or FAILED if picked)."""
        self.settled.update(self.matched)

    def simulate(self, intent: CopyIntent, exec_id: str) -> ExecutionResult:
        result = super().simulate(intent, exec_id)
        if result.filled_size <= 0:
            return result
        self.matched.add(exec_id)
        if self._fail_next > 0:
            self._fail_next -= 1
            self.failing.add(exec_id)
        return attrs.evolve(result, provisional=True)

    def settlement(self, record: IntentRecord) -> SettlementReport:
        if record.execution_id not in self.settled:
            return SettlementReport(SettlementState.PENDING, detail="MATCHED")
        if record.execution_id in self.failing:
            return SettlementReport(SettlementState.FAILED, detail="FAILED")
        return SettlementReport(SettlementState.CONFIRMED, record.filled_size, record.avg_price, "CONFIRMED")
