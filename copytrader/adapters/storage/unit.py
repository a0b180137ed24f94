"""The unit of work every store shares: nested transactions join the outer one."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


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

    @contextmanager
    def transaction(self, defer: bool = False) -> Iterator[None]:
        outer = self._depth == 0
        if outer:
            if defer:
                self._begin_deferred()
            else:
                self._begin()
        elif not defer:
            self._join_at_once()
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if outer:
                self._rollback()
            raise
        self._depth -= 1
        if outer:
            self._commit()

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
