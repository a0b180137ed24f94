"""Leader fills from the chain: ``OrderFilled`` logs of the exchanges.

Three exchanges settle Polymarket orders on Polygon: the CTF exchange V2 and
the neg-risk exchange V2 (CTF markets, Gamma ``version`` "v1") and
ExchangeV3 (Protocol V2 markets, "v2", whose asset is a PositionManager
position id). All three emit the same ``OrderFilled`` event (one topic, one
data layout, see ``ORDER_FILLED``), so one ``eth_getLogs`` per block range
covers every exchange and every followed leader (the ``maker`` topic takes the
list of leaders): a leader's own order fill, taker orders included, is the
event whose ``maker`` is the leader, with ``side`` the side of that order;
events where the leader is the ``taker`` describe the counterparties' orders
and are not read. Logs are decoded with ``eth_abi`` (about 40 µs a log,
against several hundred through web3's contract events).

Blocks are read ``confirmations`` behind the head; the hashes of recent
blocks are kept in the cursor and checked on every poll, and a reorg rewinds
to the last block that still matches (trades are deduplicated by transaction
hash + log index). Polygon needs ``ExtraDataToPOAMiddleware`` (web3 v7+).
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import time
from decimal import Decimal
from typing import Any, Callable, Iterator, Optional, Sequence

from ...domain.model import MICRO_UNITS, LeaderTrade, micro
from ...ports import CursorLookup, FeedItem, SourceHealth
from ..streams import redact_url
from .http import Backoff, FeedUnavailable, retry_after
from .onchain_push import Coverage, Frames, Head, Malformed, Pushed, Refused, Subscribed
from .polling import Polling

log = logging.getLogger("copytrader.feeds")


# ``OrderFilled`` as the exchanges emit it: (name, type, indexed), in order.
# CTF exchange V2 and neg-risk exchange V2: the V2 exchange ABI of Polymarket's
# py-clob-client-v2 1.2.1 (order_utils/abi/abis.py, _EXCHANGE_V2_ABI_JSON).
# ExchangeV3 (0xe3333700cA9d93003F00f0F71f8515005F6c00Aa): Polymarket/
# polymarket-v2-external, src/exchange/Exchange.sol (commit 741f8bbe), whose
# _emitOrderFilled logs these topics and data words, topic0 =
# keccak256("OrderFilled(bytes32,address,address,uint8,uint256,uint256,uint256,uint256,bytes32,bytes32)").
# ``side`` is the filled order's side (0 BUY, 1 SELL); BUY orders make
# collateral and take shares, SELL orders the reverse; shares and collateral
# both count in 10^-6 (pUSD has 6 decimals and a split mints one share a unit).
ORDER_FILLED = (
    ("orderHash", "bytes32", True), ("maker", "address", True), ("taker", "address", True),
    ("side", "uint8", False), ("tokenId", "uint256", False), ("makerAmountFilled", "uint256", False),
    ("takerAmountFilled", "uint256", False), ("fee", "uint256", False), ("builder", "bytes32", False),
    ("metadata", "bytes32", False),
)


def order_filled_event() -> tuple[str, list[str]]:
    """(topic0, types of the data fields) of ``OrderFilled``."""
    from eth_utils import keccak

    signature = f"OrderFilled({','.join(t for _, t, _ in ORDER_FILLED)})"
    return "0x" + keccak(text=signature).hex(), [t for _, t, indexed in ORDER_FILLED if not indexed]


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = value.hex() if hasattr(value, "hex") and not isinstance(value, str) else str(value)
    return text if text.startswith("0x") else "0x" + text


class OnchainFeed(Polling):
    name = "onchain"

    def __init__(self, rpc_url: str, leaders: Sequence[str], exchanges: Sequence[str], confirmations: int = 3,
                 max_range: int = 500, poll_interval_s: float = 2.0, reorg_window: int = 64,
                 start_block: Optional[int] = None, timeout_s: float = 10.0,
                 clock_s: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 max_polls: Optional[int] = None, should_stop: Callable[[], bool] = lambda: False,
                 max_attempts: int = 4, backoff: Optional[Backoff] = None, ws_url: str = "",
                 ws_stale_s: float = 20.0, idle_s: float = 0.2, queue_size: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic, stream: Optional[Callable[..., Any]] = None) -> None:
        from eth_abi import decode
        from web3 import HTTPProvider, Web3
        from web3.middleware import ExtraDataToPOAMiddleware

        self.rpc_url = rpc_url
        # retries are ours (bounded, Retry-After honoured, injectable sleep), not web3's
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None))
        self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self._decode = decode
        self.topic0, self.types = order_filled_event()
        self.leaders = sorted({a.lower() for a in leaders})
        self.leader_topics = ["0x" + "00" * 12 + a[2:] for a in self.leaders]
        self.exchanges = [Web3.to_checksum_address(e) for e in exchanges]
        self.confirmations, self.max_range, self.reorg_window = confirmations, max_range, reorg_window
        Polling.__init__(self, poll_interval_s, sleep, max_polls, should_stop)
        self.start_block, self._clock_s = start_block, clock_s
        self.max_attempts, self.backoff = max_attempts, backoff or Backoff(sleep=sleep)
        self.delays: list[float] = []  # seconds from a fill's block time to its LeaderTrade
        self.reorgs: list[tuple[int, int]] = []  # (first stale block, rewound to)
        self._emitted: set[tuple[int, int, str]] = set()  # (block, log index, block hash) of recent items
        self._answered = False  # push: the node answered once, later failures are reported, not raised
        # push (``ws_url``): eth_subscribe over a supervised WebSocket, see ``_read_push``
        self.ws_url, self.ws_stale_s, self.idle_s, self._monotonic = ws_url, ws_stale_s, idle_s, monotonic
        self._stream_factory, self._stream = stream, None
        self._queue: "queue.Queue[tuple[str, str]]" = queue.Queue(queue_size)
        self._overflow = False
        self._coverage = Coverage([bytes.fromhex(e[2:]) for e in self.exchanges], bytes.fromhex(self.topic0[2:]),
                                  [bytes.fromhex(t[2:]) for t in self.leader_topics], reorg_window)
        self._next_poll = 0.0
        self._degraded = False  # the one log line of a fallback to polling was written

    # -- decoding -----------------------------------------------------------
    def decode(self, entry: Any, block_time: int) -> LeaderTrade:
        side, token, making, taking, _fee, _builder, _meta = self._decode(self.types, bytes(entry["data"]))
        if side not in (0, 1):
            raise ValueError(f"side {side} is neither BUY (0) nor SELL (1)")
        maker = "0x" + _hex(entry["topics"][2])[-40:]
        making, taking = Decimal(making) / MICRO_UNITS, Decimal(taking) / MICRO_UNITS
        shares, collateral = (taking, making) if side == 0 else (making, taking)
        if shares <= 0:
            raise ValueError("fill of zero shares")
        return LeaderTrade(
            leader=maker, token_id=str(token), condition_id="", side="BUY" if side == 0 else "SELL",
            size=shares, price=micro(collateral / shares), usdc_size=collateral, timestamp=block_time,
            tx_hash=_hex(entry["transactionHash"]), log_index=int(entry["logIndex"]), kind="TRADE")

    # -- reading ------------------------------------------------------------
    def _rpc(self, what: str, fn: Callable[[], Any]) -> Any:
        for attempt in range(self.max_attempts):
            try:
                return fn()
            except Exception as exc:
                text = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
                response = getattr(exc, "response", None)
                wait_s = retry_after(response.headers.get("Retry-After")) if response is not None else None
            if attempt + 1 < self.max_attempts:
                log.warning("JSON-RPC %s %s: %s (attempt %d of %d)", self.rpc_url, what, text, attempt + 1,
                            self.max_attempts)
                self.backoff.wait(attempt, wait_s)
        raise FeedUnavailable(f"JSON-RPC {redact_url(self.rpc_url)} {what}: {text} after {self.max_attempts} attempts")

    def _block(self, number: int) -> tuple[str, int]:
        block = self._rpc("eth_getBlockByNumber", lambda: self.w3.eth.get_block(number))
        return _hex(block["hash"]), int(block["timestamp"])

    def _check_reorg(self, state: dict) -> None:
        hashes = state["hashes"]
        for number in sorted((int(n) for n in hashes), reverse=True):
            if self._block(number)[0] == hashes[str(number)]:
                if number < state["done"]:
                    self.reorgs.append((number + 1, number))
                    log.warning("chain reorganised above block %d: reading again from there", number)
                    state["done"], state["pos"] = number, None
                    state["hashes"] = {k: v for k, v in hashes.items() if int(k) <= number}
                return
        if hashes:  # nothing we remember is on the chain any more: rewind past all of it
            lowest = min(int(n) for n in hashes) - 1
            self.reorgs.append((lowest + 1, lowest))
            state["done"], state["pos"], state["hashes"] = lowest, None, {}

    def read(self, cursors: CursorLookup) -> Iterator[FeedItem]:
        stored = cursors(self.name)
        state: dict = json.loads(stored) if stored else {"done": None, "pos": None, "hashes": {}}
        if self.ws_url:
            yield from self._read_push(state)
            return
        polls, failing = 0, False
        while True:
            try:
                yield from self._poll(state)
                if failing:
                    failing = False
                    yield FeedItem("", SourceHealth(self.name))
            except FeedUnavailable as exc:
                if polls == 0:
                    raise  # the node does not answer at all: say so at once, in one line
                failing = True
                log.error("onchain: %s (poll continues)", exc)
                yield FeedItem("", SourceHealth(self.name, str(exc)))
            polls += 1
            if not self._another_round(polls):
                return

    def _poll(self, state: dict) -> Iterator[FeedItem]:
        head = int(self._rpc("eth_blockNumber", lambda: self.w3.eth.block_number))
        safe = head - self.confirmations
        if state["done"] is None:
            state["done"] = (self.start_block - 1) if self.start_block is not None else safe
        self._check_reorg(state)
        while state["done"] < safe:
            yield from self._range(state, state["done"] + 1, min(safe, state["done"] + self.max_range))

    def _range(self, state: dict, first: int, last: int) -> Iterator[FeedItem]:
        """Blocks ``first``..``last`` (``first`` = the block after ``state["done"]``) by ``eth_getLogs``."""
        logs = self._rpc("eth_getLogs", lambda: self.w3.eth.get_logs({
            "fromBlock": first, "toBlock": last, "address": self.exchanges,
            "topics": [self.topic0, None, self.leader_topics]}))
        blocks: dict[int, tuple[str, int]] = {}
        for entry in sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"]))):
            at = (int(entry["blockNumber"]), int(entry["logIndex"]))
            if state["pos"] and at <= tuple(state["pos"]):
                continue
            if at[0] not in blocks:
                blocks[at[0]] = self._block(at[0])
            if (*at, blocks[at[0]][0]) not in self._emitted:  # read again after a late pushed log
                yield self._item(state, entry, at, *blocks[at[0]])
        yield self._done(state, last, self._block(last)[0])

    def _item(self, state: dict, entry: Any, at: tuple[int, int], block_hash: str, block_time: int) -> FeedItem:
        """The item of one log (a LeaderTrade, or Quarantined), its position recorded in the cursor."""
        try:
            payload: Any = self.decode(entry, block_time)
            self.delays.append(self._clock_s() - block_time)
        except Exception as exc:  # a log we cannot read: keep it, never crash the loop
            from ...ports import Quarantined
            payload = Quarantined(f"onchain:{at[0]}:{at[1]}", json.dumps(dict(entry), default=_hex)[:4000],
                                  f"undecodable OrderFilled log: {exc}")
        state["pos"] = list(at)
        state["hashes"][str(at[0])] = block_hash
        self._emitted.add((*at, block_hash))
        return FeedItem(cursor=json.dumps(state, sort_keys=True), payload=payload)

    def _done(self, state: dict, last: int, block_hash: str) -> FeedItem:
        """Every block up to ``last`` read: the cursor moves past them."""
        state["hashes"][str(last)] = block_hash
        state["done"], state["pos"] = last, None
        state["hashes"] = {k: v for k, v in state["hashes"].items() if int(k) > last - self.reorg_window}
        self._emitted = {at for at in self._emitted if at[0] > last - self.reorg_window}
        return FeedItem(cursor=json.dumps(state, sort_keys=True), payload=None)

    # -- push: eth_subscribe over a WebSocket ---------------------------------
    def _read_push(self, state: dict) -> Iterator[FeedItem]:
        """Frames arrive on the stream's thread and wait in a bounded queue; here
        they move the coverage (heads, pushed logs), and every block the socket
        covers is emitted from its pushed logs, any other by ``eth_getLogs`` as
        when polling. While the socket is down, stale, not yet subscribed or
        after a lost frame, the feed polls every ``poll_interval_s``; a
        reconnect is trusted from its first head on, the gap before it read by
        range. A round ends when no frame came for ``idle_s`` (or with a poll):
        then ``max_polls`` and ``should_stop`` are asked, so the run loop's
        ``settling`` runs while the leaders are quiet."""
        self._start_stream()
        rounds, failing, keep = 0, False, False
        try:
            while True:
                events = self._take()
                polled = False
                try:
                    for kind, text in events:
                        yield from self._on_event(state, kind, text)
                    polled = yield from self._push_or_poll(state)
                    if failing:
                        failing = False
                        yield FeedItem("", SourceHealth(self.name))
                except FeedUnavailable as exc:
                    if not self._answered:
                        raise  # the node does not answer at all: say so at once, in one line
                    failing, polled = True, True
                    log.error("onchain: %s (the feed continues)", exc)
                    yield FeedItem("", SourceHealth(self.name, str(exc)))
                if polled or not events:
                    rounds += 1
                    if self.max_polls is not None and rounds >= self.max_polls:
                        keep = True  # read again next round (``both``): the socket stays up
                        return
                if self._should_stop():
                    return
        finally:
            if not keep:
                self.close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def stream_status(self) -> Any:
        """The socket's ``StreamStatus`` (None before ``read``, or without ``ws_url``)."""
        return self._stream.status() if self._stream is not None else None

    def streams(self) -> list:
        """The socket for the supervisor: polling covers it while it is stale."""
        from ..streams import health

        return [health(self._stream.status(), fallback=True)] if self._stream is not None else []

    def _start_stream(self) -> None:
        if self._stream is not None:
            return
        if self._stream_factory is None:
            from ..streams import Stream
            self._stream_factory = Stream
        requests = Frames.requests({"address": self.exchanges, "topics": [self.topic0, None, self.leader_topics]})

        def on_open(stream: Any) -> None:
            self._put("open", "")
            for text in requests:
                stream.send(text)

        self._stream = self._stream_factory(f"{self.name}-ws", self.ws_url, on_open=on_open,
                                            on_frame=lambda text: self._put("frame", text),
                                            stale_s=self.ws_stale_s, clock=self._monotonic)
        self._stream.start()

    def _put(self, kind: str, text: str) -> None:
        """On the stream's thread: a frame for the reader; a full queue loses it (the reader then distrusts)."""
        try:
            self._queue.put_nowait((kind, text))
        except queue.Full:
            self._overflow = True

    def _take(self) -> list[tuple[str, str]]:
        try:
            events = [self._queue.get(timeout=self.idle_s)]
        except queue.Empty:
            events = []
        while events and len(events) < 1000:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if self._overflow:
            self._overflow = False
            events.append(("lost", ""))
        return events

    def _on_event(self, state: dict, kind: str, text: str) -> Iterator[FeedItem]:
        cover = self._coverage
        if kind == "open":
            cover.reset()
            return
        if kind == "lost":
            log.warning("onchain: WebSocket frames lost (the reader fell behind): reading by eth_getLogs up to "
                        "the next head")
            cover.distrust()
            return
        event = cover.frames.parse(text)
        if isinstance(event, Subscribed):
            cover.subscribed()
        elif isinstance(event, Refused):
            log.error("onchain: the node refused eth_subscribe %s: %s (polling continues)", event.kind, event.error)
        elif isinstance(event, Head):
            self._on_head(state, event)
        elif isinstance(event, Pushed):
            self._on_log(state, event)
        elif isinstance(event, Malformed):
            from ...ports import Quarantined
            cover.distrust()  # it may have been one of our logs: what came before the next head is read by range
            digest = hashlib.sha256(event.raw.encode()).hexdigest()[:16]
            yield FeedItem(json.dumps(state, sort_keys=True), Quarantined(f"onchain-ws:{digest}", event.raw, event.reason))

    def _rewind(self, state: dict, to: int, why: str) -> None:
        if state["done"] is not None and to < state["done"]:
            self.reorgs.append((to + 1, to))
            log.warning("onchain: %s: reading again from block %d", why, to + 1)
            state["done"], state["pos"] = to, None
            state["hashes"] = {k: v for k, v in state["hashes"].items() if int(k) <= to}

    def _on_head(self, state: dict, head: Head) -> None:
        seen = self._coverage.heads.get(head.number)
        if seen is not None and seen.hash == head.hash:
            return  # the same head twice
        self._coverage.head(head)
        known, parent = state["hashes"].get(str(head.number)), state["hashes"].get(str(head.number - 1))
        if known is not None and known != head.hash:
            self._rewind(state, head.number - 1, f"block {head.number} was replaced (reorg)")
        if parent is not None and parent != head.parent:
            self._check_reorg(state)  # a deeper reorg: the node's blocks say where the chains part

    def _on_log(self, state: dict, pushed: Pushed) -> None:
        cover, (block, index) = self._coverage, pushed.at
        cover.log(pushed)
        if state["done"] is None or block > state["done"]:
            return
        if pushed.removed:  # a log of a block we read is gone: that block was replaced
            if state["hashes"].get(str(block)) == pushed.block_hash:
                for number in [n for n in cover.heads if n >= block]:
                    del cover.heads[number]
                self._rewind(state, block - 1, f"a log of block {block} was removed (reorg)")
        elif (cover.trusted_after is not None and block > cover.trusted_after and (block, index, pushed.block_hash) not in self._emitted
              and state["hashes"].get(str(block)) == pushed.block_hash):
            self._rewind(state, block - 1, f"a log of block {block} came after the block was read")

    def _push_or_poll(self, state: dict) -> Iterator[FeedItem]:
        """Emit what the socket covers; while it cannot be trusted, poll when a poll is due. True: polled."""
        status, cover = self._stream.status(), self._coverage
        healthy = status.connected and not status.stale
        if not healthy and cover.trusted_after is not None:
            cover.distrust()
        if healthy and cover.trusted_after is not None:
            if self._degraded:
                self._degraded = False
                log.warning("onchain: %s is back: fills pushed again (the gap read by eth_getLogs)", status.name)
            yield from self._push(state)
            return False
        if not self._degraded and not healthy and (status.stale or status.last_error):
            self._degraded = True
            log.warning("onchain: %s %s: polling eth_getLogs every %gs until it is back", status.name,
                        "is stale" if status.connected else f"is down ({status.last_error or 'not connected'})",
                        self.poll_interval_s)
        now = self._monotonic()
        if now < self._next_poll:
            return False
        self._next_poll = now + self.poll_interval_s
        yield from self._poll(state)
        self._answered = True
        return True

    def _push(self, state: dict) -> Iterator[FeedItem]:
        cover = self._coverage
        newest = cover.newest
        if newest is None:
            return
        safe = newest - self.confirmations
        if state["done"] is None:
            state["done"] = (self.start_block - 1) if self.start_block is not None else safe
        while state["done"] < safe:
            first = state["done"] + 1
            covered = cover.covered(first)
            if covered is None:  # read by range the run of blocks the socket does not cover
                last = first
                while last < min(safe, first + self.max_range - 1) and cover.covered(last + 1) is None:
                    last += 1
                yield from self._range(state, first, last)
                continue
            head, entries = covered
            for entry in entries:
                at = (first, int(entry["logIndex"]))
                if not (state["pos"] and at <= tuple(state["pos"])) and (*at, head.hash) not in self._emitted:
                    yield self._item(state, entry, at, head.hash, head.timestamp)
            yield self._done(state, first, head.hash)
