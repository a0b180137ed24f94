"""Trading approvals: which ones copy trading needs, which are missing on chain,
whether the CLOB's cached balance/allowance disagrees with the chain, and
sending the missing ones (with a record of every transaction).

The list of approvals comes from the venue adapter (the SDK's own list); this
module judges it and never does I/O itself: readings, the sender and the
journal are given to it.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

import attrs

ERC20, ERC1155 = "ERC20", "ERC1155"
COLLATERAL, CONDITIONAL, CONDITIONAL_V2 = "COLLATERAL", "CONDITIONAL", "CONDITIONAL-V2"
ASSET_TYPES = (COLLATERAL, CONDITIONAL, CONDITIONAL_V2)

# The SDK's setup approves pUSD for its perps deposit contract too: copy trading
# never deposits into perps, and an unlimited allowance nobody uses is only a risk.
NOT_FOR_COPY_TRADING = frozenset({"perps_deposit_contract"})

TOKEN_NAMES = {"collateral_token": "pUSD allowance", "conditional_tokens": "CTF operator",
               "position_manager": "PositionManager operator"}
SPENDER_NAMES = {
    "standard_exchange": "CTF exchange", "neg_risk_exchange": "neg-risk exchange",
    "collateral_adapter": "collateral adapter", "neg_risk_collateral_adapter": "neg-risk collateral adapter",
    "protocol_v2_router": "Router", "exchange_v3": "ExchangeV3", "auto_redeem_operator": "auto-redeem operator",
    "binary_module": "binary module", "neg_risk_module": "neg-risk module",
    "perps_deposit_contract": "perps deposit contract",
}


@attrs.frozen
class Approval:
    """One approval: an ERC-20 allowance of ``token`` to ``spender`` of at least
    ``amount``, or an ERC-1155 operator approval of ``spender`` on ``token``.
    Roles are the names the SDK's environment config gives the contracts."""

    standard: str
    token: str
    token_role: str
    spender: str
    spender_role: str
    amount: int = 0

    @property
    def function(self) -> str:
        return "approve" if self.standard == ERC20 else "setApprovalForAll"

    @property
    def arguments(self) -> tuple[Any, ...]:
        return (self.spender, self.amount) if self.standard == ERC20 else (self.spender, True)

    @property
    def label(self) -> str:
        return f"{TOKEN_NAMES.get(self.token_role, self.token_role)}: " \
               f"{SPENDER_NAMES.get(self.spender_role, self.spender_role)}"

    @property
    def asset_type(self) -> str:
        """The CLOB asset type whose cached allowance this approval is."""
        if self.standard == ERC20:
            return COLLATERAL
        return CONDITIONAL_V2 if self.token_role == "position_manager" else CONDITIONAL


@attrs.frozen
class Reading:
    """An approval as the chain has it: the allowance, or 1/0 for an operator."""

    approval: Approval
    value: int

    @property
    def ok(self) -> bool:
        return self.value >= self.approval.amount if self.approval.standard == ERC20 else bool(self.value)


def readings(required: Iterable[Mapping[str, Any]], values: Iterable[int]) -> list[Reading]:
    """The approvals copy trading needs, with their values on chain: ``required``
    is the venue's list (fields of ``Approval``), ``values`` one per entry."""
    out = [Reading(Approval(**fields), int(value)) for fields, value in zip(required, values, strict=True)]
    return [r for r in out if r.approval.spender_role not in NOT_FOR_COPY_TRADING]


def missing(readings: Iterable[Reading]) -> list[Approval]:
    return [r.approval for r in readings if not r.ok]


def asset_types(approvals: Iterable[Approval]) -> list[str]:
    """The CLOB asset types these approvals concern, in a stable order."""
    concerned = {a.asset_type for a in approvals}
    return [t for t in ASSET_TYPES if t in concerned]


def cache_differences(asset_type: str, cached: Mapping[str, Any], readings: Iterable[Reading],
                      chain_balance: Optional[int] = None) -> list[str]:
    """Where the CLOB's cached answer for ``asset_type`` ({"balance", "allowances":
    {address: amount}}) disagrees with the chain: the balance (collateral only,
    when ``chain_balance`` is given) and every allowance the CLOB reports that the
    chain was read for (set or not set)."""
    out = []
    if chain_balance is not None and int(cached.get("balance", 0)) != chain_balance:
        out.append(f"balance {cached.get('balance', 0)} (chain {chain_balance})")
    allowances = {str(k).lower(): int(v) for k, v in (cached.get("allowances") or {}).items()}
    for r in readings:
        if r.approval.asset_type != asset_type or r.approval.spender.lower() not in allowances:
            continue
        if (allowances[r.approval.spender.lower()] > 0) != (r.value > 0):
            out.append(f"{r.approval.label} {'set' if allowances[r.approval.spender.lower()] else 'not set'} "
                       f"(chain: {'set' if r.value else 'not set'})")
    return out


@attrs.frozen
class Finding:
    name: str
    ok: bool
    message: str


def findings(found: Iterable[Reading], cached: Mapping[str, Any], balance: int) -> list[Finding]:
    """``doctor``'s lines: one per approval, one per CLOB asset type (``cached``:
    asset type -> the CLOB's answer, or the text of its error)."""
    found = list(found)
    out = []
    for r in found:
        a = r.approval
        if r.ok:
            text = "set" if a.standard == ERC1155 else f"{'max' if r.value == a.amount else r.value} to {a.spender}"
        else:
            text = (f"missing: {a.function}({a.spender}) on {a.token}" if a.standard == ERC1155 else
                    f"{r.value} to {a.spender}, below {'max' if a.amount == 2**256 - 1 else a.amount}") \
                + ": `copytrader approve` shows the transaction"
        out.append(Finding(a.label, r.ok, text))
    for asset_type, answer in cached.items():
        name = f"CLOB balance/allowance cache: {asset_type}"
        if isinstance(answer, str):
            out.append(Finding(name, False, f"GET /balance-allowance: {answer}"))
            continue
        diffs = cache_differences(asset_type, answer, found, balance if asset_type == COLLATERAL else None)
        out.append(Finding(name, not diffs, "agrees with the chain" if not diffs else
                           f"differs from the chain ({'; '.join(diffs)}): `copytrader approve --live --yes` "
                           "refreshes it (/balance-allowance/update)"))
    return out


class ApprovalSender(Protocol):
    def submit(self, approval: Approval) -> str:
        """Send the transaction; return its hash."""

    def confirm(self, tx_hash: str) -> None:
        """Wait for its receipt; raise unless it succeeded."""


class RelayedSender(Protocol):
    """A wallet whose transactions go through Polymarket's relayer (proxy, safe, deposit wallet)."""

    def submit_batch(self, approvals: list[Approval]) -> tuple[str, Optional[str]]:
        """Submit one transaction making every approval: (relayer transaction id, hash if known)."""

    def wait(self, transaction_id: str) -> tuple[str, Optional[str], str]:
        """Wait for its terminal state: (state, transaction hash, the relayer's reason for a
        failure); raise when the outcome is unknown (not confirmed in time, HTTP error)."""


CONFIRMED = "STATE_CONFIRMED"


@attrs.frozen
class Sent:
    approval: Approval
    tx_hash: Optional[str]
    transaction_id: Optional[str] = None  # the relayer's id (relayed wallets)


class ApprovalFailed(Exception):
    """``sent``: the transactions sent before the failure (recorded)."""

    def __init__(self, message: str, sent: list[Sent]) -> None:
        super().__init__(message)
        self.sent = sent


def send_missing(todo: Iterable[Approval], sender: ApprovalSender, record: Callable[[dict], None],
                 wallet: str, now: Callable[[], float]) -> list[Sent]:
    """Send each approval in turn, one at a time (each confirmed before the
    next), recording the hash once sent and again once confirmed."""
    sent: list[Sent] = []
    for approval in todo:
        row = {"wallet": wallet, "token": approval.token, "function": approval.function,
               "spender": approval.spender, "label": approval.label}
        try:
            tx_hash = sender.submit(approval)
        except Exception as exc:
            raise ApprovalFailed(f"{approval.label}: not sent: {_first_line(exc)}", sent) from None
        record({**row, "at": now(), "tx_hash": tx_hash, "status": "sent"})
        sent.append(Sent(approval, tx_hash))
        try:
            sender.confirm(tx_hash)
        except Exception as exc:
            record({**row, "at": now(), "tx_hash": tx_hash, "status": "unconfirmed", "error": _first_line(exc)})
            raise ApprovalFailed(f"{approval.label}: sent as {tx_hash} but not confirmed: {_first_line(exc)}",
                                 sent) from None
        record({**row, "at": now(), "tx_hash": tx_hash, "status": "confirmed"})
    return sent


def send_relayed(todo: Iterable[Approval], sender: RelayedSender, record: Callable[[dict], None],
                 wallet: str, now: Callable[[], float]) -> list[Sent]:
    """Send every approval in one relayed transaction and wait for its terminal state,
    recording each approval when submitted and again at the outcome (confirmed, failed,
    unconfirmed), with the relayer's transaction id, state and hash."""
    todo = list(todo)
    rows = [{"wallet": wallet, "token": a.token, "function": a.function, "spender": a.spender, "label": a.label}
            for a in todo]

    def record_all(**fields: Any) -> None:
        for row in rows:
            record({**row, "at": now(), **fields})
    try:
        transaction_id, tx_hash = sender.submit_batch(todo)
    except Exception as exc:  # nothing known to be sent: recorded, as a 5xx may hide an acceptance
        record_all(status="not sent", error=_first_line(exc))
        raise ApprovalFailed(f"{len(todo)} approval(s) not sent through the relayer: {_first_line(exc)}", []) from None
    record_all(status="sent", transaction_id=transaction_id, state="STATE_NEW", tx_hash=tx_hash)
    sent = [Sent(a, tx_hash, transaction_id) for a in todo]
    try:
        state, tx_hash, reason = sender.wait(transaction_id)
    except Exception as exc:
        record_all(status="unconfirmed", transaction_id=transaction_id, tx_hash=tx_hash, error=_first_line(exc))
        raise ApprovalFailed(f"relayer transaction {transaction_id} ({len(todo)} approval(s)) was submitted but its "
                             f"outcome is unknown: {_first_line(exc)}", sent) from None
    sent = [Sent(a, tx_hash, transaction_id) for a in todo]
    if state != CONFIRMED:
        record_all(status="failed", transaction_id=transaction_id, state=state, tx_hash=tx_hash, error=reason)
        raise ApprovalFailed(f"the relayer answered {state} for transaction {transaction_id} ({len(todo)} "
                             f"approval(s)){': ' + reason if reason else ''}", sent)
    record_all(status="confirmed", transaction_id=transaction_id, state=state, tx_hash=tx_hash)
    return sent


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:300]
