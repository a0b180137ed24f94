"""Use cases: copy one leader trade end to end, reconcile at start, halt/resume."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator, Mapping, Optional

import attrs

from ..domain.model import (
    CENT_SHARE, SIDES, CopyIntent, OrderType, dec_str, round_down, stable_id, ExecStatus, ExecutionResult, IntentRecord, IntentStatus, LeaderTrade, MarketInfo,
    PreparedOrder, Reason, Reduce, Reject, Side, TradingState,
)
from ..domain.portfolio import Portfolio
from ..domain.risk import RiskKernel, RiskLimits, day_key
from ..domain.sizing import FollowerSettings, LeaderSettings, intent_id, size_copy
from ..domain.validation import validate_intent, validate_trade
from ..ports import Alerter, Clock, Executor, MarketData, Quarantined, Store, StoredState

log = logging.getLogger("copytrader")

_STATUS = {
    ExecStatus.FILLED: IntentStatus.FILLED,
    ExecStatus.PARTIAL: IntentStatus.PARTIAL,
    ExecStatus.REJECTED: IntentStatus.REJECTED,
    ExecStatus.UNKNOWN: IntentStatus.UNKNOWN,
}

# An intent's final status as an Outcome's: an order the venue refused is "unfilled".
_OUTCOME = {**{s: s.value for s in IntentStatus}, IntentStatus.REJECTED: "unfilled"}


@attrs.frozen
class EngineSettings:
    follower: FollowerSettings = FollowerSettings()
    # Followed leaders by lower-case address. Empty: follow every leader the
    # feed delivers, with default settings (handy for replays).
    leaders: Mapping[str, LeaderSettings] = attrs.field(factory=dict)
    limits: RiskLimits = RiskLimits()
    max_consecutive_faults: int = 5


MANUAL = "manual"


@attrs.frozen
class ManualOrder:
    """What `trade-once` did: the record, the signed order, the result, timings."""

    record: IntentRecord
    order: PreparedOrder
    result: ExecutionResult
    market: MarketInfo
    reference_price: Decimal  # best book price when the order was built
    timings_ms: dict


class OrderRefused(ValueError):
    """A manual order that validation or the risk kernel does not allow."""


@attrs.frozen
class Outcome:
    """What happened to one feed item."""

    trade_id: str
    status: str  # duplicate|quarantined|observed|rejected|filled|partial|unfilled|unknown
    reason: str = ""
    intent_id: str = ""
    reduced: bool = False  # copied smaller than sized, ``reason`` says which limit


class CopyService:
    def __init__(
        self, store: Store, executor: Executor, market: MarketData, alerter: Alerter,
        clock: Clock, settings: EngineSettings,
    ) -> None:
        self.store = store
        self.executor = executor
        self.market = market
        self.alerter = alerter
        self.clock = clock
        self.settings = settings
        self.kernel = RiskKernel(settings.limits)
        self._portfolio: Optional[Portfolio] = None
        self._state: Optional[StoredState] = None
        self._failures: dict[str, int] = {}  # remote -> failures in a row (the circuit breaker)
        self._default_leaders: dict[str, LeaderSettings] = {}
        self._transaction = _Transaction(self)
        # An alerter that drops everything (backtests) says so: the engine then
        # does not build the messages of the alerts sent on every trade.
        self._alerts = not getattr(alerter, "silent", False)
        # Orders that never leave the process (paper): see handle and batch.
        self._simulated = bool(getattr(executor, "simulated", False))
        self.started = False

    # -- state --------------------------------------------------------------
    @property
    def portfolio(self) -> Portfolio:
        if self._portfolio is None:
            now = self.clock.now()
            day = day_key(now)
            self._portfolio = Portfolio(
                positions=self.store.positions(include_closed=True),
                leader_holdings=self.store.leader_holdings(),
                daily_realised=(day, self.store.daily_realised(day)),
                # the rate check needs at most the last N order times
                recent_orders=self.store.order_times_since(
                    now - self.settings.limits.window, self.settings.limits.max_orders_per_window or 1),
                realised_total=self.store.realised_total(),
            )
        return self._portfolio

    @property
    def state(self) -> StoredState:
        if self._state is None:
            self._state = self.store.get_state()
        return self._state

    def _write(self) -> "_Transaction":
        """A store transaction; if it fails, the in-memory caches are reloaded
        from the store so they never drift from what was committed."""
        return self._transaction

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Leader trades handled inside commit together: one commit per chunk
        of a replay instead of one per trade. Only for an executor whose orders
        never leave the process (paper): a crash loses the chunk with its feed
        cursors, and the rows are read again with the same outcome. Orders that
        go out keep their durable intent before sending, so this refuses them."""
        if not self._simulated:
            raise ValueError("batched commits need a simulated executor: a sent order's intent commits first")
        with self._write():
            yield
        self._idle()

    def set_state(self, state: TradingState, reason: str = "") -> None:
        if self.state.state is state and self.state.reason == reason:
            return
        new = StoredState(state, reason, self.clock.now())
        with self._write():
            self.store.set_state(new)
        self._state = new
        log.warning("trading state -> %s (%s)", state.value, reason or "no reason given")
        self.alerter.send("state", f"trading state {state.value}: {reason}", state=state.value, reason=reason)

    def halt(self, reason: str = "manual halt") -> None:
        self.set_state(TradingState.HALTED, reason)

    def reduce_only(self, reason: str = "manual") -> None:
        self.set_state(TradingState.REDUCING, reason)

    def resume(self) -> None:
        self._failures.clear()
        self.set_state(TradingState.ACTIVE, "resumed")

    # -- start-up -----------------------------------------------------------
    def start(self) -> int:
        """Reconcile open intents and settle resolved markets before any new
        leader trade is handled. Returns how many intents stay unknown."""
        added = {leader.address: leader for leader in self.store.leaders()}
        if added:  # the config's settings win for a leader in both
            self.settings = attrs.evolve(self.settings, leaders={**added, **self.settings.leaders})
        unresolved = self.reconcile()
        self.settle_resolved()
        self.started = True
        return unresolved

    def reconcile(self) -> int:
        unresolved = 0
        for record in self.store.open_intents():
            market = self.market.market(record.token_id)
            try:
                result = self.executor.lookup(record, market)
            except Exception as exc:  # the lookup itself failed: stays unknown
                result = ExecutionResult(record.intent_id, ExecStatus.UNKNOWN, error=_describe(exc), fault=True)
            self._settle(record, result)
            if result.status is ExecStatus.UNKNOWN:
                unresolved += 1
                self.alerter.send("unknown", f"order for intent {record.intent_id} still unknown",
                                  intent_id=record.intent_id)
        return unresolved

    def settle_resolved(self) -> int:
        """Pay out our positions in markets that resolved."""
        conditions = sorted({p.condition_id for p in self.portfolio.positions()})
        return sum(self._resolve(c) for c in conditions)

    def _resolve(self, condition_id: str) -> int:
        payouts: dict[str, Decimal] = {}
        for pos in self.portfolio.positions_in(condition_id):  # no scan of every position per REDEEM
            if pos.token_id not in payouts:
                info = self.market.market(pos.token_id)
                if info is None or info.payout is None:
                    return 0
                payouts[pos.token_id] = info.payout
        now = self.clock.now()
        with self._write():
            changed = self.portfolio.resolve(condition_id, payouts, day_key(now))
            for pos in changed:
                self.store.put_position(pos)
            self.store.put_daily_realised(*self.portfolio.day)
        for pos in changed:
            self.alerter.send("resolved", f"{pos.token_id[:12]}… resolved at {pos.last_price}",
                              token_id=pos.token_id, realised=str(pos.realised))
        return len(changed)

    # -- one feed item ------------------------------------------------------
    def checkpoint(self, key: str, cursor: str) -> None:
        """Move a feed cursor past rows that produced nothing (e.g. empty blocks)."""
        with self._write():
            self.store.set_cursor(key, cursor)

    def quarantine(self, item: Quarantined, checkpoint: Optional[tuple[str, str]] = None) -> Outcome:
        log.warning("quarantined row %s: %s", item.source, item.reason)
        with self._write():
            self.store.quarantine(item, self.clock.now())
            if checkpoint:
                self.store.set_cursor(*checkpoint)
        return Outcome("", "quarantined", item.reason)

    def handle(self, trade: LeaderTrade, checkpoint: Optional[tuple[str, str]] = None) -> Outcome:
        """Validate → size → risk → persist intent → execute → record fill →
        update positions → alert. Idempotent: a trade seen before is a no-op.

        With an executor whose orders never leave the process (``simulated``:
        paper), the whole leader trade is one transaction: a crash loses all
        of it and the row is read again, with the same outcome. Orders that go
        out (dry-run, live) keep two: the intent is durable before sending."""
        if not self.started:
            self.start()
        if self._simulated:
            with self._write():
                outcome = self._handle(trade, checkpoint)
        else:
            outcome = self._handle(trade, checkpoint)
        self._idle()  # housekeeping (SQLite checkpoints) after the order went out
        return outcome

    def _idle(self) -> None:
        idle = getattr(self.store, "idle", None)
        if idle is not None:
            idle()

    def _handle(self, trade: LeaderTrade, checkpoint: Optional[tuple[str, str]]) -> Outcome:
        self._state = None  # re-read: a halt from another process applies before this trade
        if self.store.has_trade(trade.id):
            if checkpoint:
                with self._write():
                    self.store.set_cursor(*checkpoint)
            return Outcome(trade.id, "duplicate")
        if not trade.is_trade:
            return self._observe(trade, checkpoint)

        now = self.clock.now()
        day = day_key(now)
        if self.portfolio.day[0] != day:
            self.portfolio.roll_day(day, self.store.daily_realised(day))
        follower = self.settings.follower
        leader = self._leader(trade.leader)
        rejection: Optional[Reject] = None
        intent: Optional[CopyIntent] = None
        market: Optional[MarketInfo] = None
        decision = "approved"
        if leader is None:
            rejection = Reject(Reason.NOT_FOLLOWED, trade.leader)
        else:
            rejection = validate_trade(trade, now, follower.max_trade_age_s)
        book = None
        if rejection is None:
            try:  # the book first: its answer also refreshes tick size and minimum size
                book = self.market.book(trade.token_id)
                market = self.market.market(trade.token_id)
            except Exception as exc:  # the venue is unreachable: record it, never crash the loop
                rejection = Reject(Reason.MARKET_DATA_ERROR, _describe(exc))
            self.source_health("market data", rejection.detail if rejection else "")
        if rejection is None:
            if market is None:
                rejection = Reject(Reason.UNKNOWN_MARKET, trade.token_id)
            elif not trade.condition_id:  # on-chain fills name the token only
                trade = attrs.evolve(trade, condition_id=market.condition_id)
        if rejection is None:
            sized = size_copy(trade, follower, leader, self.portfolio, market, now)
            if isinstance(sized, Reject):
                rejection = sized
            else:
                intent = sized
                band = round_down(self.settings.limits.max_buy_price, market.tick_size)
                if intent.side is Side.BUY and intent.limit_price > band:  # no fill may land above the band
                    intent = attrs.evolve(intent, limit_price=band)
                rejection = validate_intent(intent, market)
        if rejection is None:
            verdict = self.kernel.check(
                intent, self.portfolio, self.state.state, now, book, market.min_order_size, leader.budget_usdc)
            if isinstance(verdict, Reject):
                rejection = verdict
            elif isinstance(verdict, Reduce):
                intent = intent.with_size(verdict.size)
                decision = "reduced"
        prepared: Optional[PreparedOrder] = None
        if rejection is None:
            try:
                prepared = self.executor.prepare(intent, market)
            except Exception as exc:  # could not build or sign: nothing was sent
                rejection = Reject(Reason.EXECUTION_ERROR, _describe(exc))
        record = IntentRecord(
            intent_id=intent.id if intent else intent_id(trade, follower, leader or LeaderSettings(trade.leader)),
            trade_id=trade.id, follower=follower.id, leader=trade.leader, token_id=trade.token_id,
            condition_id=trade.condition_id, side=trade.side, leader_size=trade.size,
            leader_price=trade.price, created_at=now, title=trade.title,
            decision="rejected" if rejection else decision,
            status=IntentStatus.SKIPPED if rejection else IntentStatus.PENDING,
            reason=rejection.reason.value if rejection else (verdict.reason.value if decision == "reduced" else ""),
            detail=rejection.detail if rejection else "",
            size=intent.size if intent else None,
            limit_price=intent.limit_price if intent else None,
            order_type=intent.order_type.value if intent else "",
            execution_id=prepared.order_id if prepared and not rejection else "",
        )
        # The trade, its intent (with the order id) and the feed cursor commit
        # together, before anything is sent: a crash either loses all of them
        # (the row is read again) or none, and a sent order can be looked up.
        # A simulated (paper) order never leaves the process and this is all one
        # transaction (see handle): its intent row is written once, by _settle,
        # with the result, instead of pending here and again there.
        settles_here = rejection is None and self._simulated
        with self._write():
            self.store.add_trade(trade)
            self.store.put_leader_holding(*self.portfolio.observe_leader(trade))
            if not settles_here:
                self.store.put_intent(record)
            if checkpoint:
                self.store.set_cursor(*checkpoint)
            if rejection is None:
                if not settles_here:  # kept for a lookup after a crash; a simulated order is simulated again
                    self.store.put_order(prepared, now)
                self.portfolio.note_order(now, self.settings.limits.window)
        if rejection is not None:
            log.info("not copied %s %s: %s %s", trade.side, trade.token_id[:12], rejection.reason.value, rejection.detail)
            if self._alerts:
                self.alerter.send("rejected", f"not copied: {rejection.reason.value}", trade_id=trade.id,
                                  reason=rejection.reason.value, detail=rejection.detail)
            return Outcome(trade.id, "rejected", rejection.reason.value, record.intent_id)

        try:
            result = self.executor.submit(prepared, intent, market)
        except Exception as exc:  # we cannot know whether the order went out
            result = ExecutionResult(intent.id, ExecStatus.UNKNOWN, execution_id=prepared.order_id,
                                     error=_describe(exc), fault=True)
        if result.status is ExecStatus.UNKNOWN:
            result = self._look_up(record, market, result)
        record = self._settle(record, result)
        return Outcome(trade.id, _OUTCOME[record.status], result.error or record.reason, record.intent_id,
                       reduced=decision == "reduced")

    def _look_up(self, record: IntentRecord, market: Optional[MarketInfo],
                 first: ExecutionResult) -> ExecutionResult:
        """After an unknown outcome: ask the venue by order id, never resend."""
        try:
            found = self.executor.lookup(record, market)
        except Exception as exc:
            log.warning("lookup of %s failed: %s", record.execution_id, _describe(exc))
            return first
        if found.status is ExecStatus.UNKNOWN:
            return attrs.evolve(found, error=first.error or found.error, fault=True)
        # settled, but the fault that made it unknown still counts
        return attrs.evolve(found, fault=first.fault or found.fault,
                            error="; ".join(e for e in (found.error, first.error) if e))

    def place_manual(self, token_id: str, side: Side, size: Optional[Decimal] = None,
                     usdc: Optional[Decimal] = None, max_price: Optional[Decimal] = None,
                     order_type: OrderType = OrderType.FOK) -> ManualOrder:
        """One order of our own (``trade-once``): sized to at least the market's
        minimum, validated, risk-checked, persisted before sending like any copy."""
        if not self.started:
            self.start()
        timings: dict[str, float] = {}
        started = time.perf_counter()
        market = self.market.market(token_id)
        book = self.market.book(token_id)
        timings["market_lookup_ms"] = (time.perf_counter() - started) * 1000
        if market is None:
            raise OrderRefused(f"token {token_id}: no market (unknown or closed)")
        best = book.best_for(side) if book is not None else None
        price = max_price if max_price is not None else best
        if price is None:
            raise OrderRefused(f"no {'asks' if side is Side.BUY else 'bids'} in the book and no --max-price given")
        if size is None:
            size = round_down((usdc or Decimal(0)) / price, CENT_SHARE)
        size = max(size, market.min_order_size)
        now = self.clock.now()
        ident = stable_id(MANUAL, token_id, side.value, dec_str(size), dec_str(price), now.isoformat())
        intent = CopyIntent(id=ident, trade_id=f"{MANUAL}:{ident}", follower=self.settings.follower.id,
                            leader=MANUAL, token_id=token_id, condition_id=market.condition_id, side=side, size=size,
                            limit_price=price, leader_price=best if best is not None else price,
                            order_type=order_type, created_at=now)
        refusal = validate_intent(intent, market) or self.kernel.check(
            intent, self.portfolio, self.state.state, now, book, market.min_order_size)
        if isinstance(refusal, Reduce):
            raise OrderRefused(f"{refusal.reason.value}: the limit allows at most {refusal.size} shares")
        if isinstance(refusal, Reject):
            raise OrderRefused(f"{refusal.reason.value}: {refusal.detail}".rstrip(": "))
        started = time.perf_counter()
        prepared = self.executor.prepare(intent, market)
        timings["build_sign_ms"] = (time.perf_counter() - started) * 1000
        record = IntentRecord(
            intent_id=intent.id, trade_id=intent.trade_id, follower=intent.follower, leader=MANUAL,
            token_id=token_id, condition_id=market.condition_id, side=side.value, leader_size=size,
            leader_price=intent.leader_price, created_at=now, decision="approved", status=IntentStatus.PENDING,
            reason=MANUAL, size=size, limit_price=price, order_type=order_type.value,
            execution_id=prepared.order_id, title="trade-once")
        with self._write():
            self.store.put_intent(record)
            self.store.put_order(prepared, now)
            self.portfolio.note_order(now, self.settings.limits.window)
        started = time.perf_counter()
        try:
            result = self.executor.submit(prepared, intent, market)
        except Exception as exc:
            result = ExecutionResult(intent.id, ExecStatus.UNKNOWN, execution_id=prepared.order_id,
                                     error=_describe(exc), fault=True)
        timings["post_ack_ms"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        if result.status is ExecStatus.UNKNOWN:
            result = self._look_up(record, market, result)
        timings["fill_ms"] = (time.perf_counter() - started) * 1000
        record = self._settle(record, result)
        return ManualOrder(record, prepared, result, market, intent.leader_price, timings)

    def _observe(self, trade: LeaderTrade, checkpoint: Optional[tuple[str, str]]) -> Outcome:
        """A REDEEM/MERGE/SPLIT row: track the leader's holdings, never sell
        because of it; a redeem tells us the market may have resolved."""
        with self._write():
            self.store.add_trade(trade)
            self.store.put_leader_holding(*self.portfolio.observe_leader(trade))
            if checkpoint:
                self.store.set_cursor(*checkpoint)
        settled = self._resolve(trade.condition_id) if trade.kind == "REDEEM" else 0
        return Outcome(trade.id, "observed", f"{trade.kind.lower()}: settled {settled} position(s)")

    def _settle(self, record: IntentRecord, result: ExecutionResult) -> IntentRecord:
        now = self.clock.now()
        updated = record.with_result(result, _STATUS[result.status], now)
        day = day_key(now)
        with self._write():
            self.store.put_intent(updated)
            if result.filled_size > 0 and result.avg_price is not None:
                before = self.portfolio.day
                pos = self.portfolio.apply_fill(
                    record.leader, record.token_id, record.condition_id, SIDES[record.side],
                    result.filled_size, result.avg_price, result.fee, day, record.title)
                self.store.put_position(pos)
                if self.portfolio.day != before:  # a buy without fee leaves the day's PnL as it was
                    self.store.put_daily_realised(*self.portfolio.day)
        self._after_execution(updated, result, day)
        return updated

    def source_health(self, source: str, error: str = "") -> None:
        """The circuit breaker: a run of ``max_consecutive_faults`` failures of
        one remote (execution, market data, a feed) moves trading to HALTED and
        alerts; a success of that remote resets its count."""
        if not error:
            self._failures.pop(source, None)
            return
        n = self._failures[source] = self._failures.get(source, 0) + 1
        log.error("%s failure (%d in a row): %s", source, n, error)
        if n >= self.settings.max_consecutive_faults and self.state.state is not TradingState.HALTED:
            self.halt(f"circuit breaker: {n} consecutive {source} failures, last: {error}"[:300])

    def _after_execution(self, record: IntentRecord, result: ExecutionResult, day: str) -> None:
        if result.fault or result.status is ExecStatus.UNKNOWN:
            self.alerter.send("error", f"execution {result.status.value}: {result.error}", intent_id=record.intent_id)
            self.source_health("execution", f"intent {record.intent_id}: {result.error or result.status.value}")
        else:
            self.source_health("execution")
        if result.filled_size > 0 and self._alerts:
            self.alerter.send(
                "fill", f"{record.side} {result.filled_size} @ {result.avg_price} ({record.title or record.token_id[:12]})",
                intent_id=record.intent_id, side=record.side, size=str(result.filled_size),
                price=str(result.avg_price), slippage=str(record.slippage))
        limit = self.settings.limits.daily_loss_limit_usdc
        if (limit is not None and self.state.state is TradingState.ACTIVE
                and self.portfolio.daily_realised(day) <= -limit):
            self.reduce_only(f"daily loss limit {limit} reached")

    def _leader(self, address: str) -> Optional[LeaderSettings]:
        leaders = self.settings.leaders
        if not leaders:  # every wallet is followed with default settings (made once per wallet)
            found = self._default_leaders.get(address)
            if found is None:
                found = self._default_leaders[address] = LeaderSettings(address)
            return found
        return leaders.get(address)


class _Transaction:
    """The service's unit of work, re-entrant: only the outermost use opens
    and ends a store transaction, so the writes nested inside a paper trade's
    single transaction cost two method calls each, not two generators."""

    __slots__ = ("service", "depth", "outer")

    def __init__(self, service: CopyService) -> None:
        self.service = service
        self.depth = 0
        self.outer: Any = None  # the store's transaction context while open

    def __enter__(self) -> None:
        if self.depth == 0:
            outer = self.service.store.transaction()
            try:
                outer.__enter__()
            except BaseException:  # could not begin
                self._forget()
                raise
            self.outer = outer
        self.depth += 1

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        self.depth -= 1
        if exc_type is not None:  # caches may hold what is being rolled back
            self._forget()
        if self.depth == 0:
            outer, self.outer = self.outer, None
            try:
                return bool(outer.__exit__(exc_type, exc, tb))
            except BaseException:  # the commit failed
                self._forget()
                raise
        return False

    def _forget(self) -> None:
        self.service._portfolio = None
        self.service._state = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


__all__ = ["CopyService", "EngineSettings", "ManualOrder", "OrderRefused", "Outcome"]
