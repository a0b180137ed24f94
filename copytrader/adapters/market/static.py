"""Static market data: books and market rules from a JSON file or from code."""
from __future__ import annotations

import bisect
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Optional

import attrs

from ...domain.model import MarketInfo, OrderBook, PriceLevel
from ...ports import Clock


class MarketDataError(ValueError):
    pass


class StaticMarketData:
    """Implements MarketData from fixed snapshots.

    File format (``markets.json``)::

        {"markets": [{"condition_id": "0x…", "tick_size": "0.01", "min_order_size": "5",
                      "neg_risk": false, "closed": false, "resolved_at": null,
                      "tokens": [{"token_id": "…", "outcome": "Yes", "winner": null,
                                  "book": {"bids": [["0.51", "100"]], "asks": [["0.53", "80"]]},
                                  "books": [{"at": 1793491200, "bids": [], "asks": []}]}]}]}

    ``book`` is one snapshot valid at all times. ``books`` (optional) is a
    history: with a clock, the latest snapshot at or before ``now`` is used,
    so a replay meets the book as it was. A market with ``closed: true`` and a
    ``resolved_at`` time is open before that time and resolved after it;
    ``winner`` gives the payout (1 or 0) once resolved.
    """

    def __init__(self, markets: Iterable[MarketInfo] = (), books: Iterable[OrderBook] = (),
                 clock: Optional[Clock] = None) -> None:
        self._markets = {m.token_id: m for m in markets}
        self._books: dict[str, list[tuple[int, OrderBook]]] = {}
        self._resolved_at: dict[str, int] = {}
        self.clock = clock
        for b in books:
            self._books[b.token_id] = [(-1, b)]

    def _now(self) -> int:
        return int(self.clock.now().timestamp()) if self.clock is not None else 2**62

    def market(self, token_id: str) -> Optional[MarketInfo]:
        info = self._markets.get(token_id)
        at = self._resolved_at.get(token_id)
        if info is not None and at is not None and self._now() < at:
            return attrs.evolve(info, closed=False, payout=None)
        return info

    def book(self, token_id: str) -> Optional[OrderBook]:
        timeline = self._books.get(token_id)
        if not timeline:
            return None
        if len(timeline) == 1 and timeline[0][0] == -1:  # one snapshot, valid at all times: no clock read
            return timeline[0][1]
        index = bisect.bisect_right(timeline, self._now(), key=lambda entry: entry[0]) - 1
        return timeline[max(index, 0)][1] if index >= 0 else OrderBook(token_id)

    def put(self, market: MarketInfo, book: Optional[OrderBook] = None) -> None:
        self._markets[market.token_id] = market
        if book is not None:
            self._books[book.token_id] = [(-1, book)]

    @classmethod
    def from_file(cls, path: str | Path, clock: Optional[Clock] = None) -> "StaticMarketData":
        try:
            data = json.loads(Path(path).read_text(), parse_float=Decimal)
        except OSError as exc:
            raise MarketDataError(f"cannot read market file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise MarketDataError(f"market file {path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data, clock)
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise MarketDataError(f"market file {path}: {exc.__class__.__name__} {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], clock: Optional[Clock] = None) -> "StaticMarketData":
        out = cls(clock=clock)
        for m in data["markets"]:
            closed = bool(m.get("closed", False))
            resolved_at = m.get("resolved_at")
            for t in m["tokens"]:
                token = str(t["token_id"])
                winner = t.get("winner")
                payout = None if not closed or winner is None else Decimal(1 if winner else 0)
                out._markets[token] = MarketInfo(
                    token_id=token, condition_id=str(m["condition_id"]).lower(),
                    tick_size=Decimal(str(m.get("tick_size", "0.01"))),
                    min_order_size=Decimal(str(m.get("min_order_size", "5"))),
                    neg_risk=bool(m.get("neg_risk", False)), closed=closed, payout=payout)
                if resolved_at is not None:
                    out._resolved_at[token] = int(resolved_at)
                timeline = [(-1, _book(token, t["book"]))] if t.get("book") is not None else []
                timeline += sorted(((int(b["at"]), _book(token, b)) for b in t.get("books", ())),
                                   key=lambda entry: entry[0])
                if timeline:
                    out._books[token] = timeline
        return out


def _book(token_id: str, raw: dict[str, Any]) -> OrderBook:
    return OrderBook(token_id=token_id, bids=_levels(raw.get("bids", ()), reverse=True),
                     asks=_levels(raw.get("asks", ()), reverse=False))


def _levels(rows: Iterable[Any], reverse: bool) -> tuple[PriceLevel, ...]:
    levels = [PriceLevel(Decimal(str(p)), Decimal(str(s))) for p, s in rows]
    return tuple(sorted(levels, key=lambda lv: lv.price, reverse=reverse))
