"""A loopback stand-in of the Telegram Bot API for chat control, in the real
wire format: ``GET/POST /bot<token>/getUpdates`` (``offset``, ``limit``,
``timeout`` long polling, ``allowed_updates``; an offset confirms every update
before it, which is then gone) answering ``{"ok": true, "result": [updates]}``,
and ``sendMessage`` answering ``{"ok": true, "result": {message}}``. Errors as
Telegram sends them: ``{"ok": false, "error_code": N, "description": ...}``
(401 for a wrong token, 400 for a bad message, 429 with
``parameters.retry_after``), plus ``standins.FAULTS`` and "409" (another
getUpdates consumer). ``redeliver(update_id)`` serves a confirmed update once
more, as Telegram can after a crash on its side."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

from . import LoopbackServer, common_fault, send_raw

BOT_TOKEN = "987654321:AAF-standin-chat-control-secret"


def _error(code: int, description: str, **parameters: Any) -> bytes:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body).encode()


class TelegramStandIn(LoopbackServer):
    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.faults: deque = deque()
        self.updates: list[dict] = []  # not confirmed yet, ascending update_id
        self.sent: list[dict] = []  # sendMessage payloads accepted
        self.requests: list[tuple[str, dict]] = []  # (method, parameters) of every request, faults included
        self._next_id = 500_000_001
        self._message_id = 0
        self._redeliver: list[dict] = []
        self._all: dict[int, dict] = {}
        self._changed = threading.Condition()
        super().__init__()

    def inject(self, *faults: str) -> None:
        """Any of ``standins.FAULTS``, "429:N" (Telegram's 429 with ``retry_after`` N) or "409"."""
        self.faults.extend(faults)

    def message(self, chat_id: int, text: str, user_id: Optional[int] = None, chat_type: str = "private") -> int:
        """A user writes ``text`` in chat ``chat_id``: a new update; its update_id."""
        user_id = chat_id if user_id is None else user_id
        with self._changed:
            self._message_id += 1
            update_id, self._next_id = self._next_id, self._next_id + 1
            entities = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}] \
                if text.startswith("/") else []
            chat = {"id": chat_id, "type": chat_type}
            chat.update({"first_name": "Ann", "username": "ann"} if chat_type == "private" else {"title": "desk"})
            update = {"update_id": update_id, "message": {
                "message_id": self._message_id, "from": {"id": user_id, "is_bot": False, "first_name": "Ann",
                                                         "username": "ann", "language_code": "en"},
                "chat": chat, "date": int(time.time()), "text": text, **({"entities": entities} if entities else {})}}
            self.updates.append(update)
            self._all[update_id] = update
            self._changed.notify_all()
        return update_id

    def redeliver(self, update_id: int) -> None:
        with self._changed:
            self._redeliver.append(self._all[update_id])
            self._changed.notify_all()

    def texts(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if str(m["chat_id"]) == str(chat_id)]

    def wait_for_texts(self, chat_id: int, n: int, timeout_s: float = 20.0) -> list[str]:
        """The texts sent to ``chat_id`` once there are ``n`` (for tests of a running poller)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.texts(chat_id)) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {self.texts(chat_id)} sent to chat {chat_id}")
                self._changed.wait(left)
        return self.texts(chat_id)

    def _get_updates(self, params: dict) -> tuple[int, bytes]:
        try:
            offset = int(params.get("offset", 0))
            limit = min(max(int(params.get("limit", 100)), 1), 100)
            timeout = max(int(params.get("timeout", 0)), 0)
        except (TypeError, ValueError):
            return 400, _error(400, "Bad Request: invalid parameters")
        deadline = time.monotonic() + min(timeout, 10)
        with self._changed:
            while True:
                if offset:  # confirms every update before it
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                ready = self._redeliver + self.updates
                if ready or time.monotonic() >= deadline:
                    break
                self._changed.wait(deadline - time.monotonic())
            self._redeliver = []
            return 200, json.dumps({"ok": True, "result": ready[:limit]}).encode()

    def _send_message(self, params: dict) -> tuple[int, bytes]:
        text, chat_id = params.get("text"), params.get("chat_id")
        if chat_id in (None, ""):
            return 400, _error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return 400, _error(400, "Bad Request: message is too long")
        with self._changed:
            self._message_id += 1
            self.sent.append(params)
            self._changed.notify_all()
            message = {"message_id": self._message_id, "from": {"id": int(self.token.split(":")[0]), "is_bot": True,
                                                                "first_name": "copytrader", "username": "ct_bot"},
                       "chat": {"id": int(chat_id), "type": "private"}, "date": int(time.time()), "text": text}
        return 200, json.dumps({"ok": True, "result": message}).encode()

    def _handler(self) -> Any:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                self._serve(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params: Any = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if raw:
                    if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                        send_raw(self, 400, _error(400, "Bad Request: unsupported content type"))
                        return
                    try:
                        params = {**params, **json.loads(raw)}
                    except ValueError:
                        send_raw(self, 400, _error(400, "Bad Request: can't parse JSON"))
                        return
                self._serve(url.path, params)

            def _serve(self, path: str, params: dict) -> None:
                prefix, _, method = path.lstrip("/").partition("/")
                stand_in.requests.append((method, params))
                fault = stand_in.faults.popleft() if stand_in.faults else None
                if fault is not None and fault.startswith("429:"):
                    n = int(fault.split(":")[1])
                    send_raw(self, 429, _error(429, f"Too Many Requests: retry after {n}", retry_after=n))
                    return
                if fault == "409":
                    send_raw(self, 409, _error(409, "Conflict: terminated by other getUpdates request; make sure "
                                                    "that only one bot instance is running"))
                    return
                if common_fault(self, fault, stall_s=1.0):
                    return
                if prefix != f"bot{stand_in.token}":
                    send_raw(self, 401, _error(401, "Unauthorized"))
                    return
                if method == "getUpdates":
                    status, body = stand_in._get_updates(params)
                elif method == "sendMessage":
                    status, body = stand_in._send_message(params)
                else:
                    status, body = 404, _error(404, "Not Found")
                send_raw(self, status, body)

        return Handler
