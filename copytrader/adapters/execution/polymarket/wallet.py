"""Which wallet an order is made by: the funder of each signature type, derived
from the key with the SDK's own derivation (``polymarket._internal.wallet``)
when ``live.funder`` is not given, and what kind of wallet a given funder is."""
from __future__ import annotations

from typing import Any, Optional

from .settings import LiveSettings, SignatureType

# The SDK's wallet type names, by our signature type.
SDK_WALLET_TYPE = {SignatureType.EOA: "EOA", SignatureType.POLY_PROXY: "POLY_PROXY",
                   SignatureType.GNOSIS_SAFE: "GNOSIS_SAFE", SignatureType.DEPOSIT_WALLET: "DEPOSIT_WALLET"}
CONFIG_NAME = {kind: kind.name.lower() for kind in SignatureType}  # live.signature_type values


def _derivation() -> Any:
    from polymarket._internal.environment import PRODUCTION_CONFIG

    return PRODUCTION_CONFIG.wallet_derivation


def _rpc(settings: LiveSettings) -> Any:
    """The SDK's JSON-RPC client on ``live.rpc_url`` (one eth_call, explicit timeout)."""
    import httpx
    from polymarket._internal.eoa.rpc import SyncJsonRpcClient
    from polymarket.clients._transport import SyncTransport, TransportOptions

    return SyncJsonRpcClient(SyncTransport(base_url=settings.rpc_url, options=TransportOptions(
        timeout=httpx.Timeout(settings.timeout_s), http2=False)))


def resolve_funder(settings: LiveSettings, signer: str, rpc: Optional[Any] = None) -> str:
    """The checksummed address that holds the funds and makes the orders.

    ``live.funder`` when given; otherwise the key's own address (EOA), its
    proxy or safe (CREATE2, no network), or its deposit wallet: the factory is
    asked (eth_call on ``live.rpc_url``, or ``rpc``) whether it deploys beacon
    or UUPS wallets, as the SDK's ``derive_current_deposit_wallet_address``."""
    from eth_utils import to_checksum_address
    from polymarket._internal import wallet

    kind = settings.signature_type
    if settings.funder:
        return to_checksum_address(settings.funder)
    if kind is SignatureType.EOA:
        return to_checksum_address(signer)
    if kind is SignatureType.POLY_PROXY:
        return wallet.derive_proxy_wallet_address(signer, _derivation())
    if kind is SignatureType.GNOSIS_SAFE:
        return wallet.derive_safe_wallet_address(signer, _derivation())
    if rpc is None and not settings.rpc_url:
        raise ValueError("signature type deposit_wallet needs live.funder (your deposit wallet address), "
                         "or live.rpc_url to derive it from the key")
    client = rpc or _rpc(settings)
    try:
        return to_checksum_address(wallet.derive_current_deposit_wallet_address_sync(client, signer, _derivation()))
    except Exception as exc:  # the RPC's error, or an answer that is not an address
        raise ValueError(f"cannot derive the deposit wallet of the key through live.rpc_url ({exc.__class__.__name__}); "
                         "set live.funder to your deposit wallet address") from None


def wallet_type_of(signer: str, funder: str) -> Optional[SignatureType]:
    """What kind of wallet ``funder`` is for the key's address (the SDK's
    classification), or None when it is none of the key's own wallets."""
    from polymarket._internal import wallet

    found = wallet.try_classify_wallet_type(signer=signer, wallet=funder, config=_derivation())
    return None if found is None else next(k for k, v in SDK_WALLET_TYPE.items() if v == found)
