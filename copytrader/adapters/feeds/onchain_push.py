"""The on-chain feed's push half: ``eth_subscribe`` frames and which blocks the socket covers.

Pure (no I/O, no threads): :class:`Frames` turns the text frames of a
JSON-RPC WebSocket into events (subscription answers, new heads, logs,
malformed frames), :class:`Coverage` keeps, for one connection, the recent
heads and the pushed ``OrderFilled`` logs by block hash, and says for a block
whether the socket's logs can be trusted as all of that block's fills or the
block must be read by ``eth_getLogs`` as when polling (see ``OnchainFeed``).

A block is covered by the socket when all of these hold:
- its head arrived on this connection, after the subscriptions were answered
  and after the first head that followed them (the node may have fired the
  logs of that first block before our logs subscription took effect);
- no frame of the connection was lost in between (the queue overflowed, a
  frame could not be read): then nothing up to the newest head is trusted;
- some of its logs were pushed, or its header's ``logsBloom`` shows that no
  log of our filter can be in it (an exchange address, the ``OrderFilled``
  topic and a followed maker all absent). A header without a bloom, or whose
  bloom may hold our fills while none was pushed, is read by range.
Pushed logs of a block are taken only with the block hash of its head (a
log of a replaced block is ignored; ``removed: true`` deletes it).
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Optional, Sequence, Union

import attrs

HEADS_ID, LOGS_ID = 1, 2  # the ids of our two eth_subscribe requests on every connection


@attrs.frozen
class Subscribed:
    kind: str  # "newHeads" | "logs"
    subscription: str


@attrs.frozen
class Refused:
    """The node answered an eth_subscribe with an error."""
    kind: str
    error: str


@attrs.frozen
class Head:
    number: int
    hash: str
    parent: str
    timestamp: int
    bloom: Optional[int]  # logsBloom as a 2048-bit integer; None when the header has none


@attrs.frozen
class Pushed:
    entry: dict  # as web3's get_logs gives it: ints, bytes (see ``normal_log``)
    block_hash: str
    removed: bool

    @property
    def at(self) -> tuple[int, int]:
        return int(self.entry["blockNumber"]), int(self.entry["logIndex"])


@attrs.frozen
class Malformed:
    raw: str
    reason: str


Event = Union[Subscribed, Refused, Head, Pushed, Malformed]


def _qty(value: Any) -> int:
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    raise ValueError(f"not a hex quantity: {value!r}")


def _data(value: Any) -> bytes:
    if isinstance(value, str) and value.startswith("0x"):
        return bytes.fromhex(value[2:])
    raise ValueError(f"not hex data: {value!r}")


def _hash(value: Any) -> str:
    raw = _data(value)
    if len(raw) != 32:
        raise ValueError(f"not a 32-byte hash: {value!r}")
    return "0x" + raw.hex()


def normal_log(log: dict) -> dict:
    """A log of an ``eth_subscription`` frame (hex strings) in the types web3's
    ``get_logs`` gives the polling path (ints and bytes), so both decode alike."""
    from eth_utils import to_checksum_address

    return {"address": to_checksum_address(log["address"]), "blockHash": _data(log["blockHash"]),
            "blockNumber": _qty(log["blockNumber"]), "data": _data(log["data"]), "logIndex": _qty(log["logIndex"]),
            "removed": bool(log.get("removed", False)), "topics": [_data(t) for t in log["topics"]],
            "transactionHash": _data(log["transactionHash"]),
            "transactionIndex": _qty(log.get("transactionIndex", "0x0"))}


class Frames:
    """The frames of one connection, in order: answers to our two eth_subscribe
    requests (ids ``HEADS_ID`` and ``LOGS_ID``), then ``eth_subscription``
    notifications of those subscriptions. Anything else that is not valid is
    ``Malformed``; answers to other requests and notifications of other
    subscriptions are ignored."""

    def __init__(self) -> None:
        self.subs: dict[str, str] = {}  # subscription id -> "newHeads" | "logs"

    @staticmethod
    def requests(logs_filter: dict) -> list[str]:
        return [json.dumps({"jsonrpc": "2.0", "id": HEADS_ID, "method": "eth_subscribe", "params": ["newHeads"]}),
                json.dumps({"jsonrpc": "2.0", "id": LOGS_ID, "method": "eth_subscribe",
                            "params": ["logs", logs_filter]})]

    @property
    def ready(self) -> bool:
        return set(self.subs.values()) == {"newHeads", "logs"}

    def parse(self, text: str) -> Optional[Event]:
        try:
            frame = json.loads(text)
            if not isinstance(frame, dict):
                raise ValueError("not a JSON object")
            if "id" in frame and "method" not in frame:
                return self._answer(frame)
            if frame.get("method") != "eth_subscription":
                return None
            params = frame["params"]
            kind = self.subs.get(params["subscription"])
            result = params["result"]
            if kind == "newHeads":
                bloom = result.get("logsBloom")
                return Head(_qty(result["number"]), _hash(result["hash"]), _hash(result["parentHash"]),
                            _qty(result["timestamp"]), int(bloom, 16) if bloom else None)
            if kind == "logs":
                entry = normal_log(result)
                return Pushed(entry, "0x" + entry["blockHash"].hex(), entry["removed"])
            return None  # a subscription of an earlier request of ours that we no longer follow
        except Exception as exc:  # noqa: BLE001 - a frame we cannot read is reported, never raised
            return Malformed(text[:4000], f"unreadable eth_subscription frame: {str(exc)[:200] or type(exc).__name__}")

    def _answer(self, frame: dict) -> Optional[Event]:
        kind = {HEADS_ID: "newHeads", LOGS_ID: "logs"}.get(frame["id"])
        if kind is None:
            return None
        if "error" in frame:
            error = frame["error"]
            return Refused(kind, str(error.get("message", error) if isinstance(error, dict) else error)[:200])
        if not isinstance(frame.get("result"), str):
            raise ValueError("eth_subscribe answered without a subscription id")
        self.subs[frame["result"]] = kind
        return Subscribed(kind, frame["result"])


def bloom_mask(item: bytes) -> int:
    """The three bits ``item`` (an address or a topic) sets in a 2048-bit logs bloom (yellow paper 4.3.1)."""
    from eth_utils import keccak

    digest = keccak(item)
    mask = 0
    for i in (0, 2, 4):
        mask |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
    return mask


class Coverage:
    """Heads and pushed logs of one connection; which blocks they cover (see the module)."""

    def __init__(self, addresses: Sequence[bytes], topic0: bytes, makers: Sequence[bytes], window: int = 64) -> None:
        self._addresses = [bloom_mask(a) for a in addresses]
        self._topic0 = bloom_mask(topic0)
        self._makers = [bloom_mask(m) for m in makers]
        self.window = window
        self.heads: dict[int, Head] = {}
        self.logs: dict[int, dict[tuple[str, int], dict]] = {}  # block -> (block hash, log index) -> entry
        self.frames = Frames()
        self.trusted_after: Optional[int] = None  # blocks above this one are the socket's
        self._await_head = False

    def reset(self) -> None:
        """A new connection: nothing of it is trusted until it has subscribed and seen a head."""
        self.heads, self.logs, self.frames = {}, {}, Frames()
        self.trusted_after, self._await_head = None, False

    def distrust(self) -> None:
        """A frame was lost: trust the socket again from the next head on (what came before is read by range)."""
        self.trusted_after, self._await_head = None, self.frames.ready

    @property
    def newest(self) -> Optional[int]:
        return max(self.heads) if self.heads else None

    def subscribed(self) -> None:
        if self.frames.ready:
            self._await_head = True

    def head(self, head: Head) -> None:
        """A new head: it replaces every head at and above its number (a reorg)."""
        for number in [n for n in self.heads if n >= head.number]:
            del self.heads[number]
        self.heads[head.number] = head
        if self._await_head:
            self.trusted_after, self._await_head = head.number, False
        for number in [n for n in self.heads if n <= head.number - self.window]:
            del self.heads[number]
        for number in [n for n in self.logs if n <= head.number - self.window]:
            del self.logs[number]

    def log(self, pushed: Pushed) -> None:
        block, index = pushed.at
        entries = self.logs.setdefault(block, {})
        if pushed.removed:
            entries.pop((pushed.block_hash, index), None)
        else:
            entries[(pushed.block_hash, index)] = pushed.entry

    def matches(self, bloom: int) -> bool:
        """The bloom may hold an OrderFilled log of an exchange with a followed maker."""
        def any_of(masks: Iterable[int]) -> bool:
            return any(bloom & m == m for m in masks)
        return bloom & self._topic0 == self._topic0 and any_of(self._addresses) and any_of(self._makers)

    def covered(self, number: int) -> Optional[tuple[Head, list[dict]]]:
        """(head, its pushed logs in log order) when the socket covers block ``number``; None: read it by range."""
        head = self.heads.get(number)
        if head is None or self.trusted_after is None or number <= self.trusted_after:
            return None
        entries = [e for (h, _), e in self.logs.get(number, {}).items() if h == head.hash]
        if not entries and (head.bloom is None or self.matches(head.bloom)):
            return None
        return head, sorted(entries, key=lambda e: int(e["logIndex"]))
