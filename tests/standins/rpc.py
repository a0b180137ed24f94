"""A loopback Polygon JSON-RPC stand-in: chain id, blocks with POA extraData
(97 bytes, which web3 rejects without ExtraDataToPOAMiddleware), and eth_call
answers for ERC-20 balanceOf/allowance and ERC-1155 isApprovedForAll."""
from __future__ import annotations

import hashlib
import json
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from . import LoopbackServer, common_fault, send_raw

SELECTORS = {"70a08231": "balanceOf", "dd62ed3e": "allowance", "e985e9c5": "isApprovedForAll"}


class RpcStandIn(LoopbackServer):
    def __init__(self, chain_id: int = 137) -> None:
        self.chain_id = chain_id
        self.block = 65_000_000
        self.blocks: dict[int, dict] = {}  # number -> {"hash", "timestamp", "logs"}
        self.get_logs_filters: list[dict] = []
        self.balances: dict[tuple[str, str], int] = {}  # (token, owner) -> micro units
        self.allowances: dict[tuple[str, str, str], int] = {}  # (token, owner, spender)
        self.approvals: set[tuple[str, str, str]] = set()  # (token, owner, operator)
        self.calls: list[str] = []
        self.faults: deque = deque()
        super().__init__()

    def inject(self, *faults: str) -> None:
        """Any of ``standins.FAULTS``, or "rpc-error" (a JSON-RPC error object, as
        a node over its limit answers), for the next requests in turn."""
        self.faults.extend(faults)

    def _answer(self, method: str, params: list) -> Any:
        self.calls.append(method)
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_blockNumber":
            return hex(self.block)
        if method == "eth_getLogs":
            return self._logs(params[0])
        if method == "eth_getBlockByNumber":
            number = self.block if params[0] == "latest" else int(params[0], 16)
            known = self.blocks.get(number, {})
            return {
                "number": hex(number), "hash": known.get("hash", "0x" + f"{number:064x}"),
                "parentHash": "0x" + "cd" * 32,
                "nonce": "0x0000000000000000", "sha3Uncles": "0x" + "00" * 32, "logsBloom": "0x" + "00" * 256,
                "transactionsRoot": "0x" + "00" * 32, "stateRoot": "0x" + "00" * 32, "receiptsRoot": "0x" + "00" * 32,
                "miner": "0x" + "00" * 20, "difficulty": "0x1", "totalDifficulty": "0x1",
                "extraData": "0x" + "d8" * 97,  # POA: 32 vanity + 65 signature bytes
                "size": "0x100", "gasLimit": "0x1c9c380", "gasUsed": "0x0",
                "timestamp": hex(known.get("timestamp", 1_795_000_000 + 2 * (number - 65_000_000))),
                "transactions": [], "uncles": [], "baseFeePerGas": "0x1", "mixHash": "0x" + "00" * 32,
            }
        if method == "eth_call":
            call = params[0]
            data = call.get("data") or call.get("input")
            token = call["to"].lower()
            selector, args = data[2:10], data[10:]
            words = ["0x" + args[i + 24:i + 64] for i in range(0, len(args), 64)]
            kind = SELECTORS.get(selector)
            if kind == "balanceOf":
                value = self.balances.get((token, words[0]), 0)
            elif kind == "allowance":
                value = self.allowances.get((token, words[0], words[1]), 0)
            elif kind == "isApprovedForAll":
                value = int((token, words[0], words[1]) in self.approvals)
            else:
                raise ValueError(f"unknown selector {selector}")
            return "0x" + format(value, "064x")
        raise ValueError(f"method {method} not supported")

    # -- blocks and fill logs ----------------------------------------------------
    def mine(self, timestamp: int, logs: tuple = (), reorg_tag: str = "") -> int:
        """Append a block holding ``logs`` (dicts from ``fill_log``); returns its number."""
        self.block += 1
        number = self.block
        block_hash = "0x" + hashlib.sha256(f"{number}{reorg_tag}".encode()).hexdigest()
        entries = [{**entry, "blockNumber": hex(number), "blockHash": block_hash, "logIndex": hex(i),
                    "transactionIndex": hex(i), "removed": False} for i, entry in enumerate(logs)]
        self.blocks[number] = {"hash": block_hash, "timestamp": timestamp, "logs": entries}
        return number

    def reorg(self, depth: int, timestamp: int, logs_per_block: tuple = ()) -> None:
        """Replace the last ``depth`` blocks with others (new hashes, other logs)."""
        for _ in range(depth):
            self.blocks.pop(self.block, None)
            self.block -= 1
        for logs in logs_per_block or [()] * depth:
            self.mine(timestamp, logs, reorg_tag="reorg")

    def _logs(self, flt: dict) -> list:
        self.get_logs_filters.append(flt)
        first, last = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        addresses = {a.lower() for a in (flt.get("address") or [])}
        topics = flt.get("topics") or []
        out = []
        for number in range(first, last + 1):
            for entry in self.blocks.get(number, {}).get("logs", []):
                if addresses and entry["address"].lower() not in addresses:
                    continue
                ok = True
                for i, wanted in enumerate(topics):
                    if wanted is None:
                        continue
                    options = wanted if isinstance(wanted, list) else [wanted]
                    if entry["topics"][i].lower() not in {o.lower() for o in options}:
                        ok = False
                out += [entry] if ok else []
        return out

    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fault = stand_in.faults.popleft() if stand_in.faults else None
                if common_fault(self, fault):
                    return None
                if fault == "rpc-error":
                    error = {"code": -32005, "message": "limit exceeded"}
                    return send_raw(self, 200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode())
                try:
                    body = {"jsonrpc": "2.0", "id": request["id"],
                            "result": stand_in._answer(request["method"], request.get("params", []))}
                except ValueError as exc:
                    body = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": str(exc)}}
                send_raw(self, 200, json.dumps(body).encode())

        return Handler


# As Exchange.sol of Polymarket/polymarket-v2-external (ExchangeV3) hashes it for its
# assembly log4, the same event as the V2 exchanges' ABI: topics orderHash, maker, taker.
ORDER_FILLED_SIGNATURE = "OrderFilled(bytes32,address,address,uint8,uint256,uint256,uint256,uint256,bytes32,bytes32)"
ORDER_FILLED_DATA = ["uint8", "uint256", "uint256", "uint256", "uint256", "bytes32", "bytes32"]


def fill_log(exchange: str, maker: str, taker: str, side: int, token: int, making: int, taking: int,
             tx: str, order_hash: str = "0x" + "77" * 32, fee: int = 0) -> dict:
    """An ``OrderFilled`` log of ``exchange``, ABI-encoded as on chain: the CTF
    exchange V2 and the neg-risk exchange V2 (``token`` a CTF token id), or
    ExchangeV3 (``token`` a Protocol V2 position id); all three emit this event.
    Built from the contract's own text, independently of the watcher."""
    from eth_abi import encode
    from eth_utils import keccak

    topic0 = "0x" + keccak(text=ORDER_FILLED_SIGNATURE).hex()
    data = encode(ORDER_FILLED_DATA, [side, token, making, taking, fee, b"\x00" * 32, b"\x00" * 32])
    pad = lambda a: "0x" + "00" * 12 + a.lower()[2:]  # noqa: E731
    return {"address": exchange, "topics": [topic0, order_hash, pad(maker), pad(taker)],
            "data": "0x" + data.hex(), "transactionHash": tx}


def v3_fill_log(maker: str, taker: str, side: int, position_id: int, making: int, taking: int, tx: str,
                **kw: Any) -> dict:
    """An ExchangeV3 ``OrderFilled`` log (a Protocol V2 market's fill). For the
    fill of a taker order, ``taker`` is ExchangeV3 itself, as the contract logs it."""
    from copytrader.adapters.execution.polymarket.settings import EXCHANGE_V3

    return fill_log(EXCHANGE_V3, maker, taker, side, position_id, making, taking, tx, **kw)
