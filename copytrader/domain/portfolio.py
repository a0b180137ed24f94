"""Positions and PnL, with aggregates kept up to date incrementally so that a
risk check costs the same whatever the length of the history."""
from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Iterable, Optional

import attrs

from .model import BUY, SELL, ZERO, LeaderTrade, Side, hot_record, micro

PositionKey = tuple[str, str]  # (leader, token_id)


@attrs.frozen
class PositionDelta:
    """What one booking moved a position by, field by field (exact Decimals):
    subtracting it takes the booking back."""

    size: Decimal = ZERO
    cost: Decimal = ZERO
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO

    @classmethod
    def between(cls, old: Optional["Position"], new: "Position") -> "PositionDelta":
        if old is None:
            return cls(new.size, new.cost, new.realised, new.fees, new.bought, new.sold)
        return cls(new.size - old.size, new.cost - old.cost, new.realised - old.realised, new.fees - old.fees,
                   new.bought - old.bought, new.sold - old.sold)

    def plus(self, other: "PositionDelta") -> "PositionDelta":
        return PositionDelta(self.size + other.size, self.cost + other.cost, self.realised + other.realised,
                             self.fees + other.fees, self.bought + other.bought, self.sold + other.sold)

    @property
    def text(self) -> str:
        """The stored form: six decimals separated by spaces."""
        return " ".join(str(v) for v in (self.size, self.cost, self.realised, self.fees, self.bought, self.sold))

    @classmethod
    def parse(cls, text: str) -> "PositionDelta":
        if not text:
            return cls()
        values = [Decimal(v) for v in text.split()]
        if len(values) != 6:
            raise ValueError(f"a booked delta has six values, not {len(values)}: {text!r}")
        return cls(*values)


@hot_record
class Position:
    """Shares of one outcome token bought because of one leader.

    ``cost`` is the cost basis of the shares held (average-cost method);
    fees are charged to ``realised`` when paid.

    Once its market resolved, ``payout`` is what each share pays, and the
    position is in one of these states (open: ``payout`` None):

    - pending: the payout is above zero and the tokens are still held (on
      chain they pay only once redeemed): size and cost kept, not settled;
    - lost: the payout is zero: nothing to redeem, cleared (realised −= cost);
    - paid: the payout was received (``paid``): realised += amount − cost.
    """

    leader: str
    token_id: str
    condition_id: str
    size: Decimal = ZERO
    cost: Decimal = ZERO
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO  # shares ever bought, for "positions equal the sum of fills"
    sold: Decimal = ZERO
    last_price: Optional[Decimal] = None
    settled: bool = False
    title: str = ""
    payout: Optional[Decimal] = None  # per share, once the market resolved

    @property
    def is_open(self) -> bool:
        """Shares held in a market not resolved yet: open risk."""
        return self.size > ZERO and self.payout is None  # ZERO, not 0: no int converted per read

    @property
    def is_pending(self) -> bool:
        """Resolved with a payout, tokens still held: cash to come, not risk."""
        return self.size > 0 and self.payout is not None and not self.settled

    @property
    def pending_cash(self) -> Decimal:
        """What the tokens of a pending position pay once redeemed (else 0)."""
        return micro(self.size * self.payout) if self.is_pending else ZERO  # type: ignore[operator]

    @property
    def status(self) -> str:
        """open, pending payout, paid, lost or closed (sold out, never resolved)."""
        if self.is_pending:
            return "pending payout"
        if self.settled:
            return "lost" if self.payout == 0 else "paid"
        return "open" if self.size > 0 else "closed"

    @property
    def key(self) -> PositionKey:
        return (self.leader, self.token_id)

    @property
    def avg_cost(self) -> Optional[Decimal]:
        return micro(self.cost / self.size) if self.size > 0 else None

    def unrealised(self, mark: Optional[Decimal] = None) -> Decimal:
        mark = self.last_price if mark is None else mark
        if mark is None or self.size == 0:
            return ZERO
        return micro(self.size * mark) - self.cost

    def fill(self, side: Side, size: Decimal, price: Decimal, fee: Decimal) -> "Position":
        if size <= ZERO:
            return self
        # Built directly, fields by position (size, cost, realised, fees, bought, sold, last_price,
        # settled, title, payout), rather than with attrs.evolve: this runs once per fill.
        if side == BUY:  # a Side or its text
            return Position(
                self.leader, self.token_id, self.condition_id, self.size + size, self.cost + micro(size * price),
                self.realised - fee, self.fees + fee, self.bought + size, self.sold, price, self.settled,
                self.title, self.payout,
            )
        if size > self.size:
            raise ValueError(f"sell of {size} exceeds position {self.size} in {self.token_id}")
        released = self.cost if size == self.size else micro(self.cost * size / self.size)
        return Position(
            self.leader, self.token_id, self.condition_id, self.size - size, self.cost - released,
            self.realised + micro(size * price) - released - fee, self.fees + fee, self.bought, self.sold + size,
            price, self.settled, self.title, self.payout,
        )

    def minus(self, delta: PositionDelta) -> tuple["Position", str]:
        """This position without the booking ``delta`` (a trade that FAILED on
        chain), and "" when that is exact. If the position moved since (shares
        of the failed fill were sold after it), the result is kept sane: never
        fewer than no shares (sales of shares never held are noted), and a cost
        that cannot stand (negative, or on no shares) goes to realised, so
        realised minus cost (the cash the fills moved) is what it must be."""
        size, cost = self.size - delta.size, self.cost - delta.cost
        realised, sold = self.realised - delta.realised, self.sold - delta.sold
        notes = []
        if size < 0:
            notes.append(f"{-size} shares sold since were never held")
            sold += size
            size = ZERO
        if cost < 0 or (size == 0 and cost != 0):
            notes.append(f"cost basis {cost} moved to realised")
            realised, cost = realised - cost, ZERO
        return attrs.evolve(self, size=size, cost=cost, realised=realised, fees=self.fees - delta.fees,
                            bought=self.bought - delta.bought, sold=sold), "; ".join(notes)

    def resolved(self, payout: Decimal) -> "Position":
        """The market resolved, each share pays ``payout``: pending when that
        is above zero (the tokens are still to be redeemed), lost (cleared,
        settled) when it is zero."""
        if not payout.is_finite() or payout < 0 or payout > 1:
            raise ValueError(f"a payout per share is between 0 and 1, not {payout}")
        if self.size <= 0 or self.payout is not None:
            raise ValueError(f"only an open position resolves; {self.token_id} is {self.status}")
        if payout == 0:
            return attrs.evolve(self, size=ZERO, cost=ZERO, realised=self.realised - self.cost,
                                last_price=payout, settled=True, payout=payout)
        return attrs.evolve(self, last_price=payout, payout=payout)

    def paid(self, amount: Decimal) -> "Position":
        """A pending position's tokens were redeemed for ``amount`` (what the
        balance rose by): cleared, realised += amount − cost, settled."""
        if not self.is_pending:
            raise ValueError(f"{self.token_id} is {self.status}, not pending a payout")
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"a payout received is not negative, not {amount}")
        return attrs.evolve(self, size=ZERO, cost=ZERO, realised=self.realised + amount - self.cost, settled=True)

    def resolve(self, payout: Decimal) -> "Position":
        """Resolved and paid at once at ``payout`` per share (no chain: paper,
        dry runs, backtests and the report's replay)."""
        new = self.resolved(payout)
        return new.paid(new.pending_cash) if new.is_pending else new


class Portfolio:
    """Open positions plus the running aggregates the risk kernel reads.

    Mutating methods return the objects that changed, so the application can
    persist exactly those rows in the same transaction.
    """

    def __init__(
        self,
        positions: Iterable[Position] = (),
        leader_holdings: Optional[dict[PositionKey, Decimal]] = None,
        daily_realised: Optional[tuple[str, Decimal]] = None,
        recent_orders: Iterable[datetime] = (),
        realised_total: Decimal = ZERO,
    ) -> None:
        self._positions: dict[PositionKey, Position] = {}
        # Closed positions: reopening one starts a new round trip but keeps the
        # realised PnL and fees (the store has one row per (leader, token)).
        self._closed: dict[PositionKey, Position] = {}
        self._by_condition: dict[str, set[PositionKey]] = {}
        # Resolved, tokens still held (live, until redeemed): not open risk, cash to come.
        self._pending: dict[PositionKey, Position] = {}
        self.pending_cash = ZERO  # Σ size × payout of the pending positions
        self.pending_cost = ZERO  # their cost basis
        self.token_size: dict[str, Decimal] = {}
        self.market_exposure: dict[str, Decimal] = {}
        self.leader_exposure: dict[str, Decimal] = {}
        self.total_exposure = ZERO
        self.open_tokens = 0
        self.realised_total = realised_total
        self.leader_holdings: dict[PositionKey, Decimal] = dict(leader_holdings or {})
        # (day, its realised PnL): a plain attribute, read twice per booking (CopyService._book)
        self.day: tuple[str, Decimal] = daily_realised or ("", ZERO)
        self._recent: deque[datetime] = deque(sorted(recent_orders))
        for pos in positions:
            self._put(pos)

    # -- reads -------------------------------------------------------------
    def position(self, leader: str, token_id: str) -> Optional[Position]:
        return self._positions.get((leader, token_id))

    def positions(self) -> list[Position]:
        """The open positions (pending ones are in ``pending``)."""
        return list(self._positions.values())

    def pending(self) -> list[Position]:
        """Positions resolved with a payout whose tokens are not redeemed yet."""
        return [self._pending[key] for key in sorted(self._pending)]

    def lost(self) -> list[Position]:
        """Resolved positions that pay nothing (cleared in the book; their tokens may
        still be in the wallet until burned)."""
        return [pos for _, pos in sorted(self._closed.items()) if pos.status == "lost"]

    def current(self, leader: str, token_id: str) -> Optional[Position]:
        """The position of ``(leader, token_id)``, open, pending or closed (None: never held)."""
        key = (leader, token_id)
        return self._positions.get(key) or self._pending.get(key) or self._closed.get(key)

    @property
    def booked_pnl(self) -> Decimal:
        """Realised PnL with each pending position counted as the cash it
        will pay: the same whether a resolution was paid at once or waits for
        its redemption (what ``bankroll`` sizing adds to the bankroll)."""
        return self.realised_total + self.pending_cash - self.pending_cost

    def markets(self) -> list[str]:
        """The markets (condition ids) of the open positions, sorted (from the index, not a scan)."""
        return sorted(self._by_condition)

    def positions_in(self, condition_id: str) -> list[Position]:
        """Open positions in one market (an index lookup, not a scan)."""
        return [self._positions[key] for key in sorted(self._by_condition.get(condition_id, ()))]

    def holds_token(self, token_id: str) -> bool:
        return self.token_size.get(token_id, ZERO) > ZERO

    def leader_holding(self, leader: str, token_id: str) -> Decimal:
        return self.leader_holdings.get((leader, token_id), ZERO)

    def daily_realised(self, day: str) -> Decimal:
        on, realised = self.day
        return realised if day == on else ZERO

    def orders_since(self, since: datetime) -> int:
        while self._recent and self._recent[0] < since:
            self._recent.popleft()
        return len(self._recent)

    # -- writes ------------------------------------------------------------
    def observe_leader(self, trade: LeaderTrade) -> tuple[PositionKey, Decimal]:
        """Track what the leader holds, to mirror the fraction of a sell."""
        key = (trade.leader, trade.token_id)
        held = self.leader_holdings.get(key, ZERO)
        if trade.kind == "TRADE":  # (trade.is_trade)
            if trade.side == BUY:
                held += trade.size
            elif trade.side == SELL:
                held = max(ZERO, held - trade.size)
        elif trade.kind in ("REDEEM", "MERGE"):
            held = max(ZERO, held - trade.size)
        self.leader_holdings[key] = held
        return key, held

    def roll_day(self, day: str, realised: Decimal) -> None:
        """Start a new day's realised PnL (``realised`` as stored for it)."""
        if day != self.day[0]:
            self.day = (day, realised)

    def note_order(self, at: datetime, window: timedelta) -> None:
        self._recent.append(at)
        self.orders_since(at - window)

    def apply_fill(
        self, leader: str, token_id: str, condition_id: str, side: Side,
        size: Decimal, price: Decimal, fee: Decimal, day: str, title: str = "",
    ) -> Position:
        key = (leader, token_id)
        old = self._positions.get(key)
        if old is not None:
            new = old.fill(side, size, price, fee)
            if new.size > ZERO:  # still open (a fill keeps the payout None): _replace's first case, key and lookup known
                self._positions[key] = new
                self._shift(new, new.size - old.size, new.cost - old.cost)
                self._realise(new.realised - old.realised, day)
                return new
        else:
            old = self._pending.get(key)  # a late fill of a resolved market stays pending
            if old is None:  # a new round trip: shares start afresh, realised PnL and fees carry on
                closed = self._closed.get(key)
                old = Position(leader=leader, token_id=token_id, condition_id=condition_id, title=title,
                               realised=closed.realised if closed else ZERO, fees=closed.fees if closed else ZERO)
            new = old.fill(side, size, price, fee)
        self._replace(old, new, day)
        return new

    def revert_fill(self, leader: str, token_id: str, delta: PositionDelta, day: str) -> tuple[Position, str]:
        """Take back a booking (``Position.minus``): the aggregates (exposure,
        open tokens) and the day's realised PnL move back with it."""
        old = self.current(leader, token_id)
        if old is None:
            raise ValueError(f"no position of {leader} in {token_id} to take a fill back from")
        new, note = old.minus(delta)
        self._replace(old, new, day)
        return new, note

    def resolve(self, condition_id: str, payouts: dict[str, Decimal], day: str, pay: bool) -> list[Position]:
        """The open positions of ``condition_id`` whose token has a payout
        resolve (``Position.resolved``): pending or lost. ``pay``: paid at once
        at size × payout, where no chain holds the tokens (paper, dry runs,
        backtests); live, a pending position is paid by ``pay`` on redemption."""
        changed = []
        for key in sorted(self._by_condition.get(condition_id, ())):
            old = self._positions[key]
            if key[1] in payouts:
                new = old.resolve(payouts[key[1]]) if pay else old.resolved(payouts[key[1]])
                self._replace(old, new, day)
                changed.append(new)
        return changed

    def pay(self, leader: str, token_id: str, amount: Decimal, day: str) -> Position:
        """The pending position of ``(leader, token_id)`` was paid ``amount``
        (``Position.paid``): realised booked once, on ``day``."""
        old = self._pending.get((leader, token_id))
        if old is None:
            held = self.current(leader, token_id)
            raise ValueError(f"no position of {leader} in {token_id} is pending a payout"
                             + (f" (it is {held.status})" if held is not None else ""))
        new = old.paid(amount)
        self._replace(old, new, day)
        return new

    def _replace(self, old: Position, new: Position, day: str) -> None:
        """``new`` takes the place of ``old`` (the same leader and token): the
        aggregates move by the difference."""
        key = new.key
        held = self._positions.get(key)
        if held is not None and new.is_open:  # the common case (a fill): one pass
            self._positions[key] = new
            self._shift(new, new.size - held.size, new.cost - held.cost)
        else:
            self._drop(key)
            self._put(new)
        self._realise(new.realised - old.realised, day)

    def _realise(self, delta: Decimal, day: str) -> None:
        """Realised PnL moved by ``delta`` on ``day`` (a new day starts at zero)."""
        self.realised_total += delta
        on, realised = self.day
        self.day = (day, (realised if day == on else ZERO) + delta)

    def _drop(self, key: PositionKey) -> None:
        """Whatever is held at ``key`` leaves the aggregates."""
        self._closed.pop(key, None)
        held = self._positions.pop(key, None)
        if held is not None:
            keys = self._by_condition.get(held.condition_id)
            if keys is not None:
                keys.discard(key)
                if not keys:  # only markets with open positions stay in the index
                    del self._by_condition[held.condition_id]
            self._shift(held, -held.size, -held.cost)
        held = self._pending.pop(key, None)
        if held is not None:
            self.pending_cash -= held.pending_cash
            self.pending_cost -= held.cost

    def _put(self, pos: Position) -> None:
        """``pos`` joins the aggregates: open risk, pending cash, or closed."""
        if pos.is_pending:
            self._pending[pos.key] = pos
            self.pending_cash += pos.pending_cash
            self.pending_cost += pos.cost
        elif pos.is_open:
            self._positions[pos.key] = pos
            self._by_condition.setdefault(pos.condition_id, set()).add(pos.key)
            self._shift(pos, pos.size, pos.cost)
        else:
            self._closed[pos.key] = pos

    def _shift(self, pos: Position, size: Decimal, cost: Decimal) -> None:
        """Move the aggregates of ``pos``'s token, market and leader by ``size`` shares and ``cost``."""
        if size:
            before = self.token_size.get(pos.token_id, ZERO)
            after = before + size
            if before <= ZERO < after:
                self.open_tokens += 1
            if after > ZERO:
                self.token_size[pos.token_id] = after
            elif before > ZERO:
                self.open_tokens -= 1
                del self.token_size[pos.token_id]
        if cost:
            self.total_exposure += cost
            self.market_exposure[pos.condition_id] = self.market_exposure.get(pos.condition_id, ZERO) + cost
            self.leader_exposure[pos.leader] = self.leader_exposure.get(pos.leader, ZERO) + cost
