"""Value objects: trade identity, ids, rounding, canonical decimals, intent records."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from copytrader.domain.model import (
    CopyIntent, ExecStatus, ExecutionResult, IntentRecord, IntentStatus, OrderBook, OrderType,
    PriceLevel, Side, dec_str, micro, round_down, round_up, stable_id,
)

from .domain_helpers import CONDITION, LEADER, T0, TOKEN, TOKEN_NO, TX, intent, trade

D = Decimal


# -- LeaderTrade identity ------------------------------------------------------
def test_same_content_gives_same_id():
    assert trade().id == trade().id
    assert len(trade().id) == 32


def test_verbatim_redelivery_gets_same_id_even_with_other_metadata():
    first = trade(size="12.5", price="0.42")
    again = trade(size="12.5", price="0.42")
    assert first.id == again.id
    # Title/outcome/usdc_size/timestamp are not part of the identity.
    later = attrs.evolve(first, title="renamed", outcome="Yes", timestamp=first.timestamp + 60)
    assert later.id == first.id


def test_leader_address_is_case_insensitive_and_normalised():
    upper = trade(leader="  0x" + "AB" * 20 + " ")
    lower = trade(leader=LEADER)
    assert upper.leader == LEADER
    assert upper.id == lower.id


def test_tx_hash_is_case_insensitive_and_normalised():
    upper = trade(tx_hash="0x" + "Ab" * 32)
    lower = trade(tx_hash="0x" + "ab" * 32)
    assert upper.tx_hash == "0x" + "ab" * 32
    assert upper.id == lower.id


def test_two_rows_of_one_transaction_get_different_ids():
    base = trade(tx_hash=TX)
    assert trade(tx_hash=TX, token_id=TOKEN_NO).id != base.id
    assert trade(tx_hash=TX, size="101").id != base.id
    assert trade(tx_hash=TX, price="0.51").id != base.id
    assert trade(tx_hash=TX, side="SELL").id != base.id
    assert trade(tx_hash=TX, log_index=3).id != trade(tx_hash=TX, log_index=4).id
    assert trade(tx_hash=TX, kind="REDEEM").id != base.id


def test_identity_depends_on_leader_and_transaction():
    assert trade(leader="0x" + "cd" * 20).id != trade().id
    assert trade(tx_hash="0x" + "34" * 32).id != trade().id


def test_decimal_spelling_does_not_change_identity():
    assert trade(size="1.50", price="0.500").id == trade(size="1.5", price="0.5").id
    assert trade(size=D("1E+2")).id == trade(size=D("100.00")).id


def test_side_and_kind_normalised_upper():
    t = trade(side=" buy ", kind=" redeem")
    assert t.side == "BUY"
    assert t.kind == "REDEEM"
    assert t.id == trade(side="BUY", kind="REDEEM").id
    assert not t.is_trade
    assert trade(side="sell").side == "SELL"
    assert trade().is_trade


def test_trade_time_is_utc_datetime_of_timestamp():
    t = trade(timestamp=int(T0.timestamp()) - 90)
    assert t.time == T0 - timedelta(seconds=90)
    assert t.time.utcoffset() == timedelta(0)


# -- stable_id / rounding / dec_str -------------------------------------------
def test_stable_id_is_deterministic_and_part_sensitive():
    assert stable_id("a", 1, "b") == stable_id("a", 1, "b")
    assert stable_id("a", 1, "b") == stable_id("a", "1", "b")  # parts are compared as text
    assert stable_id("a", "b") != stable_id("b", "a")
    # Parts are separated: joining differently gives different ids.
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert len(stable_id("x")) == 32
    assert all(c in "0123456789abcdef" for c in stable_id("x"))


def test_stable_id_known_value():
    import hashlib
    expected = hashlib.sha256("trade\x1fx".encode()).hexdigest()[:32]
    assert stable_id("trade", "x") == expected


@pytest.mark.parametrize("value, step, down, up", [
    ("0.4488", "0.01", "0.44", "0.45"),
    ("0.44", "0.01", "0.44", "0.44"),
    ("196.078431", "0.01", "196.07", "196.08"),
    ("0.5049", "0.001", "0.504", "0.505"),
    ("7", "0.01", "7.00", "7.00"),
    ("0.001", "0.01", "0.00", "0.01"),
])
def test_round_down_and_up(value, step, down, up):
    rd, ru = round_down(D(value), D(step)), round_up(D(value), D(step))
    assert rd == D(down) and ru == D(up)
    # Results are quantised to the step's exponent.
    assert rd.as_tuple().exponent == D(step).as_tuple().exponent
    assert ru.as_tuple().exponent == D(step).as_tuple().exponent


def test_dec_str_is_canonical():
    assert dec_str(D("1.50")) == dec_str(D("1.5")) == "1.5"
    assert dec_str(D("100")) == dec_str(D("1E+2")) == dec_str(D("100.000")) == "100"
    assert dec_str(D("0.000")) == "0"
    assert dec_str(D("0.000001")) == "0.000001"  # never scientific notation
    assert dec_str(D("NaN")) == "NaN"
    assert dec_str(D("Infinity")) == "Infinity"


def test_micro_quantises_half_even():
    assert micro(D("0.0000005")) == D("0.000000")
    assert micro(D("0.0000015")) == D("0.000002")
    assert micro(D("1.23456789")) == D("1.234568")


# -- books ------------------------------------------------------------------------
def test_order_book_best_prices():
    ob = OrderBook(TOKEN, bids=(PriceLevel(D("0.48"), D(5)), PriceLevel(D("0.47"), D(5))),
                   asks=(PriceLevel(D("0.52"), D(5)), PriceLevel(D("0.53"), D(5))))
    assert ob.best_for(Side.BUY) == D("0.52")
    assert ob.best_for(Side.SELL) == D("0.48")
    empty = OrderBook(TOKEN)
    assert empty.best_bid is None and empty.best_ask is None


def test_copy_intent_notional_is_size_at_limit():
    assert intent(size="20", limit="0.51").notional == D("10.20")
    assert intent(size="20").with_size(D("10")).size == D("10")


# -- IntentRecord --------------------------------------------------------------------
def _record(side: str = "BUY", leader_price: str = "0.50", size: str = "20", limit: str = "0.51") -> IntentRecord:
    return IntentRecord(
        intent_id="i1", trade_id="t1", follower="default", leader=LEADER, token_id=TOKEN,
        condition_id=CONDITION, side=side, leader_size=D("100"), leader_price=D(leader_price),
        created_at=T0, decision="approved", status=IntentStatus.PENDING, size=D(size),
        limit_price=D(limit), order_type="FOK", execution_id="order-1",
    )


def _result(avg: str | None, filled: str = "20", fee: str = "0", execution_id: str = "") -> ExecutionResult:
    return ExecutionResult(intent_id="i1", status=ExecStatus.FILLED, filled_size=D(filled),
                           avg_price=None if avg is None else D(avg), fee=D(fee), execution_id=execution_id)


def test_slippage_buy_paying_more_than_leader_is_positive():
    at = T0 + timedelta(seconds=2)
    rec = _record("BUY", "0.50").with_result(_result("0.52", fee="0.01"), IntentStatus.FILLED, at)
    assert rec.slippage == D("0.02")
    assert rec.status is IntentStatus.FILLED
    assert rec.filled_size == D("20") and rec.avg_price == D("0.52") and rec.fee == D("0.01")
    assert rec.updated_at == at
    better = _record("BUY", "0.50").with_result(_result("0.49"), IntentStatus.FILLED, at)
    assert better.slippage == D("-0.01")


def test_slippage_sell_receiving_less_than_leader_is_positive():
    at = T0 + timedelta(seconds=2)
    rec = _record("SELL", "0.50", limit="0.49").with_result(_result("0.47"), IntentStatus.FILLED, at)
    assert rec.slippage == D("0.03")
    better = _record("SELL", "0.50", limit="0.49").with_result(_result("0.53"), IntentStatus.FILLED, at)
    assert better.slippage == D("-0.03")


def test_no_slippage_without_a_fill():
    at = T0 + timedelta(seconds=2)
    unfilled = ExecutionResult(intent_id="i1", status=ExecStatus.REJECTED, error="no match")
    rec = _record().with_result(unfilled, IntentStatus.REJECTED, at)
    assert rec.slippage is None
    assert rec.error == "no match"
    # The stored execution id is kept when the result carries none.
    assert rec.execution_id == "order-1"
    zero_fill = _record().with_result(_result("0.52", filled="0"), IntentStatus.REJECTED, at)
    assert zero_fill.slippage is None
    replaced = _record().with_result(_result("0.50", execution_id="order-2"), IntentStatus.FILLED, at)
    assert replaced.execution_id == "order-2"


def test_to_intent_round_trip():
    original = CopyIntent(
        id="i1", trade_id="t1", follower="default", leader=LEADER, token_id=TOKEN,
        condition_id=CONDITION, side=Side.SELL, size=D("12.34"), limit_price=D("0.49"),
        leader_price=D("0.50"), order_type=OrderType.GTC, created_at=T0,
    )
    rec = IntentRecord(
        intent_id=original.id, trade_id=original.trade_id, follower=original.follower,
        leader=original.leader, token_id=original.token_id, condition_id=original.condition_id,
        side=original.side.value, leader_size=D("50"), leader_price=original.leader_price,
        created_at=original.created_at, decision="approved", status=IntentStatus.PENDING,
        size=original.size, limit_price=original.limit_price, order_type=original.order_type.value,
    )
    back = rec.to_intent()
    assert back == original
    assert back.side is Side.SELL and back.order_type is OrderType.GTC


def test_to_intent_without_order_raises():
    rec = attrs.evolve(_record(), size=None, limit_price=None, decision="rejected",
                       status=IntentStatus.SKIPPED)
    with pytest.raises(ValueError):
        rec.to_intent()


def test_execution_result_notional_is_micro_quantised():
    res = _result("0.3333333", filled="3")
    assert res.notional == D("1.000000")
    assert _result(None).notional == D(0)
