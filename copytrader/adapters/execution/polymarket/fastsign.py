"""EIP-712 digest and signature of a V2 order, computed once.

The SDK's ``build_signed_order`` encodes the typed data generically (eth_account
``encode_typed_data``) to sign it, and the order hash costs a second full
encoding. The V2 ``Order`` struct is fixed (11 static fields), so its hash is
``keccak(typeHash ‖ 11 words)`` and the digest ``keccak(0x1901 ‖
domainSeparator ‖ structHash)``: both computed here with the SDK's own type
string, then signed with coincurve (libsecp256k1, the backend eth_keys uses:
deterministic RFC 6979, low-s), so signature and hash are byte for byte what
the SDK produces (a test checks that against the SDK for both exchanges, both
sides and every wallet type).
"""
from __future__ import annotations

from typing import Any


def _word(value: int) -> bytes:
    return int(value).to_bytes(32, "big")


def _address(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    if len(raw) != 20:
        raise ValueError(f"not an address: {value!r}")
    return b"\0" * 12 + raw


def _bytes32(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return raw.rjust(32, b"\0")


class FastOrderSigner:
    def __init__(self, private_key: str, exchange: str, chain_id: int, domain_version: str = "2") -> None:
        from coincurve import PrivateKey
        from eth_utils import keccak
        from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ORDER_TYPE_STRING
        from py_clob_client_v2.order_utils.model.ctf_exchange_v2_typed_data import CTF_EXCHANGE_V2_DOMAIN_NAME

        self._keccak = keccak
        self._key = PrivateKey(bytes.fromhex(private_key[2:] if private_key.startswith("0x") else private_key))
        self._type_hash = keccak(text=ORDER_TYPE_STRING)
        domain_type = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        self.domain_separator = keccak(domain_type + keccak(text=CTF_EXCHANGE_V2_DOMAIN_NAME)
                                       + keccak(text=domain_version) + _word(chain_id) + _address(exchange))

    def __repr__(self) -> str:
        return "FastOrderSigner(***)"

    def digest(self, order: Any) -> bytes:
        """The EIP-712 digest of an SDK ``OrderV2`` (the order hash the exchange knows)."""
        struct = self._keccak(
            self._type_hash + _word(int(order.salt)) + _address(order.maker) + _address(order.signer)
            + _word(int(order.tokenId)) + _word(int(order.makerAmount)) + _word(int(order.takerAmount))
            + _word(int(order.side)) + _word(int(order.signatureType)) + _word(int(order.timestamp))
            + _bytes32(order.metadata) + _bytes32(order.builder))
        return self._keccak(b"\x19\x01" + self.domain_separator + struct)

    def sign(self, digest: bytes) -> str:
        """65-byte r ‖ s ‖ v (27/28) as 0x-hex, as eth_account signs a hash."""
        sig = self._key.sign_recoverable(digest, hasher=None)
        return "0x" + (sig[:64] + bytes([sig[64] + 27])).hex()
