"""`copytrader doctor`: can this setup trade live? One line per check (needs the live extra)."""
from __future__ import annotations

import time
from typing import Any, Callable

import attrs

from .settings import NEG_RISK_ADAPTER, PUSD, LiveSettings, SignatureType
from .transport import AuthenticatedClob, ClobTransport
from .wallet import CONFIG_NAME, resolve_funder, wallet_type_of


@attrs.frozen
class Check:
    name: str
    ok: bool
    message: str


def _attempt(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Exception as exc:  # every failure becomes one clear line
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if "403" in text:
            text += " — requests from this location look geo-blocked by Polymarket"
        return Check(name, False, text[:300])


def wallet_check(live: LiveSettings, signer: str, funder: str) -> Check:
    """Which wallet the key and funder are (the SDK's classification), and what to set."""
    kind = SignatureType(live.signature_type)
    found = wallet_type_of(signer, funder)
    name = CONFIG_NAME[kind]
    if found is kind:
        return Check("key and funder", True, f"signer {signer}, {name} wallet {funder}"
                     + ("" if kind is SignatureType.EOA else " (orders are made by this wallet)"))
    if found is not None:
        return Check("key and funder", False, f"{funder} is the {CONFIG_NAME[found]} wallet of signer {signer}, "
                     f"but live.signature_type is {name}: set live.signature_type = \"{CONFIG_NAME[found]}\"")
    if kind in (SignatureType.EOA, SignatureType.DEPOSIT_WALLET):
        return Check("key and funder", False, f"{funder} is not the {name} wallet of signer {signer}: set live.funder "
                     "to your own wallet, or leave it empty to derive it from the key")
    return Check("key and funder", True, f"signer {signer}, {name} wallet {funder} (not derivable from the key: "
                 "an older factory's wallet? check it is yours on polymarket.com)")


def run_doctor(live: LiveSettings, key: Any, max_skew_s: float = 5.0) -> list[Check]:
    """``key``: the private key (an object with ``reveal()``, or None)."""
    checks: list[Check] = []
    if key is None:
        return [Check("key", False, "no private key: set COPYTRADER_PRIVATE_KEY or live.key_file (mode 0600)")]
    from eth_account import Account

    signer = Account.from_key(key.reveal())
    try:
        funder = resolve_funder(live, signer.address)
    except ValueError as exc:
        return [Check("key and funder", False, str(exc))]
    checks.append(wallet_check(live, signer.address, funder))
    clob = ClobTransport(live.host, live.timeout_s)

    def version() -> Check:
        v = clob.request("GET", "/version")
        v = v.get("version") if isinstance(v, dict) else v
        return Check("exchange version", v == 2, f"{live.host} signs orders of version {v}"
                     + ("" if v == 2 else ": this copytrader signs V2 orders only"))

    def skew() -> Check:
        before = time.time()
        server = clob.request("GET", "/time")
        server = server.get("time", server.get("timestamp")) if isinstance(server, dict) else server
        delta = float(server) - (before + time.time()) / 2
        ok = abs(delta) <= max_skew_s
        return Check("clock skew", ok, f"local clock is {delta:+.1f} s from the exchange"
                     + ("" if ok else f" (more than {max_skew_s:.0f} s: fix NTP; signed requests will be refused)"))

    def credentials() -> Check:
        creds = AuthenticatedClob(clob, signer, live.chain_id).credentials()
        return Check("API credentials", bool(creds.key), "derived (or created) for the signer")

    checks += [_attempt("exchange version", version), _attempt("clock skew", skew),
               _attempt("API credentials", credentials)]
    if not live.rpc_url:
        checks.append(Check("pUSD balance and allowances", False, "set live.rpc_url (a Polygon JSON-RPC URL) to "
                            "check pUSD balance and allowances on chain"))
        return checks

    def chain() -> list[Check]:
        from .chain import PolygonChain

        poly = PolygonChain(live.rpc_url, live.timeout_s)
        out = []
        chain_id = poly.chain_id()
        if chain_id != live.chain_id:
            return [Check("chain", False, f"RPC is on chain {chain_id}, expected {live.chain_id}")]
        out.append(Check("chain", True, f"chain {chain_id}, block {poly.latest_block()} (POA extraData read)"))
        balance = poly.erc20_balance(PUSD, funder)
        out.append(Check("pUSD balance", balance > 0, f"{balance} pUSD at {funder}"
                         + ("" if balance > 0 else ": deposit collateral first")))
        for label, spender in (("V2 exchange", live.exchange), ("V2 neg-risk exchange", live.neg_risk_exchange),
                               ("neg-risk adapter", NEG_RISK_ADAPTER)):
            allowance = poly.erc20_allowance(PUSD, funder, spender)
            out.append(Check(f"pUSD allowance: {label}", allowance > 0, f"{allowance} to {spender}"
                             + ("" if allowance > 0 else ": approve pUSD for it before trading")))
            approved = poly.approved_for_all(funder, spender)
            out.append(Check(f"outcome tokens approval: {label}", approved,
                             "approved" if approved else f"call setApprovalForAll({spender}) to be able to sell"))
        return out

    try:
        checks += chain()
    except Exception as exc:
        checks.append(Check("chain", False, f"{live.rpc_url}: {str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__}"))
    return checks


def summary(checks: list[Any]) -> str:
    failed = [c for c in checks if not c.ok]
    return "all checks passed" if not failed else f"{len(failed)} check(s) failed"
