"""The service's HTTP endpoint: ``GET /healthz`` (JSON, 200 healthy / 503
not) and ``GET /metrics`` (Prometheus text). Standard library only; a
daemon thread; bind to 127.0.0.1 unless told otherwise."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

log = logging.getLogger("copytrader.service")


class StatusServer:
    def __init__(self, host: str, port: int, health: Callable[[], tuple[bool, dict]],
                 metrics: Callable[[], tuple[bytes, str]]) -> None:
        self._health, self._metrics = health, metrics
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="status-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> "StatusServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> Any:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("status http: " + fmt, *args)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/healthz":
                        ok, body = outer._health()
                        self._send(200 if ok else 503, json.dumps(body, sort_keys=True, default=str).encode(),
                                   "application/json")
                    elif path == "/metrics":
                        raw, ctype = outer._metrics()
                        self._send(200, raw, ctype)
                    else:
                        self._send(404, b'{"error": "not found: try /healthz or /metrics"}', "application/json")
                except Exception as exc:  # noqa: BLE001 - the endpoint must answer
                    log.exception("status endpoint failed")
                    self._send(500, json.dumps({"error": type(exc).__name__}).encode(), "application/json")

            def _send(self, status: int, raw: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
