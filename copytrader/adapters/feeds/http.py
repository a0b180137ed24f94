"""JSON over HTTP for the feeds: a shared rate budget, Retry-After honoured,
jittered backoff on 5xx/timeouts/garbled answers, one-line errors.

Standard library only (``urllib``): the paper install keeps its three
dependencies; the Data API needs nothing more than GETs of JSON.
"""
from __future__ import annotations

import json
import logging
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional

from ...domain.model import exact_decimal
from .errors import FeedError, FeedUnavailable

log = logging.getLogger("copytrader.feeds")


class TokenBucket:
    """At most ``capacity`` requests at once and ``rate`` per second after.
    ``log`` keeps the monotonic time of each request (for tests and metrics)."""

    def __init__(self, rate: float, capacity: int, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate, self.capacity = rate, capacity
        self._now, self._sleep = monotonic, sleep
        self._tokens, self._at = float(capacity), monotonic()
        self.log: list[float] = []

    def acquire(self) -> None:
        while True:
            now = self._now()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.log.append(now)
                return
            self._sleep((1 - self._tokens) / self.rate)


class Backoff:
    """Waits between attempts: ``Retry-After`` when the server gives one, else
    full jitter (uniform in [0, base x 2^attempt]); both capped."""

    def __init__(self, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, rng: Optional[random.Random] = None) -> None:
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._sleep = sleep
        self._rng = rng or random.Random(0)
        self.waits: list[float] = []  # every wait, for tests and metrics

    def wait(self, attempt: int, retry_after: Optional[float] = None) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.max_backoff_s)
        else:
            delay = self._rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))
        self.waits.append(delay)
        self._sleep(delay)


def retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (the HTTP-date form is ignored)."""
    value = (value or "").strip()
    return float(value) if value.replace(".", "", 1).isdigit() else None


class JsonGetter:
    def __init__(self, base_url: str, bucket: TokenBucket, timeout_s: float = 10.0, max_attempts: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 rng: Optional[random.Random] = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.bucket = bucket
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff = Backoff(backoff_s, max_backoff_s, sleep, rng)

    @property
    def waits(self) -> list[float]:
        return self.backoff.waits

    def get(self, path: str, params: dict[str, Any]) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        problem = ""
        for attempt in range(self.max_attempts):
            self.bucket.acquire()
            wait_s = None
            try:
                request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "copytrader"})
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    body = resp.read()
                return json.loads(body, parse_float=exact_decimal)
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code == 429:
                    wait_s = retry_after(exc.headers.get("Retry-After"))
                elif exc.code < 500:
                    raise FeedError(f"GET {self.base_url}{path}: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = f"{reason.__class__.__name__}: {reason}" if not isinstance(reason, str) else reason
            except ValueError:
                problem = "malformed JSON"
            if attempt + 1 < self.max_attempts:
                log.warning("GET %s%s: %s (attempt %d of %d)", self.base_url, path, problem, attempt + 1,
                            self.max_attempts)
                self.backoff.wait(attempt, wait_s)
        raise FeedUnavailable(f"GET {self.base_url}{path}: {problem} after {self.max_attempts} attempts")
