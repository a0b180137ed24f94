"""Leader health while trading: each followed leader's rolling copy PnL, and
the pause of a leader whose copies go bad (``[[leaders]]`` keys
``pause_drawdown_usdc`` and ``pause_loss_streak``, both off by default).

A leader's copy PnL is what the engine booked for its copies: the realised
PnL of its positions plus the open ones marked (``report.MARKING``: the
leader's latest traded price of the token as the engine saw it, the payout
once resolved). It is kept per (leader, token) and moved by each booking
(a fill, a resolution, a fill taken back), so a check costs the same
whatever the length of the history. The drawdown is the fall of the copy PnL
from its highest value (never below 0: a new leader starts at 0). A close is a
booking that leaves a position without open shares (sold out, resolved); it
loses when the round trip's PnL (fees included) is below 0, wins above 0.

A leader is paused (``Control.pause_leader``, source "engine") once its
drawdown is more than ``pause_drawdown_usdc`` or ``pause_loss_streak``
closes lost in a row: its buys are rejected ``leader_paused``, its sells are
still copied; alerted once (kind ``leader_paused``), shown by ``status``
with why. ``copytrader leaders resume ADDRESS`` resumes it; its drawdown and
streak then start again from the copy PnL at its next booking.

The state (highest copy PnL, streak, where each open round trip started) is
kept in the store, in the transaction of the booking that moved it, so a
restart goes on where it was. Nothing is tracked for a leader without limits.
"""
from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from decimal import Decimal
from typing import TYPE_CHECKING, Optional

import attrs

from ..domain.model import ZERO
from ..domain.portfolio import Position
from ..domain.sizing import LeaderSettings
from .control import Control
from .report import is_mark, latest_marks, mark_of

if TYPE_CHECKING:  # pragma: no cover
    from .service import CopyService

log = logging.getLogger("copytrader.leader_health")

STATE_KEY = "leader_health:"  # + address: the stored state of one leader (next to the feed cursors)


def state_key(address: str) -> str:
    return f"{STATE_KEY}{address}"


@attrs.define
class _Leader:
    limits: LeaderSettings
    peak: Decimal = ZERO
    streak: int = 0
    paused: bool = False
    base: dict[str, Decimal] = attrs.field(factory=dict)  # token -> realised PnL before its open round trip
    value: dict[str, Decimal] = attrs.field(factory=dict)  # token -> realised + marked of its position
    pnl: Decimal = ZERO  # Σ value

    def stored(self) -> str:
        return json.dumps({"peak": str(self.peak), "streak": self.streak, "paused": self.paused,
                           "base": {t: str(v) for t, v in sorted(self.base.items())}})


def limited(leader: LeaderSettings) -> bool:
    return leader.pause_drawdown_usdc is not None or leader.pause_loss_streak is not None


class LeaderHealth:
    """Owned by the engine (``CopyService.health``): ``start`` after the
    leaders are known, ``booked`` with each position a booking wrote."""

    def __init__(self, service: "CopyService") -> None:
        self.service = service
        self._leaders: dict[str, _Leader] = {}
        self._marks: dict[str, Decimal] = {}

    def start(self) -> None:
        service = self.service
        wanted = {a: l for a, l in service.settings.leaders.items() if limited(l)}
        self._leaders = {}
        if not wanted:
            return
        store = service.store
        positions = [p for p in store.positions(include_closed=True) if p.leader in wanted]
        open_tokens = {p.token_id for p in positions if p.is_open}
        self._marks = latest_marks(store.trade_prices_newest_first(open_tokens), open_tokens)
        paused = store.paused_leaders()
        for address, limits in wanted.items():
            s = self._leaders[address] = _Leader(limits)
            for p in positions:
                if p.leader == address:
                    s.value[p.token_id] = v = self._value(p)
                    s.pnl += v
            raw = store.get_cursor(state_key(address))
            saved = json.loads(raw) if raw else None
            if saved is None:  # first run with limits: round trips open now start here
                s.peak = max(ZERO, s.pnl)
                s.base = {p.token_id: p.realised for p in positions if p.leader == address and p.is_open}
            else:
                s.peak, s.streak = Decimal(saved["peak"]), int(saved["streak"])
                s.base = {t: Decimal(v) for t, v in saved["base"].items()}
            s.paused = address in paused
            if saved is not None and saved["paused"] and not s.paused:  # resumed while we were down
                s.peak, s.streak = s.pnl, 0
                self._save(address, s)

    def _value(self, pos: Position) -> Decimal:
        return pos.realised + pos.unrealised(mark_of(pos, self._marks))

    def booked(self, pos: Position, mark: Optional[Decimal] = None) -> None:
        """``pos`` as a booking left it; ``mark``: the leader's price of the trade that
        made it (moves the token's mark). Inside the booking's transaction."""
        s = self._leaders.get(pos.leader)
        if s is None:
            return
        if mark is not None and is_mark(mark):
            self._marks[pos.token_id] = mark
        token = pos.token_id
        before = s.value.get(token, ZERO)
        s.value[token] = value = self._value(pos)
        s.pnl += value - before
        changed = False
        is_open = pos.is_open
        if token not in s.base and is_open:  # a round trip opens; its PnL counts from what was realised before
            s.base[token] = before
            changed = True
        elif token in s.base and not is_open:  # closed: sold out or resolved
            result = value - s.base.pop(token)
            if result < 0:
                s.streak += 1
            elif result > 0:
                s.streak = 0
            changed = True
        store = self.service.store
        if s.paused and not store.leader_paused(pos.leader):  # resumed (`leaders resume`): start again
            s.paused, s.peak, s.streak, changed = False, s.pnl, 0, True
        if s.pnl > s.peak:
            s.peak, changed = s.pnl, True
        if not s.paused:
            why = self._why(s)
            if why:
                self._pause(pos.leader, s, why)
                changed = True
        if changed:
            self._save(pos.leader, s)

    @staticmethod
    def _why(s: _Leader) -> str:
        limit, streak = s.limits.pause_drawdown_usdc, s.limits.pause_loss_streak
        drawdown = s.peak - s.pnl
        if limit is not None and drawdown > limit:
            return (f"copy drawdown {drawdown.quantize(Decimal('0.01'))} USDC is more than pause_drawdown_usdc "
                    f"{limit} (copy PnL {s.pnl.quantize(Decimal('0.01'))}, peak {s.peak.quantize(Decimal('0.01'))})")
        if streak is not None and s.streak >= streak:
            return f"{s.streak} losing closes in a row (pause_loss_streak {streak})"
        return ""

    def _pause(self, address: str, s: _Leader, why: str) -> None:
        service = self.service
        name = service.settings.follower.id
        control = Control({name: lambda: nullcontext(service.store)}, service.clock,
                          leaders={name: service.settings.leaders})
        if service.store.leader_paused(address):  # paused by a person meanwhile: nothing to add
            s.paused = True
            return
        control.pause_leader(name, address, "engine", reason=why)
        s.paused = True
        log.warning("leader %s paused: %s", address, why)
        service.alerter.send("leader_paused", f"leader {address} paused: {why}", leader=address, reason=why)

    def _save(self, address: str, s: _Leader) -> None:
        self.service.store.set_cursor(state_key(address), s.stored())


__all__ = ["STATE_KEY", "LeaderHealth", "limited", "state_key"]
