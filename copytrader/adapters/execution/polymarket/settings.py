"""Settings of the live venue (no SDK import)."""
from __future__ import annotations

import enum
from decimal import Decimal
from typing import Optional

import attrs

# CLOB V2 contracts on Polygon (chain 137), as in py-clob-client-v2's config.
V2_EXCHANGE = "0xE111180000d2663C0091e4f400237545B87B996B"
V2_NEG_RISK_EXCHANGE = "0xe2222d279d744050d28e00520010520000310F59"
# ExchangeV3: Protocol V2 markets (PositionManager position ids), as in polymarket-client's environments.
EXCHANGE_V3 = "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"
NEG_RISK_ADAPTER = "0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296"
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"


class SignatureType(enum.IntEnum):
    EOA = 0  # the key's own address holds the funds
    POLY_PROXY = 1  # a Polymarket proxy wallet (email/magic accounts): funder = proxy address
    GNOSIS_SAFE = 2  # a Polymarket Gnosis safe (browser-wallet accounts): funder = safe address
    DEPOSIT_WALLET = 3  # a deposit wallet (POLY_1271; new API users): funder = deposit wallet address


@attrs.frozen
class LiveSettings:
    host: str = "https://clob.polymarket.com"
    chain_id: int = 137
    signature_type: SignatureType = SignatureType.EOA
    funder: Optional[str] = None  # required for POLY_PROXY and GNOSIS_SAFE
    timeout_s: float = 10.0
    exchange: str = V2_EXCHANGE
    neg_risk_exchange: str = V2_NEG_RISK_EXCHANGE
    rpc_url: str = ""  # Polygon JSON-RPC, for `doctor` and `approve` (balances, allowances, approvals)
    gtd_expiration_s: int = 300  # GTD orders expire this long after signing (expiration is not signed in V2)
    fee_rate: Decimal = Decimal(0)  # dry-run fill simulation only

    def __attrs_post_init__(self) -> None:
        if self.signature_type is not SignatureType.EOA and not self.funder:
            raise ValueError(f"signature type {self.signature_type.name} needs the funder (proxy or safe) address")

    def exchange_for(self, neg_risk: bool) -> str:
        return self.neg_risk_exchange if neg_risk else self.exchange
