"""Exchange answers map onto the one ExecutionResult type."""
from __future__ import annotations

from decimal import Decimal

import pytest

from copytrader.adapters.execution.polymarket.parsing import from_order, from_post
from copytrader.domain.model import ExecStatus, IntentRecord, IntentStatus
from copytrader.testing import CONDITION, LEADER, T0, TOKEN

from .conftest import intent

D = Decimal


@pytest.mark.parametrize("answer, status, filled, price", [
    ({"success": True, "status": "matched", "makingAmount": "10.2", "takingAmount": "20"}, ExecStatus.FILLED, "20", "0.51"),
    ({"success": True, "status": "matched", "makingAmount": "5", "takingAmount": "10"}, ExecStatus.PARTIAL, "10", "0.5"),
    ({"success": True, "status": "delayed"}, ExecStatus.UNKNOWN, "0", None),
    ({"success": True, "status": "live"}, ExecStatus.UNKNOWN, "0", None),
    ({"success": True, "status": "unmatched"}, ExecStatus.REJECTED, "0", None),
    ({"success": False, "errorMsg": "not enough balance / allowance"}, ExecStatus.REJECTED, "0", None),
    ("garbage", ExecStatus.UNKNOWN, "0", None),
])
def test_post_answers(answer, status, filled, price):
    res = from_post(answer, intent(size="20", limit="0.51"), "0xhash", T0)
    assert (res.status, res.filled_size) == (status, D(filled))
    assert res.avg_price == (None if price is None else D(price))


def test_sell_amounts_are_read_the_other_way():
    res = from_post({"success": True, "status": "matched", "makingAmount": "20", "takingAmount": "9.8"},
                    intent(side="SELL", size="20", limit="0.49"), "0xh", T0)
    assert (res.filled_size, res.avg_price) == (D("20"), D("0.49"))


def _record():
    return IntentRecord(intent_id="i", trade_id="t", follower="f", leader=LEADER, token_id=TOKEN,
                        condition_id=CONDITION, side="BUY", leader_size=D(1), leader_price=D("0.5"), created_at=T0,
                        decision="approved", status=IntentStatus.UNKNOWN, size=D(20), limit_price=D("0.51"),
                        order_type="FOK", execution_id="0xh")


@pytest.mark.parametrize("answer, status", [
    (None, ExecStatus.NOT_FOUND),
    ({"status": "MATCHED", "size_matched": "20", "original_size": "20", "price": "0.51"}, ExecStatus.FILLED),
    ({"status": "ORDER_STATUS_MATCHED", "size_matched": "5", "original_size": "20", "price": "0.51"}, ExecStatus.PARTIAL),
    ({"status": "ORDER_STATUS_LIVE", "size_matched": "0", "original_size": "20"}, ExecStatus.UNKNOWN),
    ({"status": "CANCELED", "size_matched": "0", "original_size": "20"}, ExecStatus.REJECTED),
])
def test_order_lookups(answer, status):
    assert from_order(answer, _record(), T0).status is status
