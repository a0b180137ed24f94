"""The unit of work every store shares: nested transactions join the outer one."""
from __future__ import annotations

from typing import Any, Optional


class NestedTransactions:
    """``transaction()``: the outermost use begins, then commits, or rolls
    back if anything inside raised; a nested use joins it. Stores give
    ``_begin``, ``_commit`` and ``_rollback``.

    ``transaction(defer=True)``: its writes send nothing and may reach disk
    later, with others (group commit). Here, and on stores that do not
    group (memory, PostgreSQL), it commits at once like any other; a store
    that groups gives ``_begin_deferred`` (the outermost is deferred) and
    ``_join_at_once`` (a nested transaction that is not deferred makes the
    outer one commit at once after all)."""

    _depth = 0

    def transaction(self, defer: bool = False) -> "_Unit":
        return _Unit(self, defer)

    def flush(self) -> None:
        """Commit what deferred transactions left queued (nothing here)."""

    def changed(self) -> bool:
        """Whether the trading state or the paused leaders may have changed since
        the last call (True: this store cannot tell)."""
        return True

    def _begin_deferred(self) -> None:
        self._begin()

    def _join_at_once(self) -> None:
        pass

    def _begin(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _commit(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _rollback(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Unit:
    """One use of ``NestedTransactions.transaction``: a slotted context manager, not a
    generator one (a leader trade opens one or two; the generator's frame and its
    ``contextlib`` wrapper cost more than the begin and commit of the memory store)."""

    __slots__ = ("store", "defer", "outer")

    def __init__(self, store: NestedTransactions, defer: bool) -> None:
        self.store = store
        self.defer = defer
        self.outer = False

    def __enter__(self) -> None:
        store = self.store
        self.outer = store._depth == 0
        if self.outer:
            if self.defer:
                store._begin_deferred()
            else:
                store._begin()
        elif not self.defer:
            store._join_at_once()
        store._depth += 1

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        store = self.store
        store._depth -= 1
        if self.outer:
            if exc_type is None:
                store._commit()
            else:
                store._rollback()
        return False
