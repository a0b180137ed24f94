"""The unit of work every store shares: nested transactions join the outer one."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class NestedTransactions:
    """``transaction()``: the outermost use begins, then commits, or rolls
    back if anything inside raised; a nested use joins it. Stores give
    ``_begin``, ``_commit`` and ``_rollback``."""

    _depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        outer = self._depth == 0
        if outer:
            self._begin()
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

    def _begin(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _commit(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _rollback(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
