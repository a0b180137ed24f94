"""Static market data: books and market rules from a JSON file or from code."""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Optional

from ...domain.model import MarketInfo, OrderBook, PriceLevel


class MarketDataError(ValueError):
    pass


class StaticMarketData:
    """Implements MarketData from fixed snapshots.

    File format (``markets.json``)::

        {"markets": [{"condition_id": "0x…", "tick_size": "0.01", "min_order_size": "5",
                      "neg_risk": false, "closed": false,
                      "tokens": [{"token_id": "…", "outcome": "Yes", "winner": null,
                                  "book": {"bids": [["0.51", "100"]], "asks": [["0.53", "80"]]}}]}]}
    """

    def __init__(self, markets: Iterable[MarketInfo] = (), books: Iterable[OrderBook] = ()) -> None:
        self._markets = {m.token_id: m for m in markets}
        self._books = {b.token_id: b for b in books}

    def market(self, token_id: str) -> Optional[MarketInfo]:
        return self._markets.get(token_id)

    def book(self, token_id: str) -> Optional[OrderBook]:
        return self._books.get(token_id)

    def put(self, market: MarketInfo, book: Optional[OrderBook] = None) -> None:
        self._markets[market.token_id] = market
        if book is not None:
            self._books[book.token_id] = book

    @classmethod
    def from_file(cls, path: str | Path) -> "StaticMarketData":
        try:
            data = json.loads(Path(path).read_text(), parse_float=Decimal)
        except OSError as exc:
            raise MarketDataError(f"cannot read market file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise MarketDataError(f"market file {path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise MarketDataError(f"market file {path}: {exc.__class__.__name__} {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StaticMarketData":
        markets, books = [], []
        for m in data["markets"]:
            closed = bool(m.get("closed", False))
            for t in m["tokens"]:
                winner = t.get("winner")
                payout = None if not closed or winner is None else Decimal(1 if winner else 0)
                markets.append(MarketInfo(
                    token_id=str(t["token_id"]), condition_id=str(m["condition_id"]).lower(),
                    tick_size=Decimal(str(m.get("tick_size", "0.01"))),
                    min_order_size=Decimal(str(m.get("min_order_size", "5"))),
                    neg_risk=bool(m.get("neg_risk", False)), closed=closed, payout=payout))
                book = t.get("book") or {}
                books.append(OrderBook(
                    token_id=str(t["token_id"]),
                    bids=_levels(book.get("bids", ()), reverse=True),
                    asks=_levels(book.get("asks", ()), reverse=False)))
        return cls(markets, books)


def _levels(rows: Iterable[Any], reverse: bool) -> tuple[PriceLevel, ...]:
    levels = [PriceLevel(Decimal(str(p)), Decimal(str(s))) for p, s in rows]
    return tuple(sorted(levels, key=lambda lv: lv.price, reverse=reverse))
