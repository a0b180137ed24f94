"""Market versions from Gamma: v2 markets trade positionIds, v1 markets clobTokenIds; a
missing or unknown version, or an id outside its market's ids, is refused with its own
reason; Gamma's answer is cached per market; v2 payouts come from the Data API."""
from __future__ import annotations

from decimal import Decimal

import pytest

from copytrader.adapters.execution.polymarket.transport import ClobError
from copytrader.adapters.market.clob import ClobMarketData
from copytrader.domain.model import Reason
from copytrader.domain.positions import market_rejection
from copytrader.testing import v2_position_id
from tests.feeds.test_clob_market import Ticks
from tests.standins.clob import ClobStandIn
from tests.standins.data_api import DataApiStandIn, resolution_row
from tests.standins.gamma import GammaStandIn, gamma_market

V1_COND, V2_COND = "0x" + "cd" * 32, "0x" + "5e" * 32
CTF_YES, CTF_NO = str(10**70 + 1), str(10**70 + 2)
OLD_CTF = [str(10**70 + 3), str(10**70 + 4)]  # CTF ids a v2 market may still list beside its positionIds
V2_YES, V2_NO = v2_position_id(0x5E5E, 0), v2_position_id(0x5E5E, 1)


@pytest.fixture
def venue():
    with ClobStandIn() as clob, GammaStandIn() as gamma, DataApiStandIn() as data:
        for token, cond in ((CTF_YES, V1_COND), (CTF_NO, V1_COND), (V2_YES, V2_COND), (V2_NO, V2_COND)):
            clob.set_book(token, bids=[("0.49", "100")], asks=[("0.51", "100")], market=cond)
        gamma.add(gamma_market(V1_COND, [CTF_YES, CTF_NO], version="v1", market_id="1"),
                  gamma_market(V2_COND, [V2_YES, V2_NO], version="v2", clob_token_ids=OLD_CTF, market_id="2"))
        ticks = Ticks()
        md = ClobMarketData(clob.url, rules_ttl_s=60, book_ttl_s=1, monotonic=ticks, gamma_host=gamma.url,
                            data_host=data.url)
        yield md, clob, gamma, data, ticks
        md.close()


def test_the_version_chooses_the_outcome_ids_even_when_both_are_listed(venue):
    md, _, gamma, _, _ = venue
    v2 = md.market(V2_YES)
    assert (v2.version, v2.outcome_ids, v2.condition_id) == ("v2", (V2_YES, V2_NO), V2_COND)
    assert market_rejection(v2, V2_YES) is None
    v1 = md.market(CTF_YES)
    assert (v1.version, v1.outcome_ids) == ("v1", (CTF_YES, CTF_NO)) and market_rejection(v1, CTF_YES) is None
    assert gamma.requests[0] == {"position_ids": [V2_YES]} and gamma.requests[1] == {"clob_token_ids": [CTF_YES]}


def test_an_id_outside_its_markets_ids_of_that_version_is_a_mismatch(venue):
    md, clob, gamma, _, _ = venue
    # a CTF id a v2 market still lists in clobTokenIds: not its trading id
    clob.set_book(OLD_CTF[0], market=V2_COND, asks=[("0.5", "10")])
    reject = market_rejection(md.market(OLD_CTF[0]), OLD_CTF[0])
    assert reject.reason is Reason.TOKEN_VERSION_MISMATCH
    # a V2-shaped id listed as a v1 market's clobTokenId (found by the second query)
    odd = v2_position_id(0x77, 0)
    cond = "0x" + "77" * 32
    clob.set_book(odd, market=cond, asks=[("0.5", "10")])
    gamma.add(gamma_market(cond, [odd, v2_position_id(0x77, 1)], version="v1", market_id="3"))
    info = md.market(odd)
    assert info.version == "v1" and market_rejection(info, odd).reason is Reason.TOKEN_VERSION_MISMATCH
    # a V2-shaped id the market lists, but not among the positionIds of its v2 market
    stray = v2_position_id(0x88, 0)
    cond = "0x" + "88" * 32
    clob.set_book(stray, market=cond, asks=[("0.5", "10")])
    gamma.add(gamma_market(cond, [v2_position_id(0x88, 1)], version="v2", clob_token_ids=[stray], market_id="4"))
    reject = market_rejection(md.market(stray), stray)
    assert reject.reason is Reason.TOKEN_VERSION_MISMATCH and "not among the v2 outcome ids" in reject.detail


@pytest.mark.parametrize("fault, version", [("no-version", ""), ("version:v3", "v3"), ("version:V2", "V2")])
def test_a_missing_or_unknown_version_is_kept_and_refused(venue, fault, version):
    md, _, gamma, _, _ = venue
    gamma.inject(fault)
    info = md.market(V2_YES)
    assert info.version == version and info.outcome_ids == ()
    assert market_rejection(info, V2_YES).reason is Reason.UNKNOWN_MARKET_VERSION


def test_a_market_gamma_does_not_know_has_no_version(venue):
    md, clob, gamma, _, _ = venue
    lost = str(10**70 + 99)
    clob.set_book(lost, market="0x" + "99" * 32, asks=[("0.5", "10")])
    info = md.market(lost)
    assert info.version == "" and market_rejection(info, lost).reason is Reason.UNKNOWN_MARKET_VERSION
    assert gamma.requests == [{"clob_token_ids": [lost]}, {"position_ids": [lost]}]


@pytest.mark.parametrize("fault", ["500", "503", "429", "malformed", "truncated"])
def test_gamma_faults_raise_and_are_not_cached(venue, fault):
    md, _, gamma, _, _ = venue
    gamma.inject(fault)
    with pytest.raises(ClobError):
        md.market(V2_YES)
    assert md.market(V2_YES).version == "v2"  # the next lookup asks again


def test_gamma_is_asked_once_per_market_per_ttl_not_per_trade(venue):
    md, clob, gamma, _, ticks = venue
    for _ in range(3):
        md.book(V2_YES), md.market(V2_YES)
        md.book(V2_NO), md.market(V2_NO)
        ticks.now += 1.5  # each round refreshes the books
    assert len(gamma.requests) == 1 and [p for _, p in clob.requests].count("/book") == 6
    ticks.now += 60
    md.book(V2_YES)
    assert len(gamma.requests) == 2


def test_v2_payouts_come_from_the_data_api_resolutions(venue):
    md, _, gamma, data, ticks = venue
    assert md.market(V2_YES).closed is False and data.requests == []  # open: no resolution read
    gamma.markets[1]["closed"] = True
    data.resolutions.append(resolution_row(V2_COND, status="proposed"))
    ticks.now += 61
    info = md.market(V2_YES)
    assert (info.closed, info.payout) == (True, None)  # closed, not resolved: no payout yet
    data.resolutions[:] = [resolution_row(V2_COND, payouts=[0, 1_000_000])]
    ticks.now += 61
    yes, no = md.market(V2_YES), md.market(V2_NO)
    assert (yes.closed, yes.payout, no.payout) == (True, Decimal(0), Decimal(1))
    assert data.requests[-1] == {"condition_id": V2_COND}


def test_malformed_v2_payouts_are_an_error_not_a_guess(venue):
    md, _, gamma, data, _ = venue
    gamma.markets[1]["closed"] = True
    data.resolutions.append(resolution_row(V2_COND, payouts=[1_000_000]))
    with pytest.raises(ValueError, match="1 payouts for 2 outcomes"):
        md.market(V2_YES)


@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_a_resolved_market_without_a_book_is_still_known_closed_with_its_payouts(venue, kind):
    md, clob, gamma, data, _ = venue
    if kind == "v1":
        cond, win, lose = "0x" + "ab" * 32, str(10**70 + 11), str(10**70 + 12)
        clob.resolved[cond] = win
    else:
        cond, win, lose = "0x" + "ac" * 32, v2_position_id(0xAC, 0), v2_position_id(0xAC, 1)
        data.resolutions.append(resolution_row(cond, [1_000_000, 0]))
    for token in (win, lose):
        clob.set_book(token, market=cond, asks=[("0.5", "10")])
        clob.delist(token)
    gamma.add(gamma_market(cond, [win, lose], version=kind, closed=True, market_id="9"))
    assert md.book(win) is None  # no book at the CLOB
    info = md.market(win)
    assert (info.closed, info.payout, info.version, info.condition_id) == (True, Decimal(1), kind, cond)
    assert md.market(lose).payout == Decimal(0)
    unknown = str(10**70 + 13)
    assert md.book(unknown) is None and md.market(unknown) is None  # Gamma does not know it either
