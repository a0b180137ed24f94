"""Issue 14, 5.4: after an external `copytrader halt` (another process writes the state row),
/healthz and the copytrader_trading_state metric show the stored state within one
request, while the worker waits for its next leader trade."""
from __future__ import annotations

import threading

import httpx
from click.testing import CliRunner
from dependency_injector import providers

from copytrader.adapters.metrics.prometheus import Metrics
from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.domain.model import TradingState
from copytrader.entrypoints.cli import main
from copytrader.entrypoints.fleet import Fleet, load_fleet
from copytrader.entrypoints.serve import status_server
from copytrader.ports import FeedItem, StoredState
from tests.service.test_fleet import _config, _recording


class WaitingFeed:
    """A live feed between polls: one empty round, then nothing until released."""

    name = "waiting"

    def __init__(self) -> None:
        self.waiting, self.release = threading.Event(), threading.Event()

    def read(self, cursors):
        yield FeedItem(cursor="1", payload=None)
        self.waiting.set()
        self.release.wait(60)


def _state(metrics, follower, state):
    return metrics.registry.get_sample_value("copytrader_trading_state", {"follower": follower, "state": state})


def test_an_external_halt_shows_in_health_and_metrics_at_the_next_request(tmp_path):
    spec = load_fleet(_config(tmp_path, ""), environ={})
    (follower,) = spec.followers
    feed = WaitingFeed()
    metrics = Metrics()
    fleet = Fleet(spec, metrics=metrics, make_alerter=_recording()[1],
                  customize=lambda name, c: c.feed.override(providers.Object(feed)))
    fleet.start()
    try:
        assert feed.waiting.wait(60), "the worker never reached its feed"
        ok, body = fleet.health()
        assert body["followers"][follower.name]["trading_state"] == "ACTIVE"
        # another process (the `halt` command) writes the state row while the worker waits
        with SqliteStore(follower.config.store_path, lock=False) as other:
            other.set_state(StoredState(TradingState.HALTED, "risk desk says stop"))
        ok, body = fleet.health()
        shown = body["followers"][follower.name]
        assert (shown["trading_state"], shown["state_reason"]) == ("HALTED", "risk desk says stop")
        assert shown["worker"] == "running" and ok  # HALTED is reported, not unhealthy
        assert _state(metrics, follower.name, "HALTED") == 1 and _state(metrics, follower.name, "ACTIVE") == 0
        # and a Prometheus scrape alone refreshes it too (what serve's endpoint does)
        with SqliteStore(follower.config.store_path, lock=False) as other:
            other.set_state(StoredState(TradingState.REDUCING, "sells only"))
        server = status_server(fleet, metrics, "127.0.0.1", 0).start()
        try:
            with httpx.Client(timeout=5) as http:
                text = http.get(server.url + "/metrics").text
                assert f'copytrader_trading_state{{follower="{follower.name}",state="REDUCING"}} 1.0' in text
                resumed = CliRunner().invoke(main, ["--db", follower.config.store_path, "resume"],
                                             env={"COPYTRADER_CONFIG": None}, catch_exceptions=False)
                assert resumed.exit_code == 0, resumed.output
                health = http.get(server.url + "/healthz").json()
        finally:
            server.close()
        assert health["followers"][follower.name]["trading_state"] == "ACTIVE"
    finally:
        feed.release.set()
        assert fleet.stop(30)

