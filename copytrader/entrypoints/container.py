"""The composition root: one DI container wires adapters into the use cases.

Profiles pick the adapters (``providers.Selector`` on config values). A
paper replay without a market file (``market_kind``) gets the leaders' own
prices as its books, as ``copytrader backtest`` does. Tests
replace providers with ``container.<name>.override(...)``; nothing is
monkeypatched. Live adapters (CLOB SDK, web3) are imported only inside the
factories that build them, so the paper profile never loads them.
"""
from __future__ import annotations

import logging

import attrs
from .di import containers, providers

from ..adapters.alerts.log import LogAlerter, RecordingAlerter
from ..adapters.clock import ManualClock, SystemClock
from ..adapters.execution.mock import PaperExecutor
from ..adapters.feeds.memory import MemoryFeed
from ..adapters.feeds.replay import ReplayFeed
from ..adapters.market.leader_price import LeaderPriceMarket
from ..adapters.market.static import StaticMarketData
from ..adapters.storage.memory import MemoryStore
from ..application.service import CopyService
from .config import Config, ConfigError

log = logging.getLogger("copytrader")


def _sqlite_store(path: str, read_only: bool = False, lock: bool = True, create: bool = True,
                  group_rows: int = 1, group_ms: int = 100):
    from ..adapters.storage.sqlite import SqliteStore

    return SqliteStore(path, read_only=read_only, lock=lock, create=create, group_rows=group_rows,
                       group_ms=group_ms)


def _postgres_store(url: str, schema: str, read_only: bool = False, lock: bool = True, create: bool = True):
    from ..adapters.storage.postgres import PostgresStore

    return PostgresStore(url, schema, read_only=read_only, lock=lock, create=create)


PRODUCTION_CLOB = "https://clob.polymarket.com"


def _clob_market(settings, rules_ttl_s, book_ttl_s, gamma_host, data_host, ws_url="", ws_stale_s=60):
    from ..adapters.market.clob import ClobMarketData

    return ClobMarketData(settings.host, settings.timeout_s, float(rules_ttl_s), float(book_ttl_s),
                          gamma_host=gamma_host, data_host=data_host,
                          mirror=_book_mirror(settings.host, ws_url, float(ws_stale_s)))


def _book_mirror(host: str, ws_url: str, stale_s: float):
    """The CLOB market channel's book mirror, or None (``market.ws_url`` "" or "off"). The
    production channel's books are never mixed with another CLOB's (a stand-in, a proxy):
    left at its default while ``live.host`` points elsewhere, the mirror is off."""
    from ..adapters.market.clob_stream import DEFAULT_WS_URL, BookMirror

    if ws_url.strip().lower() in ("", "off"):
        return None
    if ws_url == DEFAULT_WS_URL and host.rstrip("/") != PRODUCTION_CLOB:
        log.warning("book mirror off: live.host is %s but market.ws_url is Polymarket's; set market.ws_url "
                    "to that CLOB's market channel", host)
        return None
    return BookMirror(ws_url, stale_s=stale_s)


def _live_executor(settings, key, market, clock, wall, post: bool):
    """Imports the CLOB SDK only now, when a dry-run or live executor is built."""
    if key is None:
        raise ConfigError("the dry-run and live profiles need a private key: set COPYTRADER_PRIVATE_KEY "
                          "or live.key_file (a 0600 file)")
    from ..adapters.execution.polymarket import make_executor

    return make_executor(settings, key, market, clock, post=post, wall=wall,
                         user_ws_url=_user_channel(settings.host, settings.ws_user_url) if post else "")


def _user_channel(host: str, ws_url: str) -> str:
    """The CLOB user channel's URL, or "" (``live.ws_user_url`` "" or "off"). As for the book
    mirror, the production channel is never mixed with another CLOB: left at its default while
    ``live.host`` points elsewhere, it is off (settlement polled over that CLOB's REST)."""
    from ..adapters.execution.polymarket.user_stream import DEFAULT_WS_USER_URL

    if ws_url.strip().lower() in ("", "off"):
        return ""
    if ws_url == DEFAULT_WS_USER_URL and host.rstrip("/") != PRODUCTION_CLOB:
        log.warning("user channel off: live.host is %s but live.ws_user_url is Polymarket's; set "
                    "live.ws_user_url to that CLOB's user channel", host)
        return ""
    return ws_url


def _live_redeemer(settings, key, relayer_key):
    """What builds the live wallet's redeemer when the engine first has something
    to redeem (``application.auto_redeem``); the SDK is imported only then."""
    def build():
        from ..adapters.execution.polymarket.redeem import make_redeemer

        return make_redeemer(settings, key.reveal(), relayer_key)
    return build


def _followed(leaders, store) -> list[str]:
    """Leaders of the config plus those added with `copytrader leaders add`."""
    followed = sorted(set(leaders) | {l.address for l in store.leaders()})
    if not followed:
        raise ConfigError("a live feed needs leaders: add [[leaders]] to the config, set COPYTRADER_LEADERS "
                          "or run `copytrader leaders add --create ADDRESS`")
    return followed


def _data_api_feed(settings, leaders, store, types=None):
    from ..adapters.feeds.data_api import TYPES, DataApiFeed
    from ..adapters.feeds.http import JsonGetter, TokenBucket

    bucket = TokenBucket(float(settings["rate_per_s"]), settings["burst"])
    http = JsonGetter(settings["url"], bucket, timeout_s=float(settings["timeout_s"]))
    return DataApiFeed(http, _followed(leaders, store), poll_interval_s=float(settings["poll_interval_s"]),
                       overlap_s=settings["overlap_s"], lookback_s=settings["lookback_s"], types=types or TYPES)


def _onchain_feed(settings, live, leaders, store):
    from ..adapters.feeds.onchain import OnchainFeed

    rpc_url = settings["rpc_url"] or live.rpc_url
    if not rpc_url:
        raise ConfigError("the on-chain feed needs a Polygon JSON-RPC URL: set feed.rpc_url (or live.rpc_url)")
    scheme = settings["ws_url"].split("://", 1)[0].lower() if "://" in settings["ws_url"] else ""
    if settings["ws_url"] and scheme not in ("ws", "wss"):
        raise ConfigError(f"config feed.ws_url: expected the node's WebSocket JSON-RPC URL (ws:// or wss://), got "
                          f"{scheme + '://…' if scheme else 'no URL scheme'}; or leave it empty to poll")
    return OnchainFeed(rpc_url, _followed(leaders, store), [live.exchange, live.neg_risk_exchange, live.exchange_v3],
                       confirmations=settings["confirmations"], max_range=settings["max_range"],
                       start_block=settings["start_block"], ws_url=settings["ws_url"],
                       poll_interval_s=float(settings["poll_interval_s"]), timeout_s=float(settings["timeout_s"]))


def _both_feeds(settings, live, leaders, store):
    from ..adapters.feeds.merged import MergedFeed

    return MergedFeed([_onchain_feed(settings, live, leaders, store),
                       _data_api_feed(settings, leaders, store, types="REDEEM,MERGE,SPLIT")],
                      poll_interval_s=float(settings["poll_interval_s"]))


def _fast_feeds(settings, live, leaders, store):
    """The activity socket in front of ``both``: the chain confirms each hinted fill."""
    from ..adapters.feeds.live_activity import FastFeed

    return FastFeed(settings["rtds_url"], _followed(leaders, store),
                    [_onchain_feed(settings, live, leaders, store),
                     _data_api_feed(settings, leaders, store, types="REDEEM,MERGE,SPLIT")],
                    stale_s=float(settings["rtds_stale_s"]), confirm_s=float(settings["rtds_confirm_s"]),
                    poll_interval_s=float(settings["poll_interval_s"]))


def _static_market(path: str, clock) -> StaticMarketData:
    return StaticMarketData.from_file(path, clock) if path else StaticMarketData(clock=clock)


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    clock = providers.Selector(
        config.clock,
        system=providers.Singleton(SystemClock),
        manual=providers.Singleton(ManualClock),
    )
    # Real time, whatever ``clock`` is (a replay's follows its rows): what the
    # exchange sees (signed order timestamps) and start-up reconciliation use.
    # The test profile has one manual clock for both.
    wall_clock = providers.Selector(
        config.wall_clock,
        system=providers.Singleton(SystemClock),
        clock=clock,
    )
    store = providers.Selector(
        config.store.kind,
        memory=providers.Singleton(MemoryStore),
        sqlite=providers.Singleton(_sqlite_store, path=config.store.path, read_only=config.store.read_only,
                                   lock=config.store.lock, create=config.store.create,
                                   group_rows=config.store.group_commit_rows, group_ms=config.store.group_commit_ms),
        postgres=providers.Singleton(_postgres_store, url=config.store.url, schema=config.store.schema,
                                     read_only=config.store.read_only, lock=config.store.lock,
                                     create=config.store.create),
    )
    market = providers.Selector(
        config.market.kind,
        static=providers.Singleton(_static_market, path=config.market.path, clock=clock),
        leader_price=providers.Singleton(LeaderPriceMarket),
        clob=providers.Singleton(_clob_market, settings=config.live, rules_ttl_s=config.market.rules_ttl_s,
                                 book_ttl_s=config.market.book_ttl_s, gamma_host=config.market.gamma_host,
                                 data_host=config.market.data_host, ws_url=config.market.ws_url,
                                 ws_stale_s=config.market.ws_stale_s),
    )
    # what the file feeds show each trade to before the engine sees it: a market that follows the leaders' prices
    observe = providers.Selector(
        config.market.kind,
        static=providers.Object(None),
        leader_price=market.provided.observe,
        clob=providers.Object(None),
    )
    feed = providers.Selector(
        config.feed.kind,
        none=providers.Singleton(MemoryFeed),
        memory=providers.Singleton(MemoryFeed),
        replay=providers.Singleton(ReplayFeed, path=config.feed.path, clock=clock,
                                   latency_s=config.feed.latency_s, observe=observe),
        data_api=providers.Singleton(_data_api_feed, settings=config.feed, leaders=config.leaders, store=store),
        onchain=providers.Singleton(_onchain_feed, settings=config.feed, live=config.live, leaders=config.leaders,
                                    store=store),
        both=providers.Singleton(_both_feeds, settings=config.feed, live=config.live, leaders=config.leaders,
                                 store=store),
        fast=providers.Singleton(_fast_feeds, settings=config.feed, live=config.live, leaders=config.leaders,
                                 store=store),
    )
    executor = providers.Selector(
        config.profile,
        test=providers.Singleton(PaperExecutor, market=market, clock=clock, fee_rate=config.paper.fee_rate),
        paper=providers.Singleton(PaperExecutor, market=market, clock=clock, fee_rate=config.paper.fee_rate),
        **{"dry-run": providers.Singleton(_live_executor, settings=config.live, key=config.private_key,
                                          market=market, clock=clock, wall=wall_clock, post=False)},
        live=providers.Singleton(_live_executor, settings=config.live, key=config.private_key, market=market,
                                 clock=clock, wall=wall_clock, post=True),
    )
    alerter = providers.Selector(
        config.profile,
        test=providers.Singleton(RecordingAlerter),
        paper=providers.Singleton(LogAlerter),
        **{"dry-run": providers.Singleton(LogAlerter)},
        live=providers.Singleton(LogAlerter),
    )
    # live.auto_redeem on the live profile: the engine redeems resolved markets by itself
    redeemer = providers.Selector(
        config.redeem,
        off=providers.Object(None),
        auto=providers.Singleton(_live_redeemer, settings=config.live, key=config.private_key,
                                 relayer_key=config.relayer_key),
    )
    service = providers.Singleton(
        CopyService, store=store, executor=executor, market=market, alerter=alerter, clock=clock,
        settings=config.engine, wall=wall_clock, redeemer=redeemer,
    )


def market_kind(cfg: Config) -> str:
    """The market data a config gets: "leader_price" for a paper replay with
    no market file (fills at the leader's price, no slippage, no depth),
    else the config's ("static" from a file, or "clob")."""
    if cfg.market_kind == "static" and not cfg.market_path and cfg.feed_kind == "replay" \
            and cfg.profile in ("test", "paper"):
        return "leader_price"
    return cfg.market_kind


def build_container(cfg: Config, access: str = "write", create: bool = True) -> Container:
    """A container for ``cfg``. The test profile uses in-memory adapters and a
    manual clock; replays use a manual clock moved by the feed.

    ``access``: "write" (the engine: takes the single-writer lock), "read"
    (reports next to a running engine) or "control" (halt/resume next to a
    running engine: writes the trading state without taking the lock).
    ``create=False``: a database (or follower schema) that does not exist is
    refused rather than created; reading never creates one."""
    test = cfg.profile == "test"
    container = Container()
    container.config.from_dict({
        "profile": cfg.profile,
        "clock": "manual" if test or cfg.feed_kind == "replay" else "system",
        "wall_clock": "clock" if test else "system",
        "store": {"kind": "memory" if test else cfg.store_kind, "path": cfg.store_path,
                  "url": cfg.values["store"]["url"], "schema": cfg.values["store"]["schema"],
                  "read_only": access == "read", "lock": access == "write", "create": create,
                  "group_commit_rows": cfg.values["store"]["group_commit_rows"],
                  "group_commit_ms": cfg.values["store"]["group_commit_ms"]},
        "market": {"kind": market_kind(cfg), "path": cfg.market_path,
                   "rules_ttl_s": cfg.values["market"]["rules_ttl_s"], "book_ttl_s": cfg.values["market"]["book_ttl_s"],
                   "gamma_host": cfg.values["live"]["gamma_host"], "data_host": cfg.values["feed"]["url"],
                   "ws_url": cfg.values["market"]["ws_url"], "ws_stale_s": cfg.values["market"]["ws_stale_s"]},
        "live": cfg.live,
        "private_key": cfg.private_key,
        "relayer_key": cfg.relayer_key,
        "redeem": "auto" if cfg.profile == "live" and cfg.live.auto_redeem and cfg.private_key else "off",
        "feed": {**cfg.values["feed"], "kind": "memory" if test and cfg.feed_kind == "none" else cfg.feed_kind},
        "leaders": list(cfg.engine.leaders),
        "paper": {"fee_rate": cfg.fee_rate},
        # live, a resolved market's winnings are tokens until redeemed: pending, not paid
        "engine": attrs.evolve(cfg.engine, pay_at_resolution=cfg.profile != "live"),
    })
    return container
