"""The CLOB V2 executor (dry-run: sign, never send; live: sign and post)."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Optional

from ....domain.model import (
    CopyIntent, ExecStatus, ExecutionResult, IntentRecord, MarketInfo, OrderType, PreparedOrder, SettlementReport,
    Side,
)
from ....ports import Clock, MarketData
from ..mock import PaperExecutor
from .parsing import from_order, from_post, from_trades, is_duplicate, is_unfilled, settlement_from_trades
from .settings import LiveSettings
from .transport import AuthenticatedClob, ClobError, ClobTransport

MICRO = Decimal(10**6)


def _decimals(value: Decimal) -> int:
    return max(0, -value.normalize().as_tuple().exponent)
ZERO32 = "0x" + "00" * 32


class PolymarketExecutor:
    """``post=False`` is dry-run: real market data and real signatures, the
    signed order is stored, and the fill is simulated against the real book.
    ``post=True`` posts the order and maps the exchange's answer.

    ``clock`` is the engine's (a replay's follows the rows: simulated fills
    are stamped with it); ``wall`` is real time, what the exchange checks:
    signed order timestamps and GTD expirations."""

    def __init__(self, settings: LiveSettings, key: Any, market: MarketData, clock: Clock,
                 post: bool = False, wall: Optional[Clock] = None) -> None:
        # The SDK (and eth_account through it) is imported here, not at module level.
        from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG
        from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2
        from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2
        from py_clob_client_v2.signer import Signer

        self.settings = settings
        self.post = post
        self.clock = clock
        self.wall = wall or clock
        try:
            signer = Signer(key.reveal() if hasattr(key, "reveal") else str(key), settings.chain_id)
        except Exception:
            raise ValueError("the private key is not a valid secp256k1 key") from None  # never echo it
        self.address = signer.address()
        self.funder = settings.funder or self.address
        self._rounding = ROUNDING_CONFIG
        self._builders = {neg: ExchangeOrderBuilderV2(settings.exchange_for(neg), settings.chain_id, signer)
                          for neg in (False, True)}
        self._to_json = order_to_json_v2
        self._fast = None  # digest and signature computed once (coincurve); the SDK's path without it
        try:
            from .fastsign import FastOrderSigner

            self._fast = {neg: FastOrderSigner(signer.private_key, settings.exchange_for(neg), settings.chain_id)
                          for neg in (False, True)}
        except ImportError:
            pass
        self._paper = PaperExecutor(market, clock, settings.fee_rate)
        self._last_ts = 0
        self.last_timings: dict[str, float] = {}  # build_ms, sign_ms, post_ack_ms of the latest order
        self.last_io: dict[str, Any] = {}  # the latest request and answer, redacted
        self.clob = AuthenticatedClob(ClobTransport(settings.host, settings.timeout_s), signer) if post else None

    def close(self) -> None:
        """Close the connection pool to the CLOB (live); dry-run holds none."""
        if self.clob is not None:
            self.clob.transport.close()

    def __repr__(self) -> str:
        mode = "live" if self.post else "dry-run"
        return f"PolymarketExecutor({mode}, signer={self.address}, funder={self.funder})"

    # -- build and sign ---------------------------------------------------------
    def _timestamp_ms(self) -> int:
        """Wall-clock milliseconds, strictly increasing: V2 orders of one address
        need distinct timestamps."""
        now = int(self.wall.now().timestamp() * 1000)
        self._last_ts = max(now, self._last_ts + 1)
        return self._last_ts

    def amounts(self, intent: CopyIntent, market: MarketInfo) -> tuple[int, int]:
        """(makerAmount, takerAmount) in micro-units, computed exactly in Decimal
        within the digit limits of the SDK's ``ROUNDING_CONFIG`` for the tick.

        The SDK's own ``get_order_amounts`` rounds floats: 34.48 shares become
        34.47 (float 34.48 is 34.4799…), so it is not used to size orders."""
        tick = format(market.tick_size.normalize(), "f")
        if tick not in self._rounding:
            raise ValueError(f"tick size {tick} is not one the V2 SDK knows")
        limits = self._rounding[tick]
        collateral = intent.size * intent.limit_price
        for what, value, digits in (("size", intent.size, limits.size), ("price", intent.limit_price, limits.price),
                                    ("amount", collateral, limits.amount)):
            if _decimals(value) > digits:
                raise ValueError(f"order {what} {value} has more than {digits} decimals for tick {tick}")
        shares, collateral = int(intent.size * MICRO), int(collateral * MICRO)
        return (collateral, shares) if intent.side is Side.BUY else (shares, collateral)

    def _expiration(self, intent: CopyIntent) -> str:
        if intent.order_type is not OrderType.GTD:
            return "0"
        return str(int(self.wall.now().timestamp()) + self.settings.gtd_expiration_s)

    def prepare(self, intent: CopyIntent, market: MarketInfo) -> PreparedOrder:
        from py_clob_client_v2.order_utils import Side as SdkSide
        from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2

        started = time.perf_counter()
        maker, taker = self.amounts(intent, market)
        built = time.perf_counter()
        builder = self._builders[market.neg_risk]
        builder.generate_salt = lambda: str(int(intent.id[:13], 16))  # deterministic per intent
        data = OrderDataV2(
            maker=self.funder, tokenId=intent.token_id, makerAmount=str(maker), takerAmount=str(taker),
            side=SdkSide.BUY if intent.side is Side.BUY else SdkSide.SELL, signer=self.address,
            signatureType=int(self.settings.signature_type), timestamp=str(self._timestamp_ms()),
            metadata=ZERO32, builder=ZERO32, expiration=self._expiration(intent))
        if self._fast is not None:
            from py_clob_client_v2.order_utils.model.order_data_v2 import SignedOrderV2

            fast = self._fast[market.neg_risk]
            order = builder.build_order(data)
            digest = fast.digest(order)
            signed = SignedOrderV2(**vars(order), signature=fast.sign(digest))
            order_hash = "0x" + digest.hex()
        else:
            signed = builder.build_signed_order(data)
            order_hash = builder.build_order_hash(builder.build_order_typed_data(signed))
        self.last_timings = {"build_ms": (built - started) * 1000, "sign_ms": (time.perf_counter() - built) * 1000}
        body = self._to_json(signed, "", intent.order_type.value)
        return PreparedOrder(intent.id, order_hash, venue="polymarket", payload={
            **body, "orderHash": order_hash, "exchange": self.settings.exchange_for(market.neg_risk),
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
        body = {k: order.payload[k] for k in ("order", "orderType", "deferExec", "postOnly")}
        body["owner"] = creds.api_key
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
        return from_post(answer, intent, order.order_id, at)

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
        trade id, sleeping). Dry-run fills are simulated: final at once."""
        if not self.post:
            return self._paper.settlement(record)
        return settlement_from_trades(self._trades(record), record)  # a ClobError: the watch reads again later

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
