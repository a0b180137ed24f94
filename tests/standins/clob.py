"""A loopback stand-in of the Polymarket CLOB (V2) for tests.

Serves what the SDK and our adapters call, on 127.0.0.1, in the real wire
format. It verifies L1 auth (ClobAuth EIP-712 signature) and L2 auth (HMAC
of timestamp + method + path + body with the API secret), recovers the
EIP-712 signer of every posted order with eth_account's generic encoder,
independently of the SDK (domain "2" on the CTF or neg-risk exchange,
domain "3" on ExchangeV3 for Protocol V2 position ids; for a deposit wallet
the ERC-7739 TypedDataSign wrapper, its trailer and the wallet's owner, told
in ``deposit_wallets``) and rejects bad ones as the exchange does, matches
FOK/FAK orders against its book (consuming it), remembers orders by hash,
and injects faults on request.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

from eth_account import Account
from eth_account.messages import encode_typed_data

from . import LoopbackServer, common_fault, send_raw

V2_EXCHANGE = "0xE111180000d2663C0091e4f400237545B87B996B"
V2_NEG_RISK_EXCHANGE = "0xe2222d279d744050d28e00520010520000310F59"
# what the CLOB checks per asset type (GET /balance-allowance): token -> spenders/operators
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
CTF = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
POSITION_MANAGER = "0x006F54F7f9A22e0000CC2AB60031000000ae9fEF"
EXCHANGE_V3 = "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"  # Protocol V2 position ids, domain "3"
CLOB_CHECKS = {"COLLATERAL": (PUSD, (V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, EXCHANGE_V3)),
               "CONDITIONAL": (CTF, (V2_EXCHANGE, V2_NEG_RISK_EXCHANGE)),
               "CONDITIONAL-V2": (POSITION_MANAGER, (EXCHANGE_V3,))}
ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"}, {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"}, {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"}, {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"}, {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"}, {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
ORDER_TYPE = "Order(" + ",".join(f"{f['type']} {f['name']}" for f in ORDER_FIELDS) + ")"  # EIP-712 encodeType
DOMAIN_FIELDS = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                 {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]
# ERC-7739 nested typed data: a deposit wallet's owner signs the Order wrapped in TypedDataSign
TYPED_DATA_SIGN_FIELDS = [{"name": "contents", "type": "Order"}, *DOMAIN_FIELDS, {"name": "salt", "type": "bytes32"}]
POLY_1271 = 3
V2_RESERVED_BITS = ((1 << 64) - 1) << 40
MICRO = Decimal(10**6)


def exchange_of(token_id: str, neg_risk: bool) -> tuple[str, str]:
    """(verifying contract, domain version) the exchange checks an order against:
    a Protocol V2 position id (bits 40..103 zero) settles on ExchangeV3, domain "3"."""
    if int(token_id) & V2_RESERVED_BITS == 0:
        return EXCHANGE_V3, "3"
    return (V2_NEG_RISK_EXCHANGE if neg_risk else V2_EXCHANGE), "2"


def _order_message(order: dict) -> dict:
    return {
        "salt": int(order["salt"]), "maker": order["maker"], "signer": order["signer"],
        "tokenId": int(order["tokenId"]), "makerAmount": int(order["makerAmount"]),
        "takerAmount": int(order["takerAmount"]), "side": 0 if order["side"] in ("BUY", 0) else 1,
        "signatureType": int(order["signatureType"]), "timestamp": int(order["timestamp"]),
        "metadata": bytes.fromhex(order["metadata"][2:]), "builder": bytes.fromhex(order["builder"][2:]),
    }


def _domain(exchange: str, chain_id: int, version: str) -> dict:
    return {"name": "Polymarket CTF Exchange", "version": version, "chainId": chain_id, "verifyingContract": exchange}


def order_typed_data(order: dict, exchange: str, chain_id: int = 137, version: str = "2") -> dict:
    return {"primaryType": "Order", "types": {"EIP712Domain": DOMAIN_FIELDS, "Order": ORDER_FIELDS},
            "domain": _domain(exchange, chain_id, version), "message": _order_message(order)}


def order_hash(order: dict, exchange: str, chain_id: int = 137, version: str = "2") -> str:
    """The order's id at the exchange: the EIP-712 digest of the Order (every signature type)."""
    from eth_utils import keccak

    msg = encode_typed_data(full_message=order_typed_data(order, exchange, chain_id, version))
    return "0x" + keccak(b"\x19" + msg.version + msg.header + msg.body).hex()


def recover_order_signer(order: dict, exchange: str, chain_id: int = 137, version: str = "2") -> str:
    """The EOA whose signature the order carries. For POLY_1271 (a deposit wallet)
    that is the EOA that signed the TypedDataSign wrapper, once the ERC-7739
    trailer (65-byte signature ‖ app domain separator ‖ contents hash ‖ type
    string ‖ its 2-byte length) is shown to describe this very order in this
    exchange's domain; ValueError("invalid signature") otherwise."""
    msg = encode_typed_data(full_message=order_typed_data(order, exchange, chain_id, version))
    if int(order["signatureType"]) != POLY_1271:
        return Account.recover_message(msg, signature=order["signature"])
    raw = bytes.fromhex(str(order["signature"])[2:])
    n = int.from_bytes(raw[-2:], "big")
    if len(raw) != 65 + 64 + n + 2:
        raise ValueError("invalid signature")
    inner, separator, contents, type_string = raw[:65], raw[65:97], raw[97:129], raw[129:129 + n]
    if (separator, contents, type_string) != (msg.header, msg.body, ORDER_TYPE.encode()):
        raise ValueError("invalid signature")
    wrapper = {
        "primaryType": "TypedDataSign",
        "types": {"EIP712Domain": DOMAIN_FIELDS, "Order": ORDER_FIELDS, "TypedDataSign": TYPED_DATA_SIGN_FIELDS},
        "domain": _domain(exchange, chain_id, version),
        "message": {"contents": _order_message(order), "name": "DepositWallet", "version": "1", "chainId": chain_id,
                    "verifyingContract": order["signer"], "salt": b"\0" * 32},
    }
    return Account.recover_message(encode_typed_data(full_message=wrapper), signature=inner)


def recover_clob_auth(address: str, timestamp: str, nonce: int, signature: str, chain_id: int = 137) -> str:
    data = {
        "primaryType": "ClobAuth",
        "types": {"EIP712Domain": DOMAIN_FIELDS[:3], "ClobAuth": [
            {"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"},
            {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}]},
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": timestamp, "nonce": nonce,
                    "message": "This message attests that I control the given wallet"},
    }
    return Account.recover_message(encode_typed_data(full_message=data), signature=signature)


def _salt(body: str) -> tuple[str, str]:
    """(salt, signature) of a POST /order body: one salt per intent; one
    signature per signed order (a repost of the same order has the same)."""
    try:
        order = json.loads(body)["order"]
        return str(order["salt"]), str(order.get("signature", ""))
    except (ValueError, KeyError, TypeError):
        return "", ""


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    digest = hmac.new(base64.urlsafe_b64decode(secret), f"{timestamp}{method}{path}{body}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode()


_SETTLING = ("MATCHED", "MINED", "CONFIRMED")  # a trade's statuses on its way to the chain
_FAILING = ("MATCHED", "RETRYING", "FAILED")


class ClobStandIn(LoopbackServer):
    """Start with ``with ClobStandIn() as clob:``; ``clob.url`` is the host."""

    TRADES_PAGE = 100

    def __init__(self) -> None:
        self.books: dict[str, dict[str, Any]] = {}  # token -> {bids, asks, tick_size, min_order_size, neg_risk, market}
        self.orders: dict[str, dict[str, Any]] = {}  # hash -> order record
        self.trades: list[dict[str, Any]] = []  # GET /data/trades rows, oldest first
        self.seen: set[str] = set()  # hashes of every order that reached matching (a repost is "Duplicated")
        # As the exchange does, GET /data/order shows open orders only: a fully
        # matched (or killed) order answers null, its trades are the record.
        # "all" shows every order (as some answers do, e.g. after a partial match).
        self.order_visibility = "open"
        self.trades_endpoint = True  # False: a venue without GET /data/trades (404), as older stand-ins
        # Faults in the answers themselves: overrides of a looked-up order's fields.
        self.order_overrides: dict[str, Any] = {}
        self.posts: list[dict[str, Any]] = []  # every POST /order body that reached matching
        self.requests: list[tuple[str, str]] = []
        self.rejections: list[str] = []
        self.creds: dict[str, dict[str, str]] = {}  # address -> {apiKey, secret, passphrase}
        self.deposit_wallets: dict[str, str] = {}  # deposit wallet -> its owner (the EOA that signs for it)
        self.faults: dict[str, deque] = {}
        self.geo_blocked = False
        self.delisted: dict[str, dict] = {}  # token -> its last book (see delist)
        self.resolved: dict[str, Optional[str]] = {}  # condition -> winning token (None: closed, not resolved)
        self.time_offset_s = 0
        self.attempts: list[str] = []  # the salt of every POST /order body received, even if never acted on
        self.signed: list[tuple[str, str]] = []  # (salt, signature) of the same bodies
        self.kill_hook: Optional[Any] = None  # called by the "kill" faults (the crash harness SIGKILLs the client)
        self._seen_timestamps: set[tuple[str, str]] = set()
        # GET /balance-allowance answers from a cache of the chain (``chain``: an RpcStandIn),
        # read at the first request and again at each GET /balance-allowance/update, as the CLOB does
        self.chain: Optional[Any] = None
        self.funders: dict[tuple[str, int], str] = {}  # (signer, signature type) -> funder (default: the signer)
        self.balance_cache: dict[tuple[str, str], dict] = {}  # (funder, asset type) -> answer
        self.balance_updates: list[tuple[str, str]] = []
        # The trade lifecycle, as the CLOB reports it in GET /data/trades: a trade starts MATCHED and
        # moves one step per ``advance_trades`` (or every ``advance_every_reads`` reads of /data/trades):
        # MATCHED -> MINED -> CONFIRMED, or for a failing trade MATCHED -> RETRYING -> FAILED. REST answers
        # carry the prefixed constant ("TRADE_STATUS_CONFIRMED"); "" sends the plain one, as streams do.
        self.trade_status_prefix = "TRADE_STATUS_"
        self.advance_every_reads = 0
        self.failing_orders: set[str] = set()  # order hashes whose trades FAIL on chain
        self._fail_next = 0
        self._trade_reads = 0
        self._lock = threading.Lock()
        # called with a token id after its book changed (set_book, a match): the market channel stand-in
        self.book_listeners: list[Any] = []
        # called with (trade, order) when one of our trades is made or its status moves: the user channel stand-in
        self.trade_listeners: list[Any] = []
        super().__init__()

    # -- control --------------------------------------------------------------
    def set_book(self, token_id: str, bids=(), asks=(), *, market: str = "0x" + "cd" * 32, tick_size: str = "0.01",
                 min_order_size: str = "5", neg_risk: bool = False, version: str = "v1") -> None:
        """``version``: the Gamma version of the token's market (its ``GET /markets`` answer, below)."""
        self.books[token_id] = {
            "market": market, "tick_size": tick_size, "min_order_size": min_order_size, "neg_risk": neg_risk,
            "version": version,
            "bids": sorted(([Decimal(str(p)), Decimal(str(s))] for p, s in bids), key=lambda l: -l[0]),
            "asks": sorted(([Decimal(str(p)), Decimal(str(s))] for p, s in asks), key=lambda l: l[0]),
        }
        self._book_changed(token_id)

    def _book_changed(self, token_id: str) -> None:
        for listener in self.book_listeners:
            listener(token_id)

    def delist(self, token_id: str) -> None:
        """The book of a token goes away (a resolved market's does): ``GET /book`` answers 404,
        ``GET /markets/{condition}`` still lists the token."""
        self.delisted[token_id] = self.books.pop(token_id)

    def inject(self, route: str, *faults: str) -> None:
        """Queue faults for a route ("POST /order", "GET /book", ...): "429",
        "429-retry", "500", "502", "503", "malformed", "truncated", "400-empty", "400-object", "reset"
        and "timeout" (drop before acting), "reset-after-accept", "timeout-after-accept" (act, then stall),
        "kill" (call ``kill_hook`` before acting), "kill-after-accept" (act, then
        call it before answering) and "pass" (no fault: to aim at the n-th call)."""
        self.faults.setdefault(route, deque()).extend(faults)

    def fail_next_trades(self, n: int = 1) -> None:
        """The trades of the next ``n`` orders that match go MATCHED -> RETRYING -> FAILED."""
        self._fail_next += n

    def fail_order(self, order_hash: str) -> None:
        """The trades of this order (matched already or not yet) FAIL on chain."""
        self.failing_orders.add(order_hash)
        for trade in self.trades:
            if trade["taker_order_id"] == order_hash and trade["_path"][trade["_step"]] not in ("CONFIRMED", "FAILED"):
                trade["_path"] = _FAILING  # from MATCHED or MINED on: RETRYING, then FAILED

    def advance_trades(self, steps: int = 1) -> None:
        """Every trade not settled moves ``steps`` along its lifecycle (CONFIRMED and FAILED are terminal).
        A FAILED trade moves no tokens and no collateral: its order's matched size is given back."""
        with self._lock:
            now = int(time.time())
            for trade in self.trades:
                before = trade["_path"][trade["_step"]]
                trade["_step"] = min(trade["_step"] + steps, len(trade["_path"]) - 1)
                status = trade["_path"][trade["_step"]]
                if status != before:
                    trade["last_update"] = str(now)
                    order = self.orders.get(trade["taker_order_id"])
                    if status == "FAILED" and order is not None:
                        order["size_matched"] -= Decimal(trade["size"])
                    self._trade_changed(trade, order)

    def _trade_changed(self, trade: dict, order: Optional[dict]) -> None:
        for listener in self.trade_listeners:
            listener(trade, order)

    def trade_statuses(self, order_hash: Optional[str] = None) -> list[str]:
        """The plain status of each trade (of one order), oldest first."""
        return [t["_path"][t["_step"]] for t in self.trades if order_hash in (None, t["taker_order_id"])]

    def fills(self, token_id: Optional[str] = None) -> Decimal:
        """Net shares our orders took (buys minus sells); a FAILED trade took none."""
        total = Decimal(0)
        for o in self.orders.values():
            if token_id is None or o["asset_id"] == token_id:
                total += o["size_matched"] if o["side"] == "BUY" else -o["size_matched"]
        return total

    # -- server ---------------------------------------------------------------
    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, raw: Optional[bytes] = None, headers: Optional[dict] = None) -> None:
                send_raw(self, status, raw if raw is not None else json.dumps(body).encode(), headers)

            def _route(self, method: str) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path = parsed.path
                key = f"{method} {'/data/order/' if path.startswith('/data/order/') else path}"
                stand_in.requests.append((method, path))
                if key == "POST /order":
                    salt, signature = _salt(body)
                    stand_in.attempts.append(salt)
                    stand_in.signed.append((salt, signature))
                fault = None
                with stand_in._lock:
                    queue = stand_in.faults.get(key)
                    if queue:
                        fault = queue.popleft()
                if fault == "kill":
                    return self._killed()
                if stand_in.geo_blocked:
                    return self._send(403, {"error": "Trading restricted in your region"})
                if fault in ("429", "500", "502", "503"):
                    return self._send(int(fault), {"error": "injected"}, raw=b"<html>error</html>" if fault == "429" else None)
                if fault in ("timeout", "truncated"):
                    common_fault(self, fault, stall_s=1.0)
                    return None
                if fault == "429-retry":
                    return self._send(429, None, raw=b"<html>Too Many Requests</html>", headers={"Retry-After": "2"})
                if fault == "malformed":
                    return self._send(200, None, raw=b'{"success": tr')
                if fault == "400-empty":  # a 4xx that says nothing (before acting)
                    return self._send(400, None, raw=b"")
                if fault == "400-object":  # a 4xx whose error is not text
                    return self._send(400, {"error": {"code": "INTERNAL"}})
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                status, answer = stand_in._dispatch(method, path, parse_qs(parsed.query), self.headers, body)
                if fault == "reset-after-accept":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if fault == "kill-after-accept":
                    return self._killed()
                if fault == "timeout-after-accept":
                    time.sleep(1.0)  # longer than the client's timeout in tests
                return self._send(status, answer)

            def _killed(self) -> None:
                stand_in.kill_hook()
                self.close_connection = True

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler

    # -- endpoints ------------------------------------------------------------
    def _gamma_markets(self, query: dict) -> list:
        from .gamma import gamma_market, select

        by_market: dict[str, list[str]] = {}
        for token, book in self.books.items():
            by_market.setdefault(book["market"], []).append(token)
        rows = [gamma_market(m, tokens, version=self.books[tokens[0]]["version"], market_id=str(i),
                             neg_risk=self.books[tokens[0]]["neg_risk"], closed=m in self.resolved)
                for i, (m, tokens) in enumerate(by_market.items(), 1)]
        return select(rows, query)

    def _dispatch(self, method: str, path: str, query: dict, headers: Any, body: str) -> tuple[int, Any]:
        q = {k: v[0] for k, v in query.items()}
        if method == "GET" and path in ("/", "/version"):
            return 200, {"version": 2}
        if method == "GET" and path == "/time":
            return 200, int(time.time()) + self.time_offset_s
        if method == "GET" and path in ("/book", "/tick-size", "/neg-risk", "/fee-rate"):
            book = self.books.get(q.get("token_id", ""))
            if book is None:
                return 404, {"error": "No orderbook exists for the requested token id"}
            if path == "/tick-size":
                return 200, {"minimum_tick_size": float(book["tick_size"])}
            if path == "/neg-risk":
                return 200, {"neg_risk": book["neg_risk"]}
            if path == "/fee-rate":
                return 200, {"base_fee": 0}
            return 200, {
                "market": book["market"], "asset_id": q["token_id"], "timestamp": str(int(time.time() * 1000)),
                "hash": "0x" + "00" * 20, "tick_size": book["tick_size"], "min_order_size": book["min_order_size"],
                "neg_risk": book["neg_risk"], "last_trade_price": "0.5",
                "bids": [{"price": str(p), "size": str(s)} for p, s in book["bids"]],
                "asks": [{"price": str(p), "size": str(s)} for p, s in book["asks"]],
            }
        if method == "GET" and path == "/markets":  # Gamma's route, for a client whose live.gamma_host is here
            return 200, self._gamma_markets(query)
        if method == "GET" and path.startswith("/markets/"):
            condition = path.rsplit("/", 1)[1]
            known = {**self.delisted, **self.books}
            tokens = [t for t, b in known.items() if b["market"] == condition]
            if not tokens:
                return 404, {"error": "market not found"}
            first = known[tokens[0]]
            closed = condition in self.resolved
            return 200, {"condition_id": condition, "question": "stand-in market", "active": not closed,
                         "closed": closed,
                         "minimum_order_size": float(first["min_order_size"]),
                         "minimum_tick_size": float(first["tick_size"]), "neg_risk": first["neg_risk"],
                         "tokens": [{"token_id": t, "outcome": ("Yes", "No")[i % 2], "price": 0.5,
                                     "winner": closed and self.resolved[condition] == t}
                                    for i, t in enumerate(tokens)]}
        if path in ("/auth/derive-api-key", "/auth/api-key"):
            address = self._l1(headers)
            if address is None:
                return 401, {"error": "Invalid L1 Request headers"}
            with self._lock:
                creds = self.creds.get(address)
                if creds is None and method == "GET":
                    return 400, {"error": "Could not derive api key!"}
                if creds is None:
                    creds = self.creds[address] = {
                        "apiKey": secrets.token_hex(16), "passphrase": secrets.token_hex(16),
                        "secret": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}
            return 200, creds
        address = self._l2(headers, method, path, body)
        if address is None:
            return 401, {"error": "Unauthorized/Invalid api key"}
        if method == "POST" and path == "/order":
            return self._post_order(address, headers, body)
        if method == "GET" and path in ("/balance-allowance", "/balance-allowance/update"):
            return self._balance_allowance(address, q, update=path.endswith("/update"))
        if method == "GET" and path.startswith("/data/order/"):
            order = self.orders.get(path.rsplit("/", 1)[1])
            if order is None or order["owner_address"] != address:
                return 200, None
            if self.order_visibility == "open" and order["status"] != "LIVE":
                return 200, None
            return 200, {**order, "size_matched": str(order["size_matched"]),
                         "original_size": str(order["original_size"]), "price": str(order["price"]),
                         **self.order_overrides}
        if method == "GET" and path == "/data/trades" and not self.trades_endpoint:
            return 404, {"error": f"no route {method} {path}"}
        if method == "GET" and path == "/data/trades":
            self._trade_reads += 1
            if self.advance_every_reads and self._trade_reads % self.advance_every_reads == 0:
                self.advance_trades()
            rows = [t for t in self.trades if t["owner_address"] == address
                    and q.get("asset_id", t["asset_id"]) == t["asset_id"] and q.get("id", t["id"]) == t["id"]
                    and q.get("market", t["market"]) == t["market"]
                    and int(q.get("after") or 0) <= t["_at"] and int(q.get("before") or 2**62) >= t["_at"]]
            start = int(base64.b64decode(q.get("next_cursor") or "MA==").decode() or 0)
            page = rows[start:start + self.TRADES_PAGE]
            more = start + self.TRADES_PAGE < len(rows)
            return 200, {"data": [{**{k: v for k, v in t.items() if not k.startswith("_") and k != "owner_address"},
                                   "status": self.trade_status_prefix + t["_path"][t["_step"]]} for t in page],
                         "next_cursor": base64.b64encode(str(start + self.TRADES_PAGE).encode()).decode()
                         if more else "LTE=", "limit": self.TRADES_PAGE, "count": len(page)}
        if method == "DELETE" and path == "/order":
            order_id = json.loads(body or "{}").get("orderID")
            if order_id in self.orders:
                self.orders[order_id]["status"] = "CANCELED"
                return 200, {"canceled": [order_id], "not_canceled": {}}
            return 200, {"canceled": [], "not_canceled": {order_id: "order not found"}}
        return 404, {"error": f"no route {method} {path}"}

    def _balance_allowance(self, address: str, q: dict, update: bool) -> tuple[int, Any]:
        asset_type = q.get("asset_type", "")
        if asset_type not in CLOB_CHECKS or not q.get("signature_type", "").isdigit():
            return 400, {"error": "invalid asset_type or signature_type"}
        funder = self.funders.get((address.lower(), int(q["signature_type"])), address).lower()
        key = (funder, asset_type)
        token_id = q.get("token_id")  # an outcome token's balance (CONDITIONAL, CONDITIONAL-V2)
        if update:
            self.balance_updates.append(key)
        if token_id:
            key = (funder, asset_type, token_id)
        if update or key not in self.balance_cache:
            token, spenders = CLOB_CHECKS[asset_type]
            chain, t = self.chain, token.lower()
            if asset_type == "COLLATERAL":
                balance = chain.balances.get((t, funder), 0) if chain else 0
                allowances = {s: str(chain.allowances.get((t, funder, s.lower()), 0) if chain else 0) for s in spenders}
            else:
                balance = chain.balance_of(t, funder, int(token_id)) if chain and token_id else 0
                allowances = {s: str(2**256 - 1 if chain and (t, funder, s.lower()) in chain.approvals else 0)
                              for s in spenders}
            self.balance_cache[key] = {"balance": str(balance), "allowances": allowances}
        return 200, ("" if update else self.balance_cache[key])

    def _l1(self, headers: Any) -> Optional[str]:
        try:
            address = headers["POLY_ADDRESS"]
            signer = recover_clob_auth(address, headers["POLY_TIMESTAMP"], int(headers.get("POLY_NONCE", "0")),
                                       headers["POLY_SIGNATURE"])
        except Exception:
            return None
        return address if signer.lower() == address.lower() else None

    def _l2(self, headers: Any, method: str, path: str, body: str) -> Optional[str]:
        address = headers.get("POLY_ADDRESS", "")
        creds = self.creds.get(address)
        if not creds or headers.get("POLY_API_KEY") != creds["apiKey"] or \
                headers.get("POLY_PASSPHRASE") != creds["passphrase"]:
            return None
        ts = headers.get("POLY_TIMESTAMP", "")
        if not ts.isdigit() or abs(int(ts) - time.time()) > 30:
            return None
        expected = hmac_signature(creds["secret"], ts, method, path, body)
        return address if hmac.compare_digest(expected, headers.get("POLY_SIGNATURE", "")) else None

    def _reject(self, reason: str) -> tuple[int, Any]:
        self.rejections.append(reason)
        return 400, {"error": reason}

    def _post_order(self, address: str, headers: Any, body: str) -> tuple[int, Any]:
        try:
            payload = json.loads(body)
            order = payload["order"]
        except (ValueError, KeyError, TypeError):
            return self._reject("Invalid order payload")
        if payload.get("owner") != headers.get("POLY_API_KEY"):
            return self._reject("the order owner has to be the owner of the API KEY")
        book = self.books.get(str(order.get("tokenId")))
        if book is None:
            return self._reject("market not found")
        exchange, version = exchange_of(str(order["tokenId"]), book["neg_risk"])
        try:
            digest = order_hash(order, exchange, version=version)
        except Exception:
            return self._reject("invalid order version, please use the latest clob-client")
        try:
            signer = recover_order_signer(order, exchange, version=version)
        except ValueError:
            return self._reject("invalid signature")
        except Exception:
            return self._reject("invalid order version, please use the latest clob-client")
        if int(order["signatureType"]) == POLY_1271:
            # maker = signer = the deposit wallet; its owner signed, and owns the API key
            wallet = str(order["signer"]).lower()
            owner = {k.lower(): v.lower() for k, v in self.deposit_wallets.items()}.get(wallet)
            if order["maker"].lower() != wallet or owner != signer.lower() or owner != address.lower():
                return self._reject("invalid signature")
        elif signer.lower() != str(order["signer"]).lower() or signer.lower() != address.lower():
            return self._reject("invalid signature")
        if int(order["signatureType"]) == 0 and order["maker"].lower() != signer.lower():
            return self._reject("invalid signature: maker must be the signer for EOA orders")
        with self._lock:
            if digest in self.seen:
                return self._reject("order is invalid. Duplicated. Same order has already been placed, "
                                    "can't be placed again")
            self.seen.add(digest)
            key = (signer.lower(), str(order["timestamp"]))
            if key in self._seen_timestamps:
                return self._reject("duplicate order timestamp for this signer")
            self._seen_timestamps.add(key)
            self.posts.append(payload)
            return self._match(order, payload.get("orderType", "GTC"), digest, address, book)

    def _match(self, order: dict, order_type: str, digest: str, address: str, book: dict) -> tuple[int, Any]:
        buy = order["side"] in ("BUY", 0)
        maker, taker = Decimal(order["makerAmount"]) / MICRO, Decimal(order["takerAmount"]) / MICRO
        size, collateral = (taker, maker) if buy else (maker, taker)
        limit = collateral / size
        levels = book["asks"] if buy else book["bids"]
        available = sum(s for p, s in levels if (p <= limit if buy else p >= limit))
        if order_type == "FOK" and available < size:
            return self._reject("order couldn't be fully filled. FOK orders are fully filled or killed.")
        if available <= 0 and order_type in ("FOK", "FAK"):
            return self._reject("no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found.")
        remaining, filled, cost = size, Decimal(0), Decimal(0)
        makers = []
        for level in levels:
            price, qty = level
            if remaining <= 0 or (price > limit if buy else price < limit):
                break
            take = min(qty, remaining)
            level[1] -= take
            filled += take
            cost += take * price
            remaining -= take
            makers.append({"order_id": "0x" + secrets.token_hex(32), "owner": "maker", "maker_address": "0x" + "77" * 20,
                           "asset_id": str(order["tokenId"]), "side": "SELL" if buy else "BUY", "price": str(price),
                           "matched_amount": f"{take.normalize():f}", "outcome": "Yes", "fee_rate_bps": "0"})
        levels[:] = [lv for lv in levels if lv[1] > 0]
        if filled:
            self._book_changed(str(order["tokenId"]))
        self.orders[digest] = {
            # a FOK/FAK remainder is killed; a GTC/GTD one rests
            "id": digest, "status": "LIVE" if remaining > 0 and order_type in ("GTC", "GTD") else "MATCHED",
            "owner": "", "owner_address": address,
            "maker_address": order["maker"], "market": book["market"], "asset_id": str(order["tokenId"]),
            "side": "BUY" if buy else "SELL", "original_size": size, "size_matched": filled,
            "price": limit.quantize(Decimal("0.0001")).normalize(), "order_type": order_type,
            "created_at": int(time.time()), "associate_trades": [],
        }
        trade_ids = []
        if filled:
            now = int(time.time())
            failing = digest in self.failing_orders or self._fail_next > 0
            if self._fail_next > 0 and digest not in self.failing_orders:
                self._fail_next -= 1
                self.failing_orders.add(digest)
            trade_ids.append(secrets.token_hex(16))
            self.trades.append({
                "id": trade_ids[0], "taker_order_id": digest, "market": book["market"],
                "asset_id": str(order["tokenId"]), "side": "BUY" if buy else "SELL", "size": f"{filled.normalize():f}",
                "price": f"{(cost / filled).quantize(Decimal('0.000001')).normalize():f}", "fee_rate_bps": "0",
                "status": "TRADE_STATUS_MATCHED", "match_time": str(now), "last_update": str(now), "outcome": "Yes",
                "bucket_index": 0, "owner": "", "maker_address": order["maker"], "trader_side": "TAKER",
                "transaction_hash": "0x" + hashlib.sha256(digest.encode()).hexdigest(), "maker_orders": makers,
                "owner_address": address, "_at": now, "_path": _FAILING if failing else _SETTLING, "_step": 0})
            self.orders[digest]["associate_trades"] = trade_ids
            self._trade_changed(self.trades[-1], self.orders[digest])
        making, taking = (cost, filled) if buy else (filled, cost)
        return 200, {"success": True, "errorMsg": "", "orderID": digest, "status": "matched" if filled else "live",
                     "makingAmount": f"{making.normalize():f}", "takingAmount": f"{taking.normalize():f}",
                     "transactionsHashes": ["0x" + hashlib.sha256(digest.encode()).hexdigest()] if filled else [],
                     "tradeIDs": trade_ids}
