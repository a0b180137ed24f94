"""A redemption of one resolved market's outcome tokens for pUSD: the record
that makes it crash-safe and exactly once.

It is committed (``requested``) before anything is sent, and moves on as each
step is known: ``sent`` (a transaction hash or a relayer transaction id),
``mined`` (a successful receipt / STATE_MINED or later), ``paid`` (the ledger
balance went to zero: the payout is booked, as our receipt's pUSD transfer
shows it or, redeemed by someone else, as the market pays), or ``failed``
with the reason. A successful receipt alone is never proof of payout: a
redeem of tokens already burned succeeds and pays nothing.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional

import attrs

from .model import MICRO_UNITS, ZERO, stable_id

REQUESTED, SENT, MINED, PAID, FAILED = "requested", "sent", "mined", "paid", "failed"
STATES = (REQUESTED, SENT, MINED, PAID, FAILED)
UNFINISHED = (REQUESTED, SENT, MINED)
EOA, RELAYER = "eoa", "relayer"


def redemption_id(condition_id: str, wallet: str, burn: bool = False) -> str:
    """One record per market and wallet (and one per burn of its losing tokens): a
    second redemption of it is the same record."""
    return stable_id("burn" if burn else "redemption", condition_id.lower(), wallet.lower())


@attrs.frozen
class Call:
    """One contract call as it is sent (and shown by ``copytrader redeem``)."""

    to: str
    function: str
    arguments: tuple[str, ...] = attrs.field(default=(), converter=lambda args: tuple(str(a) for a in args))
    data: str = "0x"


@attrs.frozen
class Redemption:
    id: str
    condition_id: str
    wallet: str
    route: str  # EOA | RELAYER
    version: str  # "v1" (CTF, through the collateral adapters) | "v2" (Protocol V2, through the Router)
    ledger: str  # the ERC-1155 contract holding the tokens
    token_ids: tuple[str, ...]
    amounts: tuple[int, ...]  # the wallet's ledger balance of each token when planned (micro units)
    expected: int  # the payout in pUSD micro units (eth_call simulation)
    calls: tuple[Call, ...] = ()
    state: str = REQUESTED
    tx_hash: str = ""
    relayer_id: str = ""
    nonce: Optional[int] = None  # the wallet's nonce when requested (EOA or relayer: a send moves it)
    paid: int = 0  # the payout booked (micro units)
    reason: str = ""
    burn: bool = False  # losing tokens burned (the user asked for it): nothing is paid
    requested_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None

    @property
    def finished(self) -> bool:
        return self.state not in UNFINISHED

    @property
    def expected_usdc(self) -> Decimal:
        return Decimal(self.expected) / MICRO_UNITS

    def moved(self, state: str, at: datetime, **changes: object) -> "Redemption":
        return attrs.evolve(self, state=state, updated_at=at, **changes)

    def to_json(self) -> dict:
        data = attrs.asdict(self, recurse=True)
        data["token_ids"], data["amounts"] = list(self.token_ids), list(self.amounts)
        data["calls"] = [{**c, "arguments": list(c["arguments"])} for c in data["calls"]]
        for key in ("requested_at", "updated_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Redemption":
        data = dict(data)
        data.pop("collateral_before", None)  # records written before payouts were read from receipts
        data["token_ids"], data["amounts"] = tuple(data["token_ids"]), tuple(int(a) for a in data["amounts"])
        data["calls"] = tuple(Call(c["to"], c["function"], tuple(c["arguments"]), c["data"]) for c in data["calls"])
        for key in ("requested_at", "updated_at"):
            data[key] = datetime.fromisoformat(data[key]) if data[key] else None
        return cls(**data)


def usdc(micro_units: int) -> Decimal:
    return Decimal(micro_units) / MICRO_UNITS if micro_units else ZERO
