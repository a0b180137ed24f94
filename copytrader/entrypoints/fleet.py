"""Several follower accounts in one deployment (``copytrader serve``).

Config: ``[[followers]]`` tables, each with its own ``name``, key source
(``key_env``: the name of an environment variable, or ``key_file``: a 0600
file), ``leaders``, limits (``[followers.risk]``, ``[followers.sizing]``, the
``[follower]`` settings such as ``bankroll``) and ``[[followers.alerts]]``.
Everything not given is inherited from the top-level config. Without
``[[followers]]`` the top-level config is the one follower.

Each follower gets its own store namespace (its own PostgreSQL schema
``<store.schema>_<name>``, or its own SQLite file ``<stem>-<name>.db``), so the
Store port stays a view of one follower, trading state included.

Each follower runs in its own thread: its trades are handled in order, the
followers in parallel. A follower's failure is logged, alerted and retried
after ``service.restart_backoff_s``; a halt stops only that follower. A
follower's store is opened with its single-writer lock (PostgreSQL: an
advisory lock per follower schema; SQLite: the file lock), so among several
workers (hosts) sharing a database exactly one trades for a follower; the
others stand by and take over when it goes away.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import attrs

from ..application.supervisor import Session, Standby, Supervisor, SupervisorSettings, close_all
from ..domain.model import exact_decimal
from .config import Config, ConfigError, Secret, _leader, check_key, load_config, read_key_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("copytrader.service")

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_FOLLOWER_TABLE = ("bankroll", "max_slippage", "order_type", "max_trade_age_s")
FOLLOWER_KEYS = ("name", "key_env", "key_file", "leaders", "risk", "sizing", "alerts", *_FOLLOWER_TABLE)
ALERT_KINDS = ("telegram", "discord", "slack")
ALERT_KEYS = ("kind", "events", "token", "token_env", "chat_id", "url", "url_env", "api_url", "window_s",
              "min_interval_s", "max_queue", "max_attempts", "commands", "allowed_chat_ids", "poll_timeout_s")
CHAT_ID_RE = re.compile(r"^-?[0-9]{1,20}$")
BOT_TOKEN_RE = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$")


@attrs.frozen
class AlertSpec:
    kind: str
    events: tuple[str, ...]
    secret: Secret = attrs.field(repr=False)  # bot token (telegram) or webhook URL
    chat_id: str = ""
    api_url: str = "https://api.telegram.org"
    window_s: float = 5.0
    min_interval_s: float = 1.0
    max_queue: int = 1000
    max_attempts: int = 4
    # telegram chat control (`serve`): the commands, from these chats (chat_id and allowed_chat_ids)
    commands: bool = False
    chats: tuple[str, ...] = ()
    poll_timeout_s: int = 30

    def build(self, follower: str, **kw: Any) -> Any:
        from ..adapters.alerts.webhook import DiscordChannel, SlackChannel, TelegramChannel, WebhookAlerter

        if self.kind == "telegram":
            channel: Any = TelegramChannel(self.secret.reveal(), self.chat_id, base_url=self.api_url)
        elif self.kind == "discord":
            channel = DiscordChannel(self.secret.reveal())
        else:
            channel = SlackChannel(self.secret.reveal())
        return WebhookAlerter(channel, events=self.events, follower=follower, window_s=self.window_s,
                              min_interval_s=self.min_interval_s, max_queue=self.max_queue,
                              max_attempts=self.max_attempts, **kw)


@attrs.frozen
class FollowerSpec:
    name: str
    config: Config
    alerts: tuple[AlertSpec, ...] = ()


@attrs.frozen
class FleetSpec:
    base: Config
    followers: tuple[FollowerSpec, ...]

    @property
    def service(self) -> Mapping[str, Any]:
        return self.base.values["service"]


def _prefix(exc: ConfigError, where: str) -> ConfigError:
    text = str(exc)
    if text.startswith("config "):
        return ConfigError(f"config {where}.{text[len('config '):]}")
    return ConfigError(f"{where}: {text}")


def _secret(where: str, given: Mapping[str, Any], key: str, environ: Mapping[str, str]) -> Optional[Secret]:
    direct, env_name = given.get(key), given.get(f"{key}_env")
    if direct is not None and env_name is not None:
        raise ConfigError(f"config {where}: give {key} or {key}_env, not both")
    if env_name is not None:
        if not isinstance(env_name, str) or not env_name:
            raise ConfigError(f"config {where}.{key}_env: expected the name of an environment variable")
        value = environ.get(env_name)
        if not value:
            raise ConfigError(f"config {where}.{key}_env: environment variable {env_name} is not set")
        return Secret(value)
    if direct is not None:
        if not isinstance(direct, str) or not direct:
            raise ConfigError(f"config {where}.{key}: expected text (the value is not shown)")
        return Secret(direct)
    return None


def _alert(where: str, given: Any, environ: Mapping[str, str]) -> AlertSpec:
    from ..adapters.alerts.webhook import EVENTS

    if not isinstance(given, dict):
        raise ConfigError(f"config {where}: expected a table with a kind")
    for key in given:
        if key not in ALERT_KEYS:
            raise ConfigError(f"config {where}.{key}: unknown setting")
    kind = given.get("kind")
    if kind not in ALERT_KINDS:
        raise ConfigError(f"config {where}.kind: expected one of {', '.join(ALERT_KINDS)}, got {kind!r}")
    events = given.get("events", list(EVENTS))
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",") if e.strip()]
    if not isinstance(events, list) or not events or any(e not in EVENTS for e in events):
        raise ConfigError(f"config {where}.events: expected some of {', '.join(EVENTS)}, got {events!r}")
    secret_key = "token" if kind == "telegram" else "url"
    other = "url" if kind == "telegram" else "token"
    if other in given or f"{other}_env" in given:
        raise ConfigError(f"config {where}.{other}: {kind} alerts take {secret_key} or {secret_key}_env")
    secret = _secret(where, given, secret_key, environ)
    if secret is None:
        raise ConfigError(f"config {where}: {kind} alerts need {secret_key}_env (or {secret_key})")
    if kind != "telegram" and not secret.reveal().startswith(("https://", "http://")):
        raise ConfigError(f"config {where}.{secret_key}: expected an http(s) webhook URL (the value is not shown)")
    chat_id = str(given.get("chat_id", "")).strip()
    if kind == "telegram" and not chat_id:
        raise ConfigError(f"config {where}.chat_id: telegram alerts need a chat_id")
    numbers: dict[str, Any] = {}
    for key, cast, low in (("window_s", float, 0.0), ("min_interval_s", float, 0.0), ("max_queue", int, 1),
                           ("max_attempts", int, 1)):
        if key in given:
            value = given[key]
            try:
                if isinstance(value, bool):
                    raise ValueError
                numbers[key] = cast(value)
            except (TypeError, ValueError):
                raise ConfigError(f"config {where}.{key}: expected a number >= {low}, got {value!r}") from None
            if numbers[key] < low:
                raise ConfigError(f"config {where}.{key}: expected a number >= {low}, got {value!r}")
    api_url = given.get("api_url", "https://api.telegram.org")
    if not isinstance(api_url, str) or not api_url.startswith(("https://", "http://")):
        raise ConfigError(f"config {where}.api_url: expected an http(s) URL, got {api_url!r}")
    return AlertSpec(kind=kind, events=tuple(events), secret=secret, chat_id=chat_id, api_url=api_url, **numbers,
                     **_commands(where, given, kind, secret, chat_id))


def _commands(where: str, given: Mapping[str, Any], kind: str, secret: Secret, chat_id: str) -> dict[str, Any]:
    """The chat-control settings of a telegram alert: ``commands = true``, ``allowed_chat_ids``, ``poll_timeout_s``."""
    commands = given.get("commands", False)
    if not isinstance(commands, bool):
        raise ConfigError(f"config {where}.commands: expected true or false, got {commands!r}")
    if not commands:
        for key in ("allowed_chat_ids", "poll_timeout_s"):
            if key in given:
                raise ConfigError(f"config {where}.{key}: only with commands = true (telegram chat control)")
        return {}
    if kind != "telegram":
        raise ConfigError(f"config {where}.commands: chat commands are answered by telegram alerts only, not {kind}")
    if not BOT_TOKEN_RE.match(secret.reveal()):
        raise ConfigError(f"config {where}.token: expected a bot token like 123456:ABC-xyz from @BotFather "
                          "(the value is not shown)")
    if not CHAT_ID_RE.match(chat_id):
        raise ConfigError(f"config {where}.chat_id: commands need the chat's numeric id (as in the bot's updates, "
                          f"e.g. -1001234567890), got {chat_id!r}")
    allowed = given.get("allowed_chat_ids", [])
    if not isinstance(allowed, list) or any(isinstance(c, bool) or not CHAT_ID_RE.match(str(c)) for c in allowed):
        raise ConfigError(f"config {where}.allowed_chat_ids: expected a list of numeric chat ids, got {allowed!r}")
    timeout = given.get("poll_timeout_s", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 50:
        raise ConfigError(f"config {where}.poll_timeout_s: expected whole seconds from 1 to 50, got {timeout!r}")
    chats = tuple(dict.fromkeys([chat_id, *(str(c) for c in allowed)]))
    return {"commands": True, "chats": chats, "poll_timeout_s": timeout}


def chat_pollers(spec: FleetSpec) -> list[Any]:
    """For `serve`: one Telegram poller per bot with ``commands = true`` (a bot has one
    getUpdates consumer), answering for every follower whose alert names it, each
    from its own alert's chats; the offset is kept in those followers' stores."""
    from ..adapters.alerts.telegram_bot import BotApi
    from ..application.chat_control import ChatControl, ChatPoller
    from .dashboard import control_for

    bots: dict[tuple[str, str], tuple[AlertSpec, dict[str, set[str]]]] = {}
    for f in spec.followers:
        for a in f.alerts:
            if a.commands:
                _, chats = bots.setdefault((a.api_url, a.secret.reveal()), (a, {}))
                chats.setdefault(f.name, set()).update(a.chats)
    configs = {f.name: f.config for f in spec.followers}
    pollers = []
    for alert, chats in bots.values():
        control = control_for({name: configs[name] for name in chats})
        chat = ChatControl(control, chats, leaders={name: configs[name].engine.leaders for name in chats})
        bot = BotApi(alert.secret.reveal(), alert.api_url, min_interval_s=alert.min_interval_s,
                     max_attempts=alert.max_attempts)
        pollers.append(ChatPoller(bot, chat, list(chats), poll_timeout_s=alert.poll_timeout_s))
    return pollers


def _read(path: Optional[str | Path]) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"), parse_float=exact_decimal)
    except (OSError, ValueError) as exc:  # load_config has said it better already
        raise ConfigError(f"config file {path}: {exc}") from None


def load_fleet(path: Optional[str | Path] = None, environ: Optional[Mapping[str, str]] = None,
               overrides: Optional[Mapping[str, Mapping[str, Any]]] = None) -> FleetSpec:
    """The followers of a config file: see the module doc."""
    import os

    environ = os.environ if environ is None else environ
    base = load_config(path, environ=environ, overrides=overrides)
    data = _read(path)
    top_alerts = data.get("alerts", [])
    if not isinstance(top_alerts, list):
        raise ConfigError("config alerts: expected a list of [[alerts]] tables")
    raw = data.get("followers")
    if raw is None:
        alerts = tuple(_alert(f"alerts[{i}]", a, environ) for i, a in enumerate(top_alerts))
        return FleetSpec(base, (FollowerSpec(base.engine.follower.id, base, alerts),))
    if not isinstance(raw, list) or not raw:
        raise ConfigError("config followers: expected a list of [[followers]] tables")
    followers: list[FollowerSpec] = []
    keys: dict[str, str] = {}
    for i, given in enumerate(raw):
        where = f"followers[{i}]"
        if not isinstance(given, dict):
            raise ConfigError(f"config {where}: expected a table with a name")
        for key in given:
            if key not in FOLLOWER_KEYS:
                raise ConfigError(f"config {where}.{key}: unknown setting (one of {', '.join(FOLLOWER_KEYS)})")
        name = given.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"config {where}.name: expected lower-case letters, digits and _ "
                              f"(starting with a letter, at most 31), got {name!r}")
        if any(f.name == name for f in followers):
            raise ConfigError(f"config {where}.name: {name} is listed twice")
        layered: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (overrides or {}).items()}
        layered.setdefault("follower", {}).update({k: given[k] for k in _FOLLOWER_TABLE if k in given}, id=name)
        for section in ("risk", "sizing"):
            if section in given:
                if not isinstance(given[section], dict):
                    raise ConfigError(f"config {where}.{section}: expected a table")
                layered.setdefault(section, {}).update(given[section])
        if base.store_kind == "postgres":
            layered.setdefault("store", {})["schema"] = f"{base.values['store']['schema']}_{name}"[:63]
        elif base.store_kind == "sqlite":
            p = Path(base.store_path)
            layered.setdefault("store", {})["path"] = str(p.with_name(f"{p.stem}-{name}{p.suffix or '.db'}"))
        try:
            cfg = load_config(path, environ=environ, overrides=layered)
            leaders = base.engine.leaders
            if "leaders" in given:
                if not isinstance(given["leaders"], list):
                    raise ConfigError(f"config {where}.leaders: expected a list of addresses or tables")
                leaders = {}
                for j, entry in enumerate(given["leaders"]):
                    leader = _leader(j, entry, cfg.values["sizing"])
                    if leader.address in leaders:
                        raise ConfigError(f"config leaders[{j}].address: {leader.address} is listed twice")
                    leaders[leader.address] = leader
        except ConfigError as exc:
            raise _prefix(exc, where) from None
        key = _follower_key(where, given, environ, base)
        if key is not None:
            other = keys.get(key.reveal())
            if other is not None:
                raise ConfigError(f"config {where}: uses the same private key as follower {other} "
                                  "(each follower is its own account)")
            keys[key.reveal()] = name
        elif cfg.profile in ("dry-run", "live"):
            raise ConfigError(f"config {where}: profile {cfg.profile} needs a private key: set key_env or key_file")
        alerts_raw = given.get("alerts", top_alerts)
        if not isinstance(alerts_raw, list):
            raise ConfigError(f"config {where}.alerts: expected a list of [[followers.alerts]] tables")
        alerts = tuple(_alert(f"{where}.alerts[{j}]", a, environ) for j, a in enumerate(alerts_raw))
        cfg = attrs.evolve(cfg, engine=attrs.evolve(cfg.engine, leaders=leaders), private_key=key)
        followers.append(FollowerSpec(name, cfg, alerts))
    return FleetSpec(base, tuple(followers))


def describe_followers(path: Optional[str | Path], overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                       environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """For `config check`: the [[followers]] validated and shown (secrets
    redacted); nothing when the config has none."""
    if path is None or "followers" not in _read(path):
        return {}
    spec = load_fleet(path, environ=environ, overrides=overrides)
    out = {}
    for f in spec.followers:
        c = f.config
        store = c.effective().get("store", {})
        out[f.name] = {
            "store": store.get("url") and f"{store['url']} schema {store['schema']}" or c.store_path,
            "private_key": "***redacted***" if c.private_key else None,
            "leaders": sorted(c.engine.leaders),
            "max_trade_usdc": None if c.engine.limits.max_trade_usdc is None else str(c.engine.limits.max_trade_usdc),
            "alerts": [f"{a.kind} ({', '.join(a.events)})" + (f", commands from chats {', '.join(a.chats)}"
                                                                if a.commands else "") for a in f.alerts],
        }
    return {"followers": out}


def follower_config(path: Optional[str | Path], name: str, environ: Optional[Mapping[str, str]] = None,
                    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Config:
    """The config of follower ``name`` (for `copytrader --follower NAME halt|positions|...`)."""
    spec = load_fleet(path, environ=environ, overrides=overrides)
    for follower in spec.followers:
        if follower.name == name:
            return follower.config
    known = ", ".join(f.name for f in spec.followers)
    raise ConfigError(f"--follower {name}: no such follower in the config (followers: {known})")


def _follower_key(where: str, given: Mapping[str, Any], environ: Mapping[str, str], base: Config) -> Optional[Secret]:
    if "key_env" in given and "key_file" in given:
        raise ConfigError(f"config {where}: give key_env or key_file, not both")
    if "key_env" in given:
        name = given["key_env"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"config {where}.key_env: expected the name of an environment variable")
        value = environ.get(name)
        if not value:
            raise ConfigError(f"config {where}.key_env: environment variable {name} is not set")
    elif "key_file" in given:
        if not isinstance(given["key_file"], str):
            raise ConfigError(f"config {where}.key_file: expected a path")
        try:
            value = read_key_file(given["key_file"])
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("config live.key_file", f"config {where}.key_file")) from None
    else:
        return None
    try:
        check_key(value)
    except ConfigError:
        raise ConfigError(f"config {where}: private key: expected 64 hex digits; the value is not shown") from None
    return Secret(value)


# -- running ------------------------------------------------------------------------
class _Timed:
    """An Executor whose ``submit`` is timed into the order latency histogram."""

    def __init__(self, inner: Any, observe: Callable[[float], None]) -> None:
        self._inner, self._observe = inner, observe

    def submit(self, order: Any, intent: Any, market: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._inner.submit(order, intent, market)
        finally:
            self._observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _default_alerter(spec: FollowerSpec) -> Any:
    from ..adapters.alerts.log import LogAlerter
    from ..adapters.alerts.webhook import FanOutAlerter

    return FanOutAlerter([LogAlerter(), *(a.build(spec.name) for a in spec.alerts)])


class Fleet(Supervisor):
    """The followers' workers (the application's Supervisor), wired here:
    ``build`` makes a container from a follower's config; ``customize(name,
    container)`` may override providers (tests); ``make_alerter(spec)`` builds
    a follower's alerter (log + webhooks)."""

    def __init__(self, spec: FleetSpec, metrics: Any = None, build: Optional[Callable[[Config], Any]] = None,
                 customize: Callable[[str, Any], None] = lambda name, container: None,
                 make_alerter: Callable[[FollowerSpec], Any] = _default_alerter,
                 wall: Callable[[], float] = time.time) -> None:
        from .container import build_container

        svc = spec.service
        super().__init__(SupervisorSettings(float(svc["lease_retry_s"]), float(svc["restart_backoff_s"]),
                                            float(svc["stale_poll_s"])), metrics, wall)
        self.spec = spec
        self.build = build or build_container
        self.customize = customize
        if any(f.config.profile in ("dry-run", "live") for f in spec.followers):
            from ..adapters.execution.polymarket import preload

            preload()  # before the workers: concurrent first imports of the SDK can deadlock
        for f in spec.followers:
            self.add(f.name, lambda alerter, _f=f: self._open(_f, alerter), lambda _f=f: make_alerter(_f))

    def _open(self, follower: FollowerSpec, alerter: Any) -> Session:
        """A follower's container: its store (taking the lease), engine and feed."""
        from .di import providers

        from ..adapters.storage.sqlite import StoreLockedError

        container = self.build(follower.config)
        container.alerter.override(providers.Object(alerter))
        try:
            store = container.store()  # takes the follower's lease
        except StoreLockedError as exc:
            raise Standby(str(exc)) from None
        opened: list[Any] = []  # market data and executor: their HTTP pools close with the session
        try:
            if self.metrics is not None:
                container.executor.override(providers.Object(
                    _Timed(container.executor(), self.metrics.order_latency.labels(follower.name).observe)))
            self.customize(follower.name, container)
            service = container.service()
            opened = [service.market, service.executor]
            feed = container.feed()
            drift_watch, balances = self._drift_watch(follower, service, store, alerter)
            opened += [balances] if balances is not None else []
        except BaseException:
            close_all(follower.name, [*opened, store])
            raise
        reader = _StateReader(follower.config) if follower.config.profile != "test" and \
            follower.config.store_kind in ("sqlite", "postgres") else None
        return Session(service, feed, close=lambda: close_all(follower.name, [reader, *opened, store]),
                       lease_alive=getattr(store, "lease_alive", lambda: True),
                       read_state=reader or store.get_state,  # a memory store is read in place
                       drift_watch=drift_watch)

    def _drift_watch(self, follower: FollowerSpec, service: Any, store: Any, alerter: Any) -> tuple[Any, Any]:
        """The periodic reconciliation with the chain of a live follower with
        live.rpc_url, every ``service.reconcile_interval_s`` (0: off), and the
        balances reader it opened (closed with the session)."""
        from ..application.chain_reconcile import DriftWatch

        cfg, interval = follower.config, int(self.spec.service["reconcile_interval_s"])
        if not interval or cfg.profile != "live" or not cfg.live.rpc_url:
            return None, None
        from .chain_reads import reconciliation, wallet_balances

        balances, metrics = wallet_balances(cfg), self.metrics
        show = (lambda token, shares: metrics.drift(follower.name, token, float(shares))) if metrics is not None \
            else (lambda token, shares: None)
        watch = DriftWatch(reconciliation(store, balances, service.market), service.clock, interval, alerter, show)
        return watch, balances


class _StateReader:
    """A follower's stored trading state for other threads (the health
    endpoint's): its own read-only connection (SQLite file or PostgreSQL
    schema), opened at the first read and kept, one read at a time; the
    worker's connection is never used outside the worker's thread. After a
    failed read the connection is opened afresh next time."""

    def __init__(self, config: Config) -> None:
        self._config, self._store, self._closed = config, None, False
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        from .container import build_container

        with self._lock:
            if self._closed:
                raise RuntimeError("the session has ended")
            if self._store is None:
                self._store = build_container(self._config, "read").store()
            try:
                return self._store.get_state()
            except Exception:
                self._drop()
                raise

    def _drop(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            close_all(self._config.engine.follower.id, [store])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()
