"""`copytrader approve` against the CLOB, Polygon JSON-RPC and relayer stand-ins: the
SDK's trading approvals, shown as exact transactions, sent only with --live --yes
(from an EOA: signed transactions decoded and applied by the RPC stand-in; from a
proxy, safe or deposit wallet: one relayed transaction, its signature and auth
checked by the relayer stand-in, its calls applied to the RPC stand-in), recorded,
and the CLOB's cache refreshed."""
from __future__ import annotations

import base64
import json
import stat

import pytest
from click.testing import CliRunner
from eth_abi import decode
from eth_utils import keccak

from copytrader.entrypoints.cli import main

from tests.standins.relayer import RelayerStandIn

from .conftest import ADDRESS, KEY
from .test_doctor import (  # noqa: F401 (the rpc fixture)
    CTF, EXCHANGE, EXCHANGE_V3, MAX, OPERATORS, POSITION_MANAGER, PUSD, PUSD_SPENDERS, _env, _fund, doctor, rpc,
    wallets,
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


RELAYED = {"poly_proxy": "PROXY", "gnosis_safe": "SAFE", "deposit_wallet": "WALLET"}
BUILDER = ("019a-builder-key", base64.urlsafe_b64encode(b"s" * 32).decode(), "builder-passphrase")


@pytest.fixture
def relayer(rpc):
    with RelayerStandIn(rpc, key_owner=ADDRESS, builder=BUILDER) as server:
        yield server


def relayed(relayer, kind, key=True, **extra):
    """The environment of a ``kind`` wallet whose approvals go through the relayer stand-in
    (polled every millisecond, at most 5 times)."""
    return {"COPYTRADER_LIVE__SIGNATURE_TYPE": kind, "COPYTRADER_LIVE__FUNDER": wallets()[kind],
            "COPYTRADER_LIVE__RELAYER_URL": relayer.url, "COPYTRADER_LIVE__RELAYER_POLL_MS": "1",
            "COPYTRADER_LIVE__RELAYER_MAX_POLLS": "5",
            **({"COPYTRADER_RELAYER_API_KEY": relayer.api_key} if key else {}), **extra}


def _rows(tmp_path):
    return [json.loads(line) for line in (tmp_path / "approvals.jsonl").read_text().splitlines()]


def _no_secret(relayer, *texts):
    for text in texts:
        assert KEY[2:] not in text and relayer.api_key not in text and BUILDER[1] not in text and BUILDER[2] not in text


@pytest.mark.parametrize("kind", ["poly_proxy", "gnosis_safe", "deposit_wallet"])
def test_a_relayer_wallet_sends_its_approvals_in_one_relayed_transaction_once(clob, rpc, relayer, tmp_path, kind):
    wallet = wallets()[kind]
    relayer.add_wallet(ADDRESS, wallet, kind)
    clob.funders[(ADDRESS.lower(), ("eoa", "poly_proxy", "gnosis_safe", "deposit_wallet").index(kind))] = wallet
    env = relayed(relayer, kind)
    dry = approve(clob, rpc, tmp_path, env=env)
    assert dry.exit_code == 0 and len(_listed(dry.output)) == 16 and not relayer.submitted
    assert "through Polymarket's relayer" in dry.output and "dry run: nothing sent" in dry.output

    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 0, res.output
    assert [e["type"] for e in relayer.submitted] == [RELAYED[kind]] and not relayer.rejections
    assert not rpc.transactions  # gasless: nothing sent from the key's own address
    w = wallet.lower()
    assert all(rpc.allowances.get((PUSD.lower(), w, s.lower())) == MAX for s in PUSD_SPENDERS)
    assert (PUSD.lower(), w, PERPS_DEPOSIT.lower()) not in rpc.allowances
    assert rpc.approvals == {(t.lower(), w, o.lower()) for t, o in OPERATORS}
    (tx_id, tx), = relayer.transactions.items()
    assert tx["state"] == "STATE_CONFIRMED" and f"sent {tx['transaction_hash']}" in res.output and tx_id in res.output
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["sent"] * 16 + ["confirmed"] * 16
    assert {(r["transaction_id"], r["state"], r["tx_hash"]) for r in rows[16:]} == \
        {(tx_id, "STATE_CONFIRMED", tx["transaction_hash"])}
    assert {r["wallet"] for r in rows} == {wallet} and len({(r["token"], r["spender"]) for r in rows}) == 16
    assert [k for k in clob.balance_updates] == [(w, t) for t in ("COLLATERAL", "CONDITIONAL", "CONDITIONAL-V2")]
    _no_secret(relayer, res.output, (tmp_path / "approvals.jsonl").read_text())
    assert {h.get("RELAYER_API_KEY") for m, p, h in relayer.requests if p == "/submit"} == {relayer.api_key}

    again = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert again.exit_code == 0 and "nothing to approve" in again.output and len(relayer.submitted) == 1
    _fund(rpc, wallet)  # a balance, so that doctor's lines can all pass
    res, checks = doctor(clob, rpc, env=env)
    approval_lines = {n: c for n, c in checks.items() if "allowance:" in n or "operator:" in n}
    assert len(approval_lines) == 16 and all(c["ok"] for c in approval_lines.values()), res.output


def test_the_stand_in_checks_each_signature_independently(clob, rpc, relayer, tmp_path):
    from tests.standins.relayer import recover_deposit_wallet_signer, recover_proxy_signer, recover_safe_signer

    for kind in RELAYED:
        relayer.add_wallet(ADDRESS, wallets()[kind], kind)
        assert approve(clob, rpc, tmp_path, "--live", "--yes", env=relayed(relayer, kind)).exit_code == 0
    proxy, safe, batch = relayer.submitted
    assert recover_proxy_signer(proxy) == ADDRESS
    assert recover_proxy_signer({**proxy, "data": proxy["data"][:-2] + "ff"}) != ADDRESS
    p = batch["depositWalletParams"]
    args = (p["depositWallet"], int(batch["nonce"]), int(p["deadline"]))
    assert recover_deposit_wallet_signer(*args, p["calls"], batch["signature"]) == ADDRESS
    assert recover_deposit_wallet_signer(*args, p["calls"][1:], batch["signature"]) != ADDRESS
    op = int(safe["signatureParams"]["operation"])
    assert op == 1  # 16 calls: a delegatecall to MultiSend
    assert recover_safe_signer(safe["proxyWallet"], safe["to"], safe["data"], 0, op, int(safe["nonce"]),
                               safe["signature"]) == ADDRESS
    assert recover_safe_signer(safe["proxyWallet"], safe["to"], safe["data"], 0, op, int(safe["nonce"]) + 1,
                               safe["signature"]) != ADDRESS


def test_a_builder_key_authenticates_with_its_hmac_headers(clob, rpc, relayer, tmp_path):
    relayer.add_wallet(ADDRESS, wallets()["deposit_wallet"], "deposit_wallet")
    env = relayed(relayer, "deposit_wallet", key=False, COPYTRADER_BUILDER_API_KEY=BUILDER[0],
                  COPYTRADER_BUILDER_SECRET=BUILDER[1], COPYTRADER_BUILDER_PASSPHRASE=BUILDER[2])
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 0, res.output
    headers = [h for m, p, h in relayer.requests if p == "/submit"]
    assert len(headers) == 1 and headers[0]["POLY_BUILDER_API_KEY"] == BUILDER[0]
    _no_secret(relayer, res.output, (tmp_path / "approvals.jsonl").read_text())
    partial = approve(clob, rpc, tmp_path, "--live", "--yes", env={**env, "COPYTRADER_BUILDER_SECRET": ""})
    assert partial.exit_code == 2 and "missing COPYTRADER_BUILDER_SECRET" in partial.output
    _no_secret(relayer, partial.output)


def test_a_relayer_key_file_must_be_0600(clob, rpc, relayer, tmp_path):
    relayer.add_wallet(ADDRESS, wallets()["poly_proxy"], "poly_proxy")
    key_file = tmp_path / "relayer.key"
    key_file.write_text(f"# Settings > API Keys\nRELAYER_API_KEY={relayer.api_key}\n")
    key_file.chmod(0o644)
    env = relayed(relayer, "poly_proxy", key=False, COPYTRADER_LIVE__RELAYER_KEY_FILE=str(key_file))
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 2 and "live.relayer_key_file" in res.output and "chmod 600" in res.output
    key_file.chmod(0o600)
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 0 and len(relayer.submitted) == 1, res.output
    _no_secret(relayer, res.output)


def test_config_check_shows_the_relayer_key_redacted():
    env = {"COPYTRADER_CONFIG": None, "COPYTRADER_RELAYER_API_KEY": "relayer-key-0190b317"}
    for args in (["config", "check"], ["config", "check", "--json"]):
        res = CliRunner().invoke(main, args, env=env)
        assert res.exit_code == 0 and "relayer-key-0190b317" not in res.output and "***redacted***" in res.output


def test_without_a_relayer_key_the_dry_run_lists_and_live_names_the_setting(clob, rpc, relayer, tmp_path):
    relayer.add_wallet(ADDRESS, wallets()["deposit_wallet"], "deposit_wallet")
    env = relayed(relayer, "deposit_wallet", key=False)
    dry = approve(clob, rpc, tmp_path, env=env)
    assert dry.exit_code == 0 and len(_listed(dry.output)) == 16 and "COPYTRADER_RELAYER_API_KEY" in dry.output
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 2 and "nothing sent: the relayer needs an API key" in res.output
    assert "COPYTRADER_RELAYER_API_KEY" in res.output and "live.relayer_key_file" in res.output
    assert not relayer.requests and not (tmp_path / "approvals.jsonl").exists() and "Traceback" not in res.output


def test_a_key_the_relayer_refuses_is_one_sentence(clob, rpc, relayer, tmp_path):
    relayer.add_wallet(ADDRESS, wallets()["gnosis_safe"], "gnosis_safe")
    res = approve(clob, rpc, tmp_path, "--live", "--yes",
                  env=relayed(relayer, "gnosis_safe", COPYTRADER_RELAYER_API_KEY="not-the-key"))
    assert res.exit_code == 1 and "answered HTTP 401: invalid authorization" in res.output
    assert len([line for line in res.output.splitlines() if line.startswith("Error")]) == 1
    assert "not-the-key" not in res.output and "not-the-key" not in (tmp_path / "approvals.jsonl").read_text()
    assert [r["status"] for r in _rows(tmp_path)] == ["not sent"] * 16


def test_a_failed_relayed_transaction_is_one_sentence_recorded_and_sent_again_next_time(clob, rpc, relayer, tmp_path):
    wallet = wallets()["deposit_wallet"]
    relayer.add_wallet(ADDRESS, wallet, "deposit_wallet")
    env = relayed(relayer, "deposit_wallet")
    relayer.inject("POST /submit", "fail")
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 1 and "the relayer answered STATE_FAILED for transaction" in res.output
    assert "execution reverted: GS013" in res.output and "Traceback" not in res.output
    rows = _rows(tmp_path)
    (tx_id, tx), = relayer.transactions.items()
    assert [r["status"] for r in rows] == ["sent"] * 16 + ["failed"] * 16
    assert {(r["transaction_id"], r["state"], r["tx_hash"]) for r in rows[16:]} == \
        {(tx_id, "STATE_FAILED", tx["transaction_hash"])}
    assert not any(o == wallet.lower() for _, o, _ in rpc.approvals) and not clob.balance_updates
    again = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert again.exit_code == 0 and len(relayer.submitted) == 2, again.output


def test_a_relayer_error_or_a_transaction_that_never_confirms_is_one_sentence(clob, rpc, relayer, tmp_path):
    relayer.add_wallet(ADDRESS, wallets()["poly_proxy"], "poly_proxy")
    env = relayed(relayer, "poly_proxy")
    relayer.inject("POST /submit", "500")
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    assert res.exit_code == 1 and "16 approval(s) not sent through the relayer" in res.output
    assert "answered HTTP 500: upstream" in res.output and not relayer.submitted
    relayer.inject("POST /submit", "stuck")
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=env)
    (tx_id, tx), = relayer.transactions.items()
    assert res.exit_code == 1 and f"relayer transaction {tx_id} (16 approval(s)) was submitted" in res.output
    assert "not confirmed after 5 polls every 1 ms" in res.output and tx["state"] == "STATE_EXECUTED"
    assert [r["status"] for r in _rows(tmp_path)] == ["not sent"] * 16 + ["sent"] * 16 + ["unconfirmed"] * 16
    assert len([line for line in res.output.splitlines() if line.startswith("Error")]) == 1


def test_an_undeployed_deposit_wallet_is_deployed_first_and_an_undeployed_safe_is_refused(clob, rpc, relayer,
                                                                                            tmp_path):
    relayer.add_wallet(ADDRESS, wallets()["deposit_wallet"], "deposit_wallet", deployed=False)
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=relayed(relayer, "deposit_wallet"))
    assert res.exit_code == 0, res.output
    assert [e["type"] for e in relayer.submitted] == ["WALLET-CREATE", "WALLET"]
    relayer.add_wallet(ADDRESS, wallets()["gnosis_safe"], "gnosis_safe", deployed=False)
    res = approve(clob, rpc, tmp_path, "--live", "--yes", env=relayed(relayer, "gnosis_safe"))
    assert res.exit_code == 1 and "does not exist" in res.output and len(relayer.submitted) == 2


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
