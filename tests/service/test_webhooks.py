"""Webhook alerters against loopback stand-ins of Telegram, Discord and Slack."""
from __future__ import annotations

import logging

import pytest

from copytrader.adapters.alerts.webhook import (
    DiscordChannel, FanOutAlerter, SlackChannel, TelegramChannel, WebhookAlerter,
)
from tests.reliability import FIGURES
from tests.standins import FAULTS
from tests.standins.webhooks import TELEGRAM_TOKEN, WebhookStandIn


@pytest.fixture
def hooks():
    with WebhookStandIn() as server:
        yield server


def _channel(service, hooks):
    if service == "telegram":
        return TelegramChannel(TELEGRAM_TOKEN, "-100123", base_url=hooks.telegram_base)
    return DiscordChannel(hooks.discord_url) if service == "discord" else SlackChannel(hooks.slack_url)


def _alerter(channel, **kw):
    sleeps = []
    kw = {"start": False, "window_s": 0, "min_interval_s": 0, "backoff_s": 0.25, "timeout_s": 0.5,
          "sleep": sleeps.append, "follower": "alice", **kw}
    a = WebhookAlerter(channel, **kw)
    a.sleeps = sleeps
    return a


SERVICES = ("telegram", "discord", "slack")


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_its_own_payload_format(hooks, service):
    a = _alerter(_channel(service, hooks))
    a.send("fill", "BUY 10 @ 0.5 (Fed cut?)", size="10")
    assert a.flush() == 1
    (payload_service, payload), = hooks.received
    assert payload_service == service
    text = hooks.texts(service)[0]
    assert text == "[copytrader · alice] fill: BUY 10 @ 0.5 (Fed cut?)"
    if service == "telegram":
        assert payload == {"chat_id": "-100123", "text": text}
    else:
        assert set(payload) == {"content" if service == "discord" else "text"}
    a.close()


def test_a_burst_within_the_window_becomes_one_message(hooks):
    a = _alerter(_channel("discord", hooks))
    for n in range(20):
        a.send("fill", f"BUY {n} @ 0.5")
    assert a.flush() == 1
    text, = hooks.texts("discord")
    assert text.startswith("[copytrader · alice] 20 alerts") and "BUY 19 @ 0.5" in text
    assert len(text) <= 2000


def test_a_huge_burst_is_split_into_batches_and_cut_to_the_service_limit(hooks):
    a = _alerter(_channel("discord", hooks), max_batch=50)
    for n in range(120):
        a.send("rejected", "x" * 60)
    assert a.flush() == 3
    assert all(len(t) <= 2000 for t in hooks.texts("discord"))


def test_only_the_events_asked_for_are_sent(hooks):
    a = _alerter(_channel("slack", hooks), events=["halt", "error"])
    a.send("fill", "BUY")
    a.send("rejected", "price_band")
    a.send("state", "trading state HALTED: circuit breaker")
    a.flush()
    assert hooks.texts("slack") == ["[copytrader · alice] state: trading state HALTED: circuit breaker"]
    with pytest.raises(ValueError, match="unknown alert events"):
        WebhookAlerter(_channel("slack", hooks), events=["fills"], start=False)


@pytest.mark.parametrize("fault", FAULTS + ("429-body",))
@pytest.mark.parametrize("service", SERVICES)
def test_one_fault_then_delivered_once(hooks, service, fault):
    a = _alerter(_channel(service, hooks))
    hooks.inject(fault)
    a.send("error", "execution unknown")
    a.flush()
    FIGURES["faults injected"] += 1
    assert a.stats["messages"] == 1 and a.stats["failed"] == 0
    if fault in ("malformed", "truncated"):
        # a 2xx is delivered whatever its body says: no retry (a retry could post it twice)
        assert a.stats["attempts"] == 1 and hooks.received == []
        return
    assert a.stats["attempts"] == 2 and len(hooks.received) == 1
    expected = {"429": 1.0, "429-body": 3.0}.get(fault, 0.25)
    assert a.sleeps == [expected]


def test_retries_are_bounded_with_backoff(hooks):
    a = _alerter(_channel("telegram", hooks), max_attempts=3, backoff_s=1.0, max_backoff_s=1.5)
    hooks.inject(*["503"] * 10)
    a.send("error", "x")
    assert a.flush() == 0
    assert a.stats == {**a.stats, "attempts": 3, "failed": 1, "messages": 0}
    assert len(hooks.requests) == 3 and a.sleeps == [1.0, 1.5]


def test_client_errors_are_not_retried(hooks):
    a = _alerter(TelegramChannel("999:wrong-token-abcdef", "1", base_url=hooks.telegram_base))
    a.send("error", "x")
    assert a.flush() == 0 and a.stats["attempts"] == 1 and a.sleeps == []


def test_rate_limit_keeps_an_interval_between_messages(hooks):
    now = [100.0]
    a = _alerter(_channel("slack", hooks), min_interval_s=2.0, clock=lambda: now[0], max_batch=1)
    a.send("fill", "one")
    a.send("fill", "two")
    a.flush()
    assert hooks.texts("slack")[1].endswith("two") and a.sleeps == [2.0]


def test_a_full_queue_drops_and_counts_never_blocks(hooks):
    a = _alerter(_channel("slack", hooks), max_queue=3)
    for n in range(10):
        a.send("fill", str(n))
    assert a.stats["queued"] == 3 and a.stats["dropped"] == 7


def test_secrets_never_in_reprs_or_logs(hooks, caplog):
    caplog.set_level(logging.DEBUG)
    channels = [_channel(s, hooks) for s in SERVICES]
    for channel in channels:
        a = _alerter(channel, max_attempts=2)
        hooks.inject("500", "500")
        a.send("fill", "x")
        a.flush()  # fails, logs a warning
        a.send("fill", "y")
        a.flush()  # succeeds: httpx logs the request line
        assert "discord-secret-token" not in repr(a) and TELEGRAM_TOKEN not in repr(a)
    assert "failed after 2 attempts" in caplog.text
    for secret in (TELEGRAM_TOKEN, "discord-secret-token", "slacksecret0000"):
        assert secret not in caplog.text


def test_background_thread_delivers_and_close_drains(hooks):
    a = WebhookAlerter(_channel("discord", hooks), window_s=0.05, min_interval_s=0, follower="bob")
    for n in range(3):
        a.send("fill", f"BUY {n}")
    a.close(timeout_s=10)
    assert sum(t.count("BUY") for t in hooks.texts("discord")) == 3


def test_trading_goes_on_when_every_alert_fails(hooks):
    from dependency_injector import providers

    from copytrader.testing import TOKEN, book, make_app, make_trade

    failing = _alerter(_channel("telegram", hooks), max_attempts=2)
    hooks.inject(*["reset"] * 100)
    app, fakes = make_app()
    fakes.market.put(*book(TOKEN, bids=[("0.49", "500")], asks=[("0.50", "500")]))
    app.container.alerter.override(providers.Object(FanOutAlerter([fakes.alerter, failing])))
    outcomes = [app.process(make_trade(seq=n)).status for n in range(3)]
    assert outcomes == ["filled", "filled", "filled"]
    assert failing.stats["queued"] == 3
    failing.flush()
    assert failing.stats["failed"] == 1 and failing.stats["attempts"] == 2  # one batch, bounded retries
