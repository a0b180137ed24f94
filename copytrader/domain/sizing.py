"""Turning a leader fill into a copy intent of our own size."""
from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Optional, Union

import attrs

from .model import (
    BUY, CENT_SHARE, ONE, SIDES, ZERO, ZERO_ADDRESS, CopyIntent, LeaderTrade, MarketInfo, OrderType, Reason, Reject,
    Side, dec_str, round_down, round_up, text_id,
)
from .portfolio import Portfolio


class SizingMode(str, enum.Enum):
    FIXED = "fixed"  # a fixed notional in USDC per copied buy
    PROPORTIONAL = "proportional"  # the leader's share count times a multiplier
    BANKROLL = "bankroll"  # a percentage of our bankroll per copied buy


_FIXED, _PROPORTIONAL = SizingMode.FIXED, SizingMode.PROPORTIONAL  # (see model.BUY)


def _positive(_inst: object, attribute: attrs.Attribute, value: Decimal) -> None:
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value}")


@attrs.frozen
class SizingPolicy:
    mode: SizingMode = SizingMode.FIXED
    fixed_usdc: Decimal = attrs.field(default=Decimal("10"), validator=_positive)
    multiplier: Decimal = attrs.field(default=Decimal("0.1"), validator=_positive)
    bankroll_pct: Decimal = attrs.field(default=Decimal("0.01"), validator=_positive)

    def fingerprint(self) -> str:
        return f"{self.mode.value}:{dec_str(self.fixed_usdc)}:{dec_str(self.multiplier)}:{dec_str(self.bankroll_pct)}"


@attrs.frozen
class LeaderSettings:
    address: str = attrs.field(converter=lambda a: a.strip().lower())
    name: str = ""
    multiplier: Decimal = attrs.field(default=ONE, validator=_positive)
    budget_usdc: Optional[Decimal] = None  # max exposure (cost basis) copied from this leader
    sizing: Optional[SizingPolicy] = None  # overrides the follower's policy
    # leader health (application.leader_health): pause the leader once its copies' drawdown is
    # more than this (USDC), or after this many losing closes in a row; None: off
    pause_drawdown_usdc: Optional[Decimal] = None
    pause_loss_streak: Optional[int] = None

    @address.validator
    def _check_address(self, _attribute: attrs.Attribute, value: str) -> None:
        if len(value) != 42 or not value.startswith("0x") or not all(c in "0123456789abcdef" for c in value[2:]):
            raise ValueError(f"leader address must be 0x and 40 hex digits, got {value!r}")
        if value == ZERO_ADDRESS:
            raise ValueError("leader address is the zero address (burns and mints), not a wallet that trades")


@attrs.frozen
class FollowerSettings:
    id: str = "default"
    sizing: SizingPolicy = SizingPolicy()
    bankroll: Decimal = attrs.field(default=Decimal("1000"), validator=_positive)
    # Our limit price: the leader's price moved against us by this fraction
    # (0.02 = 2%), rounded to the market's tick in our favour.
    max_slippage: Decimal = Decimal("0.02")
    order_type: OrderType = OrderType.FOK
    max_trade_age_s: int = 300

    def fingerprint(self, leader: LeaderSettings) -> str:
        policy = leader.sizing or self.sizing
        return (f"{self.id}|{policy.fingerprint()}|{dec_str(leader.multiplier)}|{dec_str(self.max_slippage)}|"
                f"{self.order_type.value}|{dec_str(self.bankroll)}")


_FINGERPRINTS: dict[tuple[int, int], tuple[FollowerSettings, LeaderSettings, str]] = {}


def _fingerprint(follower: FollowerSettings, leader: LeaderSettings) -> str:
    """``follower.fingerprint(leader)``, remembered per pair of settings objects
    (they are immutable; the objects are kept so their ids stay theirs)."""
    key = (id(follower), id(leader))
    hit = _FINGERPRINTS.get(key)
    if hit is not None and hit[0] is follower and hit[1] is leader:
        return hit[2]
    if len(_FINGERPRINTS) > 4096:
        _FINGERPRINTS.clear()
    text = follower.fingerprint(leader)
    _FINGERPRINTS[key] = (follower, leader, text)
    return text


def intent_id(trade: LeaderTrade, follower: FollowerSettings, leader: LeaderSettings) -> str:
    return text_id("intent", trade.id, _fingerprint(follower, leader))


# (side, leader price, slippage, tick) -> (the tick object, the limit): the same few prices recur. The
# text of the limit follows the tick's exponent (0.01 and 0.010 are equal keys): a hit needs that very tick.
_LIMITS: dict[tuple[Side, Decimal, Decimal, Decimal], tuple[Decimal, Decimal]] = {}


def limit_price(side: Side, leader_price: Decimal, slippage: Decimal, tick: Decimal) -> Decimal:
    """Worst price we accept: the leader's price plus the allowed slippage,
    rounded to the tick towards the leader's price, kept inside (0, 1)."""
    key = (side, leader_price, slippage, tick)
    hit = _LIMITS.get(key)
    if hit is not None and hit[0] is tick:
        return hit[1]
    if len(_LIMITS) > 4096:
        _LIMITS.clear()
    price = _limit_price(side, leader_price, slippage, tick)
    _LIMITS[key] = (tick, price)
    return price


def _limit_price(side: Side, leader_price: Decimal, slippage: Decimal, tick: Decimal) -> Decimal:
    if side is BUY:
        price = round_down(leader_price * (ONE + slippage), tick)
        price = max(price, round_up(leader_price, tick))
        return min(price, ONE - tick)
    price = round_up(leader_price * (ONE - slippage), tick)
    price = min(price, round_down(leader_price, tick))
    return max(price, tick)


def size_copy(
    trade: LeaderTrade,
    follower: FollowerSettings,
    leader: LeaderSettings,
    portfolio: Portfolio,
    market: MarketInfo,
    now: datetime,
) -> Union[CopyIntent, Reject]:
    """Size the copy of a validated leader fill.

    A BUY is sized by the policy (times the leader's multiplier). A SELL sells
    the same fraction of our position from this leader as the leader sold of
    theirs: never more than we hold, never a short.
    Call before :meth:`Portfolio.observe_leader` records this trade.
    """
    side = SIDES[trade.side]  # validated
    if side is BUY:
        policy = leader.sizing or follower.sizing
        if policy.mode is _PROPORTIONAL:
            size = trade.size * policy.multiplier * leader.multiplier
        else:
            if policy.mode is _FIXED:
                usdc = policy.fixed_usdc
            else:
                usdc = (follower.bankroll + portfolio.booked_pnl) * policy.bankroll_pct  # pending payouts as cash
            size = usdc * leader.multiplier / trade.price
        size = round_down(size, CENT_SHARE)
    else:
        pos = portfolio.position(trade.leader, trade.token_id)
        held = pos.size if pos else ZERO
        if held <= ZERO:
            return Reject(Reason.NO_POSITION, "we hold none of this token from this leader")
        before = portfolio.leader_holding(trade.leader, trade.token_id)
        if before <= trade.size:
            size = held  # the leader exits (or we never saw all of their buys): exit too
        else:
            size = min(held, round_down(held * trade.size / before, CENT_SHARE))
    if size <= ZERO:
        return Reject(Reason.INVALID_SIZE, f"copy size rounds to {size}")
    return CopyIntent(  # id, trade_id, follower, leader, token_id, condition_id, side, size, limit_price, ...
        intent_id(trade, follower, leader), trade.id, follower.id, trade.leader, trade.token_id, trade.condition_id,
        side, size, limit_price(side, trade.price, follower.max_slippage, market.tick_size), trade.price,
        follower.order_type, now,
    )
