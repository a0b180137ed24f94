"""Public fakes for apps that embed or test against copytrader.

Every fake implements the same port as the real adapter::

    from copytrader.testing import make_app, make_trade, book
    app, fakes = make_app()
    fakes.market.put(*book("123", asks=[("0.50", "100")]))
    app.process(make_trade(token_id="123", price="0.50"))
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Optional

import attrs
from .entrypoints.di import providers

from .adapters.alerts.log import Alert, RecordingAlerter
from .adapters.clock import ManualClock
from .adapters.execution.mock import PaperExecutor
from .adapters.feeds.memory import MemoryFeed
from .adapters.market.static import StaticMarketData
from .adapters.storage.memory import MemoryStore
from .domain.model import LeaderTrade, MarketInfo, OrderBook, PriceLevel
from .entrypoints.api import App, connect

LEADER = "0x" + "ab" * 20
TOKEN = "1" * 40
CONDITION = "0x" + "cd" * 32


def v2_position_id(condition: int, outcome: int = 0, module: int = 1) -> str:
    """A Protocol V2 position id as PositionManager builds it: module (1 binary, 2 neg-risk,
    3 combinatorial) in the top byte, the condition's bits above bit 104, the outcome index last."""
    return str((module << 248) | (condition << 104) | outcome)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def make_trade(
    leader: str = LEADER, token_id: str = TOKEN, condition_id: str = CONDITION, side: str = "BUY",
    size: Any = "100", price: Any = "0.50", timestamp: Optional[int] = None, tx_hash: Optional[str] = None,
    kind: str = "TRADE", title: str = "Test market", seq: int = 0,
) -> LeaderTrade:
    """A leader fill with sensible defaults; ``seq`` makes the tx hash unique."""
    size, price = Decimal(str(size)), Decimal(str(price))
    return LeaderTrade(
        leader=leader, token_id=token_id, condition_id=condition_id, side=side, size=size, price=price,
        usdc_size=size * price if price.is_finite() and size.is_finite() else Decimal(0),
        timestamp=int(T0.timestamp()) if timestamp is None else timestamp,
        tx_hash=tx_hash or "0x" + f"{seq:064x}", kind=kind, title=title,
    )


def book(token_id: str = TOKEN, bids: Iterable[tuple[Any, Any]] = (), asks: Iterable[tuple[Any, Any]] = (),
         condition_id: str = CONDITION, tick_size: str = "0.01", min_order_size: str = "5",
         closed: bool = False, payout: Optional[str] = None) -> tuple[MarketInfo, OrderBook]:
    """A market and its book, ready for ``StaticMarketData.put(*book(...))``."""
    levels = lambda rows, rev: tuple(sorted((PriceLevel(Decimal(str(p)), Decimal(str(s))) for p, s in rows),
                                            key=lambda lv: lv.price, reverse=rev))
    info = MarketInfo(token_id=token_id, condition_id=condition_id, tick_size=Decimal(tick_size),
                      min_order_size=Decimal(min_order_size), closed=closed,
                      payout=None if payout is None else Decimal(payout))
    return info, OrderBook(token_id, bids=levels(bids, True), asks=levels(asks, False))


@attrs.define
class Fakes:
    store: MemoryStore
    market: StaticMarketData
    feed: MemoryFeed
    clock: ManualClock
    alerter: RecordingAlerter


def make_app(overrides: Optional[dict[str, dict[str, Any]]] = None, now: datetime = T0,
             store: Any = None, environ: Optional[dict[str, str]] = None,
             profile: str = "test", config: Any = None) -> tuple[App, Fakes]:
    """An app with fresh fakes you can drive (memory store, feed, manual
    clock, recording alerter; static market data on the test/paper profiles).
    ``overrides`` are config sections (``{"risk": {"max_trade_usdc": "5"}}``);
    ``environ`` stands for ``COPYTRADER_*`` variables (the real ones are ignored);
    ``store`` replaces the memory store (e.g. a SQLite store in a temp dir);
    ``profile`` "dry-run" or "live" keeps the real CLOB adapters (point
    ``live.host`` at a stand-in); ``config``: a TOML path (e.g. with ``[[leaders]]``)."""
    app = connect(profile=profile, config=config, overrides=overrides, environ=environ or {}, allow_live=True)
    fakes = Fakes(store=store or MemoryStore(), market=StaticMarketData(), feed=MemoryFeed(),
                  clock=ManualClock(now), alerter=RecordingAlerter())
    c = app.container
    c.store.override(providers.Object(fakes.store))
    if profile in ("test", "paper"):
        c.market.override(providers.Object(fakes.market))
    c.feed.override(providers.Object(fakes.feed))
    c.clock.override(providers.Object(fakes.clock))
    c.wall_clock.override(providers.Object(fakes.clock))  # one time for the fakes (orders are stamped with it too)
    c.alerter.override(providers.Object(fakes.alerter))
    return app, fakes


__all__ = [
    "Alert", "App", "Fakes", "LeaderTrade", "ManualClock", "MemoryFeed", "MemoryStore", "PaperExecutor",
    "RecordingAlerter", "StaticMarketData", "book", "make_app", "make_trade",
]
