"""The CLOB executor (dry-run: sign, never send; live: sign and post).

Orders are built and signed with the unified SDK's own functions
(``polymarket._internal.actions.orders``: the ``UnsignedOrder``, its EIP-712
typed data, for a deposit wallet the ERC-7739 ``TypedDataSign`` wrapper and
the signature trailer), signed by the key's eth_account ``LocalAccount`` as
the SDK's ``SecureClient`` does; amounts are our exact Decimal ones and
posting is our transport (explicit timeouts, no retries)."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Optional

from ....domain.model import (
    MICRO_UNITS, CopyIntent, ExecStatus, ExecutionResult, IntentRecord, MarketInfo, OrderType, PreparedOrder,
    SettlementReport, Side,
)
from ....domain.positions import version_of
from ....ports import Clock, MarketData
from ..mock import PaperExecutor
from .parsing import from_order, from_post, from_trades, is_duplicate, is_unfilled, settlement_from_trades
from .settings import LiveSettings, SignatureType
from .transport import AuthenticatedClob, ClobError, ClobTransport



def _decimals(value: Decimal) -> int:
    return max(0, -value.normalize().as_tuple().exponent)


class PolymarketExecutor:
    """``post=False`` is dry-run: real market data and real signatures, the
    signed order is stored, and the fill is simulated against the real book.
    ``post=True`` posts the order and maps the exchange's answer.

    ``clock`` is the engine's (a replay's follows the rows: simulated fills
    are stamped with it); ``wall`` is real time, what the exchange checks:
    signed order timestamps and GTD expirations. ``rpc``: a JSON-RPC client
    (``eth_call``) to derive a deposit wallet with, instead of ``live.rpc_url``.
    ``user_ws_url`` (live only): the CLOB user channel, which then pushes our
    trades' settlement (``user_stream``); REST stays the fallback."""

    def __init__(self, settings: LiveSettings, key: Any, market: MarketData, clock: Clock,
                 post: bool = False, wall: Optional[Clock] = None, rpc: Optional[Any] = None,
                 user_ws_url: str = "", user_stream_options: Optional[dict] = None) -> None:
        # The SDK and eth_account are imported here, not at module level.
        from eth_account import Account

        from .wallet import resolve_funder, wallet_type_of

        self.settings = settings
        self.post = post
        self.clock = clock
        self.wall = wall or clock
        try:
            self._account = Account.from_key(key.reveal() if hasattr(key, "reveal") else str(key))
        except Exception:
            raise ValueError("the private key is not a valid secp256k1 key") from None  # never echo it
        self.address = self._account.address
        self.funder = resolve_funder(settings, self.address, rpc)
        self.order_signer = self.address
        if settings.signature_type is SignatureType.DEPOSIT_WALLET:
            # POLY_1271: the wallet is maker and signer; its owner (the key's EOA) signs the
            # TypedDataSign wrapper. The SDK signs for a wallet the key does not own as a
            # session key, in another format: not supported here.
            if wallet_type_of(self.address, self.funder) is not SignatureType.DEPOSIT_WALLET:
                raise ValueError(f"live.funder {self.funder} is not the deposit wallet of this key "
                                 "(session keys are not supported): set your own deposit wallet, or leave "
                                 "live.funder empty to derive it")
            self.order_signer = self.funder
        self._paper = PaperExecutor(market, clock, settings.fee_rate)
        self._last_ts = 0
        self.last_timings: dict[str, float] = {}  # build_ms, sign_ms, post_ack_ms of the latest order
        self.last_io: dict[str, Any] = {}  # the latest request and answer, redacted
        self.clob = AuthenticatedClob(ClobTransport(settings.host, settings.timeout_s), self._account,
                                      settings.chain_id) if post else None
        self.user_stream: Any = None
        if post and user_ws_url:
            from .user_stream import UserStream

            self.user_stream = UserStream(user_ws_url, self.clob.credentials, **(user_stream_options or {}))
            self.user_stream.start()  # connected before the first order, so its events are not missed

    def close(self) -> None:
        """Close the user channel and the connection pool to the CLOB (live); dry-run holds none."""
        if self.user_stream is not None:
            self.user_stream.close()
        if self.clob is not None:
            self.clob.transport.close()

    def streams(self) -> list:
        """The user channel's socket for the supervisor (its fallback, GET /data/trades, is always there)."""
        if self.user_stream is None:
            return []
        from ....ports import StreamHealth

        st, stale, age = self.user_stream.health()
        return [StreamHealth(st.name, st.connected, age, stale, True, st.reconnects, st.last_error)]

    def settlement_news(self) -> tuple[bool, set[str]]:
        """(every watched fill needs a REST read: the channel reconnected or sent garbage,
        orders whose trades the channel moved) since the last call; (False, set()) without one."""
        return self.user_stream.news() if self.user_stream is not None else (False, set())

    def __repr__(self) -> str:
        mode = "live" if self.post else "dry-run"
        return (f"PolymarketExecutor({mode}, {self.settings.signature_type.name}, signer={self.address}, "
                f"funder={self.funder})")

    # -- build and sign ---------------------------------------------------------
    def _timestamp_ms(self) -> int:
        """Wall-clock milliseconds, strictly increasing: V2 orders of one address
        need distinct timestamps."""
        now = int(self.wall.now().timestamp() * 1000)
        self._last_ts = max(now, self._last_ts + 1)
        return self._last_ts

    def amounts(self, intent: CopyIntent, market: MarketInfo) -> tuple[int, int]:
        """(makerAmount, takerAmount) in micro-units, computed exactly in Decimal
        within the digit limits of the SDK's rounding config for the tick
        (``resolve_rounding_config``); the SDK's own amounts are not used."""
        from polymarket._internal.actions.orders.context import resolve_rounding_config

        tick = market.tick_size.normalize()
        try:
            limits = resolve_rounding_config(tick)
        except Exception:  # the SDK's UnexpectedResponseError: a tick it has no rounding for
            raise ValueError(f"tick size {tick:f} is not one the SDK knows") from None
        collateral = intent.size * intent.limit_price
        for what, value, digits in (("size", intent.size, limits.size), ("price", intent.limit_price, limits.price),
                                    ("amount", collateral, limits.amount)):
            if _decimals(value) > digits:
                raise ValueError(f"order {what} {value} has more than {digits} decimals for tick {tick:f}")
        shares, collateral = int(intent.size * MICRO_UNITS), int(collateral * MICRO_UNITS)
        return (collateral, shares) if intent.side is Side.BUY else (shares, collateral)

    def _expiration(self, intent: CopyIntent) -> int:
        if intent.order_type is not OrderType.GTD:
            return 0
        return int(self.wall.now().timestamp()) + self.settings.gtd_expiration_s

    def exchange(self, token_id: str, market: MarketInfo) -> tuple[str, str]:
        """(exchange, EIP-712 domain version) of an order: the market's version
        picks them, and the id must be of that version's shape."""
        exchange, domain = self.settings.exchange_for(market.neg_risk, market.version)
        if version_of(token_id) != market.version:
            raise ValueError(f"token {token_id[:24]}… is not a {market.version} id: not signed for its market")
        return exchange, domain

    def prepare(self, intent: CopyIntent, market: MarketInfo) -> PreparedOrder:
        from eth_utils import keccak
        from polymarket._internal.actions.orders import typed_data
        from polymarket._internal.actions.orders.orders import create_signed_order
        from polymarket._internal.actions.orders.post import build_post_order_request
        from polymarket._internal.actions.orders.types import BYTES32_ZERO, UnsignedOrder

        started = time.perf_counter()
        maker, taker = self.amounts(intent, market)
        exchange, domain = self.exchange(intent.token_id, market)
        order = UnsignedOrder(
            chain_id=self.settings.chain_id, builder=BYTES32_ZERO, exchange_address=exchange,
            expiration=self._expiration(intent), maker=self.funder, maker_amount=maker, metadata=BYTES32_ZERO,
            order_type=intent.order_type.value, salt=int(intent.id[:13], 16),  # deterministic per intent
            side=intent.side.value, signature_type=int(self.settings.signature_type), signer=self.order_signer,
            taker_amount=taker, timestamp=self._timestamp_ms(), token_id=intent.token_id, protocol_version=domain)
        built = time.perf_counter()
        signed = self._account.sign_typed_data(full_message=typed_data.build_order_typed_data(order))
        raw = signed.signature.hex()  # HexBytes: with or without "0x", by its version (as the SDK allows)
        signature = typed_data.build_order_signature(order, raw if raw.startswith("0x") else "0x" + raw)
        # The order hash the exchange knows: the EIP-712 digest of the Order in the exchange's
        # domain, for every wallet type (a deposit wallet's trailer carries these two hashes).
        order_hash = "0x" + keccak(b"\x19\x01" + bytes.fromhex(
            typed_data._app_domain_separator(order, protocol_version=domain)[2:])
            + typed_data._order_contents_hash(order)).hex()
        self.last_timings = {"build_ms": (built - started) * 1000, "sign_ms": (time.perf_counter() - built) * 1000}
        _, body = build_post_order_request(create_signed_order(order, signature), owner_api_key="")
        return PreparedOrder(intent.id, order_hash, venue="polymarket", payload={
            **body, "orderHash": order_hash, "exchange": exchange, "domainVersion": domain,
            "negRisk": market.neg_risk})

    # -- send and look up -------------------------------------------------------
    def submit(self, order: PreparedOrder, intent: CopyIntent, market: Optional[MarketInfo]) -> ExecutionResult:
        if not self.post:
            self.last_io = {"request": {"method": "POST", "path": "/order", "sent": False}, "response": None}
            return self._paper.simulate(intent, order.order_id)
        at = self.clock.now()
        try:
            creds = self.clob.credentials()
        except ClobError as exc:
            return ExecutionResult(intent.id, ExecStatus.REJECTED, execution_id=order.order_id, submitted_at=at,
                                   completed_at=at, error=f"API credentials: {exc}", fault=True)
        body = {k: order.payload[k] for k in ("order", "orderType", "deferExec", "postOnly") if k in order.payload}
        body["owner"] = creds.key
        self.last_io = {"request": {"method": "POST", "path": "/order", "sent": True,
                                    "body": {**body, "owner": "***"}}, "response": None}
        started = time.perf_counter()
        try:
            answer = self.clob.l2("POST", "/order", body)
            self.last_io["response"] = answer
        except ClobError as exc:
            self.last_io["response"] = {"error": str(exc), "status": exc.status}
            # sent without a readable answer, or the exchange has it already: look it up
            status = ExecStatus.DUPLICATE if is_duplicate(str(exc)) else (
                ExecStatus.UNKNOWN if exc.sent else ExecStatus.REJECTED)
            market_outcome = exc.status == 400 and is_unfilled(str(exc))  # FOK/FAK found no liquidity
            return ExecutionResult(intent.id, status, execution_id=order.order_id, submitted_at=at,
                                   completed_at=None if exc.sent else at, error=str(exc), fault=not market_outcome)
        finally:
            self.last_timings["post_ack_ms"] = (time.perf_counter() - started) * 1000
        result = from_post(answer, intent, order.order_id, at)
        if self.user_stream is not None and result.provisional:
            self.user_stream.expect(order.order_id)
        return result

    def lookup(self, record: IntentRecord, market: Optional[MarketInfo]) -> ExecutionResult:
        if not self.post:
            return self._paper.simulate(record.to_intent(), record.execution_id)
        if not record.execution_id:
            return ExecutionResult(record.intent_id, ExecStatus.REJECTED, error="no order was signed for this intent")
        now = self.clock.now()
        try:
            answer = self.clob.l2("GET", f"/data/order/{record.execution_id}")
        except ClobError as exc:
            if exc.status != 404:
                return self._lookup_failed(record, exc)
            answer = None
        found = from_order(answer, record, now)
        if found.status is not ExecStatus.NOT_FOUND:
            return found
        try:  # a fully matched order is shown by its trades only
            traded = from_trades(self._trades(record), record, now)
        except ClobError as exc:
            return self._lookup_failed(record, exc)
        return traded or found

    def settlement(self, record: IntentRecord) -> SettlementReport:
        """Where the trades of our order stand on chain, from ``GET /data/trades``
        (the records with our order as ``taker_order_id`` or in ``maker_orders``,
        their ``status``), one read without waiting (the engine paces the reads;
        the SDK's ``wait_for_order_fill_settlement`` polls the same records by
        trade id, sleeping). With the user channel, from its pushed trades while they
        are complete for the order (no request); what REST shows is given to the
        channel (a reconnect's missed interval). Dry-run fills are simulated: final at once."""
        if not self.post:
            return self._paper.settlement(record)
        if self.user_stream is not None:
            pushed = self.user_stream.settlement(record)
            if pushed is not None:
                return pushed
        rows = self._trades(record)  # a ClobError: the watch reads again later
        if self.user_stream is not None:
            self.user_stream.absorb(record.execution_id, rows)
        return settlement_from_trades(rows, record)

    MAX_TRADE_PAGES = 20

    def _trades(self, record: IntentRecord) -> list[Any]:
        """Our trades in the order's token since a minute before its intent was
        made (``GET /data/trades``, cursor-paged from "MA==" to "LTE=", at most
        ``MAX_TRADE_PAGES``). A replay's intent time is older than its order:
        the window is then only wider."""
        after = str(int(record.created_at.timestamp()) - 60)
        rows: list[Any] = []
        cursor = "MA=="
        for _ in range(self.MAX_TRADE_PAGES):
            try:
                page = self.clob.l2("GET", "/data/trades",
                                    params={"asset_id": record.token_id, "after": after, "next_cursor": cursor})
            except ClobError as exc:
                if exc.status == 404 and not rows:  # a venue without the endpoint: its order lookup is the record
                    return rows
                raise
            if not isinstance(page, dict) or not isinstance(page.get("data", []), list):
                raise ClobError("GET /data/trades: unreadable answer", sent=True)
            rows.extend(page.get("data") or [])
            cursor = str(page.get("next_cursor") or "LTE=")
            if cursor == "LTE=":
                return rows
        raise ClobError(f"GET /data/trades: more than {self.MAX_TRADE_PAGES} pages", sent=True)

    @staticmethod
    def _lookup_failed(record: IntentRecord, exc: ClobError) -> ExecutionResult:
        return ExecutionResult(record.intent_id, ExecStatus.UNKNOWN, execution_id=record.execution_id,
                               error=f"lookup failed: {exc}", fault=True)

    def cancel(self, order_id: str) -> Any:
        if not self.post:
            raise ValueError("dry-run sends nothing, so there is nothing to cancel")
        return self.clob.l2("DELETE", "/order", {"orderID": order_id})
