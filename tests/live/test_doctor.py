"""`copytrader doctor` against the CLOB and Polygon JSON-RPC stand-ins."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from copytrader.adapters.execution.polymarket.chain import CONDITIONAL_TOKENS
from copytrader.adapters.execution.polymarket.settings import (
    NEG_RISK_ADAPTER, PUSD, V2_EXCHANGE, V2_NEG_RISK_EXCHANGE,
)
from copytrader.entrypoints.cli import main
from tests.standins.rpc import RpcStandIn

from .conftest import ADDRESS, KEY

SPENDERS = [V2_EXCHANGE, V2_NEG_RISK_EXCHANGE, NEG_RISK_ADAPTER]


@pytest.fixture
def rpc():
    with RpcStandIn() as server:
        yield server


def _fund(rpc, owner=ADDRESS):
    o = owner.lower()
    rpc.balances[(PUSD.lower(), o)] = 25_500_000
    for spender in SPENDERS:
        rpc.allowances[(PUSD.lower(), o, spender.lower())] = 2**255
    rpc.approvals = {(CONDITIONAL_TOKENS.lower(), o, s.lower()) for s in SPENDERS}


def doctor(clob, rpc, *extra, key=KEY, env=None):
    base = {"COPYTRADER_CONFIG": None, "COPYTRADER_LIVE__HOST": clob.url, "COPYTRADER_LIVE__TIMEOUT_S": "2",
            "COPYTRADER_LIVE__RPC_URL": rpc.url, "COPYTRADER_PRIVATE_KEY": key, **(env or {})}
    res = CliRunner().invoke(main, ["doctor", "--json", *extra], env=base)
    return res, {c["name"]: c for c in json.loads(res.stdout)} if res.stdout.strip().startswith("[") else {}


def test_a_funded_approved_setup_passes(clob, rpc):
    _fund(rpc)
    res, checks = doctor(clob, rpc)
    assert res.exit_code == 0, res.output
    assert checks["pUSD balance"]["message"].startswith("25.5 pUSD")
    assert "POA extraData" in checks["chain"]["message"] and "eth_getBlockByNumber" in rpc.calls
    assert checks["API credentials"]["ok"] and checks["exchange version"]["ok"] and checks["clock skew"]["ok"]
    assert KEY not in res.output and KEY[2:] not in res.output


def test_missing_allowance_and_balance_are_named(clob, rpc):
    res, checks = doctor(clob, rpc)
    assert res.exit_code == 1
    assert not checks["pUSD balance"]["ok"] and "deposit" in checks["pUSD balance"]["message"]
    assert "approve pUSD" in checks["pUSD allowance: V2 neg-risk exchange"]["message"]
    assert "setApprovalForAll" in checks["outcome tokens approval: V2 exchange"]["message"]


def test_proxy_wallet_is_checked_on_chain_for_the_funder(clob, rpc):
    funder = "0x" + "5a" * 20
    _fund(rpc, funder)
    res, checks = doctor(clob, rpc, env={"COPYTRADER_LIVE__SIGNATURE_TYPE": "poly_proxy",
                                         "COPYTRADER_LIVE__FUNDER": funder})
    assert res.exit_code == 0, res.output
    assert funder in checks["pUSD balance"]["message"].lower()


def test_clock_skew_and_geo_block_are_explained(clob, rpc):
    _fund(rpc)
    clob.time_offset_s = 90
    res, checks = doctor(clob, rpc)
    assert res.exit_code == 1 and "fix NTP" in checks["clock skew"]["message"]
    clob.time_offset_s = 0
    clob.geo_blocked = True
    res, checks = doctor(clob, rpc)
    assert res.exit_code == 1 and "geo-blocked" in checks["exchange version"]["message"]


def test_wrong_chain_and_unreachable_rpc(clob, rpc):
    rpc.chain_id = 80002
    res, checks = doctor(clob, rpc)
    assert "expected 137" in checks["chain"]["message"]
    res, checks = doctor(clob, rpc, env={"COPYTRADER_LIVE__RPC_URL": "http://127.0.0.1:9"})
    assert res.exit_code == 1 and "127.0.0.1:9" in checks["chain"]["message"]


def test_no_key_is_one_clear_failure(clob, rpc):
    res, checks = doctor(clob, rpc, key=None)
    assert res.exit_code == 1 and "COPYTRADER_PRIVATE_KEY" in checks["key"]["message"]


def test_web3_without_the_poa_middleware_cannot_read_polygon_blocks(rpc):
    # why the prototype's live trade was blocked, and why the middleware is injected
    from web3 import HTTPProvider, Web3
    from web3.exceptions import ExtraDataLengthError
    bare = Web3(HTTPProvider(rpc.url))
    with pytest.raises(ExtraDataLengthError):
        bare.eth.get_block("latest")


def test_doctor_names_the_wallet_type_of_key_and_funder():
    from polymarket._internal.environment import PRODUCTION_CONFIG as P
    from polymarket._internal.wallet import derive_proxy_wallet_address

    from copytrader.adapters.execution.polymarket.doctor import wallet_check
    from copytrader.adapters.execution.polymarket.settings import LiveSettings, SignatureType
    from tests.live.test_signing import deposit_wallet_of

    proxy = derive_proxy_wallet_address(ADDRESS, P.wallet_derivation)
    wrong = wallet_check(LiveSettings(signature_type=SignatureType.GNOSIS_SAFE, funder=proxy), ADDRESS, proxy)
    assert not wrong.ok and 'set live.signature_type = "poly_proxy"' in wrong.message
    dw = deposit_wallet_of(ADDRESS)
    right = wallet_check(LiveSettings(signature_type=SignatureType.DEPOSIT_WALLET, funder=dw), ADDRESS, dw)
    assert right.ok and f"deposit_wallet wallet {dw}" in right.message
    other = wallet_check(LiveSettings(signature_type=SignatureType.EOA), ADDRESS, "0x" + "66" * 20)
    assert not other.ok and "not the eoa wallet" in other.message
