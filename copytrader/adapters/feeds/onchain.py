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

import json
import logging
import time
from decimal import Decimal
from typing import Any, Callable, Iterator, Optional, Sequence

from ...domain.model import MICRO_UNITS, LeaderTrade, micro
from ...ports import CursorLookup, FeedItem, SourceHealth
from .http import Backoff, FeedUnavailable, retry_after
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
                 max_attempts: int = 4, backoff: Optional[Backoff] = None) -> None:
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
        raise FeedUnavailable(f"JSON-RPC {self.rpc_url} {what}: {text} after {self.max_attempts} attempts")

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
            first, last = state["done"] + 1, min(safe, state["done"] + self.max_range)
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
                block_hash, block_time = blocks[at[0]]
                try:
                    payload: Any = self.decode(entry, block_time)
                    self.delays.append(self._clock_s() - block_time)
                except Exception as exc:  # a log we cannot read: keep it, never crash the loop
                    from ...ports import Quarantined
                    payload = Quarantined(f"onchain:{at[0]}:{at[1]}", json.dumps(dict(entry), default=_hex)[:4000],
                                          f"undecodable OrderFilled log: {exc}")
                state["pos"] = list(at)
                state["hashes"][str(at[0])] = block_hash
                yield FeedItem(cursor=json.dumps(state, sort_keys=True), payload=payload)
            state["hashes"][str(last)] = self._block(last)[0]
            state["done"], state["pos"] = last, None
            state["hashes"] = {k: v for k, v in state["hashes"].items() if int(k) > last - self.reorg_window}
            yield FeedItem(cursor=json.dumps(state, sort_keys=True), payload=None)
