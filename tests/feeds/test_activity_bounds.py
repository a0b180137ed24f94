"""Timestamps that are no date (year 10000, Infinity) are quarantined, not a crash of the run."""
from decimal import Decimal

import pytest

from copytrader.adapters.feeds.activity import parse_activity_row
from copytrader.ports import Quarantined

ROW = {"proxyWallet": "0x" + "a1" * 20, "conditionId": "0x" + "cd" * 32, "type": "TRADE", "size": 100,
       "usdcSize": 50, "transactionHash": "0x" + "00" * 32, "price": Decimal("0.5"), "asset": "1" * 40, "side": "BUY"}


@pytest.mark.parametrize("ts", [253402300800, Decimal("253402300800.0"), Decimal("Infinity"), Decimal("NaN"),
                                Decimal("-Infinity"), 10**30])
def test_out_of_range_timestamps_are_quarantined(ts):
    out = parse_activity_row({**ROW, "timestamp": ts}, "t:1")
    assert isinstance(out, Quarantined) and "timestamp" in out.reason


def test_a_normal_timestamp_still_parses():
    assert parse_activity_row({**ROW, "timestamp": 1_793_491_200}, "t:1").time.year == 2026
