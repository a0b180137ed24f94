"""A loopback stand-in of Polymarket's relayer (relayer-v2), in the wire format of the
endpoints polymarket-client 0.14 calls for a proxy, safe or deposit wallet:

- ``GET /deployed?address=&type=`` -> ``{"deployed": bool}``
- ``GET /v1/account/transactions/params?address=<signer>&type=SAFE|WALLET`` and
  ``GET /relay-payload?address=<signer>&type=PROXY`` -> ``{"address", "nonce"}`` (the
  relay address for a proxy; the nonce of the signer's wallet, a decimal string)
- ``POST /submit`` (a SAFE, PROXY, WALLET or WALLET-CREATE envelope) ->
  ``{"transactionID", "state": "STATE_NEW"}`` (no hash, as the docs say)
- ``GET /v1/account/transactions/<id>`` -> ``{"transaction_id", "transaction_hash",
  "state", "error_msg", ...}``: each poll moves a transaction one state on,
  STATE_NEW -> STATE_EXECUTED (hash known) -> STATE_MINED (calls applied to the
  linked RpcStandIn) -> STATE_CONFIRMED.

``POST /submit`` checks the relayer auth headers (a Relayer API key and the address
owning it, or a builder key's HMAC) and each envelope's signature independently of
the SDK: the safe's SafeTx and the deposit wallet's Batch typed data rebuilt and
hashed with eth_account's generic ``encode_typed_data``, the proxy's "rlx:" hash
rebuilt and recovered with ``encode_defunct``; the signer must own the wallet and
use its current nonce. Faults: ``inject(route, "500")`` (any of ``standins.FAULTS``;
routes "POST /submit", "GET /v1/account/transactions/<id>", "GET /deployed", ...), and for an accepted transaction "fail" (STATE_FAILED),
"invalid" (STATE_INVALID) or "stuck" (never leaves STATE_EXECUTED).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak, to_checksum_address

from . import FAULTS, LoopbackServer, common_fault, send_raw
from .clob import hmac_signature

# Polygon addresses of the relayer's contracts (polymarket-client's PRODUCTION config)
PROXY_FACTORY = "0xaB45c5A4B0c941a2F231C04C3f49182e1A254052"
DEPOSIT_WALLET_FACTORY = "0x00000000000Fb5C9ADea0298D729A0CB3823Cc07"
SAFE_MULTISEND = "0xA238CBeb142c10Ef7Ad8442C6D1f9E89e07e7761"
RELAY_HUB = "0xD216153c06E857cD7f72665E0aF1d7D82172F494"
RELAY = to_checksum_address("0x7e1aaba0000000000000000000000000000a11ce")  # the relay handed to proxies
CHAIN_ID = 137
KINDS = {"poly_proxy": "PROXY", "gnosis_safe": "SAFE", "deposit_wallet": "WALLET"}
_PROXY_SELECTOR = keccak(text="proxy((uint8,address,uint256,bytes)[])")[:4]
_MULTISEND_SELECTOR = keccak(text="multiSend(bytes)")[:4]
_STEPS = ("STATE_NEW", "STATE_EXECUTED", "STATE_MINED", "STATE_CONFIRMED")

_DOMAIN_SAFE = [{"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]
_SAFE_TX = [{"name": n, "type": t} for n, t in (
    ("to", "address"), ("value", "uint256"), ("data", "bytes"), ("operation", "uint8"), ("safeTxGas", "uint256"),
    ("baseGas", "uint256"), ("gasPrice", "uint256"), ("gasToken", "address"), ("refundReceiver", "address"),
    ("nonce", "uint256"))]
_DOMAIN_FULL = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]
_BATCH = [{"name": "wallet", "type": "address"}, {"name": "nonce", "type": "uint256"},
          {"name": "deadline", "type": "uint256"}, {"name": "calls", "type": "Call[]"}]
_CALL = [{"name": "target", "type": "address"}, {"name": "value", "type": "uint256"}, {"name": "data", "type": "bytes"}]


class Rejected(Exception):
    """A submit the relayer refuses (400, the message as its ``error``)."""


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def recover_safe_signer(safe: str, to: str, data: str, value: int, operation: int, nonce: int, signature: str) -> str:
    """The Safe's eth_sign signature (v + 4) over its SafeTx EIP-712 digest."""
    typed = {"domain": {"chainId": CHAIN_ID, "verifyingContract": safe},
             "types": {"EIP712Domain": _DOMAIN_SAFE, "SafeTx": _SAFE_TX}, "primaryType": "SafeTx",
             "message": {"to": to, "value": value, "data": _hex(data), "operation": operation, "safeTxGas": 0,
                         "baseGas": 0, "gasPrice": 0, "gasToken": "0x" + "00" * 20,
                         "refundReceiver": "0x" + "00" * 20, "nonce": nonce}}
    signable = encode_typed_data(full_message=typed)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    raw = _hex(signature)
    if len(raw) != 65 or raw[64] not in (31, 32):
        raise Rejected("invalid safe signature: expected an eth_sign signature (v 31 or 32)")
    return Account.recover_message(encode_defunct(primitive=digest), signature=raw[:64] + bytes([raw[64] - 4]))


def recover_deposit_wallet_signer(wallet: str, nonce: int, deadline: int, calls: list, signature: str) -> str:
    typed = {"domain": {"name": "DepositWallet", "version": "1", "chainId": CHAIN_ID, "verifyingContract": wallet},
             "types": {"EIP712Domain": _DOMAIN_FULL, "Batch": _BATCH, "Call": _CALL}, "primaryType": "Batch",
             "message": {"wallet": wallet, "nonce": nonce, "deadline": deadline,
                         "calls": [{"target": c["target"], "value": int(c["value"]), "data": _hex(c["data"])}
                                   for c in calls]}}
    return Account.recover_message(encode_typed_data(full_message=typed), signature=_hex(signature))


def recover_proxy_signer(envelope: dict) -> str:
    p = envelope["signatureParams"]
    word = lambda v: int(v).to_bytes(32, "big")  # noqa: E731
    payload = (b"rlx:" + _hex(envelope["from"]) + _hex(envelope["to"]) + _hex(envelope["data"])
               + word(p["relayerFee"]) + word(p["gasPrice"]) + word(p["gasLimit"]) + word(envelope["nonce"])
               + _hex(p["relayHub"]) + _hex(p["relay"]))
    return Account.recover_message(encode_defunct(hexstr="0x" + keccak(payload).hex()),
                                   signature=_hex(envelope["signature"]))


def multisend_calls(data: bytes) -> list[tuple[str, bytes]]:
    """The (to, data) of each call packed in a MultiSend.multiSend(bytes) call."""
    if data[:4] != _MULTISEND_SELECTOR:
        raise Rejected("a delegatecall to MultiSend must call multiSend(bytes)")
    (packed,) = abi_decode(["bytes"], data[4:])
    out, i = [], 0
    while i < len(packed):
        to = "0x" + packed[i + 1:i + 21].hex()
        length = int.from_bytes(packed[i + 53:i + 85], "big")
        out.append((to, packed[i + 85:i + 85 + length]))
        i += 85 + length
    return out


class RelayerStandIn(LoopbackServer):
    def __init__(self, chain: Any, api_key: str = "relayer-key-0190b317", key_owner: Optional[str] = None,
                 builder: Optional[tuple[str, str, str]] = None) -> None:
        """``chain``: the RpcStandIn whose state relayed approvals change; ``api_key`` and
        ``key_owner``: the Relayer API key accepted and the address owning it; ``builder``:
        a (key, secret, passphrase) builder key accepted too."""
        self.chain = chain
        self.api_key, self.key_owner, self.builder = api_key, key_owner, builder
        self.wallets: dict[str, dict] = {}  # wallet -> {"owner", "type", "deployed", "nonce"}
        self.transactions: dict[str, dict] = {}  # id -> the stored transaction
        self.submitted: list[dict] = []  # every accepted envelope, in order
        self.rejections: list[str] = []
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers) of every request
        self.faults: dict[str, deque] = {}
        self._lock = threading.Lock()
        super().__init__()

    # -- control ------------------------------------------------------------------
    def add_wallet(self, owner: str, wallet: str, kind: str, deployed: bool = True) -> None:
        """``kind``: poly_proxy, gnosis_safe or deposit_wallet (a live.signature_type)."""
        self.wallets[wallet.lower()] = {"owner": owner.lower(), "type": KINDS[kind], "deployed": deployed, "nonce": 0}

    def inject(self, route: str, *faults: str) -> None:
        self.faults.setdefault(route, deque()).extend(faults)

    def execute_pending(self) -> None:
        """Time passes: every accepted transaction runs to its end (a "stuck" one stays),
        as the real relayer executes what it accepted whether or not anyone polls."""
        with self._lock:
            for tx in self.transactions.values():
                for _ in _STEPS:
                    self._advance(tx)

    def _wallet_of(self, signer: str, kind: str) -> tuple[str, dict]:
        for address, w in self.wallets.items():
            if w["owner"] == signer.lower() and w["type"] == kind:
                return address, w
        raise Rejected(f"no {kind} wallet for {signer}")

    # -- auth ---------------------------------------------------------------------
    def _authorized(self, headers: Any, method: str, path: str, body: str) -> bool:
        if "RELAYER_API_KEY" in headers:
            owner = headers.get("RELAYER_API_KEY_ADDRESS", "")
            return (hmac.compare_digest(headers["RELAYER_API_KEY"], self.api_key)
                    and self.key_owner is not None and owner.lower() == self.key_owner.lower())
        if self.builder and "POLY_BUILDER_API_KEY" in headers:
            key, secret, passphrase = self.builder
            ts = headers.get("POLY_BUILDER_TIMESTAMP", "")
            if headers["POLY_BUILDER_API_KEY"] != key or headers.get("POLY_BUILDER_PASSPHRASE") != passphrase \
                    or not ts.isdigit() or abs(int(ts) - time.time()) > 30:
                return False
            return hmac.compare_digest(hmac_signature(secret, ts, method, path, body),
                                       headers.get("POLY_BUILDER_SIGNATURE", ""))
        return False

    # -- submit ---------------------------------------------------------------------
    def _check(self, envelope: dict) -> tuple[str, list[tuple[str, bytes]]]:
        """(the wallet, its calls) of a verified envelope; Rejected otherwise."""
        kind, signer = envelope.get("type"), str(envelope.get("from", ""))
        if kind == "WALLET-CREATE":
            if envelope.get("to", "").lower() != DEPOSIT_WALLET_FACTORY.lower():
                raise Rejected("WALLET-CREATE must go to the deposit wallet factory")
            address, _ = self._wallet_of(signer, "WALLET")
            return address, []
        if kind not in ("PROXY", "SAFE", "WALLET"):
            raise Rejected(f"unknown transaction type {kind!r}")
        address, w = self._wallet_of(signer, kind)
        if not w["deployed"]:
            raise Rejected(f"wallet {address} is not deployed")
        nonce = int(envelope["nonce"])
        if kind == "WALLET":
            params = envelope["depositWalletParams"]
            if params["depositWallet"].lower() != address or envelope["to"].lower() != DEPOSIT_WALLET_FACTORY.lower():
                raise Rejected("deposit wallet or factory mismatch")
            if int(params["deadline"]) <= time.time():
                raise Rejected("batch deadline has passed")
            if nonce != w["nonce"]:
                raise Rejected(f"batch nonce {nonce} does not match on-chain nonce {w['nonce']}")
            recovered = recover_deposit_wallet_signer(params["depositWallet"], nonce, int(params["deadline"]),
                                                      params["calls"], envelope["signature"])
            calls = [(c["target"], _hex(c["data"])) for c in params["calls"]]
        elif kind == "SAFE":
            if envelope["proxyWallet"].lower() != address:
                raise Rejected("proxyWallet is not the signer's safe")
            if nonce != w["nonce"]:
                raise Rejected(f"invalid safe nonce {nonce}, expected {w['nonce']}")
            operation = int(envelope["signatureParams"]["operation"])
            recovered = recover_safe_signer(envelope["proxyWallet"], envelope["to"], envelope["data"],
                                            int(envelope.get("value") or 0), operation, nonce, envelope["signature"])
            if operation == 1:
                if envelope["to"].lower() != SAFE_MULTISEND.lower():
                    raise Rejected("a safe delegatecall goes to MultiSend only")
                calls = multisend_calls(_hex(envelope["data"]))
            else:
                calls = [(envelope["to"], _hex(envelope["data"]))]
        else:
            p = envelope["signatureParams"]
            if envelope["proxyWallet"].lower() != address or envelope["to"].lower() != PROXY_FACTORY.lower():
                raise Rejected("proxy wallet or factory mismatch")
            if p["relay"].lower() != RELAY.lower() or p["relayHub"].lower() != RELAY_HUB.lower():
                raise Rejected("relay or relay hub mismatch")
            if nonce != w["nonce"]:
                raise Rejected(f"invalid proxy nonce {nonce}, expected {w['nonce']}")
            recovered = recover_proxy_signer(envelope)
            data = _hex(envelope["data"])
            if data[:4] != _PROXY_SELECTOR:
                raise Rejected("a proxy transaction calls proxy((uint8,address,uint256,bytes)[])")
            (tuples,) = abi_decode(["(uint8,address,uint256,bytes)[]"], data[4:])
            calls = [(to, call_data) for _, to, _, call_data in tuples]
        if recovered.lower() != signer.lower():
            raise Rejected(f"invalid signature: signed by {recovered}, not {signer}")
        return address, calls

    def _submit(self, headers: Any, body: str) -> tuple[int, Any]:
        if not self._authorized(headers, "POST", "/submit", body):
            self.rejections.append("unauthorized")
            return 401, {"error": "invalid authorization"}
        fault = self._fault("POST /submit")
        try:
            envelope = json.loads(body)
            with self._lock:
                wallet, calls = self._check(envelope)
                if envelope["type"] != "WALLET-CREATE":
                    self.wallets[wallet]["nonce"] += 1
        except Rejected as exc:
            self.rejections.append(str(exc))
            return 400, {"error": str(exc)}
        except (ValueError, KeyError, TypeError) as exc:
            self.rejections.append(f"malformed: {exc}")
            return 400, {"error": "invalid request body"}
        tx_id = f"0190b317-{len(self.transactions):04x}-7bec-9b91-{hashlib.sha256(body.encode()).hexdigest()[:12]}"
        self.submitted.append(envelope)
        self.transactions[tx_id] = {"transaction_id": tx_id, "transaction_hash": "", "state": "STATE_NEW",
                                    "type": envelope["type"], "from": envelope["from"].lower(),
                                    "to": envelope["to"].lower(), "proxy_address": wallet,
                                    "nonce": envelope.get("nonce", ""), "metadata": envelope.get("metadata", ""),
                                    "_calls": calls, "_fate": fault or "confirm"}
        return 200, {"transactionID": tx_id, "state": "STATE_NEW"}

    def _fault(self, route: str) -> Optional[str]:
        queue = self.faults.get(route)
        return queue.popleft() if queue else None

    def _advance(self, tx: dict) -> None:
        """One poll: the transaction's next state (its calls applied when mined)."""
        fate, state = tx["_fate"], tx["state"]
        if state in ("STATE_CONFIRMED", "STATE_FAILED", "STATE_INVALID"):
            return
        if state == "STATE_NEW":
            tx["state"] = "STATE_EXECUTED"
            tx["transaction_hash"] = "0x" + keccak(text=tx["transaction_id"]).hex()
        elif fate == "stuck":
            return
        elif fate in ("fail", "invalid"):
            tx["state"] = "STATE_FAILED" if fate == "fail" else "STATE_INVALID"
            tx["error_msg"] = "execution reverted: GS013" if fate == "fail" else "transaction invalid"
        elif state == "STATE_EXECUTED":
            tx["state"] = "STATE_MINED"
            if tx["type"] == "WALLET-CREATE":
                self.wallets[tx["proxy_address"]]["deployed"] = True
            for to, data in tx["_calls"]:
                self.chain.apply_call(tx["proxy_address"], to, data)
            self.chain.add_receipt(tx["transaction_hash"], RELAY.lower(), tx["to"])  # the relayer's own transaction
        else:
            tx["state"] = "STATE_CONFIRMED"

    # -- reads ----------------------------------------------------------------------
    def _get(self, path: str, q: dict) -> tuple[int, Any]:
        if path == "/deployed":
            w = self.wallets.get(q.get("address", "").lower())
            kind = q.get("type")
            return 200, {"deployed": bool(w and w["deployed"] and (kind is None or kind == w["type"]))}
        if path in ("/v1/account/transactions/params", "/relay-payload"):
            kind = q.get("type", "")
            if (path == "/relay-payload") != (kind == "PROXY"):
                return 400, {"error": f"type {kind} is not served by {path}"}
            try:
                _, w = self._wallet_of(q.get("address", ""), kind)
            except Rejected as exc:
                return 400, {"error": str(exc)}
            return 200, {"address": RELAY if kind == "PROXY" else q["address"], "nonce": str(w["nonce"])}
        if path.startswith("/v1/account/transactions/"):
            tx = self.transactions.get(path.rsplit("/", 1)[1])
            if tx is None:
                return 404, {"error": "transaction not found"}
            with self._lock:
                self._advance(tx)
            return 200, {k: v for k, v in tx.items() if not k.startswith("_")}
        return 404, {"error": f"no route GET {path}"}

    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                stand_in.requests.append((method, url.path, dict(self.headers)))
                is_poll = url.path.startswith("/v1/account/transactions/") and not url.path.endswith("/params")
                route = f"{method} {'/v1/account/transactions/<id>' if is_poll else url.path}"
                queue = stand_in.faults.get(route)
                if queue and queue[0] in FAULTS:  # before acting; "fail"/"stuck"/"invalid" are fates of a submit
                    common_fault(self, queue.popleft())
                    return
                status, answer = stand_in._submit(self.headers, body) if route == "POST /submit" else \
                    stand_in._get(url.path, q) if method == "GET" else (404, {"error": "no route"})
                send_raw(self, status, json.dumps(answer).encode())

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler
