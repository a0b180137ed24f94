"""A loopback Polygon JSON-RPC stand-in: chain id, blocks with POA extraData
(97 bytes, which web3 rejects without ExtraDataToPOAMiddleware), eth_call
answers for ERC-20 balanceOf/allowance and ERC-1155 isApprovedForAll, balanceOf
and balanceOfBatch (outcome tokens on Conditional Tokens and PositionManager,
``set_balance``), and
signed transactions (eth_sendRawTransaction, decoded with rlp and eth_account:
sender, chain id and nonce checked; approve and setApprovalForAll applied to
the state) with what a sender needs around them (nonce, gas, receipts)."""
from __future__ import annotations

import hashlib
import json
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from . import LoopbackServer, common_fault, send_raw

SELECTORS = {"70a08231": "balanceOf", "dd62ed3e": "allowance", "e985e9c5": "isApprovedForAll",
             "00fdd58e": "balanceOf1155", "4e1273f4": "balanceOfBatch"}
TX_SELECTORS = {"095ea7b3": "approve", "a22cb465": "setApprovalForAll"}
# redeemPositions(address,bytes32,bytes32,uint256[]) on the collateral adapters; redeem(bytes31,uint256,uint256) on the Router
REDEEM_SELECTORS = {"01b7037c": "redeemPositions", "d217a3cc": "redeem"}
GAS_PRICE = 30 * 10**9


class RpcStandIn(LoopbackServer):
    def __init__(self, chain_id: int = 137) -> None:
        self.chain_id = chain_id
        self.block = 65_000_000
        self.blocks: dict[int, dict] = {}  # number -> {"hash", "timestamp", "logs"}
        self.get_logs_filters: list[dict] = []
        self.balances: dict[tuple[str, str], int] = {}  # (token, owner) -> micro units
        self.token_balances: dict[tuple[str, str, int], int] = {}  # ERC-1155 (ledger, owner, id) -> micro units
        self.allowances: dict[tuple[str, str, str], int] = {}  # (token, owner, spender)
        self.approvals: set[tuple[str, str, str]] = set()  # (token, owner, operator)
        self.calls: list[str] = []
        self.batch_sizes: list[int] = []  # ids asked in each balanceOfBatch call
        self.faults: deque = deque()
        self.nonces: dict[str, int] = {}  # sender -> next nonce
        self.transactions: list[dict] = []  # every accepted transaction, decoded: from, to, function, args, ...
        self.receipts: dict[str, dict] = {}  # tx hash -> receipt
        self.markets: dict[str, dict] = {}  # condition id (0x + 64 hex) -> {"ledger", "payouts": {token id: Decimal}}
        self.redeem_fate: deque = deque()  # for the next redeem transactions: "revert", "pay-nothing"
        self.after_send: deque = deque()  # for the next eth_sendRawTransaction: "timeout", "500" (applied, then)
        self.lost_receipts: set[str] = set()  # hashes whose receipt the node does not give (yet)
        self.redeems: list[dict] = []  # every redeem applied (or reverted), whoever sent it
        # hold = True: accepted transactions wait in the mempool (their nonce taken, no receipt,
        # nothing applied) until ``mine_pending``; False: each is mined as it arrives
        self.hold = False
        self.mempool: list[tuple[str, str, str, bytes, int, int]] = []  # (hash, sender, to, data, nonce, chain)
        self._call_logs: list[dict] = []  # the logs of the transaction being mined
        super().__init__()

    def mine_pending(self) -> None:
        """Time passes: the transactions waiting in the mempool are mined, in order."""
        while self.mempool:
            tx_hash, sender, token, data, nonce, chain_id = self.mempool.pop(0)
            self._mine(tx_hash, sender, token, data, nonce, chain_id)

    # -- resolved markets and redemptions ---------------------------------------------
    def balance(self, ledger: str, owner: str, token_id: str) -> int:
        """``owner``'s balance of outcome token ``token_id`` on ``ledger`` (see ``set_balance``)."""
        return self.balance_of(ledger, owner, token_id)

    def resolve(self, condition_id: str, ledger: str, payouts: dict) -> None:
        """A market resolved: what one share of each token pays (Decimal, 1 or 0)."""
        self.markets[condition_id.lower()] = {"ledger": ledger.lower(), "payouts": dict(payouts)}

    def _redeem_plan(self, owner: str, target: str, data: bytes) -> list[tuple[str, str, int, int]]:
        """(ledger, token, amount burned, pUSD paid) of a redeem call of ``owner``, or ValueError (revert)."""
        from eth_abi import decode

        function = REDEEM_SELECTORS.get(data[:4].hex())
        if function == "redeemPositions" and target.lower() in ADAPTERS:
            _, _, condition, _ = decode(["address", "bytes32", "bytes32", "uint256[]"], data[4:])
            market = self.markets.get("0x" + condition.hex())
            if market is None:
                raise ValueError("execution reverted: condition not resolved")
            return [(market["ledger"], t, self.balance(market["ledger"], owner, t),
                     int(self.balance(market["ledger"], owner, t) * market["payouts"][t]))
                    for t in market["payouts"]]
        if function == "redeem" and target.lower() == ROUTER.lower():
            condition, outcome, amount = decode(["bytes31", "uint256", "uint256"], data[4:])
            token = str(int(condition.hex() + f"{outcome:02x}", 16))
            market = next((m for m in self.markets.values() if token in m["payouts"]), None)
            if market is None:
                raise ValueError("execution reverted: condition not resolved")
            if amount > self.balance(market["ledger"], owner, token):
                raise ValueError("execution reverted: insufficient balance")
            return [(market["ledger"], token, amount, int(amount * market["payouts"][token]))]
        raise ValueError("execution reverted")

    def _apply_redeem(self, owner: str, target: str, data: bytes) -> tuple[str, tuple]:
        plan = self._redeem_plan(owner, target, data)
        fate = self.redeem_fate.popleft() if self.redeem_fate else ""
        if fate == "revert":
            raise ValueError("execution reverted")
        paid = 0
        if fate != "pay-nothing":
            for ledger, token, amount, pays in plan:
                self.set_balance(ledger, owner, token, self.balance(ledger, owner, token) - amount)
                paid += pays
            key = (PUSD.lower(), owner.lower())
            self.balances[key] = self.balances.get(key, 0) + paid
        self.redeems.append({"owner": owner.lower(), "to": target.lower(), "paid": paid, "fate": fate})
        if paid:  # pUSD's Transfer to the owner, in the receipt of the transaction that made this call
            self._call_logs.append({"address": PUSD, "topics": [TRANSFER_TOPIC, _word(target), _word(owner)],
                               "data": "0x" + f"{paid:064x}"})
        return REDEEM_SELECTORS[data[:4].hex()], tuple(t for _, t, _, _ in plan)

    def inject(self, *faults: str) -> None:
        """Any of ``standins.FAULTS``, or "rpc-error" (a JSON-RPC error object, as
        a node over its limit answers), for the next requests in turn."""
        self.faults.extend(faults)

    def set_balance(self, ledger: str, owner: str, token_id: Any, amount: int) -> None:
        """``owner``'s balance on ``ledger`` in micro-units: of outcome token
        ``token_id`` (Conditional Tokens or PositionManager), or with ``token_id``
        None of the ERC-20 ``ledger`` itself (pUSD)."""
        if token_id is None:
            self.balances[(ledger.lower(), owner.lower())] = int(amount)
        else:
            self.token_balances[(ledger.lower(), owner.lower(), int(token_id))] = int(amount)

    def balance_of(self, ledger: str, owner: str, token_id: Any = None) -> int:
        if token_id is None:
            return self.balances.get((ledger.lower(), owner.lower()), 0)
        return self.token_balances.get((ledger.lower(), owner.lower(), int(token_id)), 0)

    def _answer(self, method: str, params: list) -> Any:
        self.calls.append(method)
        if method in TX_METHODS:
            return getattr(self, TX_METHODS[method])(params)
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
            if data[2:10] in REDEEM_SELECTORS:  # a simulation: the payout, nothing applied
                plan = self._redeem_plan(call.get("from", "").lower(), token, bytes.fromhex(data[2:]))
                return "0x" + format(sum(p for *_, p in plan), "064x")
            if kind == "balanceOf":
                value = self.balances.get((token, words[0]), 0)
            elif kind == "allowance":
                value = self.allowances.get((token, words[0], words[1]), 0)
            elif kind == "isApprovedForAll":
                value = int((token, words[0], words[1]) in self.approvals)
            elif kind == "balanceOf1155":
                value = self.balance_of(token, words[0], int(args[64:128], 16))
            elif kind == "balanceOfBatch":
                return self._balance_of_batch(token, bytes.fromhex(args))
            else:
                raise ValueError(f"unknown selector {selector}")
            return "0x" + format(value, "064x")
        raise ValueError(f"method {method} not supported")

    def _balance_of_batch(self, ledger: str, args: bytes) -> str:
        from eth_abi import decode, encode

        owners, ids = decode(["address[]", "uint256[]"], args)
        if len(owners) != len(ids):
            raise ValueError("execution reverted: ERC1155: accounts and ids length mismatch")
        self.batch_sizes.append(len(ids))
        return "0x" + encode(["uint256[]"], [[self.balance_of(ledger, o, i) for o, i in zip(owners, ids)]]).hex()

    # -- transactions -------------------------------------------------------------
    def _nonce(self, params: list) -> str:
        return hex(self.nonces.get(params[0].lower(), 0))

    def _gas_price(self, params: list) -> str:
        return hex(GAS_PRICE)

    def _priority_fee(self, params: list) -> str:
        return hex(GAS_PRICE // 10)

    def _fee_history(self, params: list) -> dict:
        blocks = int(params[0], 16) if isinstance(params[0], str) else int(params[0])
        return {"oldestBlock": hex(self.block - blocks + 1), "baseFeePerGas": [hex(GAS_PRICE)] * (blocks + 1),
                "gasUsedRatio": [0.5] * blocks, "reward": [[hex(GAS_PRICE // 10)] for _ in range(blocks)]}

    def _estimate_gas(self, params: list) -> str:
        data = params[0].get("data") or params[0].get("input") or "0x"
        if data[2:10] not in TX_SELECTORS and data[2:10] not in REDEEM_SELECTORS:
            raise ValueError("execution reverted")
        return hex(60_000)

    def _receipt(self, params: list) -> Any:
        if params[0].lower() in self.lost_receipts:
            return None
        return self.receipts.get(params[0].lower())

    def apply_call(self, owner: str, token: str, data: bytes) -> tuple[str, tuple]:
        """Apply an approve(spender, amount) or setApprovalForAll(operator, approved) call
        of ``owner`` (an EOA's transaction, or a relayed wallet's call) to ``token``'s state:
        (function, arguments). Any other call reverts."""
        owner, token = owner.lower(), token.lower()
        if data[:4].hex() in REDEEM_SELECTORS:
            return self._apply_redeem(owner, token, data)
        function = TX_SELECTORS.get(data[:4].hex())
        if function is None:
            raise ValueError("execution reverted")
        target = "0x" + data[16:36].hex()
        if function == "approve":
            amount = int.from_bytes(data[36:68], "big")
            self.allowances[(token, owner, target)] = amount
            return function, (target, amount)
        approved = bool(int.from_bytes(data[36:68], "big"))
        (self.approvals.add if approved else self.approvals.discard)((token, owner, target))
        return function, (target, approved)

    def _send_raw(self, params: list) -> str:
        import rlp
        from eth_account import Account
        from eth_utils import keccak, to_checksum_address

        raw = bytes.fromhex(params[0][2:])
        if raw[0] == 2:  # EIP-1559: chainId, nonce, tip, maxFee, gas, to, value, data, accessList, v, r, s
            fields = rlp.decode(raw[1:])
            chain_id, nonce, to, data = int.from_bytes(fields[0], "big"), fields[1], fields[5], fields[7]
        elif raw[0] >= 0xc0:  # legacy: nonce, gasPrice, gas, to, value, data, v, r, s (EIP-155 v)
            fields = rlp.decode(raw)
            v = int.from_bytes(fields[6], "big")
            chain_id, nonce, to, data = (v - 35) // 2 if v >= 35 else None, fields[0], fields[3], fields[5]
        else:
            raise ValueError(f"transaction type {raw[0]} not supported")
        if chain_id != self.chain_id:
            raise ValueError(f"invalid chain id {chain_id}: this node is on chain {self.chain_id}")
        sender = Account.recover_transaction(raw).lower()
        nonce = int.from_bytes(nonce, "big")
        if nonce != self.nonces.get(sender, 0):
            raise ValueError(f"nonce too low: next nonce {self.nonces.get(sender, 0)}, tx nonce {nonce}")
        token = to_checksum_address(to).lower()
        tx_hash = "0x" + keccak(raw).hex()
        if self.hold:
            if data[:4].hex() not in REDEEM_SELECTORS and data[:4].hex() not in TX_SELECTORS:
                raise ValueError("execution reverted")
            self.nonces[sender] = nonce + 1
            self.mempool.append((tx_hash, sender, token, data, nonce, chain_id))
            return tx_hash
        self._mine(tx_hash, sender, token, data, nonce, chain_id)
        return tx_hash

    def _mine(self, tx_hash: str, sender: str, token: str, data: bytes, nonce: int, chain_id: int) -> None:
        status = "0x1"
        try:
            function, args = self.apply_call(sender, token, data)
        except ValueError:
            if data[:4].hex() not in REDEEM_SELECTORS:
                raise
            function, args, status = REDEEM_SELECTORS[data[:4].hex()], (), "0x0"  # mined, reverted
        self.nonces[sender] = max(self.nonces.get(sender, 0), nonce + 1)
        self.transactions.append({"hash": tx_hash, "from": sender, "to": token, "function": function,
                                  "args": args, "nonce": nonce, "chain_id": chain_id})
        self.add_receipt(tx_hash, sender, token, status)

    def add_receipt(self, tx_hash: str, sender: str, to: str, status: str = "0x1") -> None:
        """A new block with the receipt of ``tx_hash``, holding the logs its calls made
        (a relayer's transaction, mined by RelayerStandIn, gets one too)."""
        self.block += 1
        block_hash = "0x" + f"{self.block:064x}"
        logs, self._call_logs = (self._call_logs if status == "0x1" else []), []
        self.receipts[tx_hash.lower()] = {
            "transactionHash": tx_hash, "status": status, "blockNumber": hex(self.block), "blockHash": block_hash,
            "from": sender, "to": to, "gasUsed": hex(50_000), "cumulativeGasUsed": hex(50_000),
            "logs": [{**log, "blockNumber": hex(self.block), "blockHash": block_hash, "transactionHash": tx_hash,
                      "transactionIndex": "0x0", "logIndex": hex(i), "removed": False} for i, log in enumerate(logs)],
            "transactionIndex": "0x0", "effectiveGasPrice": hex(GAS_PRICE), "type": "0x0",
            "contractAddress": None, "logsBloom": "0x" + "00" * 256}

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
                if request["method"] == "eth_sendRawTransaction" and stand_in.after_send:
                    after = stand_in.after_send.popleft()
                    try:
                        stand_in._answer(request["method"], request.get("params", []))  # accepted and mined
                    except ValueError:
                        pass
                    return common_fault(self, after)
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


PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"  # Transfer(address,address,uint256)


def _word(address: str) -> str:
    return "0x" + "00" * 12 + address.lower()[2:]
ADAPTERS = ("0xada100db00ca00073811820692005400218fce1f", "0xada2005600dec949baf300f4c6120000bdb6eaab")
ROUTER = "0x12121212006e4CD160D18e3f00711DA5c3372600"


# As Exchange.sol of Polymarket/polymarket-v2-external (ExchangeV3) hashes it for its
# assembly log4, the same event as the V2 exchanges' ABI: topics orderHash, maker, taker.
ORDER_FILLED_SIGNATURE = "OrderFilled(bytes32,address,address,uint8,uint256,uint256,uint256,uint256,bytes32,bytes32)"
ORDER_FILLED_DATA = ["uint8", "uint256", "uint256", "uint256", "uint256", "bytes32", "bytes32"]
TX_METHODS = {"eth_getTransactionCount": "_nonce", "eth_gasPrice": "_gas_price",
              "eth_maxPriorityFeePerGas": "_priority_fee", "eth_feeHistory": "_fee_history",
              "eth_estimateGas": "_estimate_gas", "eth_sendRawTransaction": "_send_raw",
              "eth_getTransactionReceipt": "_receipt"}


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
