"""Market data from the CLOB's public endpoints.

``GET /book?token_id=`` answers the book together with ``tick_size``,
``min_order_size`` and ``neg_risk``, so one request serves both ports' needs.
Market rules are cached for ``rules_ttl_s`` (tick sizes change rarely, near 0
and 1); the book is cached for ``book_ttl_s`` seconds.
A token without a book (404) is unknown or closed: not tradable. Whether a
market has closed or resolved (and which token won) comes from
``GET /markets/{condition_id}``, read with the rules, so closed markets are
never bought and resolved ones are paid out.
"""
from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional

from ...domain.model import MarketInfo, OrderBook, PriceLevel


class ClobMarketData:
    def __init__(self, host: str, timeout_s: float = 5.0, rules_ttl_s: float = 60.0, book_ttl_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        from ..execution.polymarket.transport import ClobTransport  # httpx, imported lazily

        self.http = ClobTransport(host, timeout_s)
        self.rules_ttl_s = rules_ttl_s
        self.book_ttl_s = book_ttl_s
        self._now = monotonic
        self._rules: dict[str, tuple[float, Optional[MarketInfo]]] = {}
        self._books: dict[str, tuple[float, OrderBook]] = {}
        self._status: dict[str, tuple[float, dict]] = {}  # condition -> (when, {"closed", "payouts"})

    def close(self) -> None:
        self.http.close()

    def _fetch(self, token_id: str) -> Optional[OrderBook]:
        from ..execution.polymarket.transport import ClobError

        try:
            raw = self.http.request("GET", "/book", params={"token_id": token_id})
        except ClobError as exc:
            if exc.status == 404:  # no order book: closed or unknown market
                self._rules[token_id] = (self._now(), None)
                return None
            raise
        try:
            book = OrderBook(token_id, bids=_levels(raw.get("bids"), True), asks=_levels(raw.get("asks"), False))
            info = MarketInfo(
                token_id=token_id, condition_id=str(raw.get("market", "")).lower(),
                tick_size=Decimal(str(raw.get("tick_size", "0.01"))),
                min_order_size=Decimal(str(raw.get("min_order_size", "5"))),
                neg_risk=bool(raw.get("neg_risk", False)))
        except (AttributeError, TypeError, ValueError, InvalidOperation) as exc:
            raise ValueError(f"GET /book for {token_id[:12]}…: malformed answer ({exc})") from None
        now = self._now()
        status = self._market_status(info.condition_id, now)
        if status["closed"]:
            info = MarketInfo(token_id=info.token_id, condition_id=info.condition_id, tick_size=info.tick_size,
                              min_order_size=info.min_order_size, neg_risk=info.neg_risk, closed=True,
                              payout=status["payouts"].get(token_id))
        self._rules[token_id] = (now, info)
        self._books[token_id] = (now, book)
        return book

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

    def market(self, token_id: str) -> Optional[MarketInfo]:
        cached = self._rules.get(token_id)
        if cached is None or self._now() - cached[0] > self.rules_ttl_s:
            self._fetch(token_id)
            cached = self._rules.get(token_id)
        return cached[1] if cached else None

    def book(self, token_id: str) -> Optional[OrderBook]:
        cached = self._books.get(token_id)
        if cached is not None and self._now() - cached[0] <= self.book_ttl_s:
            return cached[1]
        return self._fetch(token_id)


def _levels(rows: Any, best_high: bool) -> tuple[PriceLevel, ...]:
    levels = [PriceLevel(Decimal(str(r["price"])), Decimal(str(r["size"]))) for r in rows or ()]
    return tuple(sorted(levels, key=lambda lv: lv.price, reverse=best_high))
