"""The embedding API: ``copytrader.connect(...)`` returns an ``App``."""
from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Optional, Union

from ..adapters.feeds.activity import parse_activity_row
from ..application.report import latest_marks
from ..application.runner import RunSummary, run, settling
from ..application.service import CopyService, Outcome
from ..application.supervisor import close_all
from ..domain.model import IntentRecord, LeaderTrade
from ..domain.portfolio import Position
from ..ports import LeaderFeed, Quarantined, StoredState
from .config import Config, ConfigError, load_config
from .container import Container, build_container


class App:
    """A wired copytrader engine. Use as a context manager, or call close().
    Left by an exception, it removes a SQLite database it created if nothing
    was stored in it (a failed command leaves nothing behind)."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._feed: Optional[LeaderFeed] = None  # made by this app: closed with it
        self._service: Optional[CopyService] = None  # its executor and market data: closed with it

    @property
    def service(self) -> CopyService:
        self._service = self.container.service()
        return self._service

    def feed(self) -> LeaderFeed:
        """The configured feed (made once), closed with the app."""
        self._feed = self.container.feed()
        return self._feed

    def _close_opened(self) -> None:
        """The feed's and executor's sockets (their threads) and HTTP pools."""
        service, self._service = self._service, None
        feed, self._feed = self._feed, None
        close_all("app", [feed, *((service.executor, service.market) if service is not None else ())])

    def process(self, trade: Union[LeaderTrade, Mapping[str, Any]]) -> Outcome:
        """Handle one leader trade: a ``LeaderTrade`` or a Data API activity row."""
        if not isinstance(trade, LeaderTrade):
            parsed = parse_activity_row(dict(trade), "api")
            if isinstance(parsed, Quarantined):
                return self.service.quarantine(parsed)
            trade = parsed
        return self.service.handle(trade)

    def run(self, feed: Optional[LeaderFeed] = None, max_items: Optional[int] = None,
            stop: Optional[threading.Event] = None,
            on_outcome: Callable[[Outcome], None] = lambda outcome: None) -> RunSummary:
        """Process the configured feed (or ``feed``) from its stored cursor.
        ``stop``, once set (by a signal handler or another thread), ends the
        run after the trade in hand; a polling feed's wait between polls ends
        at once. ``on_outcome`` sees each outcome as it is recorded."""
        feed = feed or self.feed()
        stop_when = getattr(feed, "stop_when", None)  # a polling feed
        if stop_when is not None:
            if stop is not None:
                stop_when(settling(self.service, stop.is_set), stop.wait)  # provisional fills settle between polls
            feed.before_wait(self.service.store.flush)  # nothing comes while it waits: the group commit first
        return run(self.service, feed, max_items=max_items, should_stop=stop.is_set if stop else lambda: False,
                   on_outcome=on_outcome)

    def positions(self, include_closed: bool = False) -> list[Position]:
        return self.container.store().positions(include_closed)

    def marks(self, token_ids: Collection[str]) -> dict[str, Decimal]:
        """The leaders' last traded price of each token, where one is recorded:
        what positions are valued at (``application.report.MARKING``)."""
        return latest_marks(self.container.store().trade_prices_newest_first(token_ids), token_ids)

    def history(self, limit: int = 100, offset: int = 0) -> list[IntentRecord]:
        return self.container.store().history(limit, offset)

    def state(self) -> StoredState:
        return self.service.state

    def halt(self, reason: str = "halted by the embedding app") -> None:
        self.service.halt(reason)

    def resume(self) -> None:
        self.service.resume()

    def close(self) -> None:
        """Close what the app made (see ``_close_opened``), then the store."""
        self._close_opened()
        self.container.store().close()

    def __enter__(self) -> "App":
        return self

    def __exit__(self, exc_type: Optional[type], *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        self._close_opened()
        from ..adapters.storage.sqlite import SqliteStore, StoreError

        try:
            store = self.container.store()
        except StoreError:
            return  # it could not open: nothing to close
        if isinstance(store, SqliteStore):
            store.discard()  # a database made for this and left empty is not left behind
        else:
            store.close()


def connect(
    profile: Optional[str] = None,
    config: Union[Config, str, Path, None] = None,
    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
    environ: Optional[Mapping[str, str]] = None,
    allow_live: bool = False,
) -> App:
    """Build an engine. ``config`` is a ``Config`` or a TOML path; ``profile``
    ("test" or "paper") and ``overrides`` (``{"risk": {"max_trade_usdc": 5}}``)
    take precedence. ``environ`` defaults to ``os.environ``; pass ``{}`` to
    ignore ``COPYTRADER_*`` variables. The live profile sends real orders and
    needs ``allow_live=True``."""
    if not isinstance(config, Config):
        layered = {k: dict(v) for k, v in (overrides or {}).items()}
        if profile is not None:
            layered.setdefault("", {})["profile"] = profile
        config = load_config(config, environ=environ, overrides=layered)
    elif profile is not None and profile != config.profile:
        raise ConfigError(f"config profile: {config.profile!r} given, but profile={profile!r} asked")
    if config.profile == "live" and not allow_live:
        raise ConfigError("profile live sends real orders: pass allow_live=True (CLI: --live)")
    return App(build_container(config))
