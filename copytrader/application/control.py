"""Use case: a person's control of running followers, from any front end (the
CLI, the dashboard and its API, Telegram): halt, reduce-only and resume a
follower, pause and resume one of its leaders; every action is recorded in
the follower's store with its source, newest first in ``actions``.

A control never touches a worker's own store connection: each call opens
the follower's store afresh (its own connection, without the single-writer
lock, as ``copytrader halt`` does from another process), writes the state and
the record in one transaction, and closes it. The engine re-reads its stored
trading state before each trade (``CopyService._handle``) and whether a
leader is paused before each buy, so an action applies before the next
trade, across processes and restarts.

Pausing a leader stops copying its buys (rejected ``leader_paused``); its
sells are still copied, so positions built from it are exited with it, as
a reduce-only state for that leader alone."""
from __future__ import annotations

import logging
from typing import Callable, Collection, ContextManager, Mapping, Optional

from ..domain.model import TradingState
from ..domain.sizing import LeaderSettings
from ..ports import Clock, ControlAction, Store, StoredState

log = logging.getLogger("copytrader.control")

SOURCES = ("cli", "dashboard", "api", "telegram", "engine")  # engine: application.leader_health
ACTIONS = ("halt", "reduce_only", "resume", "pause_leader", "resume_leader")

# A follower's store for one control call: its own connection, closed when the block ends.
StoreOpener = Callable[[], ContextManager[Store]]


class ControlError(Exception):
    """A control action that names no follower or leader it can act on (one sentence)."""


class Control:
    """``stores``: follower name -> how to open its store for one call;
    ``leaders``: follower name -> the addresses its config follows (a follower
    without any follows every wallet its feed delivers); leaders added with
    ``copytrader leaders add`` are read from the store."""

    def __init__(self, stores: Mapping[str, StoreOpener], clock: Clock,
                 leaders: Optional[Mapping[str, Collection[str]]] = None) -> None:
        self._stores = dict(stores)
        self._leaders = {name: {a.lower() for a in addresses} for name, addresses in (leaders or {}).items()}
        self.clock = clock

    def followers(self) -> list[str]:
        return list(self._stores)

    def store(self, follower: str) -> ContextManager[Store]:
        """Follower ``follower``'s store for one call (its own connection, closed when the
        block ends): for a front end's reads and its own bookkeeping (Telegram's update offset)."""
        return self._stores[self._targets(follower)[0]]()

    # -- trading state ------------------------------------------------------------
    def halt(self, follower: Optional[str], reason: str, source: str) -> list[ControlAction]:
        return self._set_state(follower, "halt", TradingState.HALTED, reason or "manual halt", source)

    def reduce_only(self, follower: Optional[str], reason: str, source: str) -> list[ControlAction]:
        return self._set_state(follower, "reduce_only", TradingState.REDUCING, reason or "manual", source)

    def resume(self, follower: Optional[str], source: str) -> list[ControlAction]:
        return self._set_state(follower, "resume", TradingState.ACTIVE, "resumed", source)

    def _set_state(self, follower: Optional[str], action: str, state: TradingState, reason: str,
                   source: str) -> list[ControlAction]:
        _check_source(source)
        done = []
        for name in self._targets(follower):
            act = ControlAction(self.clock.now(), name, action, "", reason, source)
            with self._stores[name]() as store:
                with store.transaction():
                    store.set_state(StoredState(state, reason, act.at))
                    store.put_control(act)
            log.warning("follower %s: trading state -> %s (%s; from %s)", name, state.value, reason, source)
            done.append(act)
        return done

    # -- leaders ------------------------------------------------------------------
    def pause_leader(self, follower: Optional[str], address: str, source: str,
                     reason: str = "") -> list[ControlAction]:
        """``reason``: why (default: "paused from <source>"), kept with the pause and the record."""
        _check_source(source)
        address = _address(address)
        done = []
        targets = self._targets(follower)
        for name in targets:
            with self._stores[name]() as store:
                if not self._follows(name, store, address):
                    if follower is None:
                        continue
                    raise ControlError(f"no leader {address} in follower {name!r}")
                act = ControlAction(self.clock.now(), name, "pause_leader", address, reason or "paused", source)
                with store.transaction():
                    store.pause_leader(address, act.at, reason or f"paused from {source}")
                    store.put_control(act)
            log.warning("follower %s: leader %s paused (from %s)", name, address, source)
            done.append(act)
        if not done:
            raise ControlError(f"no follower follows leader {address}")
        return done

    def resume_leader(self, follower: Optional[str], address: str, source: str) -> list[ControlAction]:
        _check_source(source)
        address = _address(address)
        done = []
        for name in self._targets(follower):
            with self._stores[name]() as store:
                if not store.leader_paused(address):
                    if follower is None:
                        continue
                    raise ControlError(f"leader {address} is not paused in follower {name!r}")
                act = ControlAction(self.clock.now(), name, "resume_leader", address, "resumed", source)
                with store.transaction():
                    store.resume_leader(address)
                    store.put_control(act)
            log.warning("follower %s: leader %s resumed (from %s)", name, address, source)
            done.append(act)
        if not done:
            raise ControlError(f"leader {address} is not paused in any follower")
        return done

    # -- history ------------------------------------------------------------------
    def actions(self, follower: Optional[str] = None, limit: int = 100) -> list[ControlAction]:
        """The recorded actions, newest first (of every follower, or of one)."""
        found: list[ControlAction] = []
        for name in self._targets(follower):
            with self._stores[name]() as store:
                found.extend(store.controls(limit))
        return sorted(found, key=lambda a: a.at, reverse=True)[:limit]

    def _targets(self, follower: Optional[str]) -> list[str]:
        if follower is None:
            return list(self._stores)
        if follower not in self._stores:
            raise ControlError(f"no follower named {follower!r} (followers: {', '.join(self._stores) or 'none'})")
        return [follower]

    def _follows(self, name: str, store: Store, address: str) -> bool:
        configured = self._leaders.get(name, set())
        added = {leader.address for leader in store.leaders()}
        if not configured and not added:  # follows every wallet its feed delivers
            return True
        return address in configured or address in added


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ControlError(f"unknown control source {source!r} (one of {', '.join(SOURCES)})")


def _address(address: str) -> str:
    try:
        return LeaderSettings(address.strip()).address
    except ValueError as exc:
        raise ControlError(f"leader address: {exc}") from None


__all__ = ["ACTIONS", "SOURCES", "Control", "ControlAction", "ControlError", "StoreOpener"]
