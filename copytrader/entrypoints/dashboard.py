"""Wiring of the control use case and the dashboard: which store each
follower's control call and each dashboard query opens, the token, and the
web server (``copytrader serve``, ``copytrader dashboard``)."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Optional

from ..application.control import Control, ControlError
from ..application.dashboard import Dashboard, FollowerSource, UnknownFollower
from .config import Config, ConfigError


def control_for(configs: Mapping[str, Config], create: bool = False) -> Control:
    """A Control over the followers' stores: each call opens the follower's store
    afresh (its own connection, without the single-writer lock, as a command next to a
    running engine does) and closes it. ``create``: a missing database is created
    (``copytrader halt --create``) instead of refused."""
    from ..adapters.clock import SystemClock
    from .container import build_container

    def opener(cfg: Config):
        return lambda: build_container(cfg, "control", create=create).store()

    return Control({name: opener(cfg) for name, cfg in configs.items()}, SystemClock(),
                   leaders={name: cfg.engine.leaders for name, cfg in configs.items()})


def _reader(cfg: Config) -> Callable[[], Any]:
    """A read-only store for one query: opened afresh each time (a SQLite connection
    opened before the engine's would read the file as it was), closed after; made as
    the container makes its read-only store, without building a container per query."""
    from .container import _postgres_store, _sqlite_store

    store = cfg.values["store"]
    if cfg.store_kind == "postgres":
        return lambda: _postgres_store(store["url"], store["schema"], read_only=True, lock=False, create=False)
    if cfg.store_kind == "sqlite":
        return lambda: _sqlite_store(cfg.store_path, read_only=True, lock=False, create=False)
    from .container import build_container  # memory (the test profile): the container's own

    return lambda: build_container(cfg, "read").store()


def _report(cfg: Config) -> Callable[[], Any]:
    from ..adapters.storage.report_rows import open_report_source

    store = cfg.values["store"]
    target = store["url"] if cfg.store_kind == "postgres" else cfg.store_path
    return lambda: open_report_source(target, store["schema"])


def worker_status(worker: Any, wall: Callable[[], float] = time.time) -> Callable[[], dict[str, Any]]:
    """A fleet worker's status as the dashboard shows it (no store read)."""
    def read() -> dict[str, Any]:
        s = worker.status
        return {"state": s.worker, "last_poll_age_s": None if s.last_poll is None else round(wall() - s.last_poll, 1),
                "error": s.error or None, "failures": s.failures}
    return read


def dashboard_for(configs: Mapping[str, Config], workers: Optional[Mapping[str, Any]] = None,
                  stats_ttl_s: float = 5.0) -> Dashboard:
    from ..adapters.clock import SystemClock

    workers = workers or {}
    return Dashboard({name: FollowerSource(name, _reader(cfg), _report(cfg), cfg.engine.limits, cfg.engine.leaders,
                                           worker_status(workers[name]) if name in workers else dict)
                      for name, cfg in configs.items()}, SystemClock(), stats_ttl_s=stats_ttl_s)


def token_from(settings: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The control token from the variable ``dashboard.token_env`` names (None: read-only)."""
    name = settings["token_env"]
    if not name:
        return None
    value = (os.environ if environ is None else environ).get(name, "")
    if not value.strip():
        raise ConfigError(f"config dashboard.token_env: environment variable {name} is not set (or empty): "
                          "set it, or remove dashboard.token_env for a read-only dashboard")
    return value.strip()


def web_server(configs: Mapping[str, Config], settings: Mapping[str, Any], default_host: str,
               workers: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None) -> Any:
    """The dashboard's web server over ``configs`` (not started). Needs the dashboard extra."""
    import threading

    from ..adapters.storage.sql import StoreError
    from ..adapters.web.app import create_app
    from ..adapters.web.server import WebServer

    token = token_from(settings, environ)
    stopping = threading.Event()
    app = create_app(dashboard_for(configs, workers, float(settings["stats_ttl_s"])), control_for(configs), token,
                     bad_input=(ControlError,), not_found=(UnknownFollower,),
                     unavailable=(StoreError,), refresh_s=float(settings["refresh_s"]),
                     stopping=stopping)
    server = WebServer(app, settings["host"] or default_host, int(settings["port"] or 0), stopping=stopping)
    server.read_only = token is None
    return server


@contextmanager
def serving(server: Any) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.close()


__all__ = ["control_for", "dashboard_for", "serving", "token_from", "web_server", "worker_status"]
