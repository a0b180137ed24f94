"""Value objects of the copy-trading domain.

Pure: stdlib and attrs only; no I/O, no clock reads, no randomness. Money and
share amounts are ``Decimal``; times are timezone-aware UTC ``datetime``.
"""
from __future__ import annotations

import enum
import hashlib
from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Optional, Union

import attrs

ZERO = Decimal(0)
ONE = Decimal(1)
MICRO = Decimal("0.000001")  # on-chain amounts use 6 decimals
MICRO_UNITS = Decimal(10**6)  # micro-units (on-chain integers) per share or per pUSD
CENT_SHARE = Decimal("0.01")  # order sizes are expressed in hundredths of a share
BPS = Decimal(10000)  # basis points in one (slippage is shown in bps of the leader's price)
ZERO_ADDRESS = "0x" + "0" * 40  # burns and mints: never a wallet that trades
_UTC = timezone.utc


class Side(str, enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


SIDES: dict[str, Side] = {"BUY": Side.BUY, "SELL": Side.SELL}  # Side(text) without the Enum call
# The sides as module names, for the code run on every trade: a member read through its
# class (``Side.BUY``) goes through the enum metaclass's attribute hook each time.
BUY, SELL = Side.BUY, Side.SELL


class TradingState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"  # sells only
    HALTED = "HALTED"


class OrderType(str, enum.Enum):
    FOK = "FOK"
    FAK = "FAK"
    GTC = "GTC"
    GTD = "GTD"


class ExecStatus(str, enum.Enum):
    FILLED = "filled"
    PARTIAL = "partial"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    # The venue has no order under this id and no trade of it: it never reached
    # matching, so the same signed order may be posted again (same hash: it
    # cannot be filled twice). Never stored as such: the application decides.
    NOT_FOUND = "not_found"
    # The venue refused a post because it already has this very order: its
    # fate is found by looking it up (and if it shows neither the order nor a
    # trade of it, the order is dead: a killed FOK/FAK).
    DUPLICATE = "duplicate"


class IntentStatus(str, enum.Enum):
    SKIPPED = "skipped"  # not sent: the decision was a rejection
    PENDING = "pending"  # durable, about to be (or being) sent
    FILLED = "filled"
    PARTIAL = "partial"
    REJECTED = "rejected"  # sent, refused by the executor / exchange
    UNKNOWN = "unknown"  # sent, outcome not known yet: must be reconciled

    @property
    def is_open(self) -> bool:
        return self in _OPEN_STATUSES


_OPEN_STATUSES = frozenset((IntentStatus.PENDING, IntentStatus.UNKNOWN))


class Settlement(str, enum.Enum):
    """Where a booked fill stands on chain. A matched trade can still fail:
    its fill is ``provisional`` until every trade of the order is CONFIRMED
    (``final``) or FAILED (``reversed``: the booking is taken back)."""

    FINAL = "final"  # also every fill booked before settlement was watched
    PROVISIONAL = "provisional"
    REVERSED = "reversed"


class SettlementState(str, enum.Enum):
    """What the venue says of the trades of an order (``Executor.settlement``)."""

    PENDING = "pending"  # some trade still MATCHED, MINED, RETRYING ...
    CONFIRMED = "confirmed"  # every trade terminal, at least one CONFIRMED
    FAILED = "failed"  # every trade FAILED: nothing happened


@attrs.frozen
class SettlementReport:
    """The settlement of an order's trades: for CONFIRMED, the shares and the
    average price of the confirmed ones (fewer than matched when some failed)."""

    state: SettlementState
    filled_size: Decimal = ZERO
    avg_price: Optional[Decimal] = None
    detail: str = ""  # trade ids, statuses and transaction hashes, for the record


class Reason(str, enum.Enum):
    """Why a leader trade was not copied (or copied smaller). A reason that
    a limit gives is the name of its setting (README: which setting gave it)."""

    UNKNOWN_SIDE = "unknown_side"
    NOT_FINITE = "not_finite"
    INVALID_PRICE = "invalid_price"
    INVALID_SIZE = "invalid_size"
    STALE = "stale"
    BELOW_MIN_SIZE = "below_min_size"
    OFF_TICK = "off_tick"
    MARKET_CLOSED = "market_closed"
    UNKNOWN_MARKET = "unknown_market"
    NO_POSITION = "no_position"
    NOT_FOLLOWED = "not_followed"
    TRADING_HALTED = "trading_halted"
    REDUCING_ONLY = "reducing_only"
    MARKET_DENIED = "market_denied"
    MARKET_NOT_ALLOWED = "market_not_allowed"
    PRICE_BAND = "price_band"
    SLIPPAGE = "slippage"
    NO_LIQUIDITY = "no_liquidity"
    DAILY_LOSS_LIMIT = "daily_loss_limit_usdc"
    MAX_OPEN_POSITIONS = "max_open_positions"
    RATE_LIMIT = "max_orders_per_window"
    MAX_TRADE_NOTIONAL = "max_trade_usdc"
    MAX_MARKET_NOTIONAL = "max_market_usdc"
    MAX_TOTAL_EXPOSURE = "max_total_exposure_usdc"
    LEADER_BUDGET = "budget_usdc"  # of the leader's [[leaders]] entry
    EXECUTION_ERROR = "execution_error"
    MARKET_DATA_ERROR = "market_data_error"
    # a signed order the exchange never received, found at start-up when the
    # leader trade is older than follower.max_trade_age_s: not posted any more
    STALE_AFTER_RESTART = "stale_after_restart"
    # the outcome id and the market's position system (domain/positions.py)
    MALFORMED_TOKEN_ID = "malformed_token_id"
    COMBINATORIAL_POSITION = "combinatorial_position"
    UNKNOWN_MARKET_VERSION = "unknown_market_version"
    TOKEN_VERSION_MISMATCH = "token_version_mismatch"
    # a person paused this leader (application.control): its buys are not copied, its sells are
    LEADER_PAUSED = "leader_paused"


# Records built once or more per leader trade. attrs' frozen classes set every field through
# object.__setattr__, which made half of their constructors' time; these set their slots
# directly and are never assigned after construction all the same (attrs.evolve gives a
# changed copy). Equality, hash, repr and attrs.evolve/asdict are those of a frozen class.
hot_record = attrs.define(unsafe_hash=True, on_setattr=attrs.setters.NO_OP)


def stable_id(*parts: object) -> str:
    """A deterministic id: the same parts always give the same id."""
    return text_id(*[str(p) for p in parts])


def text_id(*parts: str) -> str:
    """``stable_id`` of parts that are ``str`` already (not a subclass: the str() of an
    enum member is its name), without a str() of each: the ids made per trade."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


_DEC_TEXTS: dict[Decimal, str] = {}  # the few amounts and prices that recur, by value


def dec_str(value: Decimal) -> str:
    """Canonical text of a Decimal (``1.50`` and ``1.5`` give the same text)."""
    if not value.is_finite():
        return str(value)
    if not value:  # 0 and -0 are equal keys with two texts
        return format(value.normalize(), "f")
    text = _DEC_TEXTS.get(value)
    if text is None:
        if len(_DEC_TEXTS) > 4096:
            _DEC_TEXTS.clear()
        text = _DEC_TEXTS[value] = format(value.normalize(), "f")
    return text


_DECIMAL_STEPS: dict[int, tuple[Decimal, bool]] = {}  # id(step) -> (step, is a power of ten)


def _is_decimal_step(step: Decimal) -> bool:
    """``step`` is 1, 0.1, 0.01, ... as written (0.010 is not: it quantizes to 3 places).
    Remembered per object (tick sizes and CENT_SHARE are the same few objects);
    the object is kept so its id stays its own."""
    hit = _DECIMAL_STEPS.get(id(step))
    if hit is not None and hit[0] is step:
        return hit[1]
    if len(_DECIMAL_STEPS) > 1024:
        _DECIMAL_STEPS.clear()
    found = step.is_finite() and step.as_tuple().digits == (1,)
    _DECIMAL_STEPS[id(step)] = (step, found)
    return found


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded towards zero to a multiple of ``step``."""
    if _is_decimal_step(step):  # one quantize instead of a division and three roundings
        return value.quantize(step, ROUND_DOWN)  # rounding given by position: a keyword costs as much again
    return ((value / step).to_integral_value(rounding=ROUND_DOWN) * step).quantize(step)


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded away from zero to a multiple of ``step``."""
    if _is_decimal_step(step):
        return value.quantize(step, ROUND_UP)
    return ((value / step).to_integral_value(rounding=ROUND_UP) * step).quantize(step)


class NumberOutOfRange(ValueError):
    """A number in JSON or TOML text whose exponent no Decimal holds (past 10**999999999999999999):
    a ValueError, as the decoder's own errors are, never decimal.InvalidOperation."""


def exact_decimal(text: str) -> Decimal:
    """The exact Decimal of a number's text (a decoder's ``parse_float``)."""
    try:
        return Decimal(text)
    except ArithmeticError:
        raise NumberOutOfRange(f"the number {text[:24]}{'...' if len(text) > 24 else ''} is out of range") from None


def micro(value: Decimal) -> Decimal:
    """Quantise an amount to micro-units (6 decimals), rounding half-even."""
    return value.quantize(MICRO)


def _lower(value: str) -> str:
    return value.strip().lower()


@hot_record
class LeaderTrade:
    """One activity row of a leader (a fill, or a REDEEM/MERGE/SPLIT).

    Fields are kept as delivered (side as text, prices possibly NaN) so that
    validation can record *why* a row is not copied instead of losing it.
    """

    leader: str = attrs.field(converter=_lower)
    token_id: str
    condition_id: str
    side: str = attrs.field(converter=lambda s: s.strip().upper())
    size: Decimal
    price: Decimal
    usdc_size: Decimal
    timestamp: int  # unix seconds, as the Data API gives it
    tx_hash: str = attrs.field(converter=_lower)
    outcome: str = ""
    title: str = ""
    kind: str = attrs.field(default="TRADE", converter=lambda s: s.strip().upper())
    log_index: Optional[int] = None  # set by on-chain feeds
    id: str = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # One transaction can carry several rows: the identity is the content
        # of the row, not only its transaction hash. A verbatim re-delivery
        # gets the same id and is dropped as a duplicate.
        self.id = self._content_id()

    def _content_id(self) -> str:
        # (leader, tx_hash, side and kind are str: their converters made them so)
        return text_id(
            "trade", self.kind, self.leader, self.tx_hash,
            str(self.log_index) if self.log_index is not None else "",
            str(self.token_id), self.side, dec_str(self.size), dec_str(self.price),
        )

    @classmethod
    def normalised(cls, leader: str, token_id: str, condition_id: str, side: str, size: Decimal, price: Decimal,
                   usdc_size: Decimal, timestamp: int, tx_hash: str, outcome: str, title: str,
                   kind: str) -> LeaderTrade:
        """``LeaderTrade(...)`` of ``str`` fields its converters leave as they are (leader and tx_hash
        stripped lower case, side and kind stripped upper case), as a parser that checked them has
        them: the same trade and id, without the converters' calls (the feed builds one per row)."""
        self = object.__new__(cls)
        self.leader = leader
        self.token_id = token_id
        self.condition_id = condition_id
        self.side = side
        self.size = size
        self.price = price
        self.usdc_size = usdc_size
        self.timestamp = timestamp
        self.tx_hash = tx_hash
        self.outcome = outcome
        self.title = title
        self.kind = kind
        self.log_index = None
        self.id = self._content_id()
        return self

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, _UTC)  # (the tz passed by position: a keyword costs a third more)

    @property
    def is_trade(self) -> bool:
        return self.kind == "TRADE"


@attrs.frozen
class PriceLevel:
    price: Decimal
    size: Decimal


@attrs.frozen
class OrderBook:
    token_id: str
    bids: tuple[PriceLevel, ...] = ()  # best (highest) first
    asks: tuple[PriceLevel, ...] = ()  # best (lowest) first
    # where it was read: "stream" (the market channel's mirror), "rest" (GET /book), "" (a file, a fake)
    source: str = attrs.field(default="", eq=False)

    @property
    def best_bid(self) -> Optional[Decimal]:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Optional[Decimal]:
        return self.asks[0].price if self.asks else None

    def best_for(self, side: Side) -> Optional[Decimal]:
        """The price a taker on ``side`` would meet first."""
        return self.best_ask if side is BUY else self.best_bid


@attrs.frozen
class MarketInfo:
    token_id: str
    condition_id: str
    tick_size: Decimal = Decimal("0.01")
    min_order_size: Decimal = Decimal("5")
    neg_risk: bool = False
    closed: bool = False
    # After resolution: what one share of this token pays (1 or 0); None while open.
    payout: Optional[Decimal] = None
    # Gamma's market version: "v1" (CTF, exchange domain "2") or "v2" (Protocol V2:
    # PositionManager ids, ExchangeV3, domain "3"); anything else is not traded.
    version: str = "v1"
    # The outcome ids of its market in the system of that version (Gamma's positionIds
    # for v2, clobTokenIds for v1); empty when the source does not list them.
    outcome_ids: tuple[str, ...] = ()


@hot_record
class CopyIntent:
    """What we want to do because a leader traded. Its id is derived from the
    leader fill and the follower settings, so a replay gives the same id."""

    id: str
    trade_id: str
    follower: str
    leader: str
    token_id: str
    condition_id: str
    side: Side
    size: Decimal  # shares
    limit_price: Decimal
    leader_price: Decimal
    order_type: OrderType
    created_at: datetime

    @property
    def notional(self) -> Decimal:
        """Worst-case collateral of the order (size at its limit price)."""
        return self.size * self.limit_price

    def with_size(self, size: Decimal) -> "CopyIntent":
        return attrs.evolve(self, size=size)


@hot_record
class ExecutionResult:
    """The one result type every executor (paper or live) returns."""

    intent_id: str
    status: ExecStatus
    filled_size: Decimal = ZERO
    avg_price: Optional[Decimal] = None
    fee: Decimal = ZERO
    execution_id: str = ""  # exchange order hash for live orders
    submitted_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    error: str = ""
    # True when the executor hit a fault (network, exchange error) rather than
    # a market outcome such as an unfilled FOK; a run of faults trips the breaker.
    fault: bool = False
    # An answer that cannot be true (a matched size above the order's, negative
    # or not a number; a price outside (0, 1)): what it is, for the record.
    anomaly: str = ""
    # A fill matched but not settled on chain yet (its trades may still fail):
    # booked as a provisional fill and watched until CONFIRMED or FAILED.
    provisional: bool = False

    @property
    def notional(self) -> Decimal:
        return micro(self.filled_size * self.avg_price) if self.avg_price is not None else ZERO


@hot_record
class PreparedOrder:
    """An order built (and, for live venues, signed) but not sent yet.

    ``order_id`` is what the venue knows the order by (the EIP-712 order hash
    on Polymarket); it is stored with the intent *before* sending, so after a
    crash or a timeout the order can be looked up instead of sent again.
    """

    intent_id: str
    order_id: str
    payload: dict = attrs.field(factory=dict, eq=False)  # the signed order as it would be posted
    venue: str = "paper"


@attrs.frozen
class Approve:
    pass


@hot_record
class Reduce:
    size: Decimal
    reason: Reason


@hot_record
class Reject:
    reason: Reason
    detail: str = ""


RiskDecision = Union[Approve, Reduce, Reject]


@hot_record
class IntentRecord:
    """The audit-trail row of one leader trade: what we decided and what happened."""

    intent_id: str
    trade_id: str
    follower: str
    leader: str
    token_id: str
    condition_id: str
    side: str
    leader_size: Decimal
    leader_price: Decimal
    created_at: datetime
    decision: str  # approved | reduced | rejected
    status: IntentStatus
    reason: str = ""
    detail: str = ""
    size: Optional[Decimal] = None
    limit_price: Optional[Decimal] = None
    order_type: str = ""
    filled_size: Decimal = ZERO
    avg_price: Optional[Decimal] = None
    fee: Decimal = ZERO
    slippage: Optional[Decimal] = None  # (our price - leader price), signed so that >0 is worse for us
    execution_id: str = ""
    error: str = ""
    updated_at: Optional[datetime] = None
    title: str = ""
    settlement: Settlement = Settlement.FINAL
    # What booking the fill moved our position by (``PositionDelta.text``),
    # kept while it is provisional so a FAILED trade is reversed exactly.
    booked: str = ""

    @property
    def slippage_bps(self) -> Optional[Decimal]:
        """``slippage`` in basis points of the leader's price (> 0 is worse for us)."""
        if self.slippage is None or self.leader_price <= 0:
            return None
        return self.slippage / self.leader_price * BPS

    def to_intent(self) -> CopyIntent:
        """The order of a stored intent (for lookups after a restart)."""
        if self.size is None or self.limit_price is None:
            raise ValueError(f"intent {self.intent_id} has no order")
        return CopyIntent(
            id=self.intent_id, trade_id=self.trade_id, follower=self.follower, leader=self.leader,
            token_id=self.token_id, condition_id=self.condition_id, side=Side(self.side),
            size=self.size, limit_price=self.limit_price, leader_price=self.leader_price,
            order_type=OrderType(self.order_type), created_at=self.created_at,
        )

    def with_result(self, result: ExecutionResult, status: IntentStatus, at: datetime) -> "IntentRecord":
        slip = None
        if result.avg_price is not None and result.filled_size > ZERO:
            diff = result.avg_price - self.leader_price
            slip = diff if self.side == BUY else -diff
        # Built directly, every field by position, rather than with attrs.evolve: this runs once per copied trade.
        return IntentRecord(
            self.intent_id, self.trade_id, self.follower, self.leader, self.token_id, self.condition_id,
            self.side, self.leader_size, self.leader_price, self.created_at, self.decision, status,
            self.reason, self.detail, self.size, self.limit_price, self.order_type, result.filled_size,
            result.avg_price, result.fee, slip, result.execution_id or self.execution_id, result.error, at,
            self.title, self.settlement, self.booked,
        )
