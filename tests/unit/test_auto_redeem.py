"""The engine redeeming by itself (application.auto_redeem) against an in-memory
venue: copying goes on while a redemption waits for its block; the payout is
booked once, on the engine's thread; a plan that fails is tried again later,
each time waiting longer; without what sending needs it alerts once; a finite
run ends with its redemptions done; live.auto_redeem is read from the config."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from dependency_injector import providers

from copytrader.application.auto_redeem import AutoRedeem
from copytrader.domain.model import Side
from copytrader.domain.redemption import PAID, SENT, Call
from copytrader.ports import RedeemError
from copytrader.testing import MemoryFeed, book, make_app, make_trade

CONDITION = "0x" + "c1" * 32
YES, NO, OTHER = str(10**70 + 1), str(10**70 + 2), str(10**70 + 3)
LEADER = "0x" + "1e" * 20
SHARES = 40_000_000  # 40 shares, micro units


class Venue:
    """A wallet on an in-memory chain: the redeem pays when it is mined."""

    route, wallet = "eoa", "0x" + "77" * 20

    def __init__(self) -> None:
        self.tokens = {YES: SHARES}
        self.paid: dict[str, int] = {}  # tx hash -> pUSD its receipt shows paid to the wallet
        self.sent: list[list[Call]] = []
        self.refusals = 0  # the next simulations that revert
        self.simulations = 0
        self.gate = threading.Event()  # cleared: the block is not mined yet
        self.gate.set()
        self.waiting = threading.Event()

    def ledger(self, token_id, neg_risk):
        return "0x4d97dcd97ec945f40cf65f87097ace5ea0476045"

    def balances(self, ledger, token_ids):
        return [self.tokens.get(t, 0) for t in token_ids]

    def credited(self, tx_hash):
        return self.paid.get(tx_hash)

    def nonce(self):
        return len(self.sent)

    def calls(self, condition_id, token_ids, amounts, neg_risk):
        return [Call("0xada100db00ca00073811820692005400218fce1f", "redeemPositions", (condition_id,), "0x01b7037c")]

    def simulate(self, calls):
        self.simulations += 1
        if self.refusals:
            self.refusals -= 1
            raise RedeemError("the simulation of redeemPositions fails: execution reverted")
        return self.tokens.get(YES, 0)

    def send(self, calls):
        self.sent.append(calls)
        return "0x" + f"{len(self.sent):064x}", ""

    def wait(self, tx_hash, relayer_id):
        self.waiting.set()
        assert self.gate.wait(10)
        self.paid[tx_hash] = self.tokens.pop(YES, 0)
        return "mined", tx_hash, ""


@pytest.fixture
def engine():
    """A paper engine holding 40 YES bought at 0.6, its market resolved for YES (payout pending)."""
    app, fakes = make_app()
    service = app.service
    day = "2026-01-01"
    with service.transaction():
        changed = [service.portfolio.apply_fill(LEADER, YES, CONDITION, Side.BUY, Decimal(40), Decimal("0.6"),
                                                Decimal(0), day, title="Will it?")]
        changed += service.portfolio.resolve(CONDITION, {YES: Decimal(1), NO: Decimal(0)}, day, pay=False)
        for pos in changed:
            service.store.put_position(pos)
    assert [p.status for p in service.portfolio.pending()] == ["pending payout"]
    yield app, fakes
    app.close()


def test_copying_goes_on_while_a_redemption_waits_for_its_block(engine):
    app, fakes = engine
    venue = Venue()
    venue.gate.clear()
    auto = AutoRedeem(app.service, lambda: venue)
    auto.drain(timeout_s=1)  # planned, recorded, sent; then the wait for the block is left running
    assert venue.waiting.is_set()
    [record] = fakes.store.redemptions()
    assert record.state == SENT and len(venue.sent) == 1
    auto.step()  # returns at once: the worker is still waiting
    fakes.market.put(*book(OTHER, asks=[("0.50", "500")], bids=[("0.48", "500")]))
    outcome = app.process(make_trade(token_id=OTHER, condition_id="0x" + "c2" * 32, size="20", seq=1))
    assert outcome.status == "filled", outcome  # copied while the redemption waits
    assert fakes.store.redemptions()[0].state == SENT
    venue.gate.set()
    auto.drain()
    [record] = fakes.store.redemptions()
    assert record.state == PAID and record.paid == SHARES and len(venue.sent) == 1
    pos = app.service.portfolio.current(LEADER, YES)
    assert pos.status == "paid" and pos.realised == Decimal("16.000000")  # 40 paid - 24 cost
    assert [p.status for p in fakes.store.positions(include_closed=True) if p.token_id == YES] == ["paid"]
    [alert] = [a for a in fakes.alerter.sent if a.kind == "redeemed"]
    assert "Will it? redeemed: 40 pUSD" in alert.message
    auto.drain()  # nothing left: nothing sent again
    assert len(venue.sent) == 1 and venue.simulations == 1


def test_a_pass_starts_at_most_every_interval_and_only_with_something_to_redeem(engine):
    app, fakes = engine
    venue = Venue()
    built = []
    auto = AutoRedeem(app.service, lambda: built.append(1) or venue, interval_s=30)
    auto.drain()
    assert fakes.store.redemptions()[0].state == PAID and built == [1]
    simulations = venue.simulations
    for _ in range(3):
        fakes.clock.advance(31)
        auto.step()  # due, but nothing pending and nothing unfinished: no request at all
    assert venue.simulations == simulations and len(venue.sent) == 1


def test_a_plan_that_fails_is_tried_again_later_each_time_waiting_longer(engine):
    app, fakes = engine
    venue = Venue()
    venue.refusals = 2
    auto = AutoRedeem(app.service, lambda: venue)
    auto.drain()
    assert venue.simulations == 1 and fakes.store.redemptions() == [] and venue.sent == []
    auto.drain()  # not yet: the market waits 60 s
    assert venue.simulations == 1
    fakes.clock.advance(61)
    auto.drain()  # fails again: now 120 s
    assert venue.simulations == 2
    fakes.clock.advance(61)
    auto.drain()
    assert venue.simulations == 2
    fakes.clock.advance(60)
    auto.drain()
    assert venue.simulations == 3 and [r.state for r in fakes.store.redemptions()] == [PAID]
    assert app.service.portfolio.pending() == []


def test_without_what_sending_needs_it_alerts_once_and_the_positions_stay_pending(engine):
    app, fakes = engine

    def venue():
        raise RedeemError("set live.rpc_url (a Polygon JSON-RPC URL) to redeem on chain")
    auto = AutoRedeem(app.service, venue)
    auto.drain()
    fakes.clock.advance(3600)
    auto.step()
    auto.drain()
    [alert] = [a for a in fakes.alerter.sent if a.kind == "redeem_off"]
    assert "set live.rpc_url" in alert.message and "live.auto_redeem = false" in alert.message
    assert auto.off and [p.status for p in app.service.portfolio.pending()] == ["pending payout"]


def test_a_finite_run_ends_with_its_redemptions_done(engine):
    app, fakes = engine
    venue = Venue()
    app.container.redeemer.override(providers.Object(lambda: venue))
    app.container.service.reset()
    service = app.service
    assert service.redemptions is not None and service.portfolio.pending()
    fakes.market.put(*book(OTHER, asks=[("0.50", "500")], bids=[("0.48", "500")]))
    feed = MemoryFeed([make_trade(token_id=OTHER, condition_id="0x" + "c2" * 32, size="20", seq=2)])
    summary = app.run(feed)
    assert summary.copied == 1
    assert [r.state for r in fakes.store.redemptions()] == [PAID] and len(venue.sent) == 1


@pytest.mark.parametrize("value,auto", [(None, True), ("false", False), ("true", True)])
def test_live_auto_redeem_is_on_by_default_on_the_live_profile(value, auto):
    from copytrader.entrypoints.config import load_config
    from copytrader.entrypoints.container import build_container

    environ = {"COPYTRADER_PRIVATE_KEY": "0x" + "4c" * 32, **({"COPYTRADER_LIVE__AUTO_REDEEM": value} if value else {})}
    live = build_container(load_config(None, environ={**environ, "COPYTRADER_PROFILE": "live"}), create=False)
    assert (live.redeemer() is not None) is auto
    paper = build_container(load_config(None, environ={**environ, "COPYTRADER_PROFILE": "paper"}), create=False)
    assert paper.redeemer() is None  # paper pays at resolution: nothing to redeem


def test_a_bad_auto_redeem_value_is_one_sentence():
    from copytrader.entrypoints.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"^environment COPYTRADER_LIVE__AUTO_REDEEM: expected true or false, got 'maybe'$"):
        load_config(None, environ={"COPYTRADER_PROFILE": "live", "COPYTRADER_LIVE__AUTO_REDEEM": "maybe"})
