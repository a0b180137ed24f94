"""uvicorn serving the dashboard's app in a daemon thread, on a socket bound
before the thread starts (so a port in use is one sentence at start, and port
0 gives a known free port)."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Optional


class WebServer:
    def __init__(self, app: Any, host: str, port: int, stopping: Optional[threading.Event] = None) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without it each
        # keep-alive answer waits ~40 ms for the client's delayed ACK (Nagle)
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"dashboard: cannot listen on {host}:{port}: {exc.strerror} (set dashboard.port)") from None
        self._sock.listen(128)
        self.stopping = stopping or threading.Event()
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="dashboard-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self, timeout_s: float = 10.0) -> "WebServer":
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # uvicorn has no start event: bounded wait for its flag
        if not self._server.started:
            raise OSError("dashboard: the web server did not start")
        return self

    def close(self) -> None:
        self.stopping.set()  # open event streams end
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()
