"""A loopback WebSocket JSON-RPC stand-in of a Polygon node, on the chain of an ``RpcStandIn``.

``eth_subscribe`` ``newHeads`` and ``logs`` (filtered by address and topics as
``eth_getLogs`` is) are answered with a subscription id; every block the
chain stand-in mines (``mine``, and the new blocks of a ``reorg``) is then
pushed as geth pushes it: the block's matching logs, then its head (with its
``logsBloom``), each one ``{"jsonrpc": "2.0", "method": "eth_subscription",
"params": {"subscription": id, "result": ...}}``. A reorg first pushes the
replaced blocks' logs again with ``"removed": true``. ``eth_unsubscribe`` and
every other call go to the chain stand-in's JSON-RPC methods.

Faults: those of the ws base (drop, silent, refuse, gap, reorder, duplicate,
malformed; see ``tests/standins/ws.py``), and ``skip_blocks(n)``: the next
``n`` blocks are not pushed at all (neither logs nor head), as a node that
skips heads; ``head_first``: push each head before its logs.
"""
from __future__ import annotations

import json
from typing import Any

from .rpc import RpcStandIn
from .ws import WsClient, WsStandIn


def _bloom_add(bloom: int, item: bytes) -> int:
    from eth_utils import keccak

    digest = keccak(item)
    for i in (0, 2, 4):
        bloom |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
    return bloom


def logs_bloom(logs: list[dict]) -> str:
    """The 2048-bit bloom of a block's logs (addresses and topics), as a header carries it."""
    bloom = 0
    for entry in logs:
        bloom = _bloom_add(bloom, bytes.fromhex(entry["address"][2:]))
        for topic in entry["topics"]:
            bloom = _bloom_add(bloom, bytes.fromhex(topic[2:]))
    return "0x" + f"{bloom:0512x}"


def _matches(entry: dict, flt: dict) -> bool:
    addresses = flt.get("address") or []
    addresses = {a.lower() for a in ([addresses] if isinstance(addresses, str) else addresses)}
    if addresses and entry["address"].lower() not in addresses:
        return False
    for i, wanted in enumerate(flt.get("topics") or []):
        if wanted is None:
            continue
        options = {o.lower() for o in (wanted if isinstance(wanted, list) else [wanted])}
        if i >= len(entry["topics"]) or entry["topics"][i].lower() not in options:
            return False
    return True


class RpcWsStandIn(WsStandIn):
    ping_text = None  # JSON-RPC has no text heartbeat: heads every block are the node's
    pong_text = None

    def __init__(self, rpc: RpcStandIn) -> None:
        super().__init__()
        self.rpc = rpc
        self.subscribed = 0  # eth_subscribe answered, all clients
        self.head_first = False
        self._skip = 0
        self._ids = 0
        mine, reorg = rpc.mine, rpc.reorg

        def mine_and_push(timestamp: int, logs: tuple = (), reorg_tag: str = "") -> int:
            number = mine(timestamp, logs, reorg_tag)
            self.announce(number)
            return number

        def reorg_and_push(depth: int, timestamp: int, logs_per_block: tuple = ()) -> None:
            gone = [rpc.blocks.get(n, {"logs": []}) for n in range(rpc.block - depth + 1, rpc.block + 1)]
            for block in reversed(gone):
                for entry in reversed(block["logs"]):
                    self._push_log({**entry, "removed": True})
            reorg(depth, timestamp, logs_per_block)  # its new blocks are mined through mine_and_push

        rpc.mine, rpc.reorg = mine_and_push, reorg_and_push

    def skip_blocks(self, n: int) -> None:
        self._skip += n

    # -- the protocol -----------------------------------------------------------------
    def on_connect(self, client: WsClient) -> None:
        client.state["subs"] = {}

    def on_message(self, client: WsClient, text: str) -> None:
        try:
            request = json.loads(text)
            rid, method, params = request["id"], request["method"], request.get("params", [])
        except (ValueError, KeyError, TypeError):
            client.send(json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}))
            return
        if method == "eth_subscribe":
            kind = params[0]
            if kind not in ("newHeads", "logs"):
                client.send(json.dumps({"jsonrpc": "2.0", "id": rid,
                                        "error": {"code": -32602, "message": f"unsupported subscription {kind}"}}))
                return
            with self._cond:
                self._ids += 1
                sub = "0x" + f"{self._ids:032x}"
                client.state["subs"][sub] = (kind, params[1] if len(params) > 1 else {})
                self.subscribed += 1
                self._cond.notify_all()
            client.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": sub}))
            return
        if method == "eth_unsubscribe":
            found = client.state["subs"].pop(params[0], None) is not None
            client.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": found}))
            return
        try:
            body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "result": self.rpc._answer(method, params)}
        except ValueError as exc:
            body = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": str(exc)}}
        client.send(json.dumps(body))

    def wait_subscribed(self, n: int = 2, timeout_s: float = 5.0) -> bool:
        return self.wait_for(lambda: self.subscribed >= n, timeout_s)

    # -- pushing ----------------------------------------------------------------------
    def _notify(self, kind: str, result: dict, log: bool = False) -> None:
        with self._cond:
            clients = list(self.clients)
        for client in clients:
            for sub, (sub_kind, flt) in list(client.state.get("subs", {}).items()):
                if sub_kind == kind and (not log or _matches(result, flt)):
                    frame = {"jsonrpc": "2.0", "method": "eth_subscription",
                             "params": {"subscription": sub, "result": result}}
                    self.push(json.dumps(frame), where=lambda c, client=client: c is client)

    def _push_log(self, entry: dict) -> None:
        self._notify("logs", entry, log=True)

    def head(self, number: int) -> dict:
        block = self.rpc.blocks.get(number, {})
        parent = self.rpc.blocks.get(number - 1, {}).get("hash", "0x" + f"{number - 1:064x}")
        return {"number": hex(number), "hash": block.get("hash", "0x" + f"{number:064x}"), "parentHash": parent,
                "timestamp": hex(block.get("timestamp", 1_795_000_000 + 2 * (number - 65_000_000))),
                "logsBloom": logs_bloom(block.get("logs", [])), "miner": "0x" + "00" * 20,
                "extraData": "0x" + "d8" * 97, "gasLimit": "0x1c9c380", "gasUsed": "0x0", "difficulty": "0x1",
                "nonce": "0x0000000000000000", "sha3Uncles": "0x" + "00" * 32, "stateRoot": "0x" + "00" * 32,
                "transactionsRoot": "0x" + "00" * 32, "receiptsRoot": "0x" + "00" * 32,
                "mixHash": "0x" + "00" * 32, "baseFeePerGas": "0x1"}

    def announce(self, number: int) -> None:
        """Push block ``number`` of the chain stand-in: its logs and its head (see ``head_first``)."""
        if self._skip:
            self._skip -= 1
            return
        if self.head_first:
            self._notify("newHeads", self.head(number))
        for entry in self.rpc.blocks.get(number, {}).get("logs", []):
            self._push_log(entry)
        if not self.head_first:
            self._notify("newHeads", self.head(number))
