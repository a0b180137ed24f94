"""Webhook alerts: Telegram, Discord, Slack, behind the Alerter port.

``send()`` only puts the alert on a bounded queue and returns at once: it
never blocks trading and never raises. A background thread waits a short
window so a burst (say, twenty fills in a second) becomes one message,
keeps a minimum interval between messages (each service rate-limits
webhooks), and posts through one kept HTTP client (httpx, imported lazily).
Failed posts are retried a bounded number of times with exponential backoff;
429 honours ``Retry-After`` (header, or the ``retry_after`` the services put
in the body). When the queue is full new alerts are dropped and counted.

Webhook URLs and bot tokens are secrets: reprs, log lines and counters show
only the service name and a redacted form; httpx's own request log lines are
scrubbed too.

Time is injectable (``clock``, ``sleep``, ``wait``) and ``flush()`` delivers
what is queued now, in the caller's thread, so tests never sleep.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, Iterable, Optional

log = logging.getLogger("copytrader.alerts")

EVENTS = ("fill", "rejection", "halt", "error", "summary")
# the engine's alert kinds -> the events a user subscribes to
KIND_EVENTS = {"fill": "fill", "resolved": "fill", "rejected": "rejection", "state": "halt", "error": "error",
               "unknown": "error", "anomaly": "error", "drift": "error", "summary": "summary"}


class _Scrub(logging.Filter):
    """Replaces registered secrets in log records (httpx logs request URLs at INFO)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken record: leave it to logging
                return True
            if any(s in text for s in self.secrets):
                for s in self.secrets:
                    text = text.replace(s, "***")
                record.msg, record.args = text, ()
        return True


_SCRUB = _Scrub()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_SCRUB)


def _mask(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) >= 12 else "***"


class Channel:
    """One destination. ``request(text)`` gives the URL and the JSON body."""

    service = "webhook"
    max_chars = 2000

    def request(self, text: str) -> tuple[str, dict]:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def describe(self) -> str:  # pragma: no cover - overridden
        return self.service


class TelegramChannel(Channel):
    """Bot API ``POST /bot<token>/sendMessage`` with ``{chat_id, text}``."""

    service = "telegram"
    max_chars = 4096

    def __init__(self, token: str, chat_id: str, base_url: str = "https://api.telegram.org") -> None:
        if not token or not str(chat_id):
            raise ValueError("telegram alerts need a bot token and a chat_id")
        self._token, self.chat_id, self.base_url = token, str(chat_id), base_url.rstrip("/")
        _SCRUB.secrets.add(token)

    def request(self, text: str) -> tuple[str, dict]:
        return f"{self.base_url}/bot{self._token}/sendMessage", {"chat_id": self.chat_id, "text": text}

    def describe(self) -> str:
        return f"telegram bot {_mask(self._token)} chat {self.chat_id}"


class _UrlChannel(Channel):
    body_key = "text"

    def __init__(self, url: str) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"{self.service} alerts need an http(s) webhook URL (the value is not shown)")
        self._url = url
        _SCRUB.secrets.add(url)
        # the path of a webhook URL is its secret: register it alone too
        path = url.split("://", 1)[1].partition("/")[2]
        if len(path) >= 8:
            _SCRUB.secrets.add(path)

    def request(self, text: str) -> tuple[str, dict]:
        return self._url, {self.body_key: text}

    def describe(self) -> str:
        host = self._url.split("://", 1)[1].split("/", 1)[0]
        return f"{self.service} webhook {host}/…{self._url[-4:]}"


class DiscordChannel(_UrlChannel):
    """Discord webhook: ``{content}``, at most 2,000 characters."""

    service = "discord"
    max_chars = 2000
    body_key = "content"


class SlackChannel(_UrlChannel):
    """Slack incoming webhook: ``{text}``."""

    service = "slack"
    max_chars = 3500
    body_key = "text"


_STOP = object()


class WebhookAlerter:
    """An Alerter posting to one channel; see the module doc."""

    def __init__(self, channel: Channel, *, events: Iterable[str] = EVENTS, follower: str = "",
                 window_s: float = 5.0, min_interval_s: float = 1.0, max_queue: int = 1000,
                 max_batch: int = 50, max_attempts: int = 4, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 timeout_s: float = 5.0, client: Any = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, start: bool = True) -> None:
        unknown = set(events) - set(EVENTS)
        if unknown:
            raise ValueError(f"unknown alert events {sorted(unknown)}: expected some of {', '.join(EVENTS)}")
        self.channel = channel
        self.events = frozenset(events)
        self.follower = follower
        self.window_s, self.min_interval_s = window_s, min_interval_s
        self.max_batch, self.max_attempts = max_batch, max_attempts
        self.backoff_s, self.max_backoff_s, self.timeout_s = backoff_s, max_backoff_s, timeout_s
        self._clock, self._sleep = clock, sleep
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._deliver_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_post: Optional[float] = None
        self._client = client
        self.stats = {"queued": 0, "dropped": 0, "messages": 0, "failed": 0, "attempts": 0}
        self._thread: Optional[threading.Thread] = None
        if start:
            self._thread = threading.Thread(target=self._run, name=f"alerts-{channel.service}", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        return f"WebhookAlerter({self.channel!r}, events={sorted(self.events)})"

    # -- the port -------------------------------------------------------------------
    def send(self, kind: str, message: str, **data: object) -> None:
        try:
            if KIND_EVENTS.get(kind, kind) not in self.events:
                return
            self._queue.put_nowait((kind, message))
            self.stats["queued"] += 1
        except queue.Full:
            self.stats["dropped"] += 1
        except Exception:  # noqa: BLE001 - alerting never breaks trading
            log.exception("alert not queued")

    # -- delivery -------------------------------------------------------------------
    def flush(self) -> int:
        """Deliver everything queued now (in batches); the number of messages posted."""
        posted = 0
        with self._deliver_lock:
            while True:
                batch = self._take(self.max_batch)
                if not batch:
                    return posted
                posted += self._deliver(batch)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread after delivering what is queued (bounded by the retries)."""
        self._stop.set()
        if self._thread is not None:
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                pass
            self._thread.join(timeout_s)
        else:
            self.flush()
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            first = self._queue.get()
            if first is _STOP:
                break
            self._stop.wait(self.window_s)  # let a burst gather (cut short on close)
            with self._deliver_lock:
                batch = [first] + self._take(self.max_batch - 1)
                stop = _STOP in batch
                batch = [b for b in batch if b is not _STOP]
                if batch:
                    self._deliver(batch)
            if stop:
                break
        self.flush()

    def _take(self, n: int) -> list:
        out = []
        while len(out) < n:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                continue
            out.append(item)
        return out

    def _format(self, batch: list[tuple[str, str]]) -> str:
        head = f"copytrader{' · ' + self.follower if self.follower else ''}"
        if len(batch) == 1:
            kind, message = batch[0]
            text = f"[{head}] {kind}: {message}"
        else:
            lines = [f"[{head}] {len(batch)} alerts"] + [f"• {kind}: {message}" for kind, message in batch]
            text = "\n".join(lines)
        if len(text) > self.channel.max_chars:
            text = text[: self.channel.max_chars - 1] + "…"
        return text

    def _deliver(self, batch: list[tuple[str, str]]) -> int:
        try:
            ok = self._post(self._format(batch))
        except Exception as exc:  # noqa: BLE001 - never into trading, never the URL
            log.warning("alert to %s failed: %s", self.channel.describe(), type(exc).__name__)
            ok = False
        if ok:
            self.stats["messages"] += 1
            return 1
        self.stats["failed"] += 1
        return 0

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), follow_redirects=False)
        return self._client

    def _post(self, text: str) -> bool:
        url, body = self.channel.request(text)
        if self._last_post is not None:
            wait = self.min_interval_s - (self._clock() - self._last_post)
            if wait > 0:
                self._sleep(wait)

        def answered() -> None:
            self._last_post = self._clock()

        def attempted() -> None:
            self.stats["attempts"] += 1

        return post_retrying(self._http(), url, body, what=f"alert to {self.channel.describe()}",
                             max_attempts=self.max_attempts, backoff_s=self.backoff_s,
                             max_backoff_s=self.max_backoff_s, sleep=self._sleep, on_attempt=attempted,
                             on_answer=answered) is not None


def post_retrying(http: Any, url: str, body: dict, *, what: str, max_attempts: int, backoff_s: float,
                  max_backoff_s: float, sleep: Callable[[float], None], timeout_s: Optional[float] = None,
                  on_attempt: Callable[[], None] = lambda: None, on_answer: Callable[[], None] = lambda: None) -> Any:
    """POST ``body`` as JSON to ``url`` (a secret: never logged, ``what`` names it):
    the 2xx response, or None after a refusal (a 4xx other than 429: not retried)
    or ``max_attempts``. 429 waits what the service asks (``_retry_after``);
    transport errors and 5xx back off exponentially, each pause at most
    ``max_backoff_s``. ``timeout_s``: this request's own timeout (long polling)."""
    import httpx

    delay, why = backoff_s, ""
    extra = {} if timeout_s is None else {"timeout": httpx.Timeout(timeout_s)}
    for attempt in range(1, max_attempts + 1):
        on_attempt()
        pause = delay
        try:
            resp = http.post(url, json=body, **extra)
        except httpx.HTTPError as exc:
            why = type(exc).__name__
        else:
            on_answer()
            if 200 <= resp.status_code < 300:
                return resp
            why = f"HTTP {resp.status_code}"
            if resp.status_code == 429:
                pause = _retry_after(resp, delay)
            elif resp.status_code < 500:
                log.warning("%s refused: %s (not retried)", what, why)
                return None
        if attempt < max_attempts:
            sleep(min(pause, max_backoff_s))
            delay = min(delay * 2, max_backoff_s)
    log.warning("%s failed after %d attempts: %s", what, max_attempts, why)
    return None


def _retry_after(resp: Any, default: float) -> float:
    header = resp.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    try:
        data = resp.json()
    except Exception:  # noqa: BLE001 - not JSON: the default backoff
        return default
    if isinstance(data, dict):
        for holder in (data, data.get("parameters") or {}):
            value = holder.get("retry_after") if isinstance(holder, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return max(0.0, float(value))
    return default


class FanOutAlerter:
    """Several alerters as one (the log plus each configured webhook)."""

    def __init__(self, alerters: Iterable[Any]) -> None:
        self.alerters = list(alerters)

    def send(self, kind: str, message: str, **data: object) -> None:
        for alerter in self.alerters:
            try:
                alerter.send(kind, message, **data)
            except Exception:  # noqa: BLE001
                log.exception("alerter %s failed", type(alerter).__name__)

    def flush(self) -> None:
        for alerter in self.alerters:
            if hasattr(alerter, "flush"):
                alerter.flush()

    def close(self) -> None:
        for alerter in self.alerters:
            if hasattr(alerter, "close"):
                alerter.close()
