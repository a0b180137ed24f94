from __future__ import annotations

import pytest
from eth_account import Account

from copytrader.testing import TOKEN, make_app
from tests.standins.clob import ClobStandIn

KEY = "0x" + "4c" * 32
ADDRESS = Account.from_key(KEY).address
NEG_TOKEN = "9" * 40


@pytest.fixture
def clob():
    with ClobStandIn() as server:
        server.set_book(TOKEN, bids=[("0.49", "500"), ("0.48", "500")], asks=[("0.50", "30"), ("0.51", "500")])
        server.set_book(NEG_TOKEN, bids=[("0.30", "500")], asks=[("0.31", "500")], neg_risk=True,
                        market="0x" + "ee" * 32)
        yield server


@pytest.fixture
def live_app(clob):
    """Build an app on the dry-run or live profile against the stand-in."""
    apps = []

    def build(profile: str = "live", sections=None, store=None, **live):
        # below the stand-in's 1 s stalls ("timeout" faults), with room for a loaded machine: a lookup
        # that times out leaves an order unknown, as it should, and a test expecting it settled would flake
        settings = {"host": clob.url, "gamma_host": clob.url, "timeout_s": "0.7", **live}
        app, fakes = make_app({"live": settings, **(sections or {})}, profile=profile,
                              environ={"COPYTRADER_PRIVATE_KEY": KEY}, store=store)
        apps.append(app)
        return app, fakes
    yield build
    for app in apps:
        app.close()
