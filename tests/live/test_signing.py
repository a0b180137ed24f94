"""Every order the executor signs verifies under the stand-in's independent
EIP-712 check (eth_account's generic encoder, the ERC-7739 trailer parsed by
hand), for every wallet type x exchange x side, with the right exchange and
domain version, and its hash is the exchange's order id."""
from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("polymarket")

from eth_account import Account  # noqa: E402

from copytrader.adapters.clock import ManualClock  # noqa: E402
from copytrader.adapters.execution.polymarket import settings as S  # noqa: E402
from copytrader.adapters.execution.polymarket.executor import PolymarketExecutor  # noqa: E402
from copytrader.adapters.execution.polymarket.settings import LiveSettings, SignatureType  # noqa: E402
from copytrader.adapters.execution.polymarket.wallet import resolve_funder, wallet_type_of  # noqa: E402
from copytrader.domain.model import CopyIntent, MarketInfo, OrderType, Side  # noqa: E402
from copytrader.entrypoints.config import ConfigError, load_config  # noqa: E402
from copytrader.testing import T0  # noqa: E402
from tests.standins.clob import (  # noqa: E402
    EXCHANGE_V3, ORDER_TYPE, V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, order_hash, recover_order_signer,
)

D = Decimal
KEYS = ["0x" + "4c" * 32, "0x" + "0123456789abcdef" * 4]
CTF_TOKEN = str(10**70 + 12345)


def v2_position(module: int, condition: int, outcome: int) -> str:
    return str((module << 248) | (condition << 104) | outcome)


# (market version, neg_risk, token, expected exchange, expected domain)
EXCHANGES = {
    "ctf": ("v1", False, CTF_TOKEN, V2_EXCHANGE, "2"),
    "neg-risk": ("v1", True, str(10**76 + 7), V2_NEG_RISK_EXCHANGE, "2"),
    "exchange-v3": ("v2", False, v2_position(1, 0xABCDEF << 100, 1), EXCHANGE_V3, "3"),
}


def deposit_wallet_of(address: str) -> str:
    from polymarket._internal.environment import PRODUCTION_CONFIG
    from polymarket._internal.wallet import derive_beacon_deposit_wallet_address

    return derive_beacon_deposit_wallet_address(address, PRODUCTION_CONFIG.wallet_derivation)


def executor_for(key: str, kind: SignatureType, **live) -> PolymarketExecutor:
    funder = deposit_wallet_of(Account.from_key(key).address) if kind is SignatureType.DEPOSIT_WALLET else None
    settings = LiveSettings(host="http://127.0.0.1:9", signature_type=kind, funder=live.pop("funder", funder), **live)
    return PolymarketExecutor(settings, key, None, ManualClock(T0))


def intent(token: str, side: Side, size: str = "12.5", price: str = "0.43", n: int = 0) -> CopyIntent:
    return CopyIntent(id=f"{n:02x}" + "ab" * 15, trade_id="t", follower="f", leader="l", token_id=token,
                      condition_id="c", side=side, size=D(size), limit_price=D(price), leader_price=D(price),
                      order_type=OrderType.FOK, created_at=T0)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("kind", list(SignatureType))
@pytest.mark.parametrize("venue", list(EXCHANGES))
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_every_signed_order_verifies_independently(key, kind, venue, side):
    version, neg_risk, token, exchange, domain = EXCHANGES[venue]
    executor = executor_for(key, kind)
    eoa = Account.from_key(key).address
    market = MarketInfo(token_id=token, condition_id="c", neg_risk=neg_risk, version=version, tick_size=D("0.01"))
    for n, (size, price) in enumerate([("12.5", "0.43"), ("5", "0.99"), ("1234.56", "0.01")]):
        prepared = executor.prepare(intent(token, side, size, price, n), market)
        order = prepared.payload["order"]
        assert (prepared.payload["exchange"], prepared.payload["domainVersion"]) == (exchange, domain)
        assert prepared.payload["negRisk"] is neg_risk and order["tokenId"] == token
        assert order["signatureType"] == int(kind) and order["side"] == side.value
        assert recover_order_signer(order, exchange, version=domain) == eoa
        assert order_hash(order, exchange, version=domain) == prepared.order_id == prepared.payload["orderHash"]
        collateral, shares = int(D(size) * D(price) * 10**6), int(D(size) * 10**6)
        assert (int(order["makerAmount"]), int(order["takerAmount"])) == (
            (collateral, shares) if side is Side.BUY else (shares, collateral))
        if kind is SignatureType.EOA:
            assert order["maker"] == order["signer"] == eoa
        elif kind is SignatureType.DEPOSIT_WALLET:
            # maker = signer = the wallet; 65-byte signature + separator + contents hash + type + length
            assert order["maker"] == order["signer"] == executor.funder != eoa
            assert len(order["signature"]) == 2 + 2 * (65 + 32 + 32 + len(ORDER_TYPE) + 2)
        else:
            assert order["signer"] == eoa and order["maker"] == executor.funder != eoa
            assert wallet_type_of(eoa, order["maker"]) is kind  # derived from the key


def test_the_domain_version_is_part_of_the_signature():
    """A V2 order's signature recovers to the key only under domain "3" on ExchangeV3."""
    version, neg_risk, token, exchange, domain = EXCHANGES["exchange-v3"]
    executor = executor_for(KEYS[0], SignatureType.EOA)
    order = executor.prepare(intent(token, Side.BUY), MarketInfo(token, "c", version=version)).payload["order"]
    eoa = Account.from_key(KEYS[0]).address
    assert recover_order_signer(order, EXCHANGE_V3, version="3") == eoa
    assert recover_order_signer(order, EXCHANGE_V3, version="2") != eoa
    assert recover_order_signer(order, V2_EXCHANGE, version="2") != eoa


@pytest.mark.parametrize("version, token", [("v1", EXCHANGES["exchange-v3"][2]), ("v2", CTF_TOKEN), ("v3", CTF_TOKEN)])
def test_an_id_of_the_other_system_or_an_unknown_version_is_not_signed(version, token):
    executor = executor_for(KEYS[0], SignatureType.EOA)
    with pytest.raises(ValueError, match="not a v|neither v1 nor v2"):
        executor.prepare(intent(token, Side.BUY), MarketInfo(token, "c", version=version))


def test_addresses_are_the_sdks_production_ones():
    from polymarket._internal.environment import PRODUCTION_CONFIG as P

    assert (S.V2_EXCHANGE, S.V2_NEG_RISK_EXCHANGE, S.EXCHANGE_V3, S.POSITION_MANAGER, S.NEG_RISK_ADAPTER, S.PUSD) == (
        P.standard_exchange, P.neg_risk_exchange, P.exchange_v3, P.position_manager, P.neg_risk_adapter,
        P.collateral_token)
    assert (V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, EXCHANGE_V3) == (P.standard_exchange, P.neg_risk_exchange, P.exchange_v3)


class FactoryRpc:
    """eth_call on the deposit wallet factory: its beacon (beacon wallets) or a revert (UUPS)."""

    def __init__(self, beacon: str | None) -> None:
        self.beacon, self.calls = beacon, []

    def eth_call(self, *, to: str, data: str, block: str = "latest") -> str:
        from polymarket._internal.eoa.rpc import JsonRpcCallError

        self.calls.append((to, data))
        if self.beacon is None:
            raise JsonRpcCallError("eth_call", 3, "execution reverted", "0x")
        return "0x" + "00" * 12 + self.beacon[2:].lower()


def test_the_deposit_wallet_is_derived_with_the_factory_asked():
    from polymarket._internal.environment import PRODUCTION_CONFIG as P
    from polymarket._internal.wallet import derive_uups_deposit_wallet_address

    eoa = Account.from_key(KEYS[0]).address
    settings = LiveSettings(signature_type=SignatureType.DEPOSIT_WALLET, rpc_url="http://127.0.0.1:9")
    beacon = FactoryRpc(P.wallet_derivation.deposit_wallet_beacon)
    assert resolve_funder(settings, eoa, beacon) == deposit_wallet_of(eoa)
    assert beacon.calls == [(P.wallet_derivation.deposit_wallet_factory, "0x49493a4d")]
    uups = resolve_funder(settings, eoa, FactoryRpc(None))
    assert uups == derive_uups_deposit_wallet_address(eoa, P.wallet_derivation) != deposit_wallet_of(eoa)
    assert wallet_type_of(eoa, uups) is SignatureType.DEPOSIT_WALLET


def test_a_deposit_wallet_without_funder_or_rpc_is_one_clear_config_error():
    with pytest.raises(ConfigError, match="live.funder.*deposit wallet address.*live.rpc_url"):
        load_config(None, environ={}, overrides={"live": {"signature_type": "deposit_wallet"}})
    cfg = load_config(None, environ={}, overrides={"live": {"signature_type": "deposit_wallet",
                                                            "funder": "0x" + "5d" * 20}})
    assert cfg.live.signature_type is SignatureType.DEPOSIT_WALLET


def test_a_deposit_wallet_the_key_does_not_own_is_refused():
    with pytest.raises(ValueError, match="not the deposit wallet of this key"):
        executor_for(KEYS[0], SignatureType.DEPOSIT_WALLET, funder=deposit_wallet_of(Account.from_key(KEYS[1]).address))
