# copytrader/adapters/feeds/activity.py as it was at e1cbd7b (before issue 20), verbatim but for its
# imports: the reference of tests/feeds/test_parser_differential.py. Do not change it.
"""Parsing Data API ``/activity`` rows into ``LeaderTrade``.

Numbers are read with ``parse_float=Decimal`` so no float ever touches an
amount. A row that cannot be parsed becomes ``Quarantined``; a row that parses
but makes no sense (price 1.7, side "HOLD") becomes a trade that validation
rejects with a recorded reason. A TRADE row's ``asset`` (a CTF token id or a
Protocol V2 position id) is kept as the text it is: one that is not a canonical
decimal reaches the engine unchanged and is refused there as malformed_token_id,
never normalised into another id. A TRADE row needs its asset, side, size and
price; a REDEEM, MERGE or SPLIT row needs none of them (the Data API gives
them ``"price": null``): an absent or null amount there is 0.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Union

from copytrader.domain.model import ZERO, ZERO_ADDRESS, LeaderTrade
from copytrader.ports import Quarantined

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_ASSET_CHARS = 100  # a uint256 has at most 78 digits
TRADE_FIELDS = ("asset", "side", "size", "price")
_REQUIRED = ("proxyWallet", "timestamp", "type", "transactionHash", "conditionId")
_TRADE_REQUIRED = _REQUIRED + TRADE_FIELDS  # in the order a "missing ..." reason names them
_REQUIRED_SETS = {False: frozenset(_REQUIRED), True: frozenset(_TRADE_REQUIRED)}
MAX_TIMESTAMP = 32_503_680_000  # 3000-01-01: later "timestamps" are garbage (and overflow datetime)
_SMALL_INT = 10 ** 18
# Every feed's JSON: numbers as exact Decimals, never floats.
DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)


def _decimal(row: dict[str, Any], key: str) -> Decimal:
    value = row[key]
    kind = type(value)
    if kind is Decimal:  # what json gives for 0.5, 1e3: Decimal(str(d)) is d, digit for digit
        return value
    if kind is int and -_SMALL_INT < value < _SMALL_INT:  # Decimal(800) is Decimal("800")
        return Decimal(value)
    if kind is str:
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{key} is not a number: {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError(f"{key} is not a number: {value!r}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{key} is not a number: {value!r}") from None


def _asset(value: Any) -> str:
    """A TRADE row's asset as the row gives it: text travels as it is (a CTF token id or a V2
    position id; the engine refuses one that is not canonical decimal text as
    malformed_token_id), never normalised into another id. A JSON number is no id text (a
    uint256 sent as a number may have lost digits on the way): the row is quarantined."""
    if type(value) is str and 0 < len(value) <= MAX_ASSET_CHARS:
        return value
    if isinstance(value, str):
        raise ValueError(f"asset is not a token id: {value[:MAX_ASSET_CHARS]!r}"
                         + (f" ({len(value)} characters)" if value else ""))
    raise ValueError(f"asset is not a token id: a JSON {type(value).__name__} {str(value)[:80]!r}, "
                     "not a decimal string (its digits may be lost)")


def _amount(row: dict[str, Any], key: str, trade: bool) -> Decimal:
    """An amount of the row: absent is 0, and so is null on a non-trade row."""
    if row.get(key) is None and not (trade and key in row):
        return ZERO
    return _decimal(row, key)


def _trade(row: dict[str, Any]) -> LeaderTrade:
    """The checks of a row and the trade it makes (ValueError & co. carry the reason)."""
    kind = str(row.get("type", "")).strip().upper() or "TRADE"  # as LeaderTrade reads it
    trade = kind == "TRADE"
    if not row.keys() >= _REQUIRED_SETS[trade]:
        missing = [k for k in (_TRADE_REQUIRED if trade else _REQUIRED) if k not in row]
        raise ValueError(f"missing {', '.join(missing)}")
    leader = str(row["proxyWallet"])
    if not _ADDRESS.match(leader):
        raise ValueError(f"proxyWallet is not an address: {leader!r}")
    if leader == ZERO_ADDRESS:
        raise ValueError("proxyWallet is the zero address")
    tx = str(row["transactionHash"])
    if not _HASH.match(tx):
        raise ValueError(f"transactionHash is malformed: {tx!r}")
    ts = row["timestamp"]
    if type(ts) is not int or not 0 <= ts < MAX_TIMESTAMP:  # the usual case skips the detailed checks
        if (isinstance(ts, bool) or not isinstance(ts, (int, Decimal))
                or (isinstance(ts, Decimal) and not ts.is_finite()) or ts != int(ts) or ts < 0):
            raise ValueError(f"timestamp is not whole seconds: {ts!r}")
        if ts >= MAX_TIMESTAMP:
            raise ValueError(f"timestamp is not a date before the year 3000: {ts!r}")
    asset = row.get("asset")
    if trade:
        token = _asset(asset)
    else:
        token = str(asset or "")
    side = row.get("side") or ""
    if not isinstance(side, str):
        raise ValueError(f"side is not text: {side!r}")
    return LeaderTrade(
        leader=leader, token_id=token, condition_id=str(row["conditionId"]).lower(), side=side,
        size=_amount(row, "size", trade), price=_amount(row, "price", trade),
        usdc_size=_amount(row, "usdcSize", trade),
        timestamp=int(ts), tx_hash=tx, outcome=str(row.get("outcome") or ""),
        title=str(row.get("title") or ""), kind=kind,
    )


def parse_activity_row(row: Any, source: str) -> Union[LeaderTrade, Quarantined]:
    try:
        if not isinstance(row, dict):
            raise ValueError(f"row is a {type(row).__name__}, not an object")
        return _trade(row)
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        # JSON text, escapes kept: a decoded string may hold a lone surrogate no database stores
        raw = json.dumps(row, default=str, sort_keys=True)
        return Quarantined(source=source, raw=raw[:4000], reason=str(exc)[:300])


def parse_json_line(line: str, source: str) -> Union[LeaderTrade, Quarantined]:
    """A line of JSONL: a trade, or quarantined (``not JSON: ...`` if it does not decode)."""
    try:
        row = DECODER.decode(line)
    except ValueError as exc:
        return Quarantined(source, line.strip()[:4000], f"not JSON: {exc}")
    return parse_activity_row(row, source)
