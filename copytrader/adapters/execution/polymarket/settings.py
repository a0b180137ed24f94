"""Settings of the live venue (no SDK import: the paper path and the feeds read them).

The addresses are those of the SDK's ``polymarket.environments.PRODUCTION``
(Polygon, chain 137); tests/live/test_signing.py checks each against it, so
they can be read here without importing the SDK.
"""
from __future__ import annotations

import enum
from decimal import Decimal
from typing import Optional

import attrs

from ....domain.positions import V1, V2

V2_EXCHANGE = "0xE111180000d2663C0091e4f400237545B87B996B"  # standard_exchange: CTF markets, domain "2"
V2_NEG_RISK_EXCHANGE = "0xe2222d279d744050d28e00520010520000310F59"  # neg_risk_exchange, domain "2"
EXCHANGE_V3 = "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"  # exchange_v3: Protocol V2 positions, domain "3"
POSITION_MANAGER = "0x006F54F7f9A22e0000CC2AB60031000000ae9fEF"  # holds Protocol V2 positions
NEG_RISK_ADAPTER = "0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296"
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"  # collateral_token


class SignatureType(enum.IntEnum):
    EOA = 0  # the key's own address holds the funds
    POLY_PROXY = 1  # a Polymarket proxy wallet (email/magic accounts): funder = proxy address
    GNOSIS_SAFE = 2  # a Polymarket Gnosis safe (browser-wallet accounts): funder = safe address
    DEPOSIT_WALLET = 3  # POLY_1271: a deposit wallet (new API users); maker = signer = the wallet


@attrs.frozen
class LiveSettings:
    host: str = "https://clob.polymarket.com"
    chain_id: int = 137
    signature_type: SignatureType = SignatureType.EOA
    # The wallet holding the funds. None: derived from the key (proxy, safe; a deposit
    # wallet needs rpc_url for that, its factory is asked which kind it deploys).
    funder: Optional[str] = None
    timeout_s: float = 10.0
    exchange: str = V2_EXCHANGE
    neg_risk_exchange: str = V2_NEG_RISK_EXCHANGE
    exchange_v3: str = EXCHANGE_V3
    rpc_url: str = ""  # Polygon JSON-RPC, for `doctor` and `approve` (balances, allowances, approvals) and deriving a deposit wallet
    gtd_expiration_s: int = 300  # GTD orders expire this long after signing (expiration is not signed in V2)
    fee_rate: Decimal = Decimal(0)  # dry-run fill simulation only
    # Polymarket's relayer (`approve` for proxy, safe and deposit wallets): its URL, the address
    # owning the relayer API key (None: the key's own address), and the SDK's polling of a
    # relayed transaction (every relayer_poll_ms, at most relayer_max_polls times)
    relayer_url: str = "https://relayer-v2.polymarket.com"
    relayer_key_address: Optional[str] = None
    relayer_poll_ms: int = 2000
    relayer_max_polls: int = 100
    auto_redeem: bool = True  # the live profile redeems resolved winnings by itself (application.auto_redeem)
    # the CLOB user channel (our trades' settlement pushed); "" or "off": GET /data/trades polling only
    ws_user_url: str = "wss://ws-subscriptions-clob.polymarket.com/ws/user"

    def __attrs_post_init__(self) -> None:
        if self.signature_type is SignatureType.DEPOSIT_WALLET and not self.funder and not self.rpc_url:
            raise ValueError("signature type deposit_wallet needs live.funder (your deposit wallet address), "
                             "or live.rpc_url to derive it from the key")

    def exchange_for(self, neg_risk: bool, version: str = V1) -> tuple[str, str]:
        """(verifying contract, EIP-712 domain version) of an order: ExchangeV3 and "3"
        for a Protocol V2 market, else the neg-risk or the CTF exchange and "2"."""
        if version == V2:
            return self.exchange_v3, "3"
        if version != V1:
            raise ValueError(f"market version {version!r} is neither v1 nor v2: not traded")
        return (self.neg_risk_exchange if neg_risk else self.exchange), "2"
