"""The engine process the crash harness kills: the live profile, built by the
container from a config file, with the store wrapped so the harness can aim
a SIGKILL at a commit (just before or just after it) or at a group of
deferred rows not committed yet.

    python -m tests.reliability.child CONFIG [txn-before:N | txn-after:N | group:N]

Exits 0 when the scripted feed is done. Only tests start it.
"""
from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from dependency_injector import providers

from copytrader.domain.model import ExecStatus
from copytrader.entrypoints.api import App
from copytrader.entrypoints.config import load_config
from copytrader.entrypoints.container import build_container


class KillingStore:
    """Delegates to a SQLite store; SIGKILLs this process at the n-th commit
    that reaches SQLite (a transaction's, or a group of deferred ones'), just
    before it (``txn-before``) or right after it (``txn-after``); or at the
    n-th deferred transaction left queued, its rows not committed (``group``)."""

    def __init__(self, inner: Any, point: str) -> None:
        self._inner = inner
        self._when, _, n = point.partition(":") if point else ("", "", "0")
        self._left = int(n or 0)
        commit = inner._end  # every COMMIT of the store goes through it, group flushes included

        def end() -> None:
            if self._due("txn-before"):
                os.kill(os.getpid(), signal.SIGKILL)
            commit()
            if self._due("txn-after"):
                os.kill(os.getpid(), signal.SIGKILL)
        inner._end = end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def transaction(self, defer: bool = False) -> Iterator[None]:
        with self._inner.transaction(defer=defer):
            yield
        if defer and not self._inner._depth and self._inner._queue and self._due("group"):
            os.kill(os.getpid(), signal.SIGKILL)

    def _due(self, when: str) -> bool:
        if self._when != when:
            return False
        self._left -= 1
        return self._left == 0


class ResendingExecutor:
    """A deliberately broken executor (``CT_SABOTAGE=resend``): an order the
    exchange does not know after a restart is signed anew and sent. The
    harness must catch this as a second signed order for one intent."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def lookup(self, record: Any, market: Any) -> Any:
        found = self._inner.lookup(record, market)
        if found.status is ExecStatus.NOT_FOUND and market is not None:
            intent = record.to_intent()
            return self._inner.submit(self._inner.prepare(intent, market), intent, market)
        return found


def main(argv: list[str]) -> int:
    config, point = argv[0], (argv[1] if len(argv) > 1 else "")
    container = build_container(load_config(config))
    container.store.override(providers.Object(KillingStore(container.store(), point)))
    if os.environ.get("CT_SABOTAGE") == "resend":
        container.executor.override(providers.Object(ResendingExecutor(container.executor())))
    with App(container) as app:
        app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
