"""The two position systems of Polymarket, told apart by the outcome id.

A CTF market (Gamma ``version`` "v1") trades Conditional Tokens ids; a
Protocol V2 market ("v2") trades PositionManager position ids, orders for
which are signed for ExchangeV3 with EIP-712 domain version "3". A V2
position id is recognisable by itself: bits 40..103 are zero (the SDK's
``is_v2_position_id``); its top byte is the module (1 binary, 2 neg-risk,
3 combinatorial) and its last byte the outcome index. A CTF id is a keccak
hash, so those 64 bits are never all zero in practice.

Ids travel as canonical decimal text (no sign, no leading zeros, no
whitespace, no hex); anything else is not guessed at but refused.
"""
from __future__ import annotations

from typing import Optional

from .model import MarketInfo, Reason, Reject

V1, V2 = "v1", "v2"
VERSIONS = (V1, V2)
UINT256_MAX = (1 << 256) - 1
_V2_RESERVED = ((1 << 64) - 1) << 40
BINARY, NEG_RISK, COMBINATORIAL = 1, 2, 3


_PARSED: dict[str, Optional[int]] = {}  # token id -> parse_id: asked twice per trade of the same few tokens


def parse_id(token_id: str) -> Optional[int]:
    """The id as an integer when it is a canonical decimal uint256, else None."""
    if not isinstance(token_id, str):
        return None
    try:
        return _PARSED[token_id]
    except KeyError:
        pass
    value: Optional[int] = None
    if token_id.isascii() and token_id.isdigit() and not (len(token_id) > 1 and token_id[0] == "0"):
        value = int(token_id)
        if value > UINT256_MAX:
            value = None
    if len(_PARSED) > 65536:
        _PARSED.clear()
    _PARSED[token_id] = value
    return value


def is_v2_shaped(value: int) -> bool:
    return value & _V2_RESERVED == 0


def version_of(token_id: str) -> Optional[str]:
    """"v2" for a V2-shaped id, "v1" for a CTF-shaped one, None when not an id."""
    value = parse_id(token_id)
    if value is None:
        return None
    return V2 if is_v2_shaped(value) else V1


def token_rejection(token_id: str) -> Optional[Reject]:
    """What the id alone says against copying it (no market data needed)."""
    value = parse_id(token_id)
    if value is None:
        return Reject(Reason.MALFORMED_TOKEN_ID, f"{token_id[:80]!r} is not a canonical decimal uint256")
    if is_v2_shaped(value) and value >> 248 == COMBINATORIAL:
        return Reject(Reason.COMBINATORIAL_POSITION, f"position {token_id[:24]}… is a combinatorial position")
    return None


def market_rejection(market: MarketInfo, token_id: str) -> Optional[Reject]:
    """Whether the id belongs to the position system of its market's version."""
    if market.version not in VERSIONS:
        return Reject(Reason.UNKNOWN_MARKET_VERSION,
                      f"market {market.condition_id or token_id[:24]} has version {market.version!r}")
    value = parse_id(token_id)
    shaped = value is not None and is_v2_shaped(value)
    if market.version == V1 and shaped:
        return Reject(Reason.TOKEN_VERSION_MISMATCH, f"{token_id[:24]}… is a V2 position id in a v1 (CTF) market")
    if market.version == V2 and not shaped:
        return Reject(Reason.TOKEN_VERSION_MISMATCH, f"{token_id[:24]}… is a CTF token id in a v2 market")
    if market.version == V2 and (value >> 248 not in (BINARY, NEG_RISK) or value & 0xFF not in (0, 1)):
        return Reject(Reason.TOKEN_VERSION_MISMATCH, f"{token_id[:24]}… is not a YES/NO position of a v2 market")
    if market.outcome_ids and token_id not in market.outcome_ids:
        return Reject(Reason.TOKEN_VERSION_MISMATCH,
                      f"{token_id[:24]}… is not among the {market.version} outcome ids of market {market.condition_id}")
    return None
