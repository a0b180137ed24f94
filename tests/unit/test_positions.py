"""The outcome id and its market's position system (domain/positions.py)."""
import pytest

from copytrader.domain.model import MarketInfo, Reason
from copytrader.domain.positions import V1, V2, market_rejection, parse_id, token_rejection, version_of

CTF = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def v2_id(module: int, condition: int, outcome: int) -> str:
    return str((module << 248) | (condition << 104) | outcome)


def market(version: str) -> MarketInfo:
    return MarketInfo(token_id="x", condition_id="0x" + "ab" * 32, version=version)


@pytest.mark.parametrize("text", ["", " 1", "1 ", "+1", "-1", "01", "0x1f", "1e3", "1.0", "١٢", str(1 << 256)])
def test_only_canonical_decimal_uint256_ids_parse(text):
    assert parse_id(text) is None
    assert token_rejection(text).reason is Reason.MALFORMED_TOKEN_ID


def test_the_id_tells_its_position_system():
    assert parse_id("0") == 0 and parse_id(str((1 << 256) - 1)) == (1 << 256) - 1
    assert version_of(CTF) == V1
    assert version_of(v2_id(1, 0xABCDEF, 1)) == V2
    assert version_of("12 ") is None
    # one set bit between 40 and 103 makes it a CTF-shaped id
    assert version_of(str(int(v2_id(1, 5, 0)) | 1 << 40)) == V1
    assert version_of(str(int(v2_id(1, 5, 0)) | 1 << 103)) == V1


def test_a_combinatorial_position_is_refused_before_any_market_lookup():
    assert token_rejection(v2_id(3, 7, 0)).reason is Reason.COMBINATORIAL_POSITION
    assert token_rejection(v2_id(1, 7, 0)) is None and token_rejection(CTF) is None


@pytest.mark.parametrize("version, token, reason", [
    ("v1", CTF, None),
    ("v2", v2_id(1, 9, 0), None),
    ("v2", v2_id(2, 9, 1), None),
    ("v1", v2_id(1, 9, 0), Reason.TOKEN_VERSION_MISMATCH),
    ("v2", CTF, Reason.TOKEN_VERSION_MISMATCH),
    ("v2", v2_id(0, 9, 0), Reason.TOKEN_VERSION_MISMATCH),  # no module
    ("v2", v2_id(1, 9, 2), Reason.TOKEN_VERSION_MISMATCH),  # not a YES/NO outcome
    ("v3", CTF, Reason.UNKNOWN_MARKET_VERSION),
    ("", v2_id(1, 9, 0), Reason.UNKNOWN_MARKET_VERSION),
])
def test_an_id_must_match_its_markets_version(version, token, reason):
    got = market_rejection(market(version), token)
    assert (got.reason if got else None) is reason
