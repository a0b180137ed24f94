"""Two follower accounts on the live profile against the CLOB stand-in: each
signs and posts its own orders with its own key, in parallel."""
from __future__ import annotations

import json

from eth_account import Account

from copytrader.adapters.alerts.log import RecordingAlerter
from copytrader.entrypoints.fleet import Fleet, load_fleet
from copytrader.testing import CONDITION, LEADER, TOKEN
from tests.standins.clob import ClobStandIn
from tests.standins.data_api import activity_row

KEYS = {"alice": "0x" + "a7" * 32, "bob": "0x" + "b8" * 32}


def test_each_follower_trades_its_own_account(tmp_path):
    rows = tmp_path / "activity.jsonl"
    rows.write_text("\n".join(json.dumps(activity_row(LEADER, 1_790_000_000 + n, n, asset=TOKEN, condition=CONDITION,
                                                      size=40.0, price=0.5)) for n in range(3)) + "\n")
    with ClobStandIn() as clob:
        clob.set_book(TOKEN, market=CONDITION, bids=[("0.49", "500")], asks=[("0.50", "500")])
        path = tmp_path / "live.toml"
        path.write_text(f"""
profile = "live"
[store]
path = "{tmp_path / 'data' / 'ct.db'}"
[feed]
kind = "replay"
path = "{rows}"
[live]
host = "{clob.url}"
gamma_host = "{clob.url}"
timeout_s = "2"
[[followers]]
name = "alice"
key_env = "ALICE_KEY"
[[followers]]
name = "bob"
key_env = "BOB_KEY"
[followers.sizing]
fixed_usdc = 5
""")
        spec = load_fleet(str(path), environ={"ALICE_KEY": KEYS["alice"], "BOB_KEY": KEYS["bob"]})
        fleet = Fleet(spec, make_alerter=lambda s: RecordingAlerter()).start()
        assert fleet.wait(120)
        assert [w.status.worker for w in fleet.workers] == ["finished", "finished"], \
            [w.status.error for w in fleet.workers]
        makers = {}
        for post in clob.posts:
            order = post["order"]
            makers.setdefault(order["maker"].lower(), []).append(int(order["makerAmount"]))
    expected = {Account.from_key(k).address.lower(): name for name, k in KEYS.items()}
    assert set(makers) == set(expected)  # two accounts, each signed with its own key
    by_name = {expected[m]: amounts for m, amounts in makers.items()}
    assert len(by_name["alice"]) == 3 and len(by_name["bob"]) == 3
    # alice: the default fixed size (10 USDC); bob: his own sizing (5 USDC), so half of alice's amounts
    assert all(9_000_000 <= a <= 11_000_000 for a in by_name["alice"]), by_name
    assert [2 * b for b in by_name["bob"]] == by_name["alice"], by_name
