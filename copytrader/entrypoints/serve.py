"""``copytrader serve``: every follower in its own thread, plus ``/healthz``
and ``/metrics``, until SIGTERM or SIGINT. Stopping is graceful: each
follower finishes the trade in hand, then closes its store, which releases
its lease for another worker."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable, Optional

from .fleet import Fleet, FleetSpec, chat_pollers

log = logging.getLogger("copytrader.service")


def status_server(fleet: Fleet, metrics: Any, host: str, port: int) -> Any:
    """``/healthz`` and ``/metrics`` of ``fleet``; each request first reads every
    follower's stored trading state (a halt from another process shows at once)."""
    from ..adapters.metrics.server import StatusServer

    def scrape() -> tuple[bytes, str]:
        fleet.refresh_states()
        return metrics.render()

    return StatusServer(host, port, fleet.health, scrape)


def dashboard_server(spec: FleetSpec, fleet: Fleet) -> Any:
    """The dashboard of ``spec``'s followers (``[dashboard]``), not started; None when
    ``dashboard.port = "off"`` or the dashboard extra is not installed (said in the log)."""
    settings = spec.base.values["dashboard"]
    if settings["port"] is None:
        return None
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        log.warning("dashboard off: it needs the dashboard extra (pip install 'copytrader[dashboard]'); "
                    "set dashboard.port = \"off\" to silence this")
        return None
    from .dashboard import web_server

    return web_server({f.name: f.config for f in spec.followers}, settings, spec.service["metrics_host"],
                      workers={w.name: w for w in fleet.workers})


def serve(spec: FleetSpec, echo: Callable[[str], None] = print, stop: Optional[threading.Event] = None,
          install_signals: bool = True, stop_timeout_s: float = 60.0, **fleet_kw: Any) -> int:
    """Run until stopped (signal or ``stop``) or until every follower's feed has ended."""
    from ..adapters.metrics.prometheus import Metrics

    stop = stop or threading.Event()
    metrics = Metrics()
    fleet = Fleet(spec, metrics=metrics, **fleet_kw)
    svc = spec.service
    dashboard = dashboard_server(spec, fleet)  # a bad token setting or a port in use: refused before anything runs
    try:
        server = status_server(fleet, metrics, svc["metrics_host"], svc["metrics_port"])
    except BaseException:
        if dashboard is not None:
            dashboard.close()
        raise
    bots: list = []
    previous = {}
    if install_signals:
        def _on_signal(signum: int, frame: Any) -> None:
            log.warning("%s: stopping after the current trades", signal.Signals(signum).name)
            stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    try:
        bots = chat_pollers(spec)  # telegram chat control: [[followers.alerts]] with commands = true
        server.start()
        if dashboard is not None:
            dashboard.start()
        fleet.start()
        for bot in bots:
            bot.start()
        names = ", ".join(f.name for f in spec.followers)
        shown = "" if dashboard is None else f" · dashboard {dashboard.url}/" + (
            " (read-only: no dashboard.token_env)" if dashboard.read_only else "")
        echo(f"serving {len(spec.followers)} follower(s) [{names}] · health {server.url}/healthz · "
             f"metrics {server.url}/metrics{shown}")
        for bot in bots:
            echo(f"telegram commands: {bot.bot.describe()} for {', '.join(bot.followers)}")
        while not stop.is_set() and not fleet.done():
            stop.wait(0.5)
        clean = fleet.stop(stop_timeout_s)
        if not clean:
            log.error("some followers did not stop within %ss", stop_timeout_s)
        states = ", ".join(f"{w.name}: {w.status.worker}" for w in fleet.workers)
        echo(f"stopped ({states})")
        return 0 if clean else 1
    finally:
        for bot in bots:
            bot.close()
        server.close()
        if dashboard is not None:
            dashboard.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
