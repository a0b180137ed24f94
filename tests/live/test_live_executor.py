"""The CLOB V2 executor against the loopback stand-in: signing, posting,
answers mapped to ExecutionResult, and the order-safety protocol."""
from __future__ import annotations

import json
from decimal import Decimal

import attrs
import pytest
from dependency_injector import providers

from copytrader.domain.model import IntentStatus, TradingState
from copytrader.testing import TOKEN, make_trade
from tests.standins.clob import V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, order_hash, recover_order_signer

from .conftest import ADDRESS, KEY, NEG_TOKEN

D = Decimal
SIGNED_FIELDS = {"salt", "maker", "signer", "tokenId", "makerAmount", "takerAmount", "side", "signatureType",
                 "timestamp", "metadata", "builder"}


def test_dry_run_signs_and_records_but_sends_nothing(live_app, clob):
    app, fakes = live_app("dry-run")
    out = app.process(make_trade(price="0.50", size="100"))
    assert out.status == "filled"
    [rec] = app.history()
    assert (rec.filled_size, rec.avg_price) == (D("20"), D("0.5"))  # simulated on the stand-in's book
    assert not any(m == "POST" for m, _ in clob.requests) and clob.orders == {}
    order = fakes.store.get_order(rec.execution_id)
    signed = order.payload["order"]
    assert SIGNED_FIELDS <= set(signed) and {"expiration", "signature"} <= set(signed)
    assert order.payload["exchange"] == V2_EXCHANGE and order.payload["negRisk"] is False
    assert recover_order_signer(signed, V2_EXCHANGE) == ADDRESS == signed["maker"]
    assert order_hash(signed, V2_EXCHANGE) == rec.execution_id
    assert (signed["makerAmount"], signed["takerAmount"], signed["side"]) == ("10200000", "20000000", "BUY")


def test_neg_risk_market_signs_for_the_neg_risk_exchange(live_app):
    app, fakes = live_app("dry-run")
    app.process(make_trade(token_id=NEG_TOKEN, price="0.31", condition_id="0x" + "ee" * 32))
    order = fakes.store.get_order(app.history()[0].execution_id)
    assert order.payload["negRisk"] is True and order.payload["exchange"] == V2_NEG_RISK_EXCHANGE
    assert recover_order_signer(order.payload["order"], V2_NEG_RISK_EXCHANGE) == ADDRESS


def test_live_posts_one_verified_order_and_records_the_fill(live_app, clob):
    app, _ = live_app("live")
    out = app.process(make_trade(price="0.50", size="100"))
    assert out.status == "filled" and clob.rejections == []
    assert len(clob.posts) == 1
    [rec] = app.history()
    assert rec.execution_id in clob.orders
    assert app.positions()[0].size == clob.fills(TOKEN) == D("20")
    assert rec.avg_price == D("0.5")  # 20 at 0.50 from the stand-in's book, under the 0.51 limit


def test_sell_is_signed_and_filled(live_app, clob):
    app, _ = live_app("live")
    app.process(make_trade(side="BUY", size="100", seq=1))
    out = app.process(make_trade(side="SELL", size="100", seq=2))
    assert out.status == "filled" and clob.fills(TOKEN) == 0 and app.positions() == []
    assert [p["order"]["side"] for p in clob.posts] == ["BUY", "SELL"]


@pytest.mark.parametrize("fault", ["timeout-after-accept", "reset-after-accept"])
def test_no_answer_after_acceptance_is_looked_up_never_resent(live_app, clob, fault):
    app, _ = live_app("live")
    clob.inject("POST /order", fault)
    out = app.process(make_trade())
    assert out.status == "filled"
    assert len(clob.posts) == 1 and [m for m, p in clob.requests if p == "/order"] == ["POST"]
    assert ("GET", f"/data/order/{app.history()[0].execution_id}") in clob.requests
    assert app.positions()[0].size == clob.fills(TOKEN)


@pytest.mark.parametrize("fault", ["500", "502", "503", "malformed", "reset"])
def test_server_errors_are_unknown_then_settled_by_lookup(live_app, clob, fault):
    app, fakes = live_app("live")
    clob.inject("POST /order", fault)
    out = app.process(make_trade())
    # The stand-in never acted: the lookup (order, then trades) finds nothing, so
    # the same stored signed order is posted again, and fills once.
    assert out.status == "filled"
    [rec] = app.history()
    assert rec.status is IntentStatus.FILLED and list(clob.orders) == [rec.execution_id]
    first, again = [p for m, p in clob.requests if p == "/order"], clob.posts
    assert len(first) == 2 and len(again) == 1 and clob.attempts[0] == clob.attempts[1]
    assert ("GET", f"/data/order/{rec.execution_id}") in clob.requests and ("GET", "/data/trades") in clob.requests
    assert app.positions()[0].size == clob.fills(TOKEN) == rec.filled_size
    assert "error" in fakes.alerter.kinds()  # the fault that made it unknown still counts


@pytest.mark.parametrize("fault, text", [("429", "rate limited"), ("429-retry", "rate limited")])
def test_rate_limit_is_a_rejection_without_lookup(live_app, clob, fault, text):
    app, _ = live_app("live")
    clob.inject("POST /order", fault)
    out = app.process(make_trade())
    assert out.status == "unfilled" and text in app.history()[0].error
    assert not any(p.startswith("/data/order/") for _, p in clob.requests)


def test_fok_that_cannot_fill_is_a_market_outcome_not_a_fault(live_app, clob):
    app, fakes = live_app("live")
    clob.set_book(TOKEN, asks=[("0.50", "8")], bids=[("0.49", "100")])
    out = app.process(make_trade())
    assert out.status == "unfilled" and "fully filled or killed" in app.history()[0].error
    assert "error" not in fakes.alerter.kinds()


def test_geo_block_gives_a_clear_message(live_app, clob):
    app, _ = live_app("live")
    clob.set_book(TOKEN, asks=[("0.50", "100")], bids=[("0.49", "100")])
    app.process(make_trade(seq=1))  # market data cached
    clob.geo_blocked = True
    out = app.process(make_trade(seq=2))
    assert out.status == "unfilled" and "geo-blocked" in app.history()[0].error


def test_stand_in_rejects_a_tampered_order(live_app, clob):
    app, fakes = live_app("dry-run")
    app.process(make_trade())
    payload = fakes.store.get_order(app.history()[0].execution_id).payload
    executor = app.container.executor()
    live, _ = live_app("live")
    clob_client = live.container.executor().clob
    tampered = {**payload["order"], "makerAmount": str(int(payload["order"]["makerAmount"]) - 1)}
    body = {"order": tampered, "owner": clob_client.credentials().key, "orderType": "FOK", "deferExec": False}
    with pytest.raises(Exception, match="invalid signature"):
        clob_client.l2("POST", "/order", body)
    assert clob.orders == {} and executor is not None


def test_wrong_api_secret_is_refused_by_the_stand_in(live_app, clob):
    app, _ = live_app("live")
    clob_client = app.container.executor().clob
    creds = clob_client.credentials()
    clob_client._creds = creds.model_copy(update={"secret": "c2VjcmV0LWJ1dC13cm9uZy1zZWNyZXQtYnV0LXdyb25nIQ=="})
    out = app.process(make_trade())
    assert out.status == "unfilled" and "401" in app.history()[0].error and clob.posts == []


@pytest.mark.parametrize("kind, code", [("poly_proxy", 1), ("gnosis_safe", 2)])
def test_proxy_and_safe_wallets_sign_for_the_funder(live_app, clob, kind, code):
    funder = "0x" + "5a" * 20
    app, _ = live_app("live", signature_type=kind, funder=funder)
    assert app.process(make_trade()).status == "filled"
    order = clob.posts[0]["order"]
    assert (order["maker"].lower(), order["signer"], order["signatureType"]) == (funder, ADDRESS, code)


class CrashAfterPost:
    """Dies (like kill -9) right after the exchange accepted the order."""

    def __init__(self, inner):
        self.inner = inner

    def prepare(self, intent, market):
        return self.inner.prepare(intent, market)

    def submit(self, order, intent, market):
        self.inner.submit(order, intent, market)
        raise SystemExit("killed")


def test_restart_reconciles_an_order_accepted_before_the_crash(live_app, clob):
    app, fakes = live_app("live")
    real = app.container.executor()
    app.container.executor.override(providers.Object(CrashAfterPost(real)))
    with pytest.raises(SystemExit):
        app.process(make_trade())
    assert fakes.store.open_intents()[0].status is IntentStatus.PENDING
    app.container.executor.reset_override()
    app.container.service.reset()  # a fresh engine on the same store
    assert app.service.start() == 0
    [rec] = app.history()
    assert rec.status is IntentStatus.FILLED and app.positions()[0].size == clob.fills(TOKEN)
    assert len(clob.posts) == 1


def test_signing_does_not_need_the_network_and_hides_the_key(live_app):
    app, _ = live_app("dry-run", host="http://127.0.0.1:9")  # nothing listens there
    executor = app.container.executor()
    assert KEY not in repr(executor) and KEY[2:] not in repr(executor)
    assert ADDRESS in repr(executor)


def test_run_of_faults_halts_trading(live_app, clob):
    app, fakes = live_app("live")
    clob.inject("POST /order", *["500"] * 10)  # the order and its one repost, five times
    for i in range(5):
        app.process(make_trade(seq=i))
    assert app.state().state is TradingState.HALTED
    assert json.dumps(fakes.alerter.kinds()).count("error") == 5


@pytest.mark.parametrize("size, price, tick, amounts", [
    ("34.48", "0.29", "0.01", (9999200, 34480000)),     # the SDK's float path gives 34.47 shares here
    ("72.99", "0.139", "0.001", (10145610, 72990000)),
    ("5", "0.5", "0.1", (2500000, 5000000)),
])
def test_order_amounts_are_exact(live_app, size, price, tick, amounts):
    from copytrader.domain.model import CopyIntent, MarketInfo, OrderType, Side
    from copytrader.testing import T0
    app, _ = live_app("dry-run")
    executor = app.container.executor()
    intent = CopyIntent(id="ab" * 16, trade_id="t", follower="f", leader="l", token_id=TOKEN, condition_id="c",
                        side=Side.BUY, size=D(size), limit_price=D(price), leader_price=D(price),
                        order_type=OrderType.FOK, created_at=T0)
    market = MarketInfo(token_id=TOKEN, condition_id="c", tick_size=D(tick))
    assert executor.amounts(intent, market) == amounts
    signed = executor.prepare(intent, market).payload["order"]
    assert (int(signed["makerAmount"]), int(signed["takerAmount"])) == amounts
    assert executor.amounts(attrs.evolve(intent, side=Side.SELL), market) == amounts[::-1]
    with pytest.raises(ValueError, match="decimals"):
        executor.amounts(attrs.evolve(intent, size=D("1.005")), market)


def test_gtd_orders_carry_an_expiration_fok_do_not(live_app):
    app, fakes = live_app("dry-run", gtd_expiration_s="600")
    app.process(make_trade(seq=1))
    fok = fakes.store.get_order(app.history()[0].execution_id).payload
    gtd_app, gtd_fakes = live_app("dry-run", sections={"follower": {"order_type": "GTD"}}, gtd_expiration_s="600")
    gtd_app.process(make_trade(seq=2))
    gtd = gtd_fakes.store.get_order(gtd_app.history()[0].execution_id).payload
    assert fok["orderType"] == "FOK" and fok["order"]["expiration"] == "0"
    assert gtd["orderType"] == "GTD"
    assert int(gtd["order"]["expiration"]) == int(gtd_fakes.clock.now().timestamp()) + 600


# -- every wallet type on every exchange, posted and verified by the stand-in ---------------------------
def _posting_executor(clob, kind):
    from copytrader.adapters.clock import ManualClock, SystemClock
    from copytrader.adapters.execution.polymarket.executor import PolymarketExecutor
    from copytrader.adapters.execution.polymarket.settings import LiveSettings, SignatureType
    from copytrader.testing import T0
    from tests.live.test_signing import deposit_wallet_of

    kind = SignatureType[kind.upper()]
    funder = deposit_wallet_of(ADDRESS) if kind is SignatureType.DEPOSIT_WALLET else None
    if funder:
        clob.deposit_wallets[funder] = ADDRESS
    settings = LiveSettings(host=clob.url, timeout_s=0.7, signature_type=kind, funder=funder)
    return PolymarketExecutor(settings, KEY, None, ManualClock(T0), post=True, wall=SystemClock())


def _copy_intent(token, side, n=0, size="10", price="0.50"):
    from tests.live.test_signing import intent

    return intent(token, side, size, price, n)


@pytest.mark.parametrize("kind", ["eoa", "poly_proxy", "gnosis_safe", "deposit_wallet"])
@pytest.mark.parametrize("venue", ["ctf", "neg-risk", "exchange-v3"])
def test_each_wallet_type_posts_on_each_exchange(clob, kind, venue):
    from copytrader.domain.model import ExecStatus, MarketInfo, Side
    from tests.live.test_signing import EXCHANGES

    version, neg_risk, token, exchange, domain = EXCHANGES[venue]
    clob.set_book(token, bids=[("0.49", "500")], asks=[("0.50", "500")], neg_risk=neg_risk, market="0x" + "ab" * 32)
    market = MarketInfo(token_id=token, condition_id="0x" + "ab" * 32, neg_risk=neg_risk, version=version)
    executor = _posting_executor(clob, kind)
    try:
        for n, side in enumerate((Side.BUY, Side.SELL)):
            copy = _copy_intent(token, side, n, price="0.50" if side is Side.BUY else "0.49")
            prepared = executor.prepare(copy, market)
            result = executor.submit(prepared, copy, market)
            assert result.status is ExecStatus.FILLED, (result.error, clob.rejections)
            assert prepared.order_id in clob.orders  # the stand-in's own hash of the order it verified
    finally:
        executor.close()
    assert clob.rejections == [] and len(clob.posts) == 2
    for post in clob.posts:
        order = post["order"]
        assert recover_order_signer(order, exchange, version=domain) == ADDRESS
        assert order["maker"] == executor.funder and int(order["signatureType"]) == int(executor.settings.signature_type)


def _post_raw(clob, order):
    executor = _posting_executor(clob, "eoa")
    try:
        return executor.clob.l2("POST", "/order", {"order": order, "owner": executor.clob.credentials().key,
                                                   "orderType": "FOK", "deferExec": False})
    finally:
        executor.close()


def test_stand_in_rejects_a_domain_2_signature_for_a_v2_position(clob):
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from copytrader.domain.model import MarketInfo, Side
    from tests.live.test_signing import EXCHANGES
    from tests.standins.clob import EXCHANGE_V3, order_typed_data

    version, _, token, _, _ = EXCHANGES["exchange-v3"]
    clob.set_book(token, asks=[("0.50", "500")], market="0x" + "ab" * 32)
    executor = _posting_executor(clob, "eoa")
    order = executor.prepare(_copy_intent(token, Side.BUY), MarketInfo(token, "0x" + "ab" * 32, version=version)
                             ).payload["order"]
    executor.close()
    for exchange in (EXCHANGE_V3, V2_EXCHANGE):  # right fields, the V1 domain version "2"
        signed = Account.sign_message(encode_typed_data(full_message=order_typed_data(order, exchange, version="2")),
                                      KEY)
        with pytest.raises(Exception, match="invalid signature"):
            _post_raw(clob, {**order, "signature": "0x" + signed.signature.hex()})
    assert _post_raw(clob, order)["success"] is True  # the same order signed for domain "3" is accepted
    assert clob.rejections == ["invalid signature"] * 2


def test_stand_in_rejects_a_deposit_wallet_order_of_the_wrong_owner_or_trailer(clob):
    from copytrader.domain.model import MarketInfo, Side

    executor = _posting_executor(clob, "deposit_wallet")
    wallet = executor.funder
    order = executor.prepare(_copy_intent(TOKEN, Side.BUY), MarketInfo(TOKEN, "0x" + "cd" * 32)).payload["order"]
    executor.close()
    clob.deposit_wallets[wallet] = "0x" + "66" * 20  # the wallet belongs to someone else
    with pytest.raises(Exception, match="invalid signature"):
        _post_raw(clob, order)
    clob.deposit_wallets[wallet] = ADDRESS
    sig = order["signature"]
    wrong_contents = sig[:2 + 2 * 97] + "00" * 32 + sig[2 + 2 * 129:]  # a trailer describing another order
    with pytest.raises(Exception, match="invalid signature"):
        _post_raw(clob, {**order, "signature": wrong_contents})
    with pytest.raises(Exception, match="invalid signature"):
        _post_raw(clob, {**order, "signature": sig[:2 + 130]})  # the bare 65 bytes, no trailer
    assert _post_raw(clob, order)["success"] is True
    assert clob.rejections == ["invalid signature"] * 3


def test_a_deposit_wallet_copies_through_the_app(live_app, clob):
    from tests.live.test_signing import deposit_wallet_of

    wallet = deposit_wallet_of(ADDRESS)
    clob.deposit_wallets[wallet] = ADDRESS
    app, _ = live_app("live", signature_type="deposit_wallet", funder=wallet)
    assert app.process(make_trade()).status == "filled" and clob.rejections == []
    order = clob.posts[0]["order"]
    assert (order["maker"], order["signer"], order["signatureType"]) == (wallet, wallet, 3)


@pytest.mark.parametrize("profile", ["dry-run", "live"])
def test_a_rejection_is_on_disk_before_the_next_trade_when_orders_leave_the_process(live_app, tmp_path, profile):
    """Group commit is for paper runs and backtests: an engine whose orders go out commits each
    rejection after its item, so a later copy's order never waits for a queue to be written."""
    import sqlite3

    from copytrader.adapters.storage.sqlite import SqliteStore

    db = tmp_path / "ct.db"
    store = SqliteStore(db, group_rows=256)
    try:
        app, _ = live_app(profile, store=store)
        app.service.halt("test")
        assert app.process(make_trade(seq=1)).status == "rejected"
        with sqlite3.connect(db) as con:  # another process's view
            assert con.execute("SELECT status FROM intents").fetchall() == [("skipped",)]
    finally:
        store.close()
