"""Loopback stand-ins of the remote services (CLOB, Data API, Polygon JSON-RPC)."""
from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

FAULTS = ("429", "429-bare", "500", "502", "503", "reset", "timeout", "malformed", "truncated")


class FakeTime:
    """A clock whose sleep advances it: backoff is tested without waiting."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def send_raw(handler: BaseHTTPRequestHandler, status: int, raw: bytes, headers: Optional[dict] = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    try:
        handler.wfile.write(raw)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
        handler.close_connection = True


def common_fault(handler: BaseHTTPRequestHandler, fault: Optional[str], stall_s: float = 0.5) -> bool:
    """Answer with one of ``FAULTS`` before the server acts; False when
    ``fault`` is none of them (the caller serves the request). "429" carries
    ``Retry-After: 1``, "429-bare" none; "timeout" stalls past the client's
    timeout and drops the request."""
    if fault == "429":
        send_raw(handler, 429, b"<html>Too Many Requests</html>", {"Retry-After": "1"})
    elif fault == "429-bare":
        send_raw(handler, 429, b"<html>Too Many Requests</html>")
    elif fault in ("500", "502", "503"):
        send_raw(handler, int(fault), b'{"error": "upstream"}')
    elif fault == "malformed":
        send_raw(handler, 200, b"<html>cloudflare</html>")
    elif fault == "truncated":
        send_raw(handler, 200, b'{"result": [{"a": "0x')
    elif fault in ("reset", "timeout"):
        if fault == "timeout":
            time.sleep(stall_s)
        handler.close_connection = True
        handler.connection.shutdown(2)
    else:
        return False
    return True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (killed, timed out) is part of the tests, not an error."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (a free port) in a daemon thread; use as a
    context manager. Subclasses give ``_handler()``, a request handler class."""

    def __init__(self) -> None:
        handler = self._handler()
        handler.disable_nagle_algorithm = True  # as a real server: no 40 ms delayed-ACK stall per answer
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def _handler(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
