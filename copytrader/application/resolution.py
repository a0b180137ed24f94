"""Use case: notice the markets we hold resolving, and book what that means.

A market we hold is checked (``MarketData.market``: closed and the payout per
share, for CTF and Protocol V2 markets alike; the adapter caches its answers)

- at start-up, every market we hold (``settle_all``);
- when a leader redeems in it (a REDEEM row: a hint that it resolved);
- periodically while ``run``/``serve`` go on (``step``, from
  ``runner.settling``): paced by the engine's clock, never a sleep, every
  ``INTERVAL_S`` at most ``PER_PASS`` markets, taken in turn;
- at once (each ``step``) when the market data pushed it as resolved
  (``MarketData.resolved_markets``, the CLOB market channel).

A resolved market's open positions resolve (``Portfolio.resolve``): where
no chain holds the tokens (paper, dry runs, backtests) they are paid at once
at size × payout; live (``EngineSettings.pay_at_resolution`` False) a winner
is *pending* (the tokens pay only once redeemed) and a loser is cleared.
One ``resolved`` alert per market.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Optional

from ..domain.risk import day_key

if TYPE_CHECKING:  # pragma: no cover
    from .service import CopyService

INTERVAL_S = 60.0  # between periodic passes (engine clock)
PER_PASS = 5  # markets checked per periodic pass at most


class ResolutionWatch:
    def __init__(self, service: "CopyService") -> None:
        self.service = service
        self._next: Optional[datetime] = None  # the next periodic pass (engine clock)
        self._after = ""  # the last market a pass checked: the next pass goes on from there

    def settle_all(self) -> int:
        """Every market we hold, once (start-up): how many positions resolved."""
        return sum(self.resolve(c) for c in self.service.portfolio.markets())

    def step(self) -> int:
        """A periodic pass when one is due: at most ``PER_PASS`` markets, in
        turn from where the last pass stopped, and first every market pushed as
        resolved; how many positions resolved."""
        pushed = getattr(self.service.market, "resolved_markets", None)
        resolved = 0
        for condition_id in pushed() if pushed is not None else ():
            try:
                resolved += self.resolve(condition_id)
            except Exception as exc:  # the venue is unreachable: the periodic pass asks again
                self.service.source_health("market data", f"resolution check of {condition_id}: {exc}")
        now = self.service.clock.now()
        if self._next is not None and now < self._next:
            return resolved
        self._next = now + timedelta(seconds=INTERVAL_S)
        held = self.service.portfolio.markets()
        if not held:
            return resolved
        later = [c for c in held if c > self._after]
        batch = (later + [c for c in held if c <= self._after])[:PER_PASS]
        self._after = batch[-1]
        for condition_id in batch:
            try:
                resolved += self.resolve(condition_id)
            except Exception as exc:  # the venue is unreachable: the next pass asks again
                self.service.source_health("market data", f"resolution check of {condition_id}: {exc}")
                break
        return resolved

    def resolve(self, condition_id: str) -> int:
        """The open positions of ``condition_id`` resolve if the market did
        (every token we hold in it has a payout): how many did."""
        service = self.service
        payouts: dict[str, Decimal] = {}
        for pos in service.portfolio.positions_in(condition_id):  # no scan of every position per REDEEM
            if pos.token_id not in payouts:
                info = service.market.market(pos.token_id)
                if info is None or info.payout is None:
                    return 0
                payouts[pos.token_id] = info.payout
        if not payouts:
            return 0
        pay = service.settings.pay_at_resolution
        with service.transaction():
            changed = service.portfolio.resolve(condition_id, payouts, day_key(service.clock.now()), pay=pay)
            for pos in changed:
                service.store.put_position(pos)
                service.health.booked(pos)
            service.store.put_daily_realised(*service.portfolio.day)
        if changed:
            pending = sum((p.pending_cash for p in changed), Decimal(0))
            realised = sum((p.realised for p in changed), Decimal(0))
            title = next((p.title for p in changed if p.title), condition_id)
            states = ", ".join(sorted({p.status for p in changed}))
            service.alerter.send(
                "resolved", f"{title[:60]} resolved: {len(changed)} position(s) {states}"
                + (f", {pending} USDC pending payout" if pending else ""),
                condition_id=condition_id, positions=len(changed), pending_usdc=str(pending),
                realised=str(realised), payouts={t: str(v) for t, v in sorted(payouts.items())})
        return len(changed)


__all__ = ["INTERVAL_S", "PER_PASS", "ResolutionWatch"]
