"""Static market data: books and market rules from a JSON file or from code."""
from __future__ import annotations

import bisect
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Optional

import attrs

from ...domain.model import MarketInfo, OrderBook, PriceLevel, exact_decimal
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
            data = json.loads(Path(path).read_text(), parse_float=exact_decimal)
        except OSError as exc:
            raise MarketDataError(f"cannot read market file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise MarketDataError(f"market file {path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data, clock)
        except MarketDataError as exc:
            raise MarketDataError(f"market file {path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any, clock: Optional[Clock] = None) -> "StaticMarketData":
        """Markets from the parsed file; ``MarketDataError`` names the first
        entry of the wrong shape (``markets[0].tokens[1].book.asks[2]``) and
        what it should be."""
        out = cls(clock=clock)
        if not isinstance(data, dict) or "markets" not in data:
            what = 'object has no "markets"' if isinstance(data, dict) else f"is {_shown(data)}"
            raise MarketDataError(f'the top level {what}: the file must be {{"markets": [...]}}')
        first_seen: dict[str, str] = {}
        for i, m in enumerate(_list(data["markets"], "markets")):
            where = f"markets[{i}]"
            _object(m, where)
            condition = _text(_field(m, "condition_id", where), f"{where}.condition_id")
            closed = _flag(m.get("closed", False), f"{where}.closed")
            neg_risk = _flag(m.get("neg_risk", False), f"{where}.neg_risk")
            version = _text(m.get("version", "v1"), f"{where}.version")  # an unknown one is refused per trade
            tick = _number(m.get("tick_size", "0.01"), f"{where}.tick_size", low=0, high=1)
            minimum = _number(m.get("min_order_size", "5"), f"{where}.min_order_size", low=0, low_ok=True)
            resolved_at = m.get("resolved_at")
            if resolved_at is not None:
                resolved_at = _time(resolved_at, f"{where}.resolved_at")
            for j, t in enumerate(_list(_field(m, "tokens", where), f"{where}.tokens")):
                at = f"{where}.tokens[{j}]"
                _object(t, at)
                token = _text(_field(t, "token_id", at), f"{at}.token_id")
                if token in first_seen:
                    raise MarketDataError(f"{at}.token_id {token} is already in {first_seen[token]}: "
                                          "give each token once")
                first_seen[token] = at
                winner = t.get("winner")
                if not (winner is None or isinstance(winner, bool) or (type(winner) is int and winner in (0, 1))):
                    raise MarketDataError(f"{at}.winner must be true, false or null, got {_shown(winner)}")
                payout = None if not closed or winner is None else Decimal(1 if winner else 0)
                out._markets[token] = MarketInfo(token_id=token, condition_id=condition.lower(), tick_size=tick,
                                                 min_order_size=minimum, neg_risk=neg_risk, closed=closed,
                                                 payout=payout, version=version)
                if resolved_at is not None:
                    out._resolved_at[token] = resolved_at
                timeline = [(-1, _book(token, t["book"], f"{at}.book"))] if t.get("book") is not None else []
                history = []
                for k, b in enumerate(_list(t.get("books", []), f"{at}.books")):
                    snapshot = f"{at}.books[{k}]"
                    history.append((_time(_field(_object(b, snapshot), "at", snapshot), f"{snapshot}.at"),
                                    _book(token, b, snapshot)))
                timeline += sorted(history, key=lambda entry: entry[0])
                if timeline:
                    out._books[token] = timeline
        return out


def _shown(value: Any) -> str:
    """A value as a message shows it: as JSON, cut short."""
    text = str(value) if isinstance(value, Decimal) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MarketDataError(f"{where} must be an object, got {_shown(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MarketDataError(f"{where} must be a list, got {_shown(value)}")
    return value


def _field(entry: dict[str, Any], name: str, where: str) -> Any:
    if name not in entry:
        raise MarketDataError(f"{where} has no {name}: add it")
    return entry[name]


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise MarketDataError(f"{where} must be a non-empty string, got {_shown(value)}")
    return str(value).strip()


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise MarketDataError(f"{where} must be true or false, got {_shown(value)}")
    return value


def _number(value: Any, where: str, low: Any = None, high: Any = None, low_ok: bool = False) -> Decimal:
    """A finite decimal (a JSON number or a numeric string) above ``low`` (or at it
    with ``low_ok``) and below ``high``."""
    number = None
    if isinstance(value, (str, int, Decimal)) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            pass
    if number is None or not number.is_finite():
        raise MarketDataError(f"{where} must be a number, got {_shown(value)}")
    too_low = low is not None and (number < low if low_ok else number <= low)
    too_high = high is not None and number >= high
    if too_low or too_high:
        bounds = [f"{'at least' if low_ok else 'above'} {low}"] if low is not None else []
        bounds += [f"below {high}"] if high is not None else []
        raise MarketDataError(f"{where} must be {' and '.join(bounds)}, got {_shown(value)}")
    return number


def _time(value: Any, where: str) -> int:
    """Unix seconds: a whole number (or a string of digits)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise MarketDataError(f"{where} must be a Unix time in whole seconds, got {_shown(value)}")
    return int(value)


def _book(token_id: str, raw: Any, where: str) -> OrderBook:
    _object(raw, where)
    return OrderBook(token_id=token_id, bids=_levels(raw.get("bids", []), f"{where}.bids", reverse=True),
                     asks=_levels(raw.get("asks", []), f"{where}.asks", reverse=False))


def _levels(rows: Any, where: str, reverse: bool) -> tuple[PriceLevel, ...]:
    levels = []
    for n, row in enumerate(_list(rows, where)):
        if not isinstance(row, list) or len(row) != 2:
            raise MarketDataError(f"{where}[{n}] must be a [price, size] pair, got {_shown(row)}")
        levels.append(PriceLevel(_number(row[0], f"{where}[{n}] price", low=0, high=1),
                                 _number(row[1], f"{where}[{n}] size", low=0)))
    return tuple(sorted(levels, key=lambda lv: lv.price, reverse=reverse))
