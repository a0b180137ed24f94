"""Use case: our book against the chain and the CLOB (``copytrader reconcile``,
and periodically in ``serve``).

For every outcome token we hold or held (open positions summed over leaders,
in shares) and every token a leader traded that we did not copy, the funder
wallet's on-chain balance (Conditional Tokens for a CTF id, PositionManager
for a Protocol V2 position id) and the CLOB's balance for the token are
compared with our book, exactly (tolerance zero, in micro-units). Each
difference is a drift, reported with its likely cause:

- ``failed_trade``: the chain holds fewer shares than we booked, and a fill of
  the token is still provisional: its trade may still fail on chain, or failed;
- ``redeemed``: the chain holds none of a resolved market's winning token we
  still book: redeemed, by Polymarket's auto-redeem operator or by hand;
- ``unredeemed``: the market resolved in our book, its tokens are still in the
  wallet: not redeemed (or a losing side not burned) yet;
- ``manual_trade``: the chain holds more (or, with no provisional fill, fewer)
  shares than we booked: a trade on the website, or a transfer in or out;
- ``not_ours``: shares of a token we never held: bought outside copytrader;
- ``clob_view``: the chain equals our book, the CLOB's balance does not (its
  cache of the chain lags; it catches up by itself or after a refresh).

Judgement only: the reads are given to it (``check``), and it never trades,
nor changes the book, to "fix" a drift.
"""
from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable, Mapping, Optional

import attrs

from ..domain.model import MICRO_UNITS, Settlement, dec_str
from ..domain.positions import V2, version_of
from ..ports import Alerter, Clock, Store

log = logging.getLogger("copytrader")

HINT_INTENTS = 500  # the latest intents whose tokens are checked too (leader trades we did not copy)


class Cause(str, enum.Enum):
    FAILED_TRADE = "failed_trade"
    REDEEMED = "redeemed"
    UNREDEEMED = "unredeemed"
    MANUAL_TRADE = "manual_trade"
    NOT_OURS = "not_ours"
    CLOB_VIEW = "clob_view"


EXPLAIN = {
    Cause.FAILED_TRADE: "a provisional fill's trade may still fail on chain, or failed",
    Cause.REDEEMED: "the market resolved and its winning tokens were redeemed (auto-redeem operator or by hand)",
    Cause.UNREDEEMED: "the market resolved in our book, its tokens are still in the wallet: not redeemed yet",
    Cause.MANUAL_TRADE: "a trade outside copytrader (the website) or a transfer in or out",
    Cause.NOT_OURS: "a token copytrader never held: bought outside copytrader or transferred in",
    Cause.CLOB_VIEW: "the CLOB's cached balance differs from the chain (it lags; a refresh catches it up)",
}


@attrs.frozen
class Book:
    """What our store says of each token, in shares."""

    ours: Mapping[str, Decimal]  # open positions, summed over leaders
    held: frozenset[str]  # every token of a position, open or closed
    settled: frozenset[str]  # tokens whose positions were settled at a resolution
    provisional: frozenset[str]  # tokens with a fill not yet final on chain
    hints: frozenset[str] = frozenset()  # tokens of intents we never held (leader trades not copied)
    titles: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def tokens(self) -> list[str]:
        return sorted(self.held | self.hints)


def book_of(store: Store) -> Book:
    ours: dict[str, Decimal] = {}
    held, settled, titles = set(), set(), {}
    for p in store.positions(include_closed=True):
        held.add(p.token_id)
        ours[p.token_id] = ours.get(p.token_id, Decimal(0)) + p.size
        if p.settled:
            settled.add(p.token_id)
        if p.title:
            titles[p.token_id] = p.title
    provisional = {r.token_id for r in store.intents_in(Settlement.PROVISIONAL)}
    hints = {r.token_id for r in store.history(limit=HINT_INTENTS)} - held
    return Book({t: s for t, s in ours.items() if s != 0}, frozenset(held), frozenset(settled),
                frozenset(provisional), frozenset(hints), titles)


@attrs.frozen
class Drift:
    token_id: str
    ours: Decimal
    chain: Decimal
    clob: Optional[Decimal]  # None: the CLOB was not asked, or did not answer
    cause: Cause
    title: str = ""

    @property
    def ledger(self) -> str:
        return "PositionManager" if version_of(self.token_id) == V2 else "ConditionalTokens"

    @property
    def difference(self) -> Decimal:
        """Chain minus ours (for ``clob_view``: the CLOB minus ours), in shares."""
        if self.cause is Cause.CLOB_VIEW and self.clob is not None:
            return self.clob - self.ours
        return self.chain - self.ours

    def to_dict(self) -> dict:
        return {"token_id": self.token_id, "ledger": self.ledger, "title": self.title, "ours": dec_str(self.ours),
                "chain": dec_str(self.chain), "clob": None if self.clob is None else dec_str(self.clob),
                "difference": dec_str(self.difference), "cause": self.cause.value, "explanation": EXPLAIN[self.cause]}


@attrs.frozen
class Reconciliation:
    checked: int  # tokens compared
    drifts: tuple[Drift, ...]
    clob_errors: int = 0  # tokens the CLOB did not answer for (compared with the chain only)

    def to_dict(self) -> dict:
        return {"checked": self.checked, "drifts": [d.to_dict() for d in self.drifts], "clob_errors": self.clob_errors}


def judge(book: Book, chain: Mapping[str, int], clob: Mapping[str, Optional[int]],
          winning: Callable[[str], bool]) -> list[Drift]:
    """Every drift between ``book`` and the balances (micro-units) of ``chain``
    and ``clob``; ``winning(token)``: whether it is a resolved market's winning
    token (asked only when the chain holds none of a token we book)."""
    drifts = []
    for token in book.tokens:
        ours = book.ours.get(token, Decimal(0))
        on_chain = Decimal(chain.get(token, 0)) / MICRO_UNITS
        raw = clob.get(token)
        venue = None if raw is None else Decimal(raw) / MICRO_UNITS
        cause: Optional[Cause] = None
        if on_chain != ours:
            if token not in book.held:
                cause = Cause.NOT_OURS
            elif on_chain < ours and token in book.provisional:
                cause = Cause.FAILED_TRADE
            elif on_chain == 0 and winning(token):
                cause = Cause.REDEEMED
            elif on_chain > ours and token in book.settled and ours == 0:
                cause = Cause.UNREDEEMED
            else:
                cause = Cause.MANUAL_TRADE
        elif venue is not None and venue != ours:
            cause = Cause.CLOB_VIEW
        if cause is not None:
            drifts.append(Drift(token, ours, on_chain, venue, cause, book.titles.get(token, "")))
    return drifts


def check(book: Book, chain_balances: Callable[[list[str]], Mapping[str, int]],
          clob_balance: Optional[Callable[[str], int]], winning: Callable[[str], bool]) -> Reconciliation:
    """Read the balances of ``book``'s tokens (``chain_balances``: one call for
    all; its failure is the caller's to report) and the CLOB's (``clob_balance``,
    one token at a time; a token it cannot answer for is compared with the
    chain only), and judge them."""
    tokens = book.tokens
    chain = chain_balances(tokens) if tokens else {}
    clob: dict[str, Optional[int]] = {}
    errors = 0
    for token in tokens if clob_balance is not None else ():
        try:
            clob[token] = clob_balance(token)
        except Exception:  # noqa: BLE001 - the chain is the truth; the CLOB's view is a second opinion
            clob[token], errors = None, errors + 1
    return Reconciliation(len(tokens), tuple(judge(book, chain, clob, winning)), errors)


def describe(drift: Drift) -> str:
    """One line for a drift."""
    clob = "?" if drift.clob is None else dec_str(drift.clob)
    name = drift.title or f"{drift.token_id[:16]}…"
    return (f"{drift.cause.value:<13} {name} ({drift.ledger}): ours {dec_str(drift.ours)}, chain "
            f"{dec_str(drift.chain)}, CLOB {clob}, difference {dec_str(drift.difference)} shares: "
            f"{EXPLAIN[drift.cause]}")


class DriftWatch:
    """``serve``'s periodic reconciliation, paced by the engine's clock (never a
    sleep): ``step`` (asked between feed items and polls) runs ``read`` every
    ``interval_s`` (0: never), shows each token's drift (``show(token, shares)``,
    0 once a drift is gone) and alerts ("drift") once per new drift; a drift
    that goes away and comes back is new again. A failed read is logged and
    tried at the next interval."""

    def __init__(self, read: Callable[[], Reconciliation], clock: Clock, interval_s: float, alerter: Alerter,
                 show: Callable[[str, Decimal], None] = lambda token, shares: None) -> None:
        self._read, self._clock, self._interval = read, clock, timedelta(seconds=interval_s)
        self._alerter, self._show = alerter, show
        self._due: Optional[datetime] = None
        self._alerted: set[tuple] = set()
        self._shown: set[str] = set()
        self.last: Optional[Reconciliation] = None

    def step(self) -> Optional[Reconciliation]:
        if not self._interval:
            return None
        now = self._clock.now()
        if self._due is not None and now < self._due:
            return None
        self._due = now + self._interval
        try:
            result = self._read()
        except Exception as exc:  # noqa: BLE001 - a check that could not run says nothing of the book
            log.warning("reconciliation with the chain failed (next in %ss): %s", self._interval.total_seconds(), exc)
            return None
        self.last = result
        current = {(d.token_id, d.cause, d.ours, d.chain): d for d in result.drifts}
        for key, drift in current.items():
            if key not in self._alerted:
                self._alerter.send("drift", describe(drift), token_id=drift.token_id, cause=drift.cause.value,
                                   difference=dec_str(drift.difference))
        self._alerted = set(current)
        drifting = {d.token_id: d.difference for d in result.drifts}
        for token in self._shown - set(drifting):
            self._show(token, Decimal(0))
        for token, shares in drifting.items():
            self._show(token, shares)
        self._shown = set(drifting)
        return result


__all__ = ["Book", "Cause", "Drift", "DriftWatch", "EXPLAIN", "Reconciliation", "book_of", "check", "describe",
           "judge"]
