"""Protocol V2 markets end to end: `copytrader run` (paper) on a --markets file with
v1, neg-risk and v2 markets copies in all three and records each refused id with its
own reason; sells of V2 positions are sized against what we hold."""
from __future__ import annotations

import json
from decimal import Decimal

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.testing import v2_position_id
from tests.standins.data_api import activity_row

LEADER = "0x" + "a1" * 20
V1_COND, NEG_COND, V2_COND, V3_COND = ("0x" + c * 32 for c in ("c1", "e2", "5e", "f3"))
CTF = str(10**70 + 1)
NEG = str(10**70 + 2)
POS = v2_position_id(0x5E5E5E, 0, module=1)
POS_NO = v2_position_id(0x5E5E5E, 1, module=1)
V3_TOKEN = str(10**70 + 3)
STRAY = v2_position_id(0xC1C1, 0)  # V2-shaped, listed in the v1 market below
COMBO = v2_position_id(0x77, 0, module=3)
T0 = 1_793_491_200
BOOK = {"bids": [["0.49", "1000"]], "asks": [["0.51", "1000"]]}


def _market(cond, tokens, version="v1", neg_risk=False):
    return {"condition_id": cond, "version": version, "neg_risk": neg_risk,
            "tokens": [{"token_id": t, "outcome": o, "book": BOOK} for t, o in zip(tokens, ("Yes", "No"))]}


def _files(tmp_path, rows):
    markets = {"markets": [_market(V1_COND, [CTF, STRAY]), _market(NEG_COND, [NEG], neg_risk=True),
                           _market(V2_COND, [POS, POS_NO], version="v2"), _market(V3_COND, [V3_TOKEN], version="v3")]}
    (tmp_path / "markets.json").write_text(json.dumps(markets))
    (tmp_path / "activity.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path / "activity.jsonl"), str(tmp_path / "markets.json")


def _row(n, asset, side="BUY", size=100.0, cond=V1_COND):
    return activity_row(LEADER, T0 + n, n, side=side, size=size, price=0.5, asset=asset, condition=cond)


def test_run_copies_v1_neg_risk_and_v2_and_records_each_refusal(cli, tmp_path):
    rows = [_row(1, CTF), _row(2, NEG, cond=NEG_COND), _row(3, POS, cond=V2_COND),
            _row(4, "0" + POS, cond=V2_COND),       # leading zero: another spelling, not the id
            _row(5, "0x" + format(int(CTF), "x")),  # hex
            _row(6, "+" + CTF), _row(7, CTF + " "),  # sign, whitespace
            _row(8, COMBO, cond=V2_COND),            # module 3: a combinatorial position
            _row(9, V3_TOKEN, cond=V3_COND),         # a market of an unknown version
            _row(10, STRAY),                         # a V2-shaped id in a v1 market
            _row(11, POS_NO, cond=V2_COND),
            {**_row(12, CTF), "asset": 1.2e77}]      # a JSON number: no id text at all
    feed, markets = _files(tmp_path, rows)
    res = cli("run", "--replay", feed, "--markets", markets, "--json",
              env={"COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000"})
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["outcomes"]["quarantined"] == 1
    with SqliteStore(cli.db) as store:
        records = {r.trade_id: r for r in store.history(limit=100)}
        [bad] = store.quarantined()
    by_token = {}
    for r in records.values():
        by_token.setdefault(r.token_id, []).append((r.status.value, r.reason))
    assert by_token[CTF][0] == ("filled", "") and by_token[NEG] == [("filled", "")]
    assert by_token[POS] == [("filled", "")] and by_token[POS_NO] == [("filled", "")]
    assert {t: v for t, v in by_token.items() if t not in (CTF, NEG, POS, POS_NO)} == {
        "0" + POS: [("skipped", "malformed_token_id")],
        "0x" + format(int(CTF), "x"): [("skipped", "malformed_token_id")],
        "+" + CTF: [("skipped", "malformed_token_id")],
        CTF + " ": [("skipped", "malformed_token_id")],  # kept as given: not trimmed into CTF
        COMBO: [("skipped", "combinatorial_position")],
        V3_TOKEN: [("skipped", "unknown_market_version")],
        STRAY: [("skipped", "token_version_mismatch")],
    }
    assert any("asset is not a token id: a JSON Decimal" in str(part) for part in bad)


def test_sells_of_v2_positions_are_sized_against_what_we_hold(cli, tmp_path):
    rows = [_row(1, POS, size=200.0, cond=V2_COND), _row(2, POS, side="SELL", size=100.0, cond=V2_COND),
            _row(3, POS, side="SELL", size=100.0, cond=V2_COND), _row(4, POS_NO, side="SELL", cond=V2_COND)]
    feed, markets = _files(tmp_path, rows)
    env = {"COPYTRADER_FOLLOWER__MAX_TRADE_AGE_S": "1000000000"}
    res = cli("run", "--replay", feed, "--markets", markets, "--json", env=env)
    assert res.exit_code == 0, res.output
    with SqliteStore(cli.db) as store:
        records = sorted(store.history(limit=100), key=lambda r: r.trade_id)
        held = {p.token_id: p.size for p in store.positions(include_closed=True)}
    views = [(r.token_id, str(getattr(r.side, "value", r.side)), r.status.value, r.reason, r.filled_size) for r in records]
    buy = next(v for v in views if v[1] == "BUY")
    sells = [v for v in views if v[0] == POS and v[1] == "SELL"]
    assert buy[2] == "filled" and buy[4] > 0
    # the leader sells half, then the rest: we sell half of what we hold, then all of it
    assert [s[2] for s in sells] == ["filled", "filled"] and sum(s[4] for s in sells) == buy[4]
    assert held[POS] == Decimal(0)
    assert [v[2:4] for v in views if v[0] == POS_NO] == [("skipped", "no_position")]
