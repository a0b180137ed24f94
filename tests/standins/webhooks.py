"""Loopback stand-ins of the Telegram Bot API, Discord webhooks and Slack
incoming webhooks: each checks the payload the way its service does and
answers like it (Telegram ``{"ok": true}``, Discord ``204``, Slack ``ok``),
with injected faults (``standins.FAULTS`` and "429-body": a 429 whose
Retry-After is only in the JSON body, as Telegram and Discord send it)."""
from __future__ import annotations

import json
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from . import LoopbackServer, common_fault, send_raw

TELEGRAM_TOKEN = "123456789:AAH-standin-secret-token-xyz"
DISCORD_PATH = "/api/webhooks/1122334455/discord-secret-token"
SLACK_PATH = "/services/T000/B000/slacksecret0000"


class WebhookStandIn(LoopbackServer):
    def __init__(self) -> None:
        self.faults: deque = deque()
        self.received: list[tuple[str, dict]] = []  # (service, payload) accepted
        self.requests: list[str] = []  # service of every request, faults included
        super().__init__()

    def inject(self, *faults: str) -> None:
        self.faults.extend(faults)

    def texts(self, service: str) -> list[str]:
        key = {"telegram": "text", "discord": "content", "slack": "text"}[service]
        return [p[key] for s, p in self.received if s == service]

    @property
    def telegram_base(self) -> str:
        return self.url

    @property
    def discord_url(self) -> str:
        return self.url + DISCORD_PATH

    @property
    def slack_url(self) -> str:
        return self.url + SLACK_PATH

    def _handler(self) -> Any:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                service = ("telegram" if self.path.startswith("/bot") else "discord" if self.path.startswith("/api/")
                           else "slack" if self.path.startswith("/services/") else "?")
                stand_in.requests.append(service)
                fault = stand_in.faults.popleft() if stand_in.faults else None
                if fault == "429-body":
                    body = ({"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
                             "parameters": {"retry_after": 3}} if service == "telegram"
                            else {"message": "You are being rate limited.", "retry_after": 3, "global": False})
                    send_raw(self, 429, json.dumps(body).encode())
                    return
                if common_fault(self, fault, stall_s=1.0):
                    return
                if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                    send_raw(self, 400, b'{"error": "content type must be application/json"}')
                    return
                try:
                    payload = json.loads(raw)
                except ValueError:
                    send_raw(self, 400, b'{"error": "invalid json"}')
                    return
                getattr(self, f"_{service}", self._unknown)(payload)

            def _telegram(self, payload: Any) -> None:
                if self.path != f"/bot{TELEGRAM_TOKEN}/sendMessage":
                    send_raw(self, 401, b'{"ok": false, "error_code": 401, "description": "Unauthorized"}')
                    return
                text = payload.get("text") if isinstance(payload, dict) else None
                if not isinstance(text, str) or not text.strip() or len(text) > 4096 or "chat_id" not in payload:
                    send_raw(self, 400, b'{"ok": false, "error_code": 400, "description": "Bad Request"}')
                    return
                stand_in.received.append(("telegram", payload))
                send_raw(self, 200, json.dumps({"ok": True, "result": {"message_id": len(stand_in.received),
                                                                       "text": text}}).encode())

            def _discord(self, payload: Any) -> None:
                if self.path != DISCORD_PATH:
                    send_raw(self, 404, b'{"message": "Unknown Webhook", "code": 10015}')
                    return
                content = payload.get("content") if isinstance(payload, dict) else None
                if not isinstance(content, str) or not content.strip() or len(content) > 2000:
                    send_raw(self, 400, b'{"message": "Cannot send an empty message", "code": 50006}')
                    return
                stand_in.received.append(("discord", payload))
                self.send_response(204)
                self.end_headers()

            def _slack(self, payload: Any) -> None:
                if self.path != SLACK_PATH:
                    send_raw(self, 404, b"no_service")
                    return
                text = payload.get("text") if isinstance(payload, dict) else None
                if not isinstance(text, str) or not text.strip():
                    send_raw(self, 400, b"invalid_payload")
                    return
                stand_in.received.append(("slack", payload))
                send_raw(self, 200, b"ok", {"Content-Type": "text/plain"})

            def _unknown(self, payload: Any) -> None:
                send_raw(self, 404, b'{"error": "not found"}')

        return Handler
