"""The read model behind the dashboard, its JSON API and ``copytrader history``:
queries over a follower's store, no writes."""
from __future__ import annotations

from typing import Union

from ..domain.model import IntentRecord
from ..ports import ControlAction, Store

Entry = Union[IntentRecord, ControlAction]


def history_page(store: Store, limit: int, offset: int = 0) -> list[Entry]:
    """A page of ``store.history(limit, offset)`` with the control actions recorded
    between its decisions (and, on the first page, after the newest), newest first.
    Each page takes the actions from its oldest decision up to the oldest of the page
    before, so paging shows every action once; the last page takes the older ones too."""
    if offset:
        rows = store.history(limit + 1, offset - 1)
        until, rows = (rows[0].created_at if rows else None), rows[1:]
        if until is None:  # past the end
            return []
    else:
        rows, until = store.history(limit, 0), None
    since = rows[-1].created_at if len(rows) == limit else None
    controls = store.controls(100_000, since=since, until=until)
    return sorted([*rows, *controls], key=lambda e: e.created_at if isinstance(e, IntentRecord) else e.at,
                  reverse=True)
