"""Redeem resolved markets' winning tokens for pUSD, exactly once.

For each market with pending positions (resolved with a payout, tokens still
held) this plans the redemption (the wallet's ledger balances, the SDK's calls,
the payout by ``eth_call``), commits its record BEFORE anything is sent,
sends through the venue (``Redeemer``), waits for it to be mined (bounded by
the venue's polls) and books the payout once, with ``Portfolio.pay``, only when
the ledger shows the tokens gone: what our transaction paid, read from the pUSD
transfer in its receipt (the wallet's balance also moves with every fill that
settles meanwhile, so it proves nothing). A successful receipt alone proves
nothing either: a redeem of burned tokens succeeds and pays nothing.

Unfinished records are reconciled first (by transaction hash / relayer id and
by balances) and never sent again while their fate is unknown. A market whose
tokens left the wallet with no record of ours (the auto-redeem operator, or a
redeem on the website) is booked paid from that balance change, not redeemed.

A pass is a generator (``Redemptions.steps``): it yields each venue request
(a call without arguments) and is sent its answer, or thrown its exception.
``drive`` answers them in place (``copytrader redeem``); ``auto_redeem`` has
its own thread answer them while the engine goes on copying, and the pass's
bookkeeping (the store, the portfolio) runs on the engine's thread only.
Judgement only: the store, the venue, the market data and the clock are given.
"""
from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any, Callable, Generator, Iterable, Optional

import attrs

from ..domain.model import MICRO_UNITS, micro
from ..domain.portfolio import Portfolio, Position
from ..domain.redemption import (
    FAILED, MINED, PAID, REQUESTED, SENT, Redemption, redemption_id, usdc,
)
from ..domain.risk import day_key
from ..ports import Clock, MarketData, RedeemError, Redeemer, RedeemUnknown, Store

NOT_SENT = "interrupted before sending"
BY_OTHERS = "the tokens left the wallet without a redemption of ours (the auto-redeem operator or the website)"
BURNED = "burned: the losing tokens left the wallet (nothing was owed)"
GONE = "the tokens left the wallet (redeemed; no receipt of ours to read): booked at what the market pays"

# A pass: yields venue requests, is sent their answers, returns its value.
Steps = Generator[Callable[[], Any], Any, Any]


def drive(steps: Steps) -> Any:
    """Answer a pass's venue requests here, in order: its return value."""
    answer: Any = None
    failure: Optional[BaseException] = None
    while True:
        try:
            request = steps.throw(failure) if failure is not None else steps.send(answer)
        except StopIteration as done:
            return done.value
        try:
            answer, failure = request(), None
        except Exception as exc:  # the pass decides what a venue error means
            answer, failure = None, exc


def _micro_units(value: Decimal) -> int:
    return int((value * MICRO_UNITS).to_integral_value())


def owed(positions: Iterable[Position]) -> int:
    """What the book's shares of these positions pay, in micro units."""
    return sum(_micro_units(micro(p.size * p.payout)) for p in positions if p.is_pending)


class Redemptions:
    """``hook(step, record)`` runs after each commit (the crash tests stop there)."""

    def __init__(self, store: Store, portfolio: Portfolio, redeemer: Redeemer, market: MarketData, clock: Clock,
                 hook: Callable[[str, Redemption], None] = lambda step, record: None) -> None:
        self.store, self.portfolio, self.redeemer, self.market, self.clock = store, portfolio, redeemer, market, clock
        self.hook = hook

    # -- reads -------------------------------------------------------------------
    def pending_conditions(self) -> list[str]:
        return sorted({p.condition_id for p in self.portfolio.pending()})

    def _pending_in(self, condition_id: str) -> list[Position]:
        return [p for p in self.portfolio.pending() if p.condition_id == condition_id]

    def _save(self, record: Redemption, step: str, positions: Iterable[Position] = ()) -> Redemption:
        with self.store.transaction():
            for pos in positions:
                self.store.put_position(pos)
            if positions:
                self.store.put_daily_realised(*self.portfolio.day)
            self.store.put_redemption(record)
        self.hook(step, record)
        return record

    # -- the pass ------------------------------------------------------------------
    def _reconcile(self) -> Steps:
        """Settle every unfinished record first: one that may have been sent is never
        sent again; one that provably was not (the wallet's nonce has not moved) is
        sent as recorded."""
        out = []
        for record in self.store.redemptions(unfinished=True):
            out.append((yield from self._settle(record)))
        return out

    def run(self, conditions: Optional[list[str]] = None, send: bool = False, retry: bool = False,
            burn: bool = False) -> list[Redemption]:
        """Plan (``send=False``: nothing is sent or stored) or redeem each market of
        ``conditions`` (default: every market with pending positions). ``retry``: a
        failed redemption is planned again (otherwise only one interrupted before
        sending). ``burn``: also burn the losing tokens still in the wallet of the
        markets with lost positions and none pending (a transaction each, paying nothing)."""
        return drive(self.steps(conditions, send, retry, burn))

    def steps(self, conditions: Optional[list[str]] = None, send: bool = False, retry: bool = False,
              burn: bool = False) -> Steps:
        """``run`` as a pass (see the module's docstring)."""
        settled = {r.id: r for r in (yield from self._reconcile())} if send else {}
        out = [r for r in settled.values()
               if conditions is None or r.condition_id in conditions]  # what the reconciliation settled
        for condition_id in conditions if conditions is not None else self.pending_conditions():
            out = yield from self._one(condition_id, False, settled, out, send, retry)
        if burn:  # after the redemptions: a market redeemed just now may have losing tokens left
            lost = sorted({p.condition_id for p in self.portfolio.lost()} - set(self.pending_conditions()))
            for condition_id in lost if conditions is None else [c for c in lost if c in conditions]:
                out = yield from self._one(condition_id, True, settled, out, send, retry)
        return out

    def _one(self, condition_id: str, burn: bool, settled: dict, out: list, send: bool, retry: bool) -> Steps:
        """``out`` with the redemption (or the burn) of one market planned, or sent."""
        known = settled.get(redemption_id(condition_id, self.redeemer.wallet, burn)) \
            or self.store.get_redemption(redemption_id(condition_id, self.redeemer.wallet, burn))
        if known is not None and (not known.finished  # its fate is not known yet: never sent again
                                  or known.state == PAID and (burn or not self._pending_in(condition_id))
                                  or known.state == FAILED and not (retry or known.reason == NOT_SENT)):
            return out if known.id in settled else out + [known]
        record = yield from self._plan(condition_id, burn)
        if record is None:
            return out
        record = (yield from self._redeem(record)) if send and record.state == REQUESTED else record
        return [r for r in out if r.id != record.id] + [record]

    def _plan(self, condition_id: str, burn: bool = False) -> Steps:
        positions = [p for p in self.portfolio.lost() if p.condition_id == condition_id] if burn \
            else self._pending_in(condition_id)
        if not positions:
            return None
        now = self.clock.now()
        token_ids = sorted({p.token_id for p in positions})
        info = self.market.market(token_ids[0])
        neg_risk = bool(info and info.neg_risk)
        venue = self.redeemer
        ledger = venue.ledger(token_ids[0], neg_risk)
        amounts = yield partial(venue.balances, ledger, token_ids)
        base = Redemption(redemption_id(condition_id, venue.wallet, burn), condition_id, venue.wallet, venue.route,
                          info.version if info else "v1", ledger, tuple(token_ids), tuple(amounts),
                          0 if burn else owed(positions), burn=burn, requested_at=now, updated_at=now)
        if not any(amounts):
            return None if burn else self._book(base, BY_OTHERS, base.expected)  # nothing left to burn
        calls = venue.calls(condition_id, token_ids, list(amounts), neg_risk)
        try:
            simulated = yield partial(venue.simulate, calls)
        except RedeemError as exc:
            return base.moved(FAILED, now, calls=tuple(calls), reason=str(exc))
        payout = {p.token_id: p.payout for p in positions}
        expected = simulated if simulated is not None else \
            sum(_micro_units(micro(Decimal(a) / MICRO_UNITS * payout[t])) for t, a in zip(token_ids, amounts))
        return attrs.evolve(base, calls=tuple(calls), expected=expected, nonce=(yield venue.nonce))

    def _redeem(self, record: Redemption) -> Steps:
        return (yield from self._send(self._save(record, "recorded")))

    def _send(self, record: Redemption) -> Steps:
        """Send a recorded redemption's calls, then settle it."""
        try:
            tx_hash, relayer_id = yield partial(self.redeemer.send, list(record.calls))
        except RedeemError as exc:
            return self._save(record.moved(FAILED, self.clock.now(), reason=str(exc)), "failed")
        except RedeemUnknown as exc:
            return self._save(record.moved(REQUESTED, self.clock.now(), reason=f"may have been sent: {exc}"),
                              "unknown")
        record = self._save(record.moved(SENT, self.clock.now(), tx_hash=tx_hash, relayer_id=relayer_id), "sent")
        return (yield from self._settle(record))

    # -- settling a record -----------------------------------------------------------
    def _settle(self, record: Redemption) -> Steps:
        if record.state == REQUESTED:
            nonce = yield self.redeemer.nonce
            held = yield partial(self.redeemer.balances, record.ledger, list(record.token_ids))
            if any(held):
                if record.nonce is None or nonce != record.nonce:
                    return record  # may have been sent: wait for the chain to tell
                # nothing of the wallet went out since it was recorded: it was never sent
                if tuple(held) == record.amounts:
                    return (yield from self._send(record))  # as recorded, without a commit first
                return self._save(record.moved(FAILED, self.clock.now(), reason=NOT_SENT), "failed")  # planned anew
            return (yield from self._confirm(record))
        if record.state == SENT:
            state, tx_hash, reason = yield partial(self.redeemer.wait, record.tx_hash, record.relayer_id)
            now = self.clock.now()
            if state == "failed":
                return self._save(record.moved(FAILED, now, tx_hash=tx_hash, reason=reason), "failed")
            if state == "pending":
                if tx_hash != record.tx_hash:
                    record = self._save(record.moved(SENT, now, tx_hash=tx_hash), "sent")
                return record
            record = self._save(record.moved(MINED, now, tx_hash=tx_hash), "mined")
        if record.state == MINED:
            return (yield from self._confirm(record))
        return record

    def _tokens_held(self, record: Redemption) -> Steps:
        return any((yield partial(self.redeemer.balances, record.ledger, list(record.token_ids))))

    def _confirm(self, record: Redemption) -> Steps:
        """Book the payout once the ledger shows the tokens gone. A pUSD balance
        moves with everything else the engine does meanwhile (fills settling), so
        what our transaction paid is read from its receipt (pUSD's Transfer logs
        to the wallet); tokens gone without a payout of ours were redeemed by
        someone else (the operator, the website): what the market pays is booked
        then. A mined redeem that left the tokens in the wallet moved nothing."""
        if (yield from self._tokens_held(record)):
            return self._save(record.moved(
                FAILED, self.clock.now(), reason="mined, but the wallet still holds the tokens and no pUSD "
                                                 "arrived: nothing was redeemed"), "failed")
        if record.burn:
            return self._save(record.moved(PAID, self.clock.now(), reason=BURNED), "paid")
        credited = (yield partial(self.redeemer.credited, record.tx_hash)) if record.tx_hash else None
        if credited:
            return self._book(record, "", credited)
        return self._book(record, BY_OTHERS if credited == 0 else GONE, owed(self._pending_in(record.condition_id)))

    def _book(self, record: Redemption, reason: str, arrived: int) -> Redemption:
        """Book what arrived (at most what the book's shares are owed), shared over the
        market's pending positions pro rata, once, on today's date."""
        positions = self._pending_in(record.condition_id)
        due = owed(positions)
        total = min(arrived, due)
        now, day = self.clock.now(), day_key(self.clock.now())
        changed, left = [], total
        for i, pos in enumerate(positions):
            share = _micro_units(micro(pos.size * pos.payout))
            part = left if i == len(positions) - 1 else (share * total // due if due else 0)
            left -= part
            changed.append(self.portfolio.pay(pos.leader, pos.token_id, Decimal(part) / MICRO_UNITS, day))
        return self._save(record.moved(PAID, now, paid=total, reason=reason), "paid", changed)


def summary(record: Redemption) -> dict:
    """What ``copytrader redeem`` shows of one redemption (no secrets in it)."""
    return {"id": record.id, "condition_id": record.condition_id, "state": record.state, "route": record.route,
            "burn": record.burn, "wallet": record.wallet, "tokens": dict(zip(record.token_ids, map(str, record.amounts))),
            "expected_usdc": str(usdc(record.expected)), "paid_usdc": str(usdc(record.paid)),
            "tx_hash": record.tx_hash, "relayer_id": record.relayer_id, "reason": record.reason,
            "calls": [{"to": c.to, "function": c.function, "arguments": [str(a) for a in c.arguments],
                       "calldata": c.data} for c in record.calls]}


__all__ = ["BURNED", "BY_OTHERS", "NOT_SENT", "Redemptions", "Steps", "drive", "owed", "summary"]
