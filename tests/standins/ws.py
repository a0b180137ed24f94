"""A loopback WebSocket server base for the stand-ins of the pushed sources.

A subclass gives the protocol: ``paths`` (the request paths it serves; any
other path is answered 404 at the handshake), ``on_connect(client)`` and
``on_message(client, text)`` (answer subscriptions), and pushes frames to the
connected clients with :meth:`WsStandIn.push`. The heartbeat (``ping_text`` →
``pong_text``, the CLOB's ``PING``/``PONG``) is answered by the base, even
while the server is silent.

Faults (every stand-in of issue 18 needs them), through :meth:`inject`:
- ``"drop"``: cut every client's TCP connection now (no close frame);
- ``"silent"``: until :meth:`clear`, answer pings and nothing else (pushes
  and answers to subscriptions are swallowed): the stall users report;
- ``"refuse"``: until :meth:`clear`, refuse new connections (HTTP 503 at the
  handshake);
- ``"gap"``: the next pushed frame is not sent (the client misses it);
- ``"reorder"``: the next two pushed frames are sent in reverse order;
- ``"duplicate"``: the next pushed frame is sent twice;
- ``"malformed"``: send a garbage frame to every client now.
Use as a context manager; ``url`` is ``ws://127.0.0.1:<port>``.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

WS_FAULTS = ("drop", "silent", "refuse", "gap", "reorder", "duplicate", "malformed")
GARBAGE = '{"event_type": "book", "asset_id": [unterminated'


class WsClient:
    """One connected client, as the server sees it."""

    def __init__(self, server: "WsStandIn", conn: Any) -> None:
        self._server = server
        self.conn = conn
        self.path = urlsplit(conn.request.path).path
        self.received: list[str] = []   # the client's frames, pings excluded
        self.state: dict = {}           # the protocol's per-connection state (subscriptions)

    def send(self, text: str) -> None:
        """Send now, through the silent fault only (answers, initial snapshots)."""
        if self._server.fault == "silent":
            return
        self._raw(text)

    def _raw(self, text: str) -> None:
        try:
            self.conn.send(text)
        except Exception:  # the client went away: its handler thread cleans up
            pass


class WsStandIn:
    paths: tuple[str, ...] = ()        # served paths; () serves any
    ping_text: Optional[str] = "PING"
    pong_text: Optional[str] = "PONG"

    def __init__(self) -> None:
        self.fault: Optional[str] = None   # the persistent faults: "silent", "refuse"
        self._armed: list[str] = []        # one-shot faults for the next pushes
        self._held: list[tuple[WsClient, str]] = []
        self.clients: list[WsClient] = []
        self.connections = 0               # accepted connections so far
        self.pings = 0
        self._cond = threading.Condition()
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None

    # -- the protocol (override) --------------------------------------------------------

    def on_connect(self, client: WsClient) -> None:
        """A client connected (before any of its frames)."""

    def on_message(self, client: WsClient, text: str) -> None:
        """A client's frame (not a ping)."""

    # -- pushing and faults -------------------------------------------------------------

    def push(self, text: str, where: Optional[Callable[[WsClient], bool]] = None) -> int:
        """Send ``text`` to every connected client (``where`` picks some), through the
        faults; returns how many clients it was sent to."""
        with self._cond:
            targets = [c for c in self.clients if where is None or where(c)]
            fault = self._armed.pop(0) if self._armed else None
        if self.fault == "silent":
            return 0
        if fault == "gap":
            return 0
        if fault == "reorder":
            with self._cond:
                self._held.extend((c, text) for c in targets)
            return len(targets)
        for client in targets:
            client._raw(text)
            if fault == "duplicate":
                client._raw(text)
        with self._cond:
            held, self._held = self._held, []
        for client, frame in held:     # the frame held back by "reorder" comes after this one
            client._raw(frame)
        return len(targets)

    def inject(self, fault: str, text: str = GARBAGE) -> None:
        if fault not in WS_FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {WS_FAULTS}")
        if fault == "drop":
            with self._cond:
                clients = list(self.clients)
            for client in clients:
                try:
                    client.conn.socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        elif fault == "malformed":
            with self._cond:
                clients = list(self.clients)
            for client in clients:
                client._raw(text)
        elif fault in ("silent", "refuse"):
            self.fault = fault
        else:
            with self._cond:
                self._armed.append(fault)

    def clear(self) -> None:
        self.fault = None
        with self._cond:
            self._armed.clear()

    # -- waiting (bounded, for tests) ---------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """Wait until ``predicate()`` holds (checked whenever a client connects, leaves or
        sends a frame); False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def wait_clients(self, n: int = 1, timeout_s: float = 5.0) -> bool:
        return self.wait_for(lambda: len(self.clients) >= n, timeout_s)

    def wait_connections(self, n: int, timeout_s: float = 5.0) -> bool:
        return self.wait_for(lambda: self.connections >= n and len(self.clients) >= 1, timeout_s)

    # -- the server ---------------------------------------------------------------------

    def _process_request(self, conn: Any, request: Any) -> Any:
        if self.fault == "refuse":
            return conn.respond(503, "unavailable\n")
        if self.paths and urlsplit(request.path).path not in self.paths:
            return conn.respond(404, "no such channel\n")
        return None

    def _handle(self, conn: Any) -> None:
        client = WsClient(self, conn)
        with self._cond:
            self.clients.append(client)
            self.connections += 1
            self._cond.notify_all()
        try:
            self.on_connect(client)
            for message in conn:
                text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
                if self.ping_text is not None and text == self.ping_text:
                    with self._cond:
                        self.pings += 1
                        self._cond.notify_all()
                    if self.pong_text is not None:
                        client._raw(self.pong_text)
                    continue
                with self._cond:
                    client.received.append(text)
                    self._cond.notify_all()
                if self.fault != "silent":
                    self.on_message(client, text)
        except Exception:  # a dropped client ends its handler
            pass
        finally:
            with self._cond:
                if client in self.clients:
                    self.clients.remove(client)
                self._cond.notify_all()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def __enter__(self) -> Any:
        from websockets.sync.server import serve

        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                             ping_interval=None, close_timeout=0.5)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self.fault = None
        self.inject("drop")
        if self._thread is not None:
            self._thread.join(2.0)


class MonotonicClock:
    """A monotonic clock the test moves, read from the streams' own threads too
    (staleness, watchdog, pings): ``clock()`` or ``clock.time()``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    time = __call__

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
