"""Market data from the CLOB's public endpoints, with each market's version from Gamma.

``GET /book?token_id=`` answers the book together with ``tick_size``,
``min_order_size`` and ``neg_risk``, so one request serves both ports' needs.
Market rules are cached for ``rules_ttl_s`` (tick sizes change rarely, near 0
and 1); the book is cached for ``book_ttl_s`` seconds.
A token without a book (404) is not tradable: a resolved market loses its
book, so its market is then looked up in Gamma and, when closed, known as
closed with its payouts (else unknown). Whether a market has closed or
resolved (and which token won) comes from ``GET /markets/{condition_id}``,
read with the rules, so closed markets are never bought and resolved ones are
paid out.

With a book mirror (``mirror``: the CLOB market channel, ``clob_stream``),
``book`` answers from memory when the mirror's book is fresh and usable, and
otherwise reads ``GET /book`` as before (and subscribes the token, so the next
trade in it is priced from the mirror); each ``OrderBook`` says which
(``source`` "stream" or "rest"). The channel's tick size changes apply to
``market`` at once, and its ``market_resolved`` events drop the cached status
of the market (``resolved_markets``: the resolution watch asks again now).

Which position system a market trades comes from Gamma (``GET /markets?
clob_token_ids=`` or ``position_ids=``): its ``version`` chooses the outcome
ids, ``positionIds`` (an array of decimal strings) for "v2" and
``clobTokenIds`` (JSON-encoded text) for "v1", even when both are present. A
missing or unknown version is kept as its text (the engine refuses it) and
the ids of that version travel in ``MarketInfo.outcome_ids`` (an id outside
them is refused). Gamma's answer is cached per market for ``rules_ttl_s``.
A v2 market's closing is Gamma's ``closed``; its payouts come from the Data
API's ``GET /v2/resolutions?condition_id=`` (a row with status "resolved",
``payouts`` in millionths of a pUSD per share, by outcome index), read only
once the market has closed.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional

import attrs

from ...domain.model import MICRO_UNITS, MarketInfo, OrderBook, PriceLevel
from ...domain.positions import V1, V2, version_of

GAMMA_HOST = "https://gamma-api.polymarket.com"
DATA_HOST = "https://data-api.polymarket.com"
_ID_FIELDS = {V2: "positionIds", V1: "clobTokenIds"}


class ClobMarketData:
    def __init__(self, host: str, timeout_s: float = 5.0, rules_ttl_s: float = 60.0, book_ttl_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic, gamma_host: str = GAMMA_HOST,
                 data_host: str = DATA_HOST, mirror: Any = None) -> None:
        from ..execution.polymarket.transport import ClobTransport  # httpx, imported lazily

        self.http = ClobTransport(host, timeout_s)
        self.gamma = ClobTransport(gamma_host, timeout_s)
        self.data = ClobTransport(data_host, timeout_s)
        self.rules_ttl_s = rules_ttl_s
        self.book_ttl_s = book_ttl_s
        self._now = monotonic
        self._rules: dict[str, tuple[float, Optional[MarketInfo]]] = {}
        self._books: dict[str, tuple[float, OrderBook]] = {}
        self._status: dict[str, tuple[float, dict]] = {}  # condition -> (when, {"closed", "payouts"})
        self._gamma: dict[str, tuple[float, Optional[dict]]] = {}  # condition -> (when, Gamma's market)
        self.mirror = mirror  # a BookMirror, or None

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()
        for http in (self.http, self.gamma, self.data):
            http.close()

    def _fetch(self, token_id: str) -> Optional[OrderBook]:
        from ..execution.polymarket.transport import ClobError

        try:
            raw = self.http.request("GET", "/book", params={"token_id": token_id})
        except ClobError as exc:
            if exc.status == 404:  # no order book: a closed market (resolved ones lose theirs) or an unknown one
                self._rules[token_id] = (self._now(), self._without_book(token_id))
                return None
            raise
        try:
            book = OrderBook(token_id, bids=_levels(raw.get("bids"), True), asks=_levels(raw.get("asks"), False),
                             source="rest")
            info = MarketInfo(
                token_id=token_id, condition_id=str(raw.get("market", "")).lower(),
                tick_size=Decimal(str(raw.get("tick_size", "0.01"))),
                min_order_size=Decimal(str(raw.get("min_order_size", "5"))),
                neg_risk=bool(raw.get("neg_risk", False)))
        except (AttributeError, TypeError, ValueError, InvalidOperation) as exc:
            raise ValueError(f"GET /book for {token_id[:12]}…: malformed answer ({exc})") from None
        now = self._now()
        version, outcome_ids, gamma = self._version(token_id, info.condition_id, now)
        if version == V2:
            status = self._v2_status(info.condition_id, gamma or {}, outcome_ids, now)
        else:
            status = self._market_status(info.condition_id, now)
        info = attrs.evolve(info, version=version, outcome_ids=outcome_ids)
        if status["closed"]:
            info = attrs.evolve(info, closed=True, payout=status["payouts"].get(token_id))
        self._rules[token_id] = (now, info)
        self._books[token_id] = (now, book)
        return book

    def _without_book(self, token_id: str) -> Optional[MarketInfo]:
        """A token the CLOB has no book for: its market as Gamma has it when it is
        closed, with the payouts once resolved (so positions in a resolved market
        are still settled), else None (unknown: not tradable)."""
        now = self._now()
        market = self._find(token_id, "")
        if market is None or market.get("closed") is not True:
            return None
        condition = str(market.get("conditionId", "")).lower()
        self._gamma[condition] = (now, market)
        version, outcome_ids, gamma = self._version(token_id, condition, now)
        status = (self._v2_status(condition, gamma or {}, outcome_ids, now) if version == V2
                  else self._market_status(condition, now))
        return MarketInfo(token_id=token_id, condition_id=condition, neg_risk=market.get("negRisk") is True,
                          closed=True, payout=status["payouts"].get(token_id), version=version,
                          outcome_ids=outcome_ids)

    def _market_status(self, condition_id: str, now: float) -> dict:
        cached = self._status.get(condition_id)
        if cached is not None and now - cached[0] <= self.rules_ttl_s:
            return cached[1]
        from ..execution.polymarket.transport import ClobError

        status: dict = {"closed": False, "payouts": {}}
        if condition_id:
            try:
                raw = self.http.request("GET", f"/markets/{condition_id}")
            except ClobError as exc:
                if exc.status != 404:
                    raise
                raw = {}
            if isinstance(raw, dict) and raw.get("closed"):
                winners = [t for t in raw.get("tokens") or [] if t.get("winner")]
                status = {"closed": True, "payouts": {
                    str(t["token_id"]): Decimal(1 if t.get("winner") else 0)
                    for t in raw.get("tokens") or [] if winners}}
        self._status[condition_id] = (now, status)
        return status

    def _version(self, token_id: str, condition_id: str, now: float) -> tuple[str, tuple[str, ...], Optional[dict]]:
        """The market's Gamma version, its outcome ids of that version, and Gamma's market."""
        cached = self._gamma.get(condition_id)
        if cached is not None and now - cached[0] <= self.rules_ttl_s:
            market = cached[1]
        else:
            market = self._find(token_id, condition_id)
            self._gamma[condition_id] = (now, market)
        if market is None:  # Gamma does not know the market: no version, so never traded
            return "", (), None
        raw = market.get("version")
        version = raw if isinstance(raw, str) else ("" if raw is None else json.dumps(raw))
        if version not in _ID_FIELDS:
            return version, (), market
        try:
            ids = _decimal_strings(market.get(_ID_FIELDS[version]))
        except ValueError as exc:
            raise ValueError(f"Gamma market {condition_id}: {_ID_FIELDS[version]} {exc}") from None
        return version, ids, market

    def _find(self, token_id: str, condition_id: str) -> Optional[dict]:
        """Gamma's market of the token: asked by the field its shape suggests, then by the other one
        (a V2-shaped id listed in a v1 market is found, and then refused as a mismatch)."""
        fields = ("position_ids", "clob_token_ids") if version_of(token_id) == V2 else ("clob_token_ids", "position_ids")
        for field in fields:
            rows = self.gamma.request("GET", "/markets", params={field: token_id})
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError(f"Gamma GET /markets?{field}={token_id[:12]}…: not a list of markets")
            if rows:
                same = [r for r in rows if str(r.get("conditionId", "")).lower() == condition_id]
                return (same or rows)[0]
        return None

    def _v2_status(self, condition_id: str, gamma: dict, outcome_ids: tuple[str, ...], now: float) -> dict:
        """Closed from Gamma; once closed, payouts from the Data API's resolutions (cached like the rest)."""
        if gamma.get("closed") is not True:
            return {"closed": False, "payouts": {}}
        cached = self._status.get(condition_id)
        if cached is not None and now - cached[0] <= self.rules_ttl_s:
            return cached[1]
        answer = self.data.request("GET", "/v2/resolutions", params={"condition_id": condition_id})
        rows = answer.get("data") if isinstance(answer, dict) else None
        payouts: dict[str, Decimal] = {}
        for row in rows if isinstance(rows, list) else ():
            if not isinstance(row, dict) or row.get("status") != "resolved":
                continue  # payouts are only final on a resolved row
            if str(row.get("condition_id", "")).lower() != condition_id:
                continue
            pair = row.get("payouts")
            try:
                values = [Decimal(str(v)) / MICRO_UNITS for v in pair]
            except (TypeError, ValueError, InvalidOperation):
                raise ValueError(f"GET /v2/resolutions for {condition_id}: malformed payouts {pair!r}") from None
            if len(values) != len(outcome_ids):
                raise ValueError(f"GET /v2/resolutions for {condition_id}: {len(values)} payouts for "
                                 f"{len(outcome_ids)} outcomes")
            payouts = dict(zip(outcome_ids, values))
        status = {"closed": True, "payouts": payouts}
        self._status[condition_id] = (now, status)
        return status

    def market(self, token_id: str) -> Optional[MarketInfo]:
        cached = self._rules.get(token_id)
        if cached is None or self._now() - cached[0] > self.rules_ttl_s:
            self._fetch(token_id)
            cached = self._rules.get(token_id)
        info = cached[1] if cached else None
        if self.mirror is not None and info is not None and not info.closed:
            self.mirror.watch((token_id,))  # a token we hold or trade: its book is mirrored from now on
            tick = self.mirror.tick_size(token_id)
            if tick is not None and tick != info.tick_size:  # the channel's tick_size_change: prices re-round
                info = attrs.evolve(info, tick_size=tick)
        return info

    def book(self, token_id: str) -> Optional[OrderBook]:
        if self.mirror is not None:
            mirrored = self.mirror.book(token_id)
            if mirrored is not None:
                return mirrored
        cached = self._books.get(token_id)
        if cached is not None and self._now() - cached[0] <= self.book_ttl_s:
            return cached[1]
        return self._fetch(token_id)

    def streams(self) -> list:
        """The book mirror's socket for the supervisor (its fallback, GET /book, is always there)."""
        if self.mirror is None:
            return []
        from ..streams import health

        return [health(self.mirror.status(), fallback=True)]

    def resolved_markets(self) -> list[str]:
        """Markets the channel said resolved (drained); their cached status is dropped,
        so the next ``market`` asks the CLOB and Gamma again (MarketData's optional push)."""
        if self.mirror is None:
            return []
        conditions = self.mirror.resolved_markets()
        for condition in conditions:
            self._status.pop(condition, None)
            self._gamma.pop(condition, None)
            for token, (_, info) in list(self._rules.items()):
                if info is not None and info.condition_id == condition:
                    del self._rules[token]
        return conditions


def _decimal_strings(value: Any) -> tuple[str, ...]:
    """Outcome ids as Gamma lists them: an array of strings, or one JSON-encoded array (kept as text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("is not a JSON array") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("is not an array of decimal strings")
    return tuple(value)


def _levels(rows: Any, best_high: bool) -> tuple[PriceLevel, ...]:
    levels = [PriceLevel(Decimal(str(r["price"])), Decimal(str(r["size"]))) for r in rows or ()]
    return tuple(sorted(levels, key=lambda lv: lv.price, reverse=best_high))
