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
from collections import deque
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import attrs

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
              "min_interval_s", "max_queue", "max_attempts")


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
    return AlertSpec(kind=kind, events=tuple(events), secret=secret, chat_id=chat_id, api_url=api_url, **numbers)


def _read(path: Optional[str | Path]) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
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
            "alerts": [f"{a.kind} ({', '.join(a.events)})" for a in f.alerts],
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


@attrs.define
class WorkerStatus:
    worker: str = "starting"  # starting|standby|running|failed|finished|stopped
    trading_state: str = ""
    reason: str = ""
    last_poll: Optional[float] = None  # wall-clock seconds
    error: str = ""
    failures: int = 0
    history: deque = attrs.field(factory=lambda: deque(maxlen=32))  # the latest worker states, in order


class FollowerWorker:
    def __init__(self, spec: FollowerSpec, fleet: "Fleet") -> None:
        self.spec, self.fleet = spec, fleet
        self.name = spec.name
        self.status = WorkerStatus()
        self.alerter: Any = None
        self.thread = threading.Thread(target=self.run, name=f"follower-{spec.name}", daemon=True)
        self._day = ""
        self._counts = {"seen": 0, "copied": 0, "rejected": 0}
        self._alerted_error = ""

    def _set(self, state: str, error: str = "") -> None:
        if state != self.status.worker:
            self.status.history.append(state)
        self.status.worker, self.status.error = state, error
        if self.fleet.metrics is not None:
            self.fleet.metrics.worker_running.labels(self.name).set(1 if state == "running" else 0)

    def run(self) -> None:
        stop, svc = self.fleet.stop_event, self.fleet.spec.service
        self.alerter = self.fleet.make_alerter(self.spec)
        try:
            while not stop.is_set():
                if self.status.worker != "standby":  # a standby worker stays one while it retries
                    self._set("starting")
                try:
                    done = self._session()
                except _Standby as exc:
                    self._set("standby", str(exc))
                    stop.wait(float(svc["lease_retry_s"]))
                    continue
                except Exception as exc:  # noqa: BLE001 - one follower's failure stops only it, for a while
                    self.status.failures += 1
                    message = f"{type(exc).__name__}: {exc}"[:300]
                    self._set("failed", message)
                    log.error("follower %s failed (restart in %ss): %s", self.name, svc["restart_backoff_s"], message)
                    if message != self._alerted_error:  # the same failure again and again: one alert
                        self._alert("error", f"worker failed, restarting: {message}")
                        self._alerted_error = message
                    if self.fleet.metrics is not None:
                        self.fleet.metrics.worker_failures.labels(self.name).inc()
                    stop.wait(float(svc["restart_backoff_s"]))
                    continue
                if done:
                    self._set("finished")
                    return
            self._set("stopped")
        finally:
            if self.status.worker not in ("finished", "stopped"):
                self._set("stopped", self.status.error)
            if hasattr(self.alerter, "close"):
                self.alerter.close()

    def _alert(self, kind: str, message: str) -> None:
        try:
            self.alerter.send(kind, message)
        except Exception:  # noqa: BLE001
            log.exception("alert failed")

    def _session(self) -> bool:
        """Take the follower's lease and trade until the feed ends (True) or we are stopped (False)."""
        from dependency_injector import providers

        from ..adapters.storage.sqlite import StoreLockedError
        from ..application.runner import run

        container = self.fleet.build(self.spec.config)
        store = None
        opened: list[Any] = []  # market data and executor of this attempt: their HTTP pools close with it
        try:
            container.alerter.override(providers.Object(self.alerter))
            try:
                store = container.store()  # takes the follower's lease
            except StoreLockedError as exc:
                raise _Standby(str(exc)) from None
            metrics = self.fleet.metrics
            if metrics is not None:
                executor = container.executor()
                container.executor.override(providers.Object(
                    _Timed(executor, metrics.order_latency.labels(self.name).observe)))
            self.fleet.customize(self.name, container)
            service = container.service()
            opened = [service.market, service.executor]
            feed = container.feed()
            stop = self.fleet.stop_event
            lease_alive = getattr(store, "lease_alive", lambda: True)

            def should_stop() -> bool:
                self._heartbeat(service)
                return stop.is_set() or not lease_alive()

            stop_when = getattr(feed, "stop_when", None)  # a polling feed: ends after a round, wakes on stop
            if stop_when is not None:
                stop_when(should_stop, stop.wait)
            self._set("running")
            if self._alerted_error:
                self._alert("error", f"worker running again after {self.status.failures} failure(s)")
                self._alerted_error = ""
            self._heartbeat(service)
            run(service, _Observed(feed, self), should_stop=should_stop,
                on_outcome=lambda o: self._outcome(o, service))
            self._heartbeat(service)
            if not lease_alive() and not stop.is_set():
                raise RuntimeError("lost the follower's lease (database connection gone)")
            return not stop.is_set()
        finally:
            for resource in opened:  # a restart builds new ones: these would only wait for the collector
                close = getattr(resource, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:  # noqa: BLE001 - closing never stops the supervisor
                        log.warning("follower %s: closing %s failed", self.name, type(resource).__name__)
            if store is not None:
                try:
                    store.close()  # releases the lease
                except Exception:  # noqa: BLE001 - a broken connection is closed all the same
                    log.warning("follower %s: closing the store failed", self.name)

    def _outcome(self, outcome: Any, service: Any) -> None:
        self._counts["seen"] += 1
        if outcome.status in ("filled", "partial"):
            self._counts["copied"] += 1
        elif outcome.status == "rejected":
            self._counts["rejected"] += 1
        if self.fleet.metrics is not None:
            self.fleet.metrics.outcome(self.name, outcome.status, outcome.reason)
        self._state(service)

    def _state(self, service: Any) -> None:
        state = service.state
        self.status.trading_state, self.status.reason = state.state.value, state.reason
        if self.fleet.metrics is not None:
            self.fleet.metrics.state(self.name, state.state.value)

    def _heartbeat(self, service: Any) -> None:
        self.status.last_poll = self.fleet.wall()
        if self.fleet.metrics is not None:
            self.fleet.metrics.last_poll.labels(self.name).set(self.status.last_poll)
        self._state(service)
        day = datetime.fromtimestamp(self.status.last_poll, timezone.utc).strftime("%Y-%m-%d")
        if self._day and day != self._day:
            c = self._counts
            realised = service.store.daily_realised(self._day)
            self._alert("summary", f"{self._day}: seen {c['seen']}, copied {c['copied']}, rejected "
                                   f"{c['rejected']}, realised PnL {realised} USDC, state {self.status.trading_state}")
            self._counts = {k: 0 for k in c}
        self._day = day

    def feed_item(self, item: Any) -> None:
        from ..domain.model import LeaderTrade

        self.status.last_poll = self.fleet.wall()
        if isinstance(item.payload, LeaderTrade) and self.fleet.metrics is not None:
            lag = max(0.0, self.status.last_poll - item.payload.timestamp)
            self.fleet.metrics.feed_lag.labels(self.name).set(lag)


class _Standby(Exception):
    pass


class _Observed:
    """The feed, told to the worker item by item (poll time, feed lag)."""

    def __init__(self, feed: Any, worker: FollowerWorker) -> None:
        self.name, self._feed, self._worker = feed.name, feed, worker

    def read(self, cursors: Any) -> Any:
        for item in self._feed.read(cursors):
            self._worker.feed_item(item)
            yield item


def _default_alerter(spec: FollowerSpec) -> Any:
    from ..adapters.alerts.log import LogAlerter
    from ..adapters.alerts.webhook import FanOutAlerter

    return FanOutAlerter([LogAlerter(), *(a.build(spec.name) for a in spec.alerts)])


class Fleet:
    """The followers' workers. ``build`` makes a container from a follower's
    config; ``customize(name, container)`` may override providers (tests);
    ``make_alerter(spec)`` builds a follower's alerter (log + webhooks)."""

    def __init__(self, spec: FleetSpec, metrics: Any = None, build: Optional[Callable[[Config], Any]] = None,
                 customize: Callable[[str, Any], None] = lambda name, container: None,
                 make_alerter: Callable[[FollowerSpec], Any] = _default_alerter,
                 wall: Callable[[], float] = time.time) -> None:
        from .container import build_container

        self.spec, self.metrics = spec, metrics
        self.build = build or build_container
        self.customize, self.make_alerter, self.wall = customize, make_alerter, wall
        self.stop_event = threading.Event()
        self.workers = [FollowerWorker(f, self) for f in spec.followers]
        if metrics is not None:
            for f in spec.followers:
                metrics.follower(f.name)

    def start(self) -> "Fleet":
        for w in self.workers:
            w.thread.start()
        return self

    def done(self) -> bool:
        return all(not w.thread.is_alive() for w in self.workers)

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for w in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            w.thread.join(left)
        return self.done()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Ask every worker to stop after its current item, and wait; True when all have."""
        self.stop_event.set()
        return self.wait(timeout_s)

    def health(self) -> tuple[bool, dict]:
        now = self.wall()
        stale = self.spec.service["stale_poll_s"]
        followers, ok = {}, True
        for w in self.workers:
            s = w.status
            age = None if s.last_poll is None else round(now - s.last_poll, 3)
            healthy = s.worker in ("standby", "finished") or (
                s.worker == "running" and age is not None and age <= stale)
            ok = ok and healthy
            followers[w.name] = {"worker": s.worker, "trading_state": s.trading_state or None,
                                 "state_reason": s.reason or None, "last_poll_age_s": age, "healthy": healthy,
                                 "error": s.error or None, "failures": s.failures}
        return ok, {"status": "ok" if ok else "unhealthy", "followers": followers}
