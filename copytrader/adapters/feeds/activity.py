"""Parsing Data API ``/activity`` rows into ``LeaderTrade``.

Numbers are read as the exact ``Decimal`` of their text so no float ever touches
an amount (one no Decimal holds, 1e99999999999999999999, quarantines its row).
A row that cannot be parsed becomes ``Quarantined``; a row that parses
but makes no sense (price 1.7, side "HOLD") becomes a trade that validation
rejects with a recorded reason. A TRADE row's ``asset`` (a CTF token id or a
Protocol V2 position id) is kept as the text it is: one that is not a canonical
decimal reaches the engine unchanged and is refused there as malformed_token_id,
never normalised into another id. A TRADE row needs its asset, side, size and
price; a REDEEM, MERGE or SPLIT row needs none of them (the Data API gives
them ``"price": null``): an absent or null amount there is 0.

A JSONL line is decoded by msgspec (imported on the first line, with floats as
``Decimal`` of their text); whatever it refuses, ``json`` decodes, so every
line gives what ``json`` gives, its reasons included. A line of the Data API's
own keys is first decoded into a struct (no dict built) and, when every field
is of its usual kind, made into its trade by _usual_trade, each field checked
once; any other line goes the general way (a dict, _trade), which has the
reasons: both give the same trade (tests/feeds/test_parser_differential.py).
"""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional, Union

from ...domain.model import ZERO, ZERO_ADDRESS, LeaderTrade, NumberOutOfRange, exact_decimal
from ...ports import Quarantined

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_ASSET_CHARS = 100  # a uint256 has at most 78 digits
TRADE_FIELDS = ("asset", "side", "size", "price")
_REQUIRED = ("proxyWallet", "timestamp", "type", "transactionHash", "conditionId")
_TRADE_REQUIRED = _REQUIRED + TRADE_FIELDS  # in the order a "missing ..." reason names them
_KEYS, _TRADE_KEYS = frozenset(_REQUIRED), frozenset(_TRADE_REQUIRED)
MAX_TIMESTAMP = 32_503_680_000  # 3000-01-01: later "timestamps" are garbage (and overflow datetime)
_SMALL_INT = 10 ** 18
MAX_LINE = 1 << 24  # characters: a row this long is not an activity row (quarantined, or the array refused)
# Every feed's JSON: numbers as exact Decimals, never floats.
DECODER = json.JSONDecoder(parse_float=exact_decimal, parse_constant=Decimal)


def _decimal(value: Any, key: str) -> Decimal:
    """An amount that _amount's usual cases did not take: a big int, or no number at all."""
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
    value = row.get(key)
    kind = type(value)
    if kind is Decimal:  # what the decoders give for 0.5, 1e3: Decimal(str(d)) is d, digit for digit
        return value
    if kind is str:
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{key} is not a number: {value!r}") from None
    if kind is int and -_SMALL_INT < value < _SMALL_INT:  # Decimal(800) is Decimal("800")
        return Decimal(value)
    if value is None and not (trade and key in row):
        return ZERO
    return _decimal(value, key)


def _trade(row: dict[str, Any]) -> LeaderTrade:
    """The checks of a row and the trade it makes (ValueError & co. carry the reason)."""
    kind = row.get("type", "")
    if kind != "TRADE":  # the usual type is taken as it is
        kind = str(kind).strip().upper() or "TRADE"  # as LeaderTrade reads it
    trade = kind == "TRADE"
    if not row.keys() >= (_TRADE_KEYS if trade else _KEYS):
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
        ts = int(ts)
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
        timestamp=ts, tx_hash=tx, outcome=str(row.get("outcome") or ""),
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


def _load_line_decoder() -> Callable[[str], Any]:
    """msgspec's decoders of a line (a dict, and a UsualRow): floats as ``Decimal`` of their text,
    as DECODER's. Imported on the first line read, so a start-up that reads no file never loads it."""
    global _decode_line, _decode_usual, _unset
    import msgspec

    _unset = msgspec.UNSET
    # the fields of a Data API row, each any JSON value (UNSET when absent), decoded as into a dict
    # (a duplicate key's last value wins) but without building it; a row with another key is not
    # one (it is decoded as a dict: a field never read is still decoded, its 1e99999999999999999999 refused)
    usual_row = msgspec.defstruct("UsualRow", [(name, Any, _unset) for name in _READ + _UNREAD], gc=False,
                                  forbid_unknown_fields=True)
    # (a number no Decimal holds raises decimal.InvalidOperation here: DECODER, the way of whatever
    # msgspec refuses, then names it; the usual row keeps its plain hook)
    _decode_usual = msgspec.json.Decoder(usual_row, float_hook=Decimal).decode
    _decode_line = msgspec.json.Decoder(float_hook=Decimal).decode
    return _decode_line


_decode_line: Optional[Callable[[str], Any]] = None
_decode_usual: Callable[[str], Any]
_unset: Any = object()  # msgspec.UNSET once loaded
_READ = ("proxyWallet", "timestamp", "conditionId", "type", "transactionHash", "asset", "side", "size", "price",
         "usdcSize", "outcome", "title")
_UNREAD = ("outcomeIndex", "slug", "icon", "eventSlug", "name", "pseudonym", "bio", "profileImage",
           "profileImageOptimized")
_EXACT_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")  # (fullmatch: no newline after it, as "$" allows)
_EXACT_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
# Bounded caches of texts that recur from row to row (a few leaders, markets and prices)
_CACHE_MAX = 4096
_LEADERS: dict[str, str] = {}  # proxyWallet text -> its checked, lower case self
_CONDITIONS: dict[str, str] = {}  # conditionId text -> lower case
_AMOUNTS: dict[Union[str, int], Decimal] = {}  # amount text or int -> its Decimal (immutable: one serves every row)


def _usual_text(value: Any) -> Optional[str]:
    """outcome or title: the text, "" when absent or null; None when _trade must decide."""
    if type(value) is str:
        return value
    if value is None or value is _unset:
        return ""
    return None


def _usual_amount(value: Any, trade: bool) -> Optional[Decimal]:
    """_amount of a usual value (a Decimal, text, a small int; absent is 0, and so is null on a
    non-trade row), or None when _amount must decide (and give its reason)."""
    kind = type(value)
    if kind is str or kind is int:
        amount = _AMOUNTS.get(value)
        if amount is None:
            if kind is str:
                try:
                    amount = Decimal(value.strip())
                except InvalidOperation:
                    return None
            elif -_SMALL_INT < value < _SMALL_INT:
                amount = Decimal(value)
            else:
                return None
            if len(_AMOUNTS) > _CACHE_MAX:
                _AMOUNTS.clear()
            _AMOUNTS[value] = amount
        return amount
    if kind is Decimal:
        return value
    if value is _unset or (value is None and not trade):
        return ZERO
    return None


def _usual_trade(row: Any) -> Optional[LeaderTrade]:
    """The trade _trade makes of a usual row (a UsualRow), its fields checked once, or None:
    anything unusual (a field missing, a bad address, a number where text goes...) is left to
    _trade, which gives the reason."""
    kind = row.type
    trade = kind == "TRADE"
    if not trade:
        if type(kind) is not str:
            return None
        kind = kind.strip().upper() or "TRADE"  # as _trade reads it (and LeaderTrade's converter leaves it)
        trade = kind == "TRADE"
    leader = row.proxyWallet
    checked = _LEADERS.get(leader)
    if checked is None:
        if type(leader) is not str or not _EXACT_ADDRESS.fullmatch(leader) or leader == ZERO_ADDRESS:
            return None
        if len(_LEADERS) > _CACHE_MAX:
            _LEADERS.clear()
        checked = _LEADERS[leader] = leader.lower()
    tx = row.transactionHash
    if type(tx) is not str or not _EXACT_HASH.fullmatch(tx):
        return None
    ts = row.timestamp
    if type(ts) is not int or not 0 <= ts < MAX_TIMESTAMP:
        return None
    condition = row.conditionId
    if type(condition) is not str:
        return None
    condition = _CONDITIONS.get(condition) or _lower_condition(condition)
    asset, side = row.asset, row.side
    if trade:
        if (type(asset) is not str or not 0 < len(asset) <= MAX_ASSET_CHARS
                or side is _unset or row.size is _unset or row.price is _unset):
            return None
    elif asset is None or asset is _unset:
        asset = ""
    elif type(asset) is not str:
        return None
    if type(side) is not str:
        if side is not None and side is not _unset:
            return None
        side = ""
    elif side != "BUY" and side != "SELL":
        side = side.strip().upper()  # LeaderTrade's converter
    size = _usual_amount(row.size, trade)
    price = _usual_amount(row.price, trade)
    usdc = _usual_amount(row.usdcSize, trade)
    outcome, title = _usual_text(row.outcome), _usual_text(row.title)
    if size is None or price is None or usdc is None or outcome is None or title is None:
        return None
    return LeaderTrade.normalised(checked, asset, condition, side, size, price, usdc, ts, tx.lower(), outcome,
                                  title, kind)


def _lower_condition(text: str) -> str:
    if len(_CONDITIONS) > _CACHE_MAX:
        _CONDITIONS.clear()
    lower = _CONDITIONS[text] = text.lower()
    return lower


def parse_json_line(line: str, source: str) -> Union[LeaderTrade, Quarantined]:
    """A line of JSONL: a trade, or quarantined (``not JSON: ...`` if it does not decode, or
    is nested too deep for a decoder, or is longer than MAX_LINE characters)."""
    if len(line) > MAX_LINE:
        return Quarantined(source, line.strip()[:4000], f"not JSON: a row of {len(line):,} characters, "
                           f"more than {MAX_LINE:,}")
    if _decode_line is None:
        _load_line_decoder()
    # the usual row first: only the fields read are decoded, each checked once (see _usual_trade)
    try:
        usual = _usual_trade(_decode_usual(line))
    except Exception:  # noqa: BLE001 - not an object, not JSON for msgspec, ...: the general way decides
        usual = None
    if usual is not None:
        return usual
    try:
        try:
            row = _decode_line(line)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - whatever msgspec refuses (NaN, "\ud800", ...), json decides
            row = DECODER.decode(line)
        # (msgspec reads deeper nests than json writes back: a quarantine's json.dumps may recurse too far)
        return parse_activity_row(row, source)
    except NumberOutOfRange as exc:  # (e1cbd7b let decimal.InvalidOperation out, ending the run)
        return Quarantined(source, line.strip()[:4000], str(exc))
    except ValueError as exc:
        return Quarantined(source, line.strip()[:4000], f"not JSON: {exc}")
    except RecursionError:
        return Quarantined(source, line.strip()[:4000], "not JSON: nested too deep")
