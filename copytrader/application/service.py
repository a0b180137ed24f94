"""Use case: copy one leader trade end to end; the trading state (halt,
reduce-only, resume, the circuit breaker); booking an order's result.

Start-up reconciliation and orders whose fate is unknown are in
``reconcile``; manual orders (``trade-once``) in ``manual``."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, Optional

import attrs

from ..domain.model import (
    BUY, ONE, SELL, SIDES, ZERO, CopyIntent, ExecStatus, ExecutionResult, IntentRecord, IntentStatus, LeaderTrade,
    MarketInfo, PreparedOrder, Reason, Reduce, Reject, Settlement, TradingState, hot_record, micro, round_down,
)
from ..domain.portfolio import Portfolio, PositionDelta
from ..domain.positions import market_rejection, token_rejection
from ..domain.risk import RiskKernel, RiskLimits, check_state, day_key
from ..domain.sizing import FollowerSettings, LeaderSettings, intent_id, size_copy
from ..domain.validation import validate_intent, validate_trade
from ..ports import Alerter, Clock, Executor, MarketData, Quarantined, Redeemer, Store, StoredState
from .auto_redeem import AutoRedeem
from .leader_health import LeaderHealth
from .reconcile import describe, reconcile, recover
from .resolution import ResolutionWatch
from .settlement_watch import SettlementWatch

log = logging.getLogger("copytrader")

_STATUS = {
    ExecStatus.FILLED: IntentStatus.FILLED,
    ExecStatus.PARTIAL: IntentStatus.PARTIAL,
    ExecStatus.REJECTED: IntentStatus.REJECTED,
    ExecStatus.UNKNOWN: IntentStatus.UNKNOWN,
    # decided by reconcile.recover; either stays open if it ever gets here
    ExecStatus.NOT_FOUND: IntentStatus.UNKNOWN,
    ExecStatus.DUPLICATE: IntentStatus.UNKNOWN,
}
_LOOK_UP = (ExecStatus.UNKNOWN, ExecStatus.DUPLICATE)  # answers that do not say what happened
# Members read on every trade, as module names (see domain.model.BUY)
_SKIPPED, _PENDING, _PROVISIONAL = IntentStatus.SKIPPED, IntentStatus.PENDING, Settlement.PROVISIONAL
_NOT_FILLED, _UNKNOWN = ExecStatus.REJECTED, ExecStatus.UNKNOWN

# An intent's final status as an Outcome's: an order the venue refused is "unfilled".
_OUTCOME = {**{s: s.value for s in IntentStatus}, IntentStatus.REJECTED: "unfilled", IntentStatus.SKIPPED: "rejected"}
_ANOMALY = "anomaly: "  # how an anomaly's error text starts
BOOK_TELEMETRY = "book"  # the telemetry key of a copy's book source ("stream": the mirror, "rest": GET /book)


@attrs.frozen
class EngineSettings:
    follower: FollowerSettings = FollowerSettings()
    # Followed leaders by lower-case address. Empty: follow every leader the
    # feed delivers, with default settings (handy for replays).
    leaders: Mapping[str, LeaderSettings] = attrs.field(factory=dict)
    limits: RiskLimits = RiskLimits()
    max_consecutive_faults: int = 5
    # A resolved market's winners paid at once (paper, dry runs, backtests: no
    # chain holds the tokens), or pending until redeemed (the live profile).
    pay_at_resolution: bool = True


# Reasons of the trading states the engine sets itself (a person's halt keeps its own).
BREAKER = "circuit breaker"
DAILY_LOSS = "daily loss limit"


@hot_record
class Outcome:
    """What happened to one feed item."""

    trade_id: str
    status: str  # duplicate|quarantined|observed|rejected|filled|partial|unfilled|unknown
    reason: str = ""  # the rejection reason, or what the executor said
    intent_id: str = ""
    limit: str = ""  # copied smaller than sized: the limit that made it so (a Reason value)
    anomaly: str = ""  # an answer of the exchange that cannot be true (see CopyService.settle)

    @property
    def reduced(self) -> bool:
        return bool(self.limit)


class CopyService:
    def __init__(
        self, store: Store, executor: Executor, market: MarketData, alerter: Alerter,
        clock: Clock, settings: EngineSettings, wall: Optional[Clock] = None,
        redeemer: Optional[Callable[[], Redeemer]] = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.market = market
        self.alerter = alerter
        self.clock = clock  # the engine's time: a replay's follows its rows
        self.wall = wall or clock  # real time: start-up reconciliation deals with the exchange now
        self.settings = settings
        self.anomalies = 0  # exchange answers that could not be true (booked at most the order's size)
        self.kernel = RiskKernel(settings.limits)
        self._portfolio: Optional[Portfolio] = None
        self._state: Optional[StoredState] = None
        self._failures: dict[str, int] = {}  # remote -> failures in a row (the circuit breaker)
        self._default_leaders: dict[str, LeaderSettings] = {}
        self._paused: dict[str, bool] = {}  # leader -> paused, read from the store until it changes
        self._transaction = _Transaction(self)
        # An alerter that drops everything (backtests) says so: the engine then
        # does not build the messages of the alerts sent on every trade.
        self._alerts = not getattr(alerter, "silent", False)
        # Orders that never leave the process (paper): see handle and batch.
        self._simulated = bool(getattr(executor, "simulated", False))
        # Provisional fills (matched, not settled on chain) until CONFIRMED or FAILED.
        self.settlements = SettlementWatch(self)
        # Markets we hold resolving: at start, on a leader's REDEEM, periodically.
        self.resolutions = ResolutionWatch(self)
        # Per-leader copy PnL; a leader whose copies go bad is paused ([[leaders]] pause_* keys).
        self.health = LeaderHealth(self)
        # Live: their winnings redeemed by the engine itself (``redeemer`` builds the venue).
        self.redemptions = AutoRedeem(self, redeemer) if redeemer is not None else None
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

    def transaction(self) -> "_Transaction":
        """The engine's unit of work (see ``_write``), for the other use cases."""
        return self._write()

    def _write(self, defer: bool = False) -> "_Transaction":
        """A store transaction; if it fails, the in-memory caches are reloaded
        from the store so they never drift from what was committed. ``defer``:
        it holds only rows that send nothing (a rejection, a duplicate, an
        observation, a quarantined row, a cursor move), which the store may
        commit later with others (``Store.transaction``); a write that is not
        deferred, nested in it, makes it all commit at once."""
        self._transaction.defer = defer
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
        self.idle()

    def set_state(self, state: TradingState, reason: str = "") -> None:
        if self.state.state is state and self.state.reason == reason:
            return
        new = StoredState(state, reason, self.clock.now())
        with self._write():
            self.store.set_state(new)
        self._state = new
        log.warning("trading state -> %s (%s)", state.value, reason or "no reason given")
        self.alerter.send("state", f"trading state {state.value}: {reason}", state=state.value, reason=reason)

    def _reread_state(self) -> None:
        """The stored trading state, read again; a change made elsewhere (``copytrader
        halt``, the dashboard, Telegram) is logged and alerted as this engine's own are."""
        before, self._state = self._state, None
        now = self.state
        if before is not None and now is not before and (before.state, before.reason) != (now.state, now.reason):
            log.warning("trading state -> %s (%s), set outside this process", now.state.value, now.reason)
            self.alerter.send("state", f"trading state {now.state.value}: {now.reason}", state=now.state.value,
                              reason=now.reason)

    def halt(self, reason: str = "manual halt") -> None:
        self.set_state(TradingState.HALTED, reason)

    def reduce_only(self, reason: str = "manual") -> None:
        self.set_state(TradingState.REDUCING, reason)

    def resume(self) -> None:
        self._failures.clear()
        self.set_state(TradingState.ACTIVE, "resumed")

    def _new_day(self, day: str) -> None:
        """A REDUCING state the daily loss limit set lifts itself on the next
        UTC day (a person's halt or reduce-only stays until ``resume``)."""
        state = self.state
        if (state.state is TradingState.REDUCING and state.reason.startswith(DAILY_LOSS)
                and state.since is not None and day_key(state.since) < day):
            self.set_state(TradingState.ACTIVE, f"new UTC day {day}: the {DAILY_LOSS} starts again")

    # -- start-up -----------------------------------------------------------
    def start(self) -> int:
        """Reconcile open intents and settle resolved markets before any new
        leader trade is handled. Returns how many intents stay unknown."""
        added = {leader.address: leader for leader in self.store.leaders()}
        if added:  # the config's settings win for a leader in both
            self.settings = attrs.evolve(self.settings, leaders={**added, **self.settings.leaders})
        self.health.start()
        unresolved = reconcile(self)
        self.resolutions.settle_all()
        self.started = True
        self.settlements.resume()  # every provisional fill in the store is watched again
        return unresolved

    # -- one feed item ------------------------------------------------------
    def checkpoint(self, key: str, cursor: str) -> None:
        """Move a feed cursor past rows that produced nothing (e.g. empty blocks)."""
        with self._write(defer=True):
            self.store.set_cursor(key, cursor)

    def quarantine(self, item: Quarantined, checkpoint: Optional[tuple[str, str]] = None) -> Outcome:
        log.warning("quarantined row %s: %s", item.source, item.reason)
        with self._write(defer=True):
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
        out (dry-run, live) keep two: the intent is durable before sending.
        A trade that sends nothing is deferred (see ``_write``), the paper
        trade's transaction until it copies."""
        if not self.started:
            self.start()
        if self._simulated:
            with self._write(defer=True):
                outcome = self._handle(trade, checkpoint)
        else:
            outcome = self._handle(trade, checkpoint)
        self.idle()  # housekeeping (group commits due, SQLite checkpoints) after the order went out
        return outcome

    def idle(self) -> None:
        """Between feed items: the store's housekeeping (deferred rows whose time is up, checkpoints).
        An engine whose orders leave the process (dry-run, live) commits its deferred rows here, each
        item's after it: the next copy's order never waits for a group of them to be written first
        (its intent commits with everything before it). Paper runs and backtests keep the groups."""
        if not self._simulated:
            self.store.flush()
        idle = getattr(self.store, "idle", None)
        if idle is not None:
            idle()

    def _handle(self, trade: LeaderTrade, checkpoint: Optional[tuple[str, str]]) -> Outcome:
        if self.store.changed():  # a halt or pause from another process applies before this trade
            self._reread_state()
            self._paused.clear()
        if self.store.has_trade(trade.id):
            if checkpoint:
                with self._write(defer=True):
                    self.store.set_cursor(*checkpoint)
            return Outcome(trade.id, "duplicate")
        if not trade.is_trade:
            return self._observe(trade, checkpoint)

        now = self.clock.now()
        day = day_key(now)
        portfolio = self.portfolio
        if portfolio.day[0] != day:
            portfolio.roll_day(day, self.store.daily_realised(day))
            self._new_day(day)
        follower = self.settings.follower
        leader = self._leader(trade.leader)
        rejection: Optional[Reject] = None
        intent: Optional[CopyIntent] = None
        market: Optional[MarketInfo] = None
        decision = "approved"
        if leader is None:
            rejection = Reject(Reason.NOT_FOLLOWED, trade.leader)
        else:
            rejection = validate_trade(trade, now, follower.max_trade_age_s) or token_rejection(trade.token_id)
        if rejection is None:  # a halted engine makes no remote call at all
            rejection = check_state(SIDES[trade.side], self.state.state)
        if rejection is None and SIDES[trade.side] is BUY and self._leader_paused(trade.leader):
            # paused by a person (application.control), read again once the store changed: another
            # process's pause applies before this trade; its sells are still copied, so we exit with the leader
            rejection = Reject(Reason.LEADER_PAUSED, "leader paused: buys not copied until it is resumed")
        book = None
        if rejection is None:
            try:  # the book first: its answer also refreshes tick size and minimum size
                book = self.market.book(trade.token_id)
                market = self.market.market(trade.token_id)
            except Exception as exc:  # the venue is unreachable: record it, never crash the loop
                rejection = Reject(Reason.MARKET_DATA_ERROR, describe(exc))
            self.source_health("market data", rejection.detail if rejection else "")
        if rejection is None:
            if market is None:
                rejection = Reject(Reason.UNKNOWN_MARKET, trade.token_id)
            else:
                rejection = market_rejection(market, trade.token_id)
        if rejection is None:
            if not trade.condition_id:  # on-chain fills name the token only
                trade = attrs.evolve(trade, condition_id=market.condition_id)
        if rejection is None:
            sized = size_copy(trade, follower, leader, portfolio, market, now)
            if isinstance(sized, Reject):
                rejection = sized
            else:
                intent = sized
                band = round_down(self.settings.limits.max_buy_price, market.tick_size)
                if intent.side is BUY and intent.limit_price > band:  # no fill may land above the band
                    intent = attrs.evolve(intent, limit_price=band)
                rejection = validate_intent(intent, market)
        if rejection is None:
            verdict = self.kernel.check(
                intent, portfolio, self.state.state, now, book, market.min_order_size, leader.budget_usdc)
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
                rejection = Reject(Reason.EXECUTION_ERROR, describe(exc))
        record = IntentRecord(
            intent_id=intent.id if intent else intent_id(trade, follower, leader or LeaderSettings(trade.leader)),
            trade_id=trade.id, follower=follower.id, leader=trade.leader, token_id=trade.token_id,
            condition_id=trade.condition_id, side=trade.side, leader_size=trade.size,
            leader_price=trade.price, created_at=now, title=trade.title,
            decision="rejected" if rejection else decision,
            status=_SKIPPED if rejection else _PENDING,
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
        # transaction (see handle): its intent row is written once, by settle,
        # with the result, instead of pending here and again there.
        settles_here = rejection is None and self._simulated
        with self._write(defer=rejection is not None):
            self.store.add_trade(trade)
            self.store.put_leader_holding(*self.portfolio.observe_leader(trade))
            if not settles_here:
                self.store.put_intent(record)
            if book is not None and book.source:  # which source priced the copy: the mirror or GET /book
                self.store.put_telemetry(BOOK_TELEMETRY, now, {"intent_id": record.intent_id,
                                                               "book_source": book.source})
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
        if log.isEnabledFor(logging.DEBUG):
            log.debug("decision %s: leader %s %s @ %s → %s %s shares @ limit %s (%s%s), best %s", trade.id[:12],
                      trade.side, trade.size, trade.price, decision, intent.size, intent.limit_price,
                      intent.order_type.value, f", {verdict.reason.value}" if decision == "reduced" else "",
                      book.best_for(intent.side) if book is not None else "-")

        return self.execute(record, prepared, intent, market, limit=verdict.reason.value if decision == "reduced" else "")

    def execute(self, record: IntentRecord, prepared: PreparedOrder, intent: CopyIntent,
                market: Optional[MarketInfo], limit: str = "") -> Outcome:
        """Send an order whose intent is durable, and book what happened."""
        return self.outcome(self.conclude(record, self.send(prepared, intent, market), market), limit)

    def send(self, prepared: PreparedOrder, intent: CopyIntent, market: Optional[MarketInfo]) -> ExecutionResult:
        """The executor's answer; an exception is an unknown outcome (the order may have gone out)."""
        try:
            return self.executor.submit(prepared, intent, market)
        except Exception as exc:  # we cannot know whether the order went out
            return ExecutionResult(intent.id, ExecStatus.UNKNOWN, execution_id=prepared.order_id,
                                   error=describe(exc), fault=True)

    def conclude(self, record: IntentRecord, result: ExecutionResult, market: Optional[MarketInfo]) -> IntentRecord:
        """Book ``result``; an unknown one is looked up by the order's hash first (``reconcile.recover``)."""
        if result.status in _LOOK_UP:
            return recover(self, record, market, self.clock.now(), first=result)
        return self.settle(record, result)

    @staticmethod
    def outcome(record: IntentRecord, limit: str = "") -> Outcome:
        status = _OUTCOME[record.status]
        anomaly = record.error[len(_ANOMALY):] if record.error.startswith(_ANOMALY) else ""
        return Outcome(record.trade_id, status, record.reason if status == "rejected" else (record.error or record.reason),
                       record.intent_id, limit=limit, anomaly=anomaly)

    def _observe(self, trade: LeaderTrade, checkpoint: Optional[tuple[str, str]]) -> Outcome:
        """A REDEEM/MERGE/SPLIT row: track the leader's holdings, never sell
        because of it; a redeem tells us the market may have resolved."""
        with self._write(defer=True):
            self.store.add_trade(trade)
            self.store.put_leader_holding(*self.portfolio.observe_leader(trade))
            if checkpoint:
                self.store.set_cursor(*checkpoint)
        settled = self.resolutions.resolve(trade.condition_id) if trade.kind == "REDEEM" else 0
        return Outcome(trade.id, "observed", f"{trade.kind.lower()}: settled {settled} position(s)")

    def settle(self, record: IntentRecord, result: ExecutionResult, now: Optional[datetime] = None) -> IntentRecord:
        """Record an order's result and book the part of its fill not booked yet
        (a result may be read again: after an unknown answer, at each start),
        on the day of ``now`` (default the engine's clock).

        A fill can never exceed its order: a matched size above the order's (or
        below what is booked, negative, not a number) or a price outside (0, 1]
        is an anomaly. At most the order's size is booked, the intent stays
        ``unknown`` so every start-up reconciliation looks at it again, and it
        is alerted and counted (``anomalies``)."""
        now = now or self.clock.now()
        result = self._sane(record, result)
        updated = record.with_result(result, _STATUS[result.status], now)
        day = day_key(now)
        with self._write():
            delta = self._book(record, result, day)
            if result.provisional and (delta is not None or record.settlement is _PROVISIONAL):
                # matched, not settled: what was booked is kept to take it back if a trade fails
                booked = PositionDelta.parse(record.booked)
                updated = attrs.evolve(updated, settlement=Settlement.PROVISIONAL,
                                       booked=booked.plus(delta).text if delta is not None else booked.text)
            elif record.settlement is _PROVISIONAL:
                updated = attrs.evolve(updated, settlement=Settlement.FINAL, booked="")
            self.store.put_intent(updated)
        if updated.settlement is _PROVISIONAL:
            self.settlements.watch(updated)
        if result.anomaly:
            self.anomalies += 1
            log.error("anomaly in the answer for intent %s (order %s): %s", record.intent_id,
                      record.execution_id, result.anomaly)
            self.alerter.send("anomaly", f"order {record.execution_id[:14]}: {result.anomaly}; booked "
                              f"{updated.filled_size} shares, left for reconciliation", intent_id=record.intent_id)
        elif result.status is _NOT_FILLED:
            log.info("not filled %s %s %s @ limit %s: %s", record.side, record.size, record.token_id[:12],
                     record.limit_price, result.error or "no fill")
        self._after_execution(updated, result, day)
        return updated

    def _sane(self, record: IntentRecord, result: ExecutionResult) -> ExecutionResult:
        """``result`` with a fill that can be booked (see ``settle``). A result
        that says nothing about fills (no price) keeps what is booked."""
        size, price, problem = result.filled_size, result.avg_price, result.anomaly
        if price is None and not problem:
            if record.avg_price is None and size == record.filled_size:  # the usual case: nothing either way
                return result
            return attrs.evolve(result, filled_size=record.filled_size, avg_price=record.avg_price, fee=record.fee)
        if not problem:
            if not size.is_finite() or size < 0:
                problem = f"the exchange reported {size} shares matched"
            elif record.size is not None and size > record.size:
                problem = f"the exchange reported {size} shares matched for an order of {record.size}"
            elif size < record.filled_size:
                problem = f"the exchange reported {size} shares matched, {record.filled_size} were booked before"
            elif price is not None and (not price.is_finite() or not ZERO < price <= ONE):
                problem = f"the exchange reported a fill price of {price}"
        if not problem:
            return result
        booked, at = record.filled_size, record.avg_price
        if size.is_finite() and record.size is not None and size > booked:  # at most the order's size
            booked = min(size, record.size)
            at = price if price is not None and price.is_finite() and ZERO < price <= ONE else record.limit_price
        return ExecutionResult(result.intent_id, ExecStatus.UNKNOWN, filled_size=booked,
                               avg_price=at if booked > 0 else None, fee=max(record.fee, ZERO),
                               execution_id=result.execution_id, submitted_at=result.submitted_at,
                               error=f"{_ANOMALY}{problem}", fault=True, anomaly=problem,
                               provisional=result.provisional)

    def _book(self, record: IntentRecord, result: ExecutionResult, day: str) -> Optional[PositionDelta]:
        """Move the position by what ``result`` adds to the fill already booked
        for ``record``; what it moved it by (None: nothing)."""
        new = result.filled_size - record.filled_size
        if new <= ZERO or result.avg_price is None:
            return None
        side = SIDES[record.side]
        portfolio = self.portfolio
        if side is SELL:  # never sell more than is held (a sale is sized to the position)
            held = portfolio.position(record.leader, record.token_id)
            size = held.size if held is not None else ZERO
            if new > size:
                log.error("intent %s sold %s shares, %s were held: booked %s", record.intent_id, new, size, size)
                new = size
            if new <= 0:
                return None
        price = result.avg_price
        if record.avg_price is not None and record.filled_size > ZERO:  # the average price of what is new
            price = micro((result.filled_size * price - record.filled_size * record.avg_price)
                          / (result.filled_size - record.filled_size))
        before = portfolio.day
        old = portfolio.current(record.leader, record.token_id) if result.provisional else None
        fee = result.fee - record.fee
        pos = portfolio.apply_fill(record.leader, record.token_id, record.condition_id, side, new, price,
                                   ZERO if fee < ZERO else fee, day, record.title)  # max(fee, ZERO), no builtin call
        self.store.put_position(pos)
        self.health.booked(pos, record.leader_price)
        if portfolio.day != before:  # a buy without fee leaves the day's PnL as it was
            self.store.put_daily_realised(*portfolio.day)
        return PositionDelta.between(old, pos) if result.provisional else None

    def refuse(self, record: IntentRecord, refusal: Reject, now: datetime, note: str = "") -> IntentRecord:
        """An intent whose order will not be sent after all (see ``reconcile``):
        recorded as rejected with its reason; nothing is booked."""
        updated = attrs.evolve(record, decision="rejected", status=IntentStatus.SKIPPED, reason=refusal.reason.value,
                               detail=f"{refusal.detail}{'; ' + note if note else ''}", updated_at=now)
        with self._write():
            self.store.put_intent(updated)
        log.warning("not copied after all %s %s: %s %s", record.side, record.token_id[:12], updated.reason,
                    updated.detail)
        self.alerter.send("rejected", f"not copied: {updated.reason}", trade_id=record.trade_id,
                          reason=updated.reason, detail=updated.detail)
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
            self.halt(f"{BREAKER}: {n} consecutive {source} failures, last: {error}"[:300])

    def _after_execution(self, record: IntentRecord, result: ExecutionResult, day: str) -> None:
        if result.fault or result.status is _UNKNOWN:
            self.alerter.send("error", f"execution {result.status.value}: {result.error}", intent_id=record.intent_id)
            self.source_health("execution", f"intent {record.intent_id}: {result.error or result.status.value}")
        else:
            self.source_health("execution")
        if result.filled_size > ZERO and self._alerts:
            self.alerter.send(
                "fill", f"{record.side} {result.filled_size} @ {result.avg_price} ({record.title or record.token_id[:12]})",
                intent_id=record.intent_id, side=record.side, size=str(result.filled_size),
                price=str(result.avg_price), slippage=str(record.slippage))
        limit = self.settings.limits.daily_loss_limit_usdc
        if (limit is not None and self.state.state is TradingState.ACTIVE
                and self.portfolio.daily_realised(day) <= -limit):
            self.reduce_only(f"{DAILY_LOSS} {limit} reached")

    def _leader_paused(self, address: str) -> bool:
        paused = self._paused.get(address)
        if paused is None:
            paused = self._paused[address] = self.store.leader_paused(address)
        return paused

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
    single transaction cost two method calls each, not two generators. A
    nested use that is not deferred, in a deferred one, makes the store
    commit it at once (see ``CopyService._write``)."""

    __slots__ = ("service", "depth", "outer", "defer", "deferred")

    def __init__(self, service: CopyService) -> None:
        self.service = service
        self.depth = 0
        self.outer: Any = None  # the store's transaction context while open
        self.defer = False  # asked by the next use (CopyService._write)
        self.deferred = False  # the open store transaction is deferred

    def __enter__(self) -> None:
        defer, self.defer = self.defer, False
        if self.depth == 0:
            outer = self.service.store.transaction(defer=defer)
            try:
                outer.__enter__()
            except BaseException:  # could not begin
                self._forget()
                raise
            self.outer, self.deferred = outer, defer
        elif self.deferred and not defer:
            with self.service.store.transaction():  # joins the outer one, which now commits at once
                pass
            self.deferred = False
        self.depth += 1

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        self.depth -= 1
        if exc_type is not None:  # caches may hold what is being rolled back
            self._forget()
        if self.depth == 0:
            outer, self.outer, self.deferred = self.outer, None, False
            try:
                return bool(outer.__exit__(exc_type, exc, tb))
            except BaseException:  # the commit failed
                self._forget()
                raise
        return False

    def _forget(self) -> None:
        self.service._portfolio = None
        self.service._state = None
        self.service._paused.clear()


__all__ = ["BREAKER", "DAILY_LOSS", "CopyService", "EngineSettings", "Outcome"]
