"""An in-memory feed for tests and for apps that push trades themselves."""
from __future__ import annotations

from typing import Iterable, Iterator, Union

from ...domain.model import LeaderTrade
from ...ports import CursorLookup, FeedItem, Quarantined


class MemoryFeed:
    def __init__(self, items: Iterable[Union[LeaderTrade, Quarantined]] = (), name: str = "memory") -> None:
        self.name = name
        self.items: list[Union[LeaderTrade, Quarantined]] = list(items)

    def push(self, item: Union[LeaderTrade, Quarantined]) -> None:
        self.items.append(item)

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        cursor = cursors(self.name)
        start = int(cursor) if cursor else 0
        for index in range(start, len(self.items)):
            yield FeedItem(cursor=str(index + 1), payload=self.items[index])
