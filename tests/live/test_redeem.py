"""Redemptions of resolved markets against the Polygon JSON-RPC and relayer stand-ins,
through the SDK (PolymarketRedeemer) and the use case (application.redemption): each
winning position redeemed exactly once for each route, pUSD up by the payout, realised
PnL = payout - cost; a position redeemed by the operator is booked paid without a send;
a redeem that "succeeds" and moves nothing is not booked; a crash at each step ends the
same with no second send; a dry run sends nothing."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from copytrader.adapters.execution.polymarket import redeem as venue
from copytrader.adapters.execution.polymarket.settings import LiveSettings, SignatureType
from copytrader.adapters.storage.memory import MemoryStore
from copytrader.application.redemption import BURNED, BY_OTHERS, Redemptions
from copytrader.domain.model import MarketInfo, Side
from copytrader.domain.portfolio import Portfolio
from copytrader.domain.redemption import EOA, FAILED, PAID, RELAYER, SENT
from copytrader.testing import v2_position_id

from tests.standins.relayer import RelayerStandIn

from .conftest import ADDRESS, KEY
from .test_doctor import PUSD, _fund, rpc, wallets  # noqa: F401 (the rpc fixture)

CTF = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
NEG_RISK_ADAPTER = "0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296"
POSITION_MANAGER = "0x006F54F7f9A22e0000CC2AB60031000000ae9fEF"
CONDITION = "0x" + "c1" * 32
YES, NO = str(10**70 + 1), str(10**70 + 2)
LEADER = "0x" + "1e" * 20


class Clock:
    def now(self):
        return datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


class Markets:
    def __init__(self, neg_risk=False, version="v1"):
        self.neg_risk, self.version = neg_risk, version

    def market(self, token_id):
        return MarketInfo(token_id, CONDITION, neg_risk=self.neg_risk, version=self.version)


def resolved_book(token=YES, other=NO, won=True, size="40", price="0.6", condition=CONDITION):
    """A store and portfolio holding ``size`` shares of ``token`` bought at ``price``, its market
    resolved for it (``won``: payout pending) or for ``other`` (lost)."""
    store, portfolio = MemoryStore(), Portfolio()
    day = "2026-03-01"
    changed = [portfolio.apply_fill(LEADER, token, condition, Side.BUY, Decimal(size), Decimal(price), Decimal(0), day)]
    payouts = {token: Decimal(1), other: Decimal(0)} if won else {token: Decimal(0), other: Decimal(1)}
    changed += portfolio.resolve(condition, payouts, day, pay=False)
    with store.transaction():
        for p in changed:
            store.put_position(p)
    return store, portfolio


def pending_book(token=YES, loser=NO, size="40", price="0.6", condition=CONDITION):
    return resolved_book(token, loser, True, size, price, condition)


def live_settings(rpc, relayer=None, kind="eoa"):
    extra = {"relayer_url": relayer.url} if relayer else {}  # polled every millisecond (EOA receipts too)
    return LiveSettings(host=rpc.clob_url, rpc_url=rpc.url, timeout_s=2, signature_type=SignatureType[kind.upper()],
                        relayer_poll_ms=1, relayer_max_polls=5, **extra)


def eoa_redeemer(rpc):
    return venue.PolymarketRedeemer(live_settings(rpc), KEY, ADDRESS, relayed=False)


@pytest.fixture(autouse=True)
def _clob(clob, rpc):
    rpc.clob_url = clob.url  # the SDK's client is created against the CLOB stand-in


def use_case(store, portfolio, redeemer, markets=None, hook=lambda step, record: None):
    return Redemptions(store, portfolio, redeemer, markets or Markets(), Clock(), hook=hook)


def resolved_on_chain(rpc, owner=ADDRESS, ledger=CTF, amount=40_000_000, token=YES, loser=NO, condition=CONDITION):
    _fund(rpc, owner)
    rpc.set_balance(ledger, owner, token, amount)
    rpc.resolve(condition, ledger, {token: Decimal(1), loser: Decimal(0)})


def sends(rpc):
    return rpc.calls.count("eth_sendRawTransaction")


def test_eoa_redeems_a_winning_ctf_position_once_and_books_payout_minus_cost(rpc):
    resolved_on_chain(rpc)
    store, portfolio = pending_book()
    before = rpc.balances[(PUSD.lower(), ADDRESS.lower())]
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True)
    assert record.state == PAID and record.route == EOA and record.paid == 40_000_000, record
    assert rpc.balances[(PUSD.lower(), ADDRESS.lower())] - before == 40_000_000
    assert rpc.balance(CTF, ADDRESS, YES) == 0 and sends(rpc) == 1
    [tx] = rpc.transactions
    assert tx["to"] == "0xada100db00ca00073811820692005400218fce1f" and tx["function"] == "redeemPositions"
    pos = portfolio.current(LEADER, YES)
    assert pos.size == 0 and pos.realised == Decimal("40") - Decimal("24.000000")  # payout - cost
    assert store.positions(include_closed=True)[0].realised == pos.realised
    # a second pass, and a fresh process on the same store, send nothing
    assert use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True) == []  # nothing pending
    restarted = Portfolio(store.positions(include_closed=True))
    assert [r.state for r in use_case(store, restarted, eoa_redeemer(rpc)).run([CONDITION], send=True)] == [PAID]
    assert sends(rpc) == 1 and portfolio.realised_total == Decimal("16.000000")


def test_a_neg_risk_market_goes_through_the_neg_risk_adapter_and_v2_through_the_router(rpc):
    resolved_on_chain(rpc, ledger=NEG_RISK_ADAPTER)
    store, portfolio = pending_book()
    [record] = use_case(store, portfolio, eoa_redeemer(rpc), Markets(neg_risk=True)).run(send=True)
    assert record.state == PAID and rpc.transactions[-1]["to"] == "0xada2005600dec949baf300f4c6120000bdb6eaab"

    yes, no = v2_position_id(0xAB, 0), v2_position_id(0xAB, 1)
    v2_condition = "0x" + f"{int(yes):064x}"[:62] + "00"
    resolved_on_chain(rpc, ledger=POSITION_MANAGER, token=yes, loser=no, condition=v2_condition)
    store, portfolio = pending_book(token=yes, loser=no, condition=v2_condition)
    [record] = use_case(store, portfolio, eoa_redeemer(rpc), Markets(version="v2")).run([v2_condition], send=True)
    assert record.state == PAID and record.paid == 40_000_000, record
    assert rpc.transactions[-1]["to"] == "0x12121212006e4cd160d18e3f00711da5c3372600"
    assert rpc.transactions[-1]["function"] == "redeem"


def test_a_relayed_wallet_redeems_once_through_the_relayer(rpc):
    with RelayerStandIn(rpc, key_owner=ADDRESS) as relayer:
        wallet = wallets()["poly_proxy"]
        relayer.add_wallet(ADDRESS, wallet, "poly_proxy")
        resolved_on_chain(rpc, owner=wallet)
        store, portfolio = pending_book()
        from polymarket.auth import RelayerApiKey

        redeemer = venue.PolymarketRedeemer(live_settings(rpc, relayer, "poly_proxy"), KEY, wallet, relayed=True,
                                            api_key=RelayerApiKey(key=relayer.api_key, address=ADDRESS))
        [record] = use_case(store, portfolio, redeemer).run(send=True)
        assert record.state == PAID and record.route == RELAYER and record.relayer_id and record.reason == "", record
        assert len(relayer.submitted) == 1 and sends(rpc) == 0
        assert rpc.balance(CTF, wallet, YES) == 0 and portfolio.current(LEADER, YES).realised == Decimal("16.000000")
        use_case(store, portfolio, redeemer).run(send=True)
        assert len(relayer.submitted) == 1


def test_a_position_redeemed_by_the_operator_is_booked_paid_without_a_send(rpc):
    resolved_on_chain(rpc, amount=0)  # the tokens already left the wallet
    store, portfolio = pending_book()
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True)
    assert record.state == PAID and record.reason == BY_OTHERS and sends(rpc) == 0
    assert portfolio.current(LEADER, YES).realised == Decimal("16.000000")


def test_a_redeem_that_succeeds_but_moves_nothing_is_not_booked(rpc):
    resolved_on_chain(rpc)
    rpc.redeem_fate.append("pay-nothing")
    store, portfolio = pending_book()
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True)
    assert record.state == FAILED and "nothing was redeemed" in record.reason, record
    assert rpc.receipts[record.tx_hash]["status"] == "0x1"  # the receipt said success
    assert portfolio.current(LEADER, YES).is_pending and portfolio.realised_total == Decimal("0")


def test_a_reverted_redeem_fails_with_its_reason_and_books_nothing(rpc):
    resolved_on_chain(rpc)
    rpc.redeem_fate.append("revert")
    store, portfolio = pending_book()
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True)
    assert record.state == FAILED and "reverted" in record.reason and portfolio.current(LEADER, YES).is_pending


def test_dry_run_plans_with_the_simulated_payout_and_sends_nothing(rpc):
    resolved_on_chain(rpc)
    store, portfolio = pending_book()
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run()
    assert record.expected == 40_000_000 and record.calls[0].function == "redeemPositions"
    assert record.calls[0].data.startswith("0x01b7037c") and sends(rpc) == 0 and store.redemptions() == []


class Crash(BaseException):
    pass


@pytest.mark.parametrize("step", ["recorded", "sent", "mined"])
def test_a_crash_at_each_step_ends_paid_once_with_no_second_send(rpc, step):
    resolved_on_chain(rpc)
    store, portfolio = pending_book()

    def crash(at, record):
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        use_case(store, portfolio, eoa_redeemer(rpc), hook=crash).run(send=True)
    restarted = Portfolio(store.positions(include_closed=True))
    records = use_case(store, restarted, eoa_redeemer(rpc)).run(send=True)
    assert [r.state for r in store.redemptions()] == [PAID], records
    assert sends(rpc) == 1 and restarted.current(LEADER, YES).realised == Decimal("16.000000")


def test_a_timeout_after_sending_is_never_sent_again_and_is_settled_by_balances(rpc):
    resolved_on_chain(rpc)
    rpc.after_send.append("timeout")
    store, portfolio = pending_book()
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True)
    assert record.state == "requested" and "may have been sent" in record.reason, record
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True)  # settled by balances, not sent again
    assert record.state == PAID and sends(rpc) == 1 and portfolio.realised_total == Decimal("16.000000")


def test_a_lost_receipt_leaves_it_sent_until_the_receipt_is_found(rpc):
    resolved_on_chain(rpc)
    store, portfolio = pending_book()
    redeemer = eoa_redeemer(rpc)
    real_send = redeemer.send

    def send(calls):
        tx_hash, rid = real_send(calls)
        rpc.lost_receipts.add(tx_hash)
        return tx_hash, rid
    redeemer.send = send
    [record] = use_case(store, portfolio, redeemer).run(send=True)
    assert record.state == SENT, record
    rpc.lost_receipts.clear()
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True)
    assert record.state == PAID and sends(rpc) == 1


def _seeded(tmp_path):
    from copytrader.adapters.storage.sqlite import SqliteStore

    _, portfolio = pending_book()
    store = SqliteStore(tmp_path / "copytrader.db")
    with store.transaction():
        for p in [*portfolio.positions(), *portfolio.pending()]:
            store.put_position(p)
    store.close()


def _cli(clob, rpc, tmp_path, *args):
    from click.testing import CliRunner

    from copytrader.entrypoints.cli import main

    from .test_doctor import _env

    env = {**_env(clob, rpc), "COPYTRADER_STORE__PATH": str(tmp_path / "copytrader.db"),
           "COPYTRADER_LIVE__RELAYER_POLL_MS": "1", "COPYTRADER_LIVE__RELAYER_MAX_POLLS": "5"}
    return CliRunner().invoke(main, ["redeem", *args], env=env)


def test_the_cli_shows_the_call_and_payout_dry_and_sends_once_with_live_yes(clob, rpc, tmp_path):
    resolved_on_chain(rpc)
    _seeded(tmp_path)
    dry = _cli(clob, rpc, tmp_path)
    assert dry.exit_code == 0, dry.output
    assert "payout 40 pUSD" in dry.output and "redeemPositions(" in dry.output and "calldata 0x01b7037c" in dry.output
    assert "EOA's own transaction" in dry.output and "dry run: nothing sent" in dry.output and sends(rpc) == 0
    assert _cli(clob, rpc, tmp_path, "--live").exit_code == 2 and sends(rpc) == 0  # no --yes
    res = _cli(clob, rpc, tmp_path, "--live", "--yes", "--json")
    assert res.exit_code == 0, res.output
    import json

    [row] = json.loads(res.stdout)
    assert row["state"] == "paid" and row["paid_usdc"] == "40" and sends(rpc) == 1
    again = _cli(clob, rpc, tmp_path, "--live", "--yes")
    assert again.exit_code == 0 and "nothing to redeem" in again.output and sends(rpc) == 1


def test_pusd_spent_meanwhile_is_not_taken_from_the_payout(rpc):
    """A fill settling while the redemption is mined moves the pUSD balance too: the
    payout booked is what the receipt's transfer shows, not the balance change."""
    resolved_on_chain(rpc)
    store, portfolio = pending_book()
    redeemer = eoa_redeemer(rpc)
    real_send = redeemer.send

    def send(calls):
        sent = real_send(calls)
        rpc.balances[(PUSD.lower(), ADDRESS.lower())] -= 30_000_000  # a buy of ours settles on chain meanwhile
        return sent
    redeemer.send = send
    [record] = use_case(store, portfolio, redeemer).run(send=True)
    assert record.state == PAID and record.paid == 40_000_000 and record.reason == "", record
    assert portfolio.current(LEADER, YES).realised == Decimal("16.000000")


def test_redeemed_by_the_operator_just_before_our_send_is_booked_paid_once(rpc):
    """Our transaction succeeds and pays nothing (the operator burned the tokens first): the
    position is paid all the same, once, and the redemption says by whom."""
    resolved_on_chain(rpc)
    store, portfolio = pending_book()
    redeemer = eoa_redeemer(rpc)
    real_send = redeemer.send

    def send(calls):
        rpc.set_balance(CTF, ADDRESS, YES, 0)  # the auto-redeem operator's redemption lands first
        rpc.balances[(PUSD.lower(), ADDRESS.lower())] += 40_000_000
        return real_send(calls)
    redeemer.send = send
    [record] = use_case(store, portfolio, redeemer).run(send=True)
    assert record.state == PAID and record.reason == BY_OTHERS and record.paid == 40_000_000, record
    assert sends(rpc) == 1 and rpc.redeems[-1]["paid"] == 0  # ours paid nothing
    assert portfolio.current(LEADER, YES).realised == Decimal("16.000000")


def lost_book(token=NO, winner=YES, size="40", price="0.6"):
    return resolved_book(token, winner, False, size, price)


def test_losing_tokens_are_cleared_without_a_transaction_and_burned_only_when_asked(rpc):
    _fund(rpc)
    rpc.set_balance(CTF, ADDRESS, NO, 40_000_000)  # the wallet holds 40 NO, the market resolved for YES
    rpc.resolve(CONDITION, CTF, {YES: Decimal(1), NO: Decimal(0)})
    store, portfolio = lost_book()
    assert portfolio.current(LEADER, NO).status == "lost" and portfolio.realised_total == Decimal("-24.000000")
    assert use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True) == [] and sends(rpc) == 0
    pusd = rpc.balances[(PUSD.lower(), ADDRESS.lower())]
    [plan] = use_case(store, portfolio, eoa_redeemer(rpc)).run(burn=True)  # dry: shown, not sent
    assert plan.burn and plan.expected == 0 and plan.calls[0].function == "redeemPositions" and sends(rpc) == 0
    [record] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True, burn=True)
    assert record.state == PAID and record.burn and record.paid == 0 and record.reason == BURNED, record
    assert sends(rpc) == 1 and rpc.balance(CTF, ADDRESS, NO) == 0 and rpc.balances[(PUSD.lower(), ADDRESS.lower())] == pusd
    assert portfolio.realised_total == Decimal("-24.000000")  # booked at resolution, not again
    [again] = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True, burn=True)
    assert again == record and sends(rpc) == 1


def test_a_winner_and_its_burned_loser_are_two_records_and_one_send_for_ctf(rpc):
    """For a CTF market the winner's redemption burns the loser too: nothing is left to burn."""
    resolved_on_chain(rpc)
    rpc.set_balance(CTF, ADDRESS, NO, 10_000_000)
    store, portfolio = MemoryStore(), Portfolio()
    day = "2026-03-01"
    changed = [portfolio.apply_fill(LEADER, t, CONDITION, Side.BUY, Decimal(n), Decimal("0.5"), Decimal(0), day)
               for t, n in ((YES, "40"), (NO, "10"))]
    changed += portfolio.resolve(CONDITION, {YES: Decimal(1), NO: Decimal(0)}, day, pay=False)
    with store.transaction():
        for p in changed:
            store.put_position(p)
    records = use_case(store, portfolio, eoa_redeemer(rpc)).run(send=True, burn=True)
    assert [(r.burn, r.state) for r in records] == [(False, PAID)] and sends(rpc) == 1
    assert rpc.balance(CTF, ADDRESS, NO) == 0 and portfolio.current(LEADER, YES).status == "paid"


def test_the_cli_burns_losers_only_with_burn_losers(clob, rpc, tmp_path):
    from copytrader.adapters.storage.sqlite import SqliteStore

    _fund(rpc)
    rpc.set_balance(CTF, ADDRESS, NO, 40_000_000)
    rpc.resolve(CONDITION, CTF, {YES: Decimal(1), NO: Decimal(0)})
    store = SqliteStore(tmp_path / "copytrader.db")
    with store.transaction():
        for p in lost_book()[0].positions(include_closed=True):
            store.put_position(p)
    store.close()
    plain = _cli(clob, rpc, tmp_path, "--live", "--yes")
    assert plain.exit_code == 0 and "nothing to redeem" in plain.output and sends(rpc) == 0
    dry = _cli(clob, rpc, tmp_path, "--burn-losers")
    assert dry.exit_code == 0 and "burn of losing tokens (pays nothing)" in dry.output and sends(rpc) == 0, dry.output
    res = _cli(clob, rpc, tmp_path, "--burn-losers", "--live", "--yes")
    assert res.exit_code == 0 and "paid" in res.output and BURNED in res.output and sends(rpc) == 1, res.output
    assert rpc.balance(CTF, ADDRESS, NO) == 0
