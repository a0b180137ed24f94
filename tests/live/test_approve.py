"""`copytrader approve` against the CLOB and Polygon JSON-RPC stand-ins: the
SDK's trading approvals, shown as exact transactions, sent from an EOA only
with --live --yes (signed transactions decoded and applied by the RPC
stand-in), recorded, and the CLOB's cache refreshed."""
from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner
from eth_abi import decode
from eth_utils import keccak

from copytrader.entrypoints.cli import main

from .conftest import ADDRESS, KEY
from .test_doctor import (  # noqa: F401 (the rpc fixture)
    CTF, EXCHANGE, EXCHANGE_V3, MAX, OPERATORS, POSITION_MANAGER, PUSD, PUSD_SPENDERS, _env, _fund, rpc, wallets,
)

PERPS_DEPOSIT = "0xDCa4af75705dbB50f62437045afF9921947917d2"


def approve(clob, rpc, tmp_path, *args, env=None):
    base = {**_env(clob, rpc, env=env), "COPYTRADER_STORE__PATH": str(tmp_path / "copytrader.db")}
    return CliRunner().invoke(main, ["approve", *args], env=base)


def _listed(output: str) -> list[tuple[str, str, str]]:
    """(to, function, first argument) of each transaction shown, checked against its calldata."""
    lines = output.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("    to "):
            to, call = line.split()[1], line.split()[2]
            function, first = call.split("(")[0], call.split("(")[1].rstrip(",")
            data = bytes.fromhex(lines[i + 1].split("calldata 0x")[1])
            signature = "approve(address,uint256)" if function == "approve" else "setApprovalForAll(address,bool)"
            assert data[:4] == keccak(text=signature)[:4]
            spender, value = decode(["address", "uint256" if function == "approve" else "bool"], data[4:])
            assert spender.lower() == first.lower() and value in (MAX, True)
            out.append((to.lower(), function, first.lower()))
    return out


def test_the_approval_list_is_the_sdks_without_its_perps_deposit():
    from copytrader.adapters.execution.polymarket.approvals import required_approvals
    from copytrader.adapters.execution.polymarket.settings import LiveSettings

    required = [(a["token"].lower(), a["spender"].lower()) for a in required_approvals(LiveSettings())]
    expected = [(PUSD.lower(), s.lower()) for s in PUSD_SPENDERS] + [(PUSD.lower(), PERPS_DEPOSIT.lower())] + \
        [(t.lower(), o.lower()) for t, o in OPERATORS]
    assert required == expected  # a new SDK release with another list fails here


def test_dry_run_lists_exactly_the_missing_approvals_and_sends_nothing(clob, rpc, tmp_path):
    _fund(rpc)
    o = ADDRESS.lower()
    del rpc.allowances[(PUSD.lower(), o, EXCHANGE_V3.lower())]
    rpc.approvals.discard((POSITION_MANAGER.lower(), o, EXCHANGE_V3.lower()))
    rpc.approvals.discard((CTF.lower(), o, EXCHANGE.lower()))
    res = approve(clob, rpc, tmp_path)
    assert res.exit_code == 0, res.output
    assert sorted(_listed(res.output)) == sorted([
        (PUSD.lower(), "approve", EXCHANGE_V3.lower()), (CTF.lower(), "setApprovalForAll", EXCHANGE.lower()),
        (POSITION_MANAGER.lower(), "setApprovalForAll", EXCHANGE_V3.lower())])
    assert "dry run: nothing sent" in res.output and "--live --yes" in res.output
    assert "eth_sendRawTransaction" not in rpc.calls and not (tmp_path / "approvals.jsonl").exists()
    assert not clob.balance_updates


def test_live_yes_sends_them_records_them_and_a_second_run_sends_nothing(clob, rpc, tmp_path):
    res = approve(clob, rpc, tmp_path, "--live", "--yes")
    assert res.exit_code == 0, res.output
    assert len(rpc.transactions) == len(PUSD_SPENDERS) + len(OPERATORS) == 16
    assert {t["from"] for t in rpc.transactions} == {ADDRESS.lower()} and {t["chain_id"] for t in rpc.transactions} == {137}
    assert [t["nonce"] for t in rpc.transactions] == list(range(16))
    assert all((PUSD.lower(), ADDRESS.lower(), s.lower()) in rpc.allowances for s in PUSD_SPENDERS)
    assert (PUSD.lower(), ADDRESS.lower(), PERPS_DEPOSIT.lower()) not in rpc.allowances
    assert rpc.approvals == {(t.lower(), ADDRESS.lower(), o.lower()) for t, o in OPERATORS}
    for t in rpc.transactions:
        assert f"sent {t['hash']}" in res.output
    journal = tmp_path / "approvals.jsonl"
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["tx_hash"] for r in rows if r["status"] == "confirmed"] == [t["hash"] for t in rpc.transactions]
    assert KEY[2:] not in journal.read_text() and not stat.S_IMODE(journal.stat().st_mode) & 0o022
    assert [k[1] for k in clob.balance_updates] == ["COLLATERAL", "CONDITIONAL", "CONDITIONAL-V2"]
    assert KEY[2:] not in res.output

    again = approve(clob, rpc, tmp_path, "--live", "--yes")
    assert again.exit_code == 0 and "nothing to approve" in again.output
    assert len(rpc.transactions) == 16


def test_live_without_yes_sends_nothing_and_says_how_to_proceed(clob, rpc, tmp_path):
    res = approve(clob, rpc, tmp_path, "--live")
    assert res.exit_code == 2
    assert "nothing sent: add --yes to send these 16 transaction(s)" in res.output
    assert not rpc.transactions and "eth_sendRawTransaction" not in rpc.calls


@pytest.mark.parametrize("kind", ["poly_proxy", "gnosis_safe", "deposit_wallet"])
def test_a_relayer_wallet_is_shown_but_refused_in_one_sentence(clob, rpc, tmp_path, kind):
    env = {"COPYTRADER_LIVE__SIGNATURE_TYPE": kind, "COPYTRADER_LIVE__FUNDER": wallets()[kind]}
    dry = approve(clob, rpc, tmp_path, env=env)
    assert dry.exit_code == 0 and len(_listed(dry.output)) == 16
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 2 and not rpc.transactions
    assert "Polymarket's app" in res.output and 'live.signature_type = "eoa"' in res.output
    assert "Traceback" not in res.output


def test_a_signature_type_that_disagrees_with_the_funder_is_refused(clob, rpc, tmp_path):
    res = approve(clob, rpc, tmp_path, env={"COPYTRADER_LIVE__SIGNATURE_TYPE": "poly_proxy",
                                            "COPYTRADER_LIVE__FUNDER": wallets()["gnosis_safe"]})
    assert res.exit_code == 2 and 'set live.signature_type = "gnosis_safe"' in res.output


def test_a_failing_rpc_is_one_sentence_and_a_failure(clob, rpc, tmp_path):
    rpc.inject("rpc-error")
    res = approve(clob, rpc, tmp_path)
    assert res.exit_code == 1 and "cannot read approvals from live.rpc_url" in res.output
    assert "limit exceeded" in res.output and "Traceback" not in res.output
    res = approve(clob, rpc, tmp_path, env={"COPYTRADER_LIVE__RPC_URL": "http://127.0.0.1:9"})
    assert res.exit_code == 1 and "http://127.0.0.1:9" in res.output
    assert len([line for line in res.output.splitlines() if line.startswith("Error")]) == 1


def test_a_transaction_the_node_refuses_stops_with_what_was_sent(clob, rpc, tmp_path):
    _fund(rpc)
    o = ADDRESS.lower()
    del rpc.allowances[(PUSD.lower(), o, EXCHANGE_V3.lower())]
    rpc.approvals.discard((CTF.lower(), o, EXCHANGE.lower()))
    rpc.nonces[o] = 0
    sent_raw = rpc._send_raw

    def refuse_second(params):
        if rpc.transactions:
            raise ValueError("insufficient funds for gas * price + value")
        return sent_raw(params)
    rpc._send_raw = refuse_second
    res = approve(clob, rpc, tmp_path, "--live", "--yes")
    assert res.exit_code == 1 and len(rpc.transactions) == 1
    assert f"sent {rpc.transactions[0]['hash']}" in res.output
    assert "CTF operator: CTF exchange: not sent" in res.output and "insufficient funds" in res.output
    rows = [json.loads(line) for line in (tmp_path / "approvals.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["sent", "confirmed"]
