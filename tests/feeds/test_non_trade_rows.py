"""REDEEM, MERGE and SPLIT rows as the Data API gives them: without a price
(``"price": null`` or no price at all), often without a size, side or asset.
They need none of these (they are observed, never copied); a TRADE row still
needs them all."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from copytrader.adapters.feeds.activity import parse_activity_row, parse_json_line
from copytrader.domain.model import LeaderTrade
from copytrader.entrypoints.cli import main
from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS
from copytrader.ports import Quarantined

LEADER = "0x7c3db723f1d4d8cb9c550095203b686cb11e5c6b"
CONDITION = "0x0c4be1ae8404933c68914221dd79d5a4f412961c75951ef03fb06e5557468ede"
YES = "66377306833226028539244310723932891386972337127519075296180204680769183778709"  # of CONDITION


def data_api_row(kind: str, **change) -> dict:
    """A non-trade row shaped as GET /activity returns it (its usdcSize is the payout of a REDEEM)."""
    row = {"proxyWallet": LEADER, "timestamp": 1793666122, "conditionId": CONDITION, "type": kind,
           "size": 1000, "usdcSize": 1000, "transactionHash": "0x" + "02ac" * 16, "price": None, "asset": "",
           "side": "", "outcomeIndex": 999, "title": "Ethereum above $4,000 on November 2?",
           "slug": "ethereum-above-4000-on-november-2", "icon": "", "eventSlug": "ethereum-above-on-november-2",
           "outcome": "", "name": "CarbonWhale", "pseudonym": "Gleaming-Tributary", "bio": "", "profileImage": "",
           "profileImageOptimized": ""}
    row.update(change)
    return {k: v for k, v in row.items() if v is not ...}  # ``...``: the field is absent


@pytest.mark.parametrize("kind", ["REDEEM", "MERGE", "SPLIT"])
@pytest.mark.parametrize("change, size", [
    ({}, Decimal(1000)),                                            # "price": null
    ({"price": ...}, Decimal(1000)),                                # no price at all
    ({"size": None}, Decimal(0)),                                   # no size either
    ({"price": ..., "size": ..., "asset": None, "side": None}, Decimal(0)),
])
def test_a_non_trade_row_needs_no_price(kind, change, size):
    row = data_api_row(kind, **change)
    for parsed in (parse_activity_row(row, "data_api:x"), parse_json_line(json.dumps(row), "f.jsonl:1")):
        assert isinstance(parsed, LeaderTrade), parsed
        assert (parsed.kind, parsed.price, parsed.size, parsed.usdc_size) == (kind, 0, size, 1000)
        assert (parsed.token_id, parsed.side, parsed.condition_id) == ("", "", CONDITION)


@pytest.mark.parametrize("field", ["price", "size"])
def test_a_trade_row_still_needs_its_price_and_size(field):
    row = {**data_api_row("TRADE", price=Decimal("0.67"), asset="1" * 40, side="BUY"), field: None}
    parsed = parse_activity_row(row, "data_api:x")
    assert isinstance(parsed, Quarantined) and parsed.reason == f"{field} is not a number: None"


def test_a_redeem_without_a_price_settles_the_resolved_market(tmp_path):
    """The bundled sample, its REDEEM as the Data API gives it (price null): the same run as with price 0."""
    lines = SAMPLE_ACTIVITY.read_text(encoding="utf-8").splitlines()
    [at] = [i for i, line in enumerate(lines) if '"REDEEM"' in line]
    redeem = json.loads(lines[at])
    assert redeem["price"] == 0 and redeem["conditionId"] == CONDITION
    lines[at] = json.dumps({**redeem, "price": None})
    nulled = tmp_path / "null-price.jsonl"
    nulled.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def run(feed, db):
        res = CliRunner().invoke(main, ["--log-level", "error", "--db", str(tmp_path / db), "run", "--replay",
                                        str(feed), "--markets", str(SAMPLE_MARKETS), "--json"],
                                 env={"COPYTRADER_CONFIG": None})
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    got, want = run(nulled, "null.db"), run(SAMPLE_ACTIVITY, "zero.db")
    assert got["outcomes"]["observed"] == 1 and got["outcomes"]["quarantined"] == 1  # only the sample's bad row
    assert got == want
    def positions(db):
        res = CliRunner().invoke(main, ["--db", str(tmp_path / db), "positions", "--all", "--json"],
                                 env={"COPYTRADER_CONFIG": None})
        return json.loads(res.stdout)

    assert positions("null.db") == positions("zero.db")
    settled = [p["token_id"] for p in positions("null.db") if p["condition_id"] == CONDITION and p["settled"]]
    assert settled == [YES]  # the copy of the leader's first buy, paid out at the REDEEM


@pytest.mark.parametrize("kind", ["", " trade ", "TRADE "])
def test_a_row_made_a_trade_is_checked_as_a_trade(kind):
    """A blank or padded type makes a TRADE: it needs a TRADE's asset, side, size and price."""
    parsed = parse_activity_row(data_api_row(kind, price=..., asset=..., side=...), "data_api:x")
    assert isinstance(parsed, Quarantined) and parsed.reason == "missing asset, side, price"


@pytest.mark.parametrize("array", [False, True])
@pytest.mark.parametrize("text", ['"\\ud800"', '"ok"'])
def test_a_row_of_any_text_is_quarantined_and_the_run_goes_on(tmp_path, text, array):
    """A JSON string may escape a lone surrogate, which no database can store as it is."""
    feed = tmp_path / "odd.json"
    redeem = json.dumps(data_api_row("REDEEM"))
    feed.write_text(f"[{text}, {redeem}]" if array else f"{text}\n{redeem}\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["--log-level", "error", "--db", str(tmp_path / "ct.db"), "run", "--replay",
                                    str(feed), "--json"], env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["outcomes"] == {"quarantined": 1, "observed": 1}
