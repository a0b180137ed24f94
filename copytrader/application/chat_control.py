"""Use case: control from a chat (Telegram): read commands answered from the
followers' stores with the application's read models (``status.follower_status``,
``report.marked_pnl`` / ``mark_of``: the numbers ``copytrader status`` and
``positions`` print), and state-changing commands applied through ``Control``
(source "telegram") only after a confirmation.

- Only allow-listed chats are answered: each follower lists the chat ids that may
  read and control it; a message from any other chat is logged and dropped.
- ``/halt``, ``/reduce`` and ``/resume`` ask "reply /yes within 60 s"; only a
  ``/yes`` from the same chat inside that window (the engine clock) applies it,
  ``/no`` or the window's end cancels it. Each takes an optional follower name
  first (``/halt alice risk desk``); without one it acts on every follower the
  chat controls.

``ChatPoller`` long-polls the bot for updates in its own daemon thread. Each
update is claimed before it is handled: the next offset is written to the
stores of the bot's followers (feed-cursor table, key ``telegram:<bot id>``),
so a restart never handles an update twice (a crash between the claim and the
answer loses that one answer; the user asks again), and an update id below the
stored offset is ignored when Telegram delivers it again.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Collection, Mapping, Optional, Protocol, Sequence

import attrs

from ..domain.sizing import LeaderSettings
from .control import Control, ControlError
from .report import latest_marks, mark_of
from .status import follower_status

log = logging.getLogger("copytrader.telegram")

CONFIRM_S = 60
SOURCE = "telegram"
MAX_ROWS = 20  # positions listed per follower in one answer
_STATES = {"halt": "HALTED", "reduce": "REDUCING (sells only)", "resume": "ACTIVE"}


def _num(value: Any, places: int = 2) -> str:
    if value is None:
        return "-"
    text = f"{Decimal(value):.{places}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # never "-0.00"


@attrs.frozen
class _Pending:
    action: str  # halt | reduce | resume
    followers: tuple[str, ...]
    reason: str
    asked_at: datetime


class ChatControl:
    """``chats``: follower name -> the chat ids allowed to read and control it;
    ``leaders``: follower name -> its config's leaders (address -> settings)."""

    def __init__(self, control: Control, chats: Mapping[str, Collection[str]],
                 leaders: Optional[Mapping[str, Mapping[str, LeaderSettings]]] = None,
                 confirm_s: float = CONFIRM_S) -> None:
        self.control = control
        self._chats = {name: {str(c) for c in ids} for name, ids in chats.items()}
        self._leaders = dict(leaders or {})
        self.confirm_s = confirm_s
        self._pending: dict[str, _Pending] = {}
        self._commands: dict[str, Callable[[str, list[str], list[str]], str]] = {
            "help": self._help, "start": self._help, "status": self._status, "pnl": self._pnl,
            "positions": self._positions, "leaders": self._leaders_of, "halt": self._ask, "reduce": self._ask,
            "resume": self._ask, "yes": self._yes, "no": self._no}

    def followers_of(self, chat_id: str) -> list[str]:
        return [name for name in self.control.followers() if str(chat_id) in self._chats.get(name, ())]

    def handle(self, chat_id: str, text: str) -> Optional[str]:
        """The answer to ``text`` from ``chat_id``; None: nothing is sent (a chat not
        allow-listed, or a message that is not a command)."""
        chat_id = str(chat_id)
        followers = self.followers_of(chat_id)
        if not followers:
            log.warning("telegram: ignored a message from chat %s (not in the allow-list)", chat_id)
            return None
        words = text.strip().split()
        if not words or not words[0].startswith("/"):
            return None
        command = words[0][1:].split("@", 1)[0].lower()  # "/halt@MyBot" in a group
        handler = self._commands.get(command)
        if handler is None:
            return f"unknown command /{command}: send /help for the list"
        return handler(chat_id, followers, [command, *words[1:]] if command in _STATES else words[1:])

    # -- read commands ------------------------------------------------------------
    def _help(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        many = len(followers) > 1
        who = " [follower]" if many else ""
        lines = [f"copytrader: follower{'s' if many else ''} {', '.join(followers)}",
                 "/status - trading state, positions, exposure, PnL, feed",
                 "/positions - open positions with marks and PnL",
                 "/pnl - PnL today and in total",
                 "/leaders - followed leaders",
                 f"/halt{who} [reason] - stop trading (HALTED)",
                 f"/reduce{who} [reason] - sells only (REDUCING)",
                 f"/resume{who} - back to ACTIVE",
                 f"/halt, /reduce and /resume ask for /yes within {self.confirm_s:.0f} s (/no cancels)."]
        if many:
            lines.append(f"A command without a follower name acts on all of {', '.join(followers)}; "
                         "with one (/halt alice reason) on that follower only.")
        return "\n".join(lines)

    def _each(self, followers: list[str], show: Callable[[str, Any], list[str]]) -> str:
        out: list[str] = []
        for name in followers:
            try:
                with self.control.store(name) as store:
                    out += show(name, store)
            except Exception as exc:  # noqa: BLE001 - one follower's store (not created yet, down) is one line
                log.warning("telegram: %s: store not readable (%s)", name, type(exc).__name__)
                out.append(f"{name}: its store cannot be read now ({type(exc).__name__})")
        return "\n".join(out)

    def _now(self) -> datetime:
        return self.control.clock.now()

    def _status(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        def show(name: str, store: Any) -> list[str]:
            s = follower_status(store, self._now())
            state, pos, pnl, feed = s["state"], s["positions"], s["pnl"], s["feed"]
            return [f"{name}: {state['state']}" + (f" ({state['reason']})" if state["reason"] else "")
                    + (f" since {state['since']}" if state["since"] else ""),
                    f"  open positions {pos['open']}, exposure {_num(pos['exposure_usdc'])} USDC",
                    f"  PnL today {_num(pnl['today']['realised'])} USDC realised, total {_num(pnl['total'])} USDC",
                    f"  newest leader trade {feed['newest_leader_trade'] or 'none yet'}, "
                    f"orders not settled {len(s['open_orders'])}, provisional fills {len(s['provisional_fills'])}"]
        return self._each(followers, show)

    def _pnl(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        def show(name: str, store: Any) -> list[str]:
            s = follower_status(store, self._now())
            pnl, res = s["pnl"], s["resolutions"]
            return [f"{name}: PnL today ({pnl['today']['day']} UTC) {_num(pnl['today']['realised'])} USDC realised",
                    f"  total {_num(pnl['total'])} USDC = realised {_num(pnl['realised_total'])} + unrealised "
                    f"{_num(pnl['unrealised'])} ({pnl['marking']})",
                    f"  pending payout {res['pending']['positions']} ({_num(res['pending_usdc'])} USDC to redeem)"]
        return self._each(followers, show)

    def _positions(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        def show(name: str, store: Any) -> list[str]:
            held = [p for p in store.positions(True) if p.is_open or p.is_pending]
            if not held:
                return [f"{name}: no open positions"]
            tokens = {p.token_id for p in held}
            marks = latest_marks(store.trade_prices_newest_first({p.token_id for p in held if p.is_open}),
                                 {p.token_id for p in held if p.is_open})
            outcomes, names = store.token_outcomes(tokens), self._names(name, store)
            lines = [f"{name}: {len(held)} position{'s' if len(held) != 1 else ''} (size, avg cost -> mark, "
                     "unrealised USDC)"]
            for p in held[:MAX_ROWS]:
                mark = mark_of(p, marks)
                status = "" if p.status == "open" else f" [{p.status}]"
                lines.append(f"• {outcomes.get(p.token_id) or '-'} {_num(p.size)} @ {_num(p.avg_cost, 4)} -> "
                             f"{_num(mark, 4)}  {_num(p.unrealised(mark))} USDC{status}  {p.title or p.token_id}"
                             f"  ({names.get(p.leader) or p.leader[:10] + '…'})")
            if len(held) > MAX_ROWS:
                lines.append(f"… and {len(held) - MAX_ROWS} more (copytrader positions lists them all)")
            return lines
        return self._each(followers, show)

    def _names(self, follower: str, store: Any) -> dict[str, str]:
        added = {leader.address: leader.name for leader in store.leaders() if leader.name}
        return {**added, **{a: s.name for a, s in self._leaders.get(follower, {}).items() if s.name}}

    def _leaders_of(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        def show(name: str, store: Any) -> list[str]:
            configured = dict(self._leaders.get(name, {}))
            added = [leader for leader in store.leaders() if leader.address not in configured]
            paused = store.paused_leaders()
            every = [*configured.values(), *added]
            if not every:
                return [f"{name}: every wallet its feed delivers (no leaders listed)"]
            lines = [f"{name}: {len(every)} leader{'s' if len(every) != 1 else ''}"]
            for leader in every:
                budget = "no budget" if leader.budget_usdc is None else f"budget {_num(leader.budget_usdc)} USDC"
                where = "config" if leader.address in configured else "added"
                pause = " · PAUSED (buys not copied)" if leader.address in paused else ""
                lines.append(f"• {leader.name or '-'} {leader.address} x{leader.multiplier} {budget} ({where}){pause}")
            return lines
        return self._each(followers, show)

    # -- state-changing commands: asked, then confirmed ------------------------------------
    def _ask(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        action, rest = args[0], args[1:]
        targets = followers
        if rest and rest[0] in self.control.followers():
            if rest[0] not in followers:
                return f"follower {rest[0]} is not controlled from this chat"
            targets, rest = [rest[0]], rest[1:]
        reason = " ".join(rest) if action != "resume" else ""
        self._pending[chat_id] = _Pending(action, tuple(targets), reason, self._now())
        why = f" (reason: {reason})" if reason else ""
        return (f"{action} {', '.join(targets)} -> {_STATES[action]}{why}? "
                f"reply /yes within {self.confirm_s:.0f} s to apply it, /no to cancel")

    def _yes(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        pending = self._pending.pop(chat_id, None)
        if pending is None:
            return "nothing to confirm: send /halt, /reduce or /resume first"
        if self._now() > pending.asked_at + timedelta(seconds=self.confirm_s):
            return (f"too late: /{pending.action} asked at {pending.asked_at.astimezone(timezone.utc):%H:%M:%S} UTC "
                    f"was not confirmed within {self.confirm_s:.0f} s; nothing changed (send it again)")
        done = []
        for name in pending.followers:
            try:
                if pending.action == "halt":
                    self.control.halt(name, pending.reason or "halted from telegram", SOURCE)
                elif pending.action == "reduce":
                    self.control.reduce_only(name, pending.reason or "reduce-only from telegram", SOURCE)
                else:
                    self.control.resume(name, SOURCE)
                done.append(f"{name}: {_STATES[pending.action]}")
            except Exception as exc:  # noqa: BLE001 - one follower failing is reported, not raised
                log.warning("telegram: %s on %s failed (%s)", pending.action, name, type(exc).__name__)
                done.append(f"{name}: not changed ({exc if isinstance(exc, ControlError) else type(exc).__name__})")
        return "done. " + "; ".join(done)

    def _no(self, chat_id: str, followers: list[str], args: list[str]) -> str:
        pending = self._pending.pop(chat_id, None)
        return f"cancelled /{pending.action}; nothing changed" if pending else "nothing to cancel"


# -- polling the bot ------------------------------------------------------------------
class Bot(Protocol):
    """The chat adapter (adapters.alerts.telegram_bot.BotApi): updates carry
    ``update_id``, ``chat_id``, ``text`` and ``sender``."""

    bot_id: str

    def get_updates(self, offset: Optional[int], timeout_s: int) -> Optional[Sequence[Any]]: ...
    def send_message(self, chat_id: str, text: str) -> bool: ...
    def describe(self) -> str: ...
    def close(self) -> None: ...


class ChatPoller:
    """Long polls ``bot`` and answers through ``chat``; the offset is kept in the stores of
    ``followers`` (see the module doc). ``wait(seconds)`` is the pause after a failed poll
    (backing off to ``max_backoff_s``); it returns True when the poller should stop."""

    def __init__(self, bot: Bot, chat: ChatControl, followers: Sequence[str], poll_timeout_s: int = 30,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0) -> None:
        self.bot, self.chat, self.followers = bot, chat, list(followers)
        self.poll_timeout_s, self.backoff_s, self.max_backoff_s = poll_timeout_s, backoff_s, max_backoff_s
        self.key = f"telegram:{bot.bot_id}"
        self._next: Optional[int] = None  # the first update id not handled yet
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.handled = 0

    def __repr__(self) -> str:
        return f"ChatPoller({self.bot.describe()}, followers={self.followers})"

    def _stored_offset(self) -> Optional[int]:
        found = []
        for name in self.followers:
            with self.chat.control.store(name) as store:
                value = store.get_cursor(self.key)
            if value is not None:
                found.append(int(value))
        return max(found) if found else None

    def _claim(self, update_id: int) -> None:
        for name in self.followers:
            with self.chat.control.store(name) as store:
                with store.transaction():
                    store.set_cursor(self.key, str(update_id + 1))
        self._next = update_id + 1

    def poll_once(self, timeout_s: Optional[int] = None) -> Optional[int]:
        """One getUpdates and its answers: the number of updates handled, None when the poll failed.
        A store that cannot be written (the claim) stops the round before that update is handled."""
        if self._next is None:
            self._next = self._stored_offset()
        updates = self.bot.get_updates(self._next, self.poll_timeout_s if timeout_s is None else timeout_s)
        if updates is None:
            return None
        handled = 0
        for update in updates:
            if self._next is not None and update.update_id < self._next:
                log.info("telegram: update %s was handled before; ignored", update.update_id)
                continue
            self._claim(update.update_id)
            handled += 1
            answer = self.chat.handle(update.chat_id, update.text) if update.chat_id else None
            if answer is not None:
                self.bot.send_message(update.chat_id, answer)
        self.handled += handled
        return handled

    def run(self, stopped: Callable[[], bool], wait: Callable[[float], bool]) -> None:
        """Poll until ``stopped()``; after a failed poll (or store) wait, backing off."""
        delay = self.backoff_s
        while not stopped():
            try:
                ok = self.poll_once() is not None
            except Exception as exc:  # noqa: BLE001 - the poller outlives a store or bot failure
                log.warning("telegram: poll of %s failed (%s)", self.bot.describe(), type(exc).__name__)
                ok = False
            if ok:
                delay = self.backoff_s
                continue
            if wait(delay):
                break
            delay = min(delay * 2, self.max_backoff_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, args=(self._stop.is_set, self._stop.wait),
                                        name=f"telegram-{self.bot.bot_id}", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop after the poll in hand (a long poll ends within ``poll_timeout_s``; the thread is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.bot.close()


__all__ = ["CONFIRM_S", "ChatControl", "ChatPoller"]
