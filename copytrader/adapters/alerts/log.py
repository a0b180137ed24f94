"""Alerts to the log, and a recording alerter for tests."""
from __future__ import annotations

import logging

import attrs

log = logging.getLogger("copytrader.alerts")

_LEVELS = {"error": logging.ERROR, "anomaly": logging.ERROR, "state": logging.WARNING, "unknown": logging.WARNING}


class LogAlerter:
    def send(self, kind: str, message: str, **data: object) -> None:
        log.log(_LEVELS.get(kind, logging.INFO), "[%s] %s", kind, message)


class NullAlerter:
    """Sends nothing (backtests, benchmarks). ``silent`` tells the engine it
    need not build the messages at all."""

    silent = True

    def send(self, kind: str, message: str, **data: object) -> None:
        pass


@attrs.frozen
class Alert:
    kind: str
    message: str
    data: dict


class RecordingAlerter:
    """Keeps every alert in ``sent``; ``kinds()`` lists their kinds in order."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, kind: str, message: str, **data: object) -> None:
        self.sent.append(Alert(kind, message, dict(data)))

    def kinds(self) -> list[str]:
        return [a.kind for a in self.sent]
