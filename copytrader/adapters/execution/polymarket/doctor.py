"""`copytrader doctor`: can this setup trade live? One line per check (needs the live extra)."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Callable, Optional

import attrs

from ....domain.model import MICRO_UNITS
from ...streams import redact_url
from .settings import LiveSettings
from .transport import AuthenticatedClob, ClobTransport
from .wallet import resolve_funder

ASSET_TYPES = ("COLLATERAL", "CONDITIONAL", "CONDITIONAL-V2")
# judge(required, values, cached, balance) -> lines with name, ok, message (the
# application's approvals.findings, given by the entrypoint)
Judge = Callable[[list, list, dict, int], list]


@attrs.frozen
class Check:
    name: str
    ok: bool
    message: str


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if "403" in text:
        text += " — requests from this location look geo-blocked by Polymarket"
    return text[:300]


def _attempt(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Exception as exc:  # every failure becomes one clear line
        return Check(name, False, _one_line(exc))


def run_doctor(live: LiveSettings, key: Any, max_skew_s: float = 5.0, judge: Optional[Judge] = None) -> list[Any]:
    """``key``: the private key (an object with ``reveal()``, or None); ``judge``
    turns the approvals read on chain and the CLOB's cache into lines."""
    checks: list[Check] = []
    if key is None:
        return [Check("key", False, "no private key: set COPYTRADER_PRIVATE_KEY or live.key_file (mode 0600)")]
    from eth_account import Account

    signer = Account.from_key(key.reveal())
    try:
        funder = resolve_funder(live, signer.address)
    except ValueError as exc:
        return [Check("wallet type", False, str(exc))]

    def wallet() -> Check:
        from .approvals import classify

        ok, text = classify(live, key.reveal(), funder).check(live.signature_type)
        return Check("wallet type", ok, text)

    checks.append(_attempt("wallet type", wallet))
    clob = ClobTransport(live.host, live.timeout_s)
    authenticated = AuthenticatedClob(clob, signer, live.chain_id)

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
        creds = authenticated.credentials()
        return Check("API credentials", bool(creds.key), "derived (or created) for the signer")

    checks += [_attempt("exchange version", version), _attempt("clock skew", skew),
               _attempt("API credentials", credentials)]
    if not live.rpc_url:
        checks.append(Check("pUSD balance and allowances", False, "set live.rpc_url (a Polygon JSON-RPC URL) to "
                            "check pUSD balance and allowances on chain"))
        return checks

    def chain() -> list[Any]:
        from .approvals import ChainApprovals, ClobBalanceCache, required_approvals
        from .chain import PolygonChain

        poly = PolygonChain(live.rpc_url, live.timeout_s)
        chain_id = poly.chain_id()
        if chain_id != live.chain_id:
            return [Check("chain", False, f"RPC is on chain {chain_id}, expected {live.chain_id}")]
        out: list[Any] = [Check("chain", True, f"chain {chain_id}, block {poly.latest_block()} (POA extraData read)")]
        required = required_approvals(live)
        balance, values = ChainApprovals(live).read(funder, required)
        out.append(Check("pUSD balance", balance > 0, f"{Decimal(balance) / MICRO_UNITS} pUSD at {funder}"
                         + ("" if balance > 0 else ": deposit collateral first")))
        cache = ClobBalanceCache(live, authenticated)
        cached: dict[str, Any] = {}
        for asset_type in ASSET_TYPES:
            try:
                cached[asset_type] = cache.cached(asset_type)
            except Exception as exc:
                cached[asset_type] = _one_line(exc)
        return out + (judge(required, values, cached, balance) if judge else [])

    try:
        checks += chain()
    except Exception as exc:
        checks.append(Check("chain", False, f"{redact_url(live.rpc_url)}: {str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__}"))
    return checks


def summary(checks: list[Any]) -> str:
    failed = [c for c in checks if not c.ok]
    return "all checks passed" if not failed else f"{len(failed)} check(s) failed"
