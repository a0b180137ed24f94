"""One supervised WebSocket client connection, in a daemon thread of its own.

Every socket of the engine (the CLOB market and user channels, the chain's
``eth_subscribe``, Polymarket's activity socket) is a :class:`Stream`: it
connects, calls ``on_open`` (send the subscriptions; after a reconnect, read
the missed interval back), hands each text frame to ``on_frame`` in order on
the stream's thread, sends an application ping every ``ping_every_s``, and
reconnects with jittered, bounded exponential backoff when the connection
drops, errors, or no frame arrives for ``stale_s`` (the watchdog: a socket
that stalls silently while the TCP connection stays up is treated as dead).
It never raises into the caller: errors are logged as one line, counted and
kept in :meth:`Stream.status` for the metrics and ``/healthz``.

Why ``websockets.sync.client`` and not the SDK's async streams
(``polymarket._internal.streams``): the engine is threaded (one thread per
follower, blocking ports such as ``MarketData.book``), so an asyncio loop
would need a thread of its own anyway plus a bridge for every frame and every
send; the SDK's managers also parse every frame into pydantic models (a cost
on the hot path we measure in microseconds), hide the socket's age and its
reconnects (no status, no watchdog on data frames, only on PONG), and exist
only for the CLOB and RTDS channels, not for a JSON-RPC ``eth_subscribe``.
The sync client gives us a blocking ``recv(timeout)`` in our own thread: the
frames are the same the SDK sends (its ``market_protocol`` / ``user_protocol``
are the reference), the heartbeat is the same text ``PING`` / ``PONG``.
``websockets`` is imported inside the thread, so ``--help``, paper runs and
the domain never load it.

Timing: the watchdog, the ping schedule and the ages use ``clock`` (inject a
fake one in tests); the waits between checks (``poll_s``) and the backoff
waits are real, bounded waits on an event that :meth:`close` sets.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

import attrs

log = logging.getLogger("copytrader.streams")
# websockets logs every frame's text at DEBUG (the user channel's auth frame carries the API
# secret): its connections log through this logger, which never goes below INFO
_wire_log = logging.getLogger("copytrader.streams.wire")
_wire_log.setLevel(logging.INFO)


@attrs.frozen
class StreamStatus:
    name: str
    connected: bool
    age_s: Optional[float]   # seconds since the last frame received (None: none yet)
    reconnects: int
    last_error: str          # one line, no secrets, "" if none
    stale: bool              # age_s > stale_s (or never connected within stale_s of start)


def health(status: "StreamStatus", fallback: bool) -> Any:
    """A ``StreamStatus`` as the supervisor shows it (``ports.StreamHealth``); a socket
    not connected counts as stale. ``fallback``: something else covers it meanwhile."""
    from ..ports import StreamHealth

    return StreamHealth(status.name, status.connected, status.age_s, status.stale or not status.connected, fallback,
                        status.reconnects, status.last_error)


def streams_of(adapters: Any) -> list:
    """Every ``StreamHealth`` the adapters offer (``streams()``, optional): a feed made of feeds."""
    return [s for a in adapters if getattr(a, "streams", None) is not None for s in a.streams()]


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment, and with every long path segment
    shown as ``***``: API keys travel there (``/v2/<key>`` of hosted Polygon nodes)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        path = "/".join("***" if len(seg) > 20 else seg for seg in parts.path.split("/"))
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    except ValueError:
        return "<unparsable url>"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:200]


class Stream:
    """One supervised WebSocket client connection in its own daemon thread: connects,
    calls on_open (send subscriptions; after a reconnect, backfill the gap), hands each
    text frame to on_frame in order on the stream's thread, sends an application ping
    (ping_text) every ping_every_s, reconnects with jittered exponential backoff
    (bounded) when the connection drops, errors, or no frame arrives for stale_s
    (the watchdog); never raises into the caller.

    Keyword options beyond the issue's interface:
    - ``pong_text``: the server's answer to ``ping_text`` (the CLOB's ``PONG``);
      such a frame is not handed to ``on_frame``.
    - ``pongs_keep_alive``: whether a pong counts as a frame for the age and the
      watchdog (True: a quiet channel that answers pings is alive, the user
      channel; False: only data frames count, so a socket that answers pings
      but delivers nothing is reconnected, the activity socket).
    - ``poll_s``: the longest real wait between two watchdog/ping checks.
    """

    def __init__(self, name: str, url: str, *,
                 on_open: Callable[["Stream"], None],
                 on_frame: Callable[[str], None],
                 ping_text: Optional[str] = None, ping_every_s: float = 10.0,
                 stale_s: float = 30.0,
                 backoff_s: tuple[float, float] = (0.5, 30.0),
                 headers: Optional[Mapping[str, str]] = None,
                 open_timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Optional[random.Random] = None,
                 on_status: Callable[[StreamStatus], None] = lambda status: None,
                 pong_text: Optional[str] = None,
                 pongs_keep_alive: bool = True,
                 poll_s: float = 0.25) -> None:
        base, cap = backoff_s
        if not (0 < base <= cap):
            raise ValueError(f"stream {name}: backoff_s must be (base, cap) with 0 < base <= cap, got {backoff_s!r}")
        if stale_s <= 0 or ping_every_s <= 0 or poll_s <= 0:
            raise ValueError(f"stream {name}: stale_s, ping_every_s and poll_s must be positive")
        self.name = name
        self.url = url
        self._on_open = on_open
        self._on_frame = on_frame
        self._ping_text = ping_text
        self._pong_text = pong_text
        self._pongs_keep_alive = pongs_keep_alive
        self.ping_every_s = ping_every_s
        self.stale_s = stale_s
        self.backoff_s = (base, cap)
        self._headers = dict(headers or {})
        self._open_timeout_s = open_timeout_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_status = on_status
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._lock = threading.Lock()          # guards the fields below and the socket's send
        self._ws: Any = None
        self._connected = False
        self._started_at: Optional[float] = None
        self._last_frame: Optional[float] = None
        self._connections = 0
        self._last_error = ""
        self._thread: Optional[threading.Thread] = None

    # -- the caller's side -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._started_at = self._clock()
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.name}", daemon=True)
        self._thread.start()

    def send(self, text: str) -> None:
        """Send a text frame from any thread; dropped (and logged) when not connected."""
        with self._lock:
            ws = self._ws if self._connected else None
            if ws is not None:
                try:
                    ws.send(text)
                    return
                except Exception as exc:  # the reader notices the closed socket and reconnects
                    self._last_error = f"send failed: {_one_line(exc)}"
        log.warning("stream %s: not connected, frame dropped (%d chars)", self.name, len(text))

    def status(self) -> StreamStatus:
        now = self._clock()
        with self._lock:
            age = None if self._last_frame is None else max(0.0, now - self._last_frame)
            if age is None:
                stale = self._started_at is not None and now - self._started_at > self.stale_s
            else:
                stale = age > self.stale_s
            return StreamStatus(name=self.name, connected=self._connected, age_s=age,
                                reconnects=max(0, self._connections - 1), last_error=self._last_error,
                                stale=stale)

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        with self._lock:
            ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:  # pragma: no cover - closing a broken socket
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        """The stream's thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def backoff_delay(self, attempt: int) -> float:
        """The wait before connection attempt ``attempt`` + 1 (0 = the first retry):
        exponential from the base, capped, with "equal jitter" (between half and all
        of the capped step, so retries spread out but never spin at zero)."""
        base, cap = self.backoff_s
        step = min(cap, base * (2 ** min(attempt, 32)))
        return step / 2 + self._rng.random() * step / 2

    # -- the stream's thread -----------------------------------------------------------

    def _publish(self) -> None:
        try:
            self._on_status(self.status())
        except Exception:
            log.exception("stream %s: on_status failed", self.name)

    def _run(self) -> None:
        try:
            from websockets.sync.client import connect
        except ImportError:
            with self._lock:
                self._last_error = "the websockets package is missing: pip install 'copytrader[live]'"
            log.error("stream %s: %s", self.name, self._last_error)
            self._publish()
            return
        attempt = 0
        while not self._stop.is_set():
            delivered = self._session(connect)
            if self._stop.is_set():
                break
            attempt = 0 if delivered else attempt + 1
            delay = self.backoff_delay(attempt)
            log.info("stream %s: reconnecting in %.2fs (%s)", self.name, delay, self._last_error or "closed")
            self._stop.wait(delay)
        with self._lock:
            self._connected = False
            self._ws = None
        self._publish()

    def _session(self, connect: Callable[..., Any]) -> bool:
        """One connection, from connect to its end; True when it delivered a frame."""
        try:
            ws = connect(self.url, additional_headers=self._headers or None, open_timeout=self._open_timeout_s,
                         close_timeout=1.0, max_size=16 * 2 ** 20, logger=_wire_log)
        except Exception as exc:
            with self._lock:
                self._last_error = f"connect to {redact_url(self.url)} failed: {_one_line(exc)}"
            log.warning("stream %s: %s", self.name, self._last_error)
            self._publish()
            return False
        now = self._clock()
        with self._lock:
            self._ws = ws
            self._connected = True
            self._connections += 1
            reconnect = self._connections > 1
        if self._stop.is_set():
            ws.close()
            return False
        log.info("stream %s: %s %s", self.name, "reconnected to" if reconnect else "connected to",
                 redact_url(self.url))
        delivered = False
        alive_since = now        # the watchdog's reference: the last counted frame, or the connect
        next_ping = now + self.ping_every_s
        try:
            self._on_open(self)
            self._publish()
            while not self._stop.is_set():
                now = self._clock()
                if now - alive_since > self.stale_s:
                    with self._lock:
                        self._last_error = f"no frame for {self.stale_s:g}s (watchdog)"
                    log.warning("stream %s: %s, reconnecting", self.name, self._last_error)
                    return delivered
                if self._ping_text is not None and now >= next_ping:
                    next_ping = now + self.ping_every_s
                    self.send(self._ping_text)
                    self._publish()
                try:
                    raw = ws.recv(timeout=self._poll_s)
                except TimeoutError:
                    continue
                if isinstance(raw, (bytes, bytearray)):
                    try:
                        raw = bytes(raw).decode("utf-8")
                    except UnicodeDecodeError:
                        log.warning("stream %s: binary frame that is not UTF-8 dropped", self.name)
                        continue
                is_pong = self._pong_text is not None and raw.strip().lower() == self._pong_text.lower()
                if not is_pong or self._pongs_keep_alive:
                    alive_since = self._clock()
                    with self._lock:
                        self._last_frame = alive_since
                if is_pong:
                    continue
                delivered = True
                try:
                    self._on_frame(raw)
                except Exception:
                    log.exception("stream %s: a frame's handler failed; frame skipped", self.name)
        except Exception as exc:
            if not self._stop.is_set():
                with self._lock:
                    self._last_error = f"connection lost: {_one_line(exc)}"
                log.warning("stream %s: %s", self.name, self._last_error)
        finally:
            with self._lock:
                self._connected = False
                self._ws = None
            try:
                ws.close()
            except Exception:  # pragma: no cover - closing a broken socket
                pass
            self._publish()
        return delivered
