"""validate_trade / validate_intent: each failure is a Reject with the right Reason."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from copytrader.domain.model import Reason, Reject
from copytrader.domain.validation import validate_intent, validate_trade

from .domain_helpers import T0, intent, market, trade

D = Decimal
MAX_AGE = 300


def _reason(result) -> Reason:
    assert isinstance(result, Reject), result
    return result.reason


# -- validate_trade ----------------------------------------------------------------
def test_good_trade_passes():
    assert validate_trade(trade(side="BUY"), T0, MAX_AGE) is None
    assert validate_trade(trade(side="SELL", price="0.01"), T0, MAX_AGE) is None
    assert validate_trade(trade(price="0.99", size="0.01"), T0, MAX_AGE) is None


@pytest.mark.parametrize("side", ["HOLD", "", "REDEEM", "B"])
def test_unknown_side_is_rejected(side):
    rej = validate_trade(trade(side=side), T0, MAX_AGE)
    assert _reason(rej) is Reason.UNKNOWN_SIDE
    assert rej.reason.value == "unknown_side"


def test_unknown_side_wins_over_other_problems():
    assert _reason(validate_trade(trade(side="HOLD", price="NaN"), T0, MAX_AGE)) is Reason.UNKNOWN_SIDE


def test_nan_price_is_not_finite():
    rej = validate_trade(trade(price=D("NaN")), T0, MAX_AGE)
    assert _reason(rej) is Reason.NOT_FINITE
    assert rej.reason.value == "not_finite"


def test_infinite_size_is_not_finite():
    assert _reason(validate_trade(trade(size=D("Infinity")), T0, MAX_AGE)) is Reason.NOT_FINITE
    assert _reason(validate_trade(trade(size=D("-Infinity")), T0, MAX_AGE)) is Reason.NOT_FINITE
    assert _reason(validate_trade(trade(size=D("NaN")), T0, MAX_AGE)) is Reason.NOT_FINITE


@pytest.mark.parametrize("price", ["0", "1", "1.5", "-0.2", "0.0", "1.00"])
def test_price_outside_open_unit_interval_is_invalid(price):
    rej = validate_trade(trade(price=price), T0, MAX_AGE)
    assert _reason(rej) is Reason.INVALID_PRICE
    assert rej.reason.value == "invalid_price"


@pytest.mark.parametrize("size", ["0", "-1", "-0.01", "0.00"])
def test_zero_or_negative_size_is_invalid(size):
    rej = validate_trade(trade(size=size), T0, MAX_AGE)
    assert _reason(rej) is Reason.INVALID_SIZE
    assert rej.reason.value == "invalid_size"


def test_stale_beyond_max_age_is_rejected():
    ts = int(T0.timestamp()) - MAX_AGE - 1
    rej = validate_trade(trade(timestamp=ts), T0, MAX_AGE)
    assert _reason(rej) is Reason.STALE
    assert rej.reason.value == "stale"


def test_exactly_at_max_age_passes():
    ts = int(T0.timestamp()) - MAX_AGE
    assert validate_trade(trade(timestamp=ts), T0, MAX_AGE) is None
    # ... and so does one second younger, with a sub-second "now".
    assert validate_trade(trade(timestamp=ts + 1), T0 + timedelta(milliseconds=999), MAX_AGE) is None


def test_max_age_is_honoured_as_given():
    ts = int(T0.timestamp()) - 10
    assert validate_trade(trade(timestamp=ts), T0, 10) is None
    assert _reason(validate_trade(trade(timestamp=ts), T0, 9)) is Reason.STALE


# -- validate_intent ---------------------------------------------------------------
def test_good_intent_passes():
    assert validate_intent(intent(size="5", limit="0.50"), market(min_size="5")) is None
    assert validate_intent(intent(size="20", limit="0.01"), market()) is None
    assert validate_intent(intent(size="20", limit="0.99"), market()) is None
    assert validate_intent(intent(size="20", limit="0.505"), market(tick="0.001")) is None


def test_below_market_min_size_is_rejected():
    rej = validate_intent(intent(size="4.99"), market(min_size="5"))
    assert _reason(rej) is Reason.BELOW_MIN_SIZE
    assert rej.reason.value == "below_min_size"
    assert validate_intent(intent(size="4.99"), market(min_size="1")) is None


def test_off_tick_limit_is_rejected():
    rej = validate_intent(intent(limit="0.505"), market(tick="0.01"))
    assert _reason(rej) is Reason.OFF_TICK
    assert rej.reason.value == "off_tick"


def test_closed_market_is_rejected():
    rej = validate_intent(intent(), market(closed=True))
    assert _reason(rej) is Reason.MARKET_CLOSED
    assert rej.reason.value == "market_closed"


@pytest.mark.parametrize("limit", ["0", "1", "0.995", "0.001"])
def test_limit_outside_tradable_range_is_invalid_price(limit):
    assert _reason(validate_intent(intent(limit=limit), market(tick="0.01"))) is Reason.INVALID_PRICE
