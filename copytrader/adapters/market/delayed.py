"""Market data for a follower that arrives late: each copy is priced from the
market's own trades *after* the leader's, as if our order reached the book
``delay_s`` seconds after the leader's fill (``backtest --delay-s``, ``scout``).

The model. For a leader fill at time t in token T, the book our copy meets
is made of the market's trades of T (Data API ``GET /trades?market=``
rows, taker side) printed in ``[t + delay_s, t + delay_s + window_s]``, in
the order they printed: the takers' BUYs are the asks (what a buyer paid),
the takers' SELLs the bids. The paper executor walks them as it walks any
book: it takes each print's size at its price while the price is within our
limit (the leader's price moved by ``follower.max_slippage``) and stops at
the first print beyond it; the risk kernel compares the first print with
the leader's price (``risk.max_slippage``); the taker fee is the paper
executor's (``paper.fee_rate``). A copy that would not have filled is recorded
with the engine's own reason: ``no_liquidity`` (no trade on our side in the
window), ``slippage`` (the first print too far from the leader's price) or
not filled (FOK/FAK: the prints within the limit do not hold our size).

Its limits: a trade print shows that liquidity was there at that price,
not how much more was (the depth behind it) nor what rested between prints;
prints are per second (the Data API's timestamps), so a delay below a second
rounds up to the next second's prints; our own order would have moved the
market and taken a print someone else took; and a window with no trade on
our side says nothing was seen, not that nothing was there. Market rules
(tick size, minimum size) come from the leaders' prices as in
``leader_price``.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ...domain.model import LeaderTrade, MarketInfo, OrderBook, PriceLevel
from ..feeds.activity import DECODER, parse_activity_row
from ..feeds.files import iter_entries
from .leader_price import LeaderPriceMarket

DEFAULT_WINDOW_S = 60


class Tape:
    """The market trades of each token, sorted by time: (timestamps, prints)."""

    def __init__(self, trades: Iterable[LeaderTrade] = ()) -> None:
        by_token: dict[str, list[LeaderTrade]] = defaultdict(list)
        seen: set[str] = set()
        for t in trades:
            if t.is_trade and t.id not in seen and t.price.is_finite() and 0 < t.price < 1 and t.size > 0:
                seen.add(t.id)
                by_token[t.token_id].append(t)
        self.prints: dict[str, list[LeaderTrade]] = {}
        self.times: dict[str, list[int]] = {}
        for token, rows in by_token.items():
            rows.sort(key=lambda t: t.timestamp)  # stable: rows of one second keep the tape's order
            self.prints[token] = rows
            self.times[token] = [t.timestamp for t in rows]

    @classmethod
    def from_rows(cls, rows: Iterable[object]) -> "Tape":
        """``GET /trades`` rows: an ``/activity`` TRADE row's fields without ``type``."""
        parsed = (parse_activity_row({"type": "TRADE", **r} if isinstance(r, dict) else r, "trades") for r in rows)
        return cls(t for t in parsed if isinstance(t, LeaderTrade))

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> "Tape":
        """Files of ``GET /trades`` rows (JSONL or a JSON array); unreadable rows are skipped."""
        def rows():
            for path in paths:
                for entry, is_line in iter_entries(Path(path)):
                    if is_line:
                        try:
                            entry = DECODER.decode(entry)
                        except ValueError:
                            continue
                    yield entry
        return cls.from_rows(rows())

    def window(self, token: str, start: float, end: float) -> list[LeaderTrade]:
        times = self.times.get(token)
        if not times:
            return []
        i = bisect_left(times, start)
        out = []
        for t in self.prints[token][i:]:
            if t.timestamp > end:
                break
            out.append(t)
        return out

    def __len__(self) -> int:
        return sum(len(v) for v in self.prints.values())


class DelayedFillMarket:
    """Implements MarketData: the book of a token is the tape after the
    latest leader trade seen in it (``observe``) plus ``delay_s``."""

    def __init__(self, tape: Tape, delay_s: float, window_s: float = DEFAULT_WINDOW_S,
                 min_order_size: Decimal = Decimal("5")) -> None:
        if delay_s < 0 or window_s < 0:
            raise ValueError("delay_s and window_s are seconds, 0 or more")
        self.tape, self.delay_s, self.window_s = tape, delay_s, window_s
        self._rules = LeaderPriceMarket(min_order_size)
        self._books: dict[str, OrderBook] = {}

    def observe(self, trade: LeaderTrade) -> None:
        self._rules.observe(trade)
        if not trade.is_trade or not trade.token_id:
            return
        start = trade.timestamp + self.delay_s
        prints = self.tape.window(trade.token_id, start, start + self.window_s)
        asks = tuple(PriceLevel(p.price, p.size) for p in prints if p.side == "BUY")
        bids = tuple(PriceLevel(p.price, p.size) for p in prints if p.side == "SELL")
        self._books[trade.token_id] = OrderBook(trade.token_id, bids=bids, asks=asks)

    def market(self, token_id: str) -> Optional[MarketInfo]:
        return self._rules.market(token_id)

    def book(self, token_id: str) -> Optional[OrderBook]:
        return self._books.get(token_id)
