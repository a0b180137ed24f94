"""The risk kernel: every intent passes through it before execution.

It answers Approve, Reduce(to size) or Reject(reason). It only reads the
portfolio's running aggregates, so its cost does not grow with history.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Optional

import attrs

from .model import (
    BUY, CENT_SHARE, ONE, Approve, CopyIntent, MarketInfo, OrderBook, Reason, Reduce, Reject, RiskDecision, Side,
    TradingState, round_down,
)
from .portfolio import Portfolio


def _frozen_lower(values: object) -> frozenset[str]:
    return frozenset(str(v).strip().lower() for v in (values or ()))  # type: ignore[union-attr]


@attrs.frozen
class RiskLimits:
    """``None`` disables a limit. Amounts are USDC (pUSD); exposure is cost basis."""

    max_trade_usdc: Optional[Decimal] = Decimal("100")
    max_market_usdc: Optional[Decimal] = Decimal("250")
    max_total_exposure_usdc: Optional[Decimal] = Decimal("1000")
    max_open_positions: Optional[int] = 20
    daily_loss_limit_usdc: Optional[Decimal] = Decimal("100")
    max_buy_price: Decimal = Decimal("0.97")  # price band: don't buy near-certain outcomes
    min_sell_price: Decimal = Decimal("0")
    max_slippage: Decimal = Decimal("0.05")  # best book price vs the leader's, as a fraction
    allow_markets: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_lower)
    deny_markets: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_lower)
    max_orders_per_window: Optional[int] = 30
    window_s: int = 60

    @property
    def window(self) -> timedelta:
        found = _WINDOWS.get(self.window_s)
        if found is None:
            found = _WINDOWS[self.window_s] = timedelta(seconds=self.window_s)
        return found


_WINDOWS: dict[float, timedelta] = {}  # window_s -> its timedelta (read for every order)
_DAY_KEYS: dict[date, str] = {}


APPROVE = Approve()  # immutable and without fields: one is enough


def day_key(now: datetime) -> str:
    day = now.date()
    key = _DAY_KEYS.get(day)
    if key is None:
        if len(_DAY_KEYS) > 4096:
            _DAY_KEYS.clear()
        key = _DAY_KEYS[day] = day.isoformat()
    return key


_HALTED, _REDUCING = TradingState.HALTED, TradingState.REDUCING  # (see model.BUY)


def check_state(side: Side, state: TradingState) -> Optional[Reject]:
    """What the trading state allows: nothing when HALTED, sells when REDUCING."""
    if state is _HALTED:
        return Reject(Reason.TRADING_HALTED)
    if state is _REDUCING and side is BUY:
        return Reject(Reason.REDUCING_ONLY)
    return None


class RiskKernel:
    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits

    def check_book(self, intent: CopyIntent, book: Optional[OrderBook]) -> Optional[Reject]:
        """The book against the leader's price (slippage) and the price band."""
        lim = self.limits
        buy = intent.side is BUY
        best = book.best_for(intent.side) if book is not None else None
        if best is None:
            return Reject(Reason.NO_LIQUIDITY, f"no {'asks' if buy else 'bids'} in the book")
        leader = intent.leader_price
        if buy and best > leader * (ONE + lim.max_slippage):
            return Reject(Reason.SLIPPAGE, f"best ask {best} vs leader {leader}")
        if not buy and best < leader * (ONE - lim.max_slippage):
            return Reject(Reason.SLIPPAGE, f"best bid {best} vs leader {leader}")
        if buy and best > lim.max_buy_price:
            return Reject(Reason.PRICE_BAND, f"ask {best} above {lim.max_buy_price}")
        if not buy and best < lim.min_sell_price:
            return Reject(Reason.PRICE_BAND, f"bid {best} below {lim.min_sell_price}")
        return None

    def still_valid(self, intent: CopyIntent, trade_time: datetime, now: datetime, max_age_s: int,
                    state: TradingState, market: Optional[MarketInfo],
                    book: Optional[OrderBook]) -> Optional[Reject]:
        """May a signed order the exchange never received still be posted (at
        start-up, or after an unknown answer)? The leader trade must still be
        fresh, trading allowed, the market open and the book within the price
        band and the slippage limit. Sizing and exposure were checked when the
        intent was made, and nothing has filled since."""
        age = (now - trade_time).total_seconds()
        if age > max_age_s:
            return Reject(Reason.STALE_AFTER_RESTART, f"the leader trade is {int(age)} s old, max {max_age_s} s")
        refused = check_state(intent.side, state)
        if refused is None and (market is None or market.closed):
            refused = Reject(Reason.MARKET_CLOSED, f"market {intent.condition_id} is closed or unknown")
        return refused or self.check_book(intent, book)

    def check(
        self,
        intent: CopyIntent,
        portfolio: Portfolio,
        state: TradingState,
        now: datetime,
        book: Optional[OrderBook],
        min_size: Decimal,
        leader_budget: Optional[Decimal] = None,
    ) -> RiskDecision:
        lim = self.limits
        buy = intent.side is BUY
        refused = check_state(intent.side, state)
        if refused is not None:
            return refused
        if buy and (lim.deny_markets or lim.allow_markets):  # exits stay possible from any market
            market_ids = {intent.condition_id.lower(), intent.token_id.lower()}
            if lim.deny_markets & market_ids:
                return Reject(Reason.MARKET_DENIED, intent.condition_id)
            if lim.allow_markets and not lim.allow_markets & market_ids:
                return Reject(Reason.MARKET_NOT_ALLOWED, intent.condition_id)
        refused = self.check_book(intent, book)
        if refused is not None:
            return refused

        if lim.max_orders_per_window is not None:
            recent = portfolio.orders_since(now - lim.window)
            if recent >= lim.max_orders_per_window:
                return Reject(Reason.RATE_LIMIT, f"{recent} orders in {lim.window_s} s")
        if not buy:
            return APPROVE  # sells only reduce exposure

        if lim.daily_loss_limit_usdc is not None:
            realised = portfolio.daily_realised(day_key(now))
            if realised <= -lim.daily_loss_limit_usdc:
                return Reject(Reason.DAILY_LOSS_LIMIT, f"realised {realised} today")
        if (lim.max_open_positions is not None and not portfolio.holds_token(intent.token_id)
                and portfolio.open_tokens >= lim.max_open_positions):
            return Reject(Reason.MAX_OPEN_POSITIONS, f"{portfolio.open_tokens} open")

        # Notional caps: reduce to the tightest headroom, reject if nothing is left.
        headrooms: list[tuple[Decimal, Reason]] = []
        if lim.max_trade_usdc is not None:
            headrooms.append((lim.max_trade_usdc, Reason.MAX_TRADE_NOTIONAL))
        if lim.max_market_usdc is not None:
            used = portfolio.market_exposure.get(intent.condition_id, Decimal(0))
            headrooms.append((lim.max_market_usdc - used, Reason.MAX_MARKET_NOTIONAL))
        if lim.max_total_exposure_usdc is not None:
            headrooms.append((lim.max_total_exposure_usdc - portfolio.total_exposure, Reason.MAX_TOTAL_EXPOSURE))
        if leader_budget is not None:
            used = portfolio.leader_exposure.get(intent.leader, Decimal(0))
            headrooms.append((leader_budget - used, Reason.LEADER_BUDGET))
        if not headrooms:
            return APPROVE
        room, reason = min(headrooms, key=lambda h: h[0])
        if intent.notional <= room:
            return APPROVE
        size = round_down(room / intent.limit_price, CENT_SHARE) if room > 0 else Decimal(0)
        if size < min_size or size <= 0:
            return Reject(reason, f"headroom {max(room, Decimal(0))} USDC")
        return Reduce(size, reason)
