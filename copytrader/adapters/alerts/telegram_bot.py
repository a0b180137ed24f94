"""The Telegram Bot API for chat control: long polling ``getUpdates`` and
``sendMessage``, rate-limited and retried like the alert sender (webhook.py's
``post_retrying``: 429 waits ``parameters.retry_after``, transport errors and
5xx back off, all bounded).

httpx against the Bot API, not python-telegram-bot or aiogram: both are
asyncio frameworks that own an event loop (``Application.run_polling``,
``Dispatcher.start_polling``) and their own handlers, retries and state, while
``serve`` runs followers in threads and needs two HTTP methods; httpx is
already the client of the alerts and service extras (imported lazily, here
only when the bot is built), and the offset must go to our store, not theirs.

The bot token is a secret: it is only in request URLs (registered with the
alerts' log scrubber), never in reprs, log lines or exceptions (a failed
request is logged by its exception type only).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

import attrs

from .webhook import _SCRUB, _mask, post_retrying

log = logging.getLogger("copytrader.telegram")

MAX_CHARS = 4096  # sendMessage's limit on the text


@attrs.frozen
class Update:
    """One update of ``getUpdates``: a text message (``text`` "" for any other
    update, which only moves the offset) and the chat it came from."""

    update_id: int
    chat_id: str = ""
    text: str = ""
    sender: str = ""  # @username or the user id, for logs


class BotApi:
    """``get_updates`` (long polling) and ``send_message`` of one bot.
    ``clock``/``sleep`` are injectable: tests never wait."""

    def __init__(self, token: str, base_url: str = "https://api.telegram.org", *, min_interval_s: float = 1.0,
                 max_attempts: int = 4, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 timeout_s: float = 10.0, client: Any = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not token:
            raise ValueError("telegram commands need a bot token")
        self._token, self.base_url = token, base_url.rstrip("/")
        _SCRUB.secrets.add(token)
        self.bot_id = token.split(":", 1)[0]  # the public part of the token: the bot's user id
        self.min_interval_s, self.max_attempts = min_interval_s, max_attempts
        self.backoff_s, self.max_backoff_s, self.timeout_s = backoff_s, max_backoff_s, timeout_s
        self._client, self._clock, self._sleep = client, clock, sleep
        self._last_send: Optional[float] = None

    def __repr__(self) -> str:
        return f"BotApi(telegram bot {_mask(self._token)})"

    def describe(self) -> str:
        return f"telegram bot {_mask(self._token)}"

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), follow_redirects=False)
        return self._client

    def _call(self, method: str, body: dict, timeout_s: Optional[float] = None) -> Any:
        """The ``result`` of a successful call, or None (refused, failed after the retries, or not the
        Bot API's ``{"ok": true, "result": ...}``)."""
        resp = post_retrying(self._http(), f"{self.base_url}/bot{self._token}/{method}", body,
                             what=f"{method} of {self.describe()}", max_attempts=self.max_attempts,
                             backoff_s=self.backoff_s, max_backoff_s=self.max_backoff_s, sleep=self._sleep,
                             timeout_s=timeout_s)
        if resp is None:
            return None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("ok") is not True or "result" not in data:
            log.warning("%s of %s: not a Bot API answer", method, self.describe())
            return None
        return data["result"]

    def get_updates(self, offset: Optional[int], timeout_s: int) -> Optional[list[Update]]:
        """Updates from ``offset`` on (which confirms the ones before it to Telegram), waiting up
        to ``timeout_s`` for one; None when the call failed (the caller backs off)."""
        body: dict[str, Any] = {"timeout": int(timeout_s), "allowed_updates": ["message"]}
        if offset is not None:
            body["offset"] = offset
        result = self._call("getUpdates", body, timeout_s=self.timeout_s + timeout_s)
        if not isinstance(result, list):
            return None if result is None else self._garbled()
        updates = []
        for raw in result:
            update = _update(raw)
            if update is None:
                return self._garbled()
            updates.append(update)
        return sorted(updates, key=lambda u: u.update_id)

    def _garbled(self) -> None:
        log.warning("getUpdates of %s: an update without an update_id; ignored this answer", self.describe())
        return None

    def send_message(self, chat_id: str, text: str) -> bool:
        """Plain text (no parse mode: nothing to escape), cut to the Bot API's 4,096 characters;
        at most one message per ``min_interval_s``."""
        if len(text) > MAX_CHARS:
            text = text[: MAX_CHARS - 1] + "…"
        if self._last_send is not None:
            wait = self.min_interval_s - (self._clock() - self._last_send)
            if wait > 0:
                self._sleep(wait)
        try:
            return self._call("sendMessage", {"chat_id": chat_id, "text": text}) is not None
        finally:
            self._last_send = self._clock()

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()


def _update(raw: Any) -> Optional[Update]:
    if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int) or isinstance(raw["update_id"], bool):
        return None
    message = raw.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
        return Update(raw["update_id"])
    chat_id = message["chat"].get("id")
    text = message.get("text")
    sender = message.get("from") if isinstance(message.get("from"), dict) else {}
    who = f"@{sender['username']}" if isinstance(sender.get("username"), str) else str(sender.get("id", ""))
    return Update(raw["update_id"], "" if chat_id is None else str(chat_id),
                  text if isinstance(text, str) else "", who)


__all__ = ["BotApi", "MAX_CHARS", "Update"]
