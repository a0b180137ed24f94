"""Row parsing with its shortcuts (a set test for missing fields, integer
timestamps and numbers taken as they are) gives exactly what it gave before:
the same trades (digit for digit, same ids), the same quarantines (same reason,
same raw text), the same exceptions; and ReplayFeed is FilesFeed over one file.

The reference below is a frozen copy of ``parse_activity_row`` as it was before
the shortcuts (plus the rules of issue 14: a non-trade row's null amount is 0,
a blank or padded type is read as LeaderTrade reads it, a string row's raw text
is JSON), fed by the decoder the feeds use (``json.JSONDecoder`` with
``parse_float=parse_constant=Decimal``)."""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from copytrader.adapters.clock import ManualClock
from copytrader.adapters.feeds import activity
from copytrader.adapters.feeds.activity import parse_activity_row, parse_json_line
from copytrader.adapters.feeds.files import FilesFeed
from copytrader.adapters.feeds.http import FeedError
from copytrader.adapters.feeds.replay import ReplayFeed
from copytrader.domain.model import LeaderTrade
from copytrader.ports import Quarantined

from .guards import quarantined_where_reference_raised

SAMPLE = Path(activity.__file__).resolve().parents[2] / "samples" / "activity.jsonl"

# -- the reference: parse_activity_row before the fast path, verbatim ---------------------------------
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
TRADE_FIELDS = ("asset", "side", "size", "price")
MAX_TIMESTAMP = 32_503_680_000
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)


def _ref_decimal(row: dict[str, Any], key: str) -> Decimal:
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError(f"{key} is not a number: {value!r}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{key} is not a number: {value!r}") from None


def reference_row(row: Any, source: str):
    try:
        if not isinstance(row, dict):
            raise ValueError(f"row is a {type(row).__name__}, not an object")
        missing = [k for k in ("proxyWallet", "timestamp", "type", "transactionHash", "conditionId") if k not in row]
        kind = str(row.get("type", "")).strip().upper() or "TRADE"  # since issue 14: a blank type is a TRADE's
        if kind == "TRADE":
            missing += [k for k in TRADE_FIELDS if k not in row]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        leader = str(row["proxyWallet"])
        if not _ADDRESS.match(leader):
            raise ValueError(f"proxyWallet is not an address: {leader!r}")
        tx = str(row["transactionHash"])
        if not _HASH.match(tx):
            raise ValueError(f"transactionHash is malformed: {tx!r}")
        ts = row["timestamp"]
        if (isinstance(ts, bool) or not isinstance(ts, (int, Decimal)) or (isinstance(ts, Decimal) and not ts.is_finite())
                or ts != int(ts) or ts < 0):
            raise ValueError(f"timestamp is not whole seconds: {ts!r}")
        if ts >= MAX_TIMESTAMP:
            raise ValueError(f"timestamp is not a date before the year 3000: {ts!r}")
        token = str(row.get("asset") or "")
        # since issue 15: a TRADE's asset text goes on as it is (the engine refuses a non-canonical
        # one as malformed_token_id); only a non-string or empty or overlong asset is quarantined
        asset = row.get("asset")
        if kind == "TRADE" and not (isinstance(asset, str) and 0 < len(asset) <= 100):
            if isinstance(asset, str):
                raise ValueError(f"asset is not a token id: {asset[:100]!r}" + (f" ({len(asset)} characters)" if asset else ""))
            raise ValueError(f"asset is not a token id: a JSON {type(asset).__name__} {str(asset)[:80]!r}, "
                             "not a decimal string (its digits may be lost)")
        side = row.get("side") or ""
        if not isinstance(side, str):
            raise ValueError(f"side is not text: {side!r}")
        # since issue 14: a null amount of a non-trade row (REDEEM "price": null) is 0, as an absent one
        absent = [k for k in ("size", "price", "usdcSize") if k not in row or (kind != "TRADE" and row[k] is None)]
        return LeaderTrade(
            leader=leader, token_id=token, condition_id=str(row["conditionId"]).lower(), side=side,
            size=_ref_decimal(row, "size") if "size" not in absent else Decimal(0),
            price=_ref_decimal(row, "price") if "price" not in absent else Decimal(0),
            usdc_size=_ref_decimal(row, "usdcSize") if "usdcSize" not in absent else Decimal(0),
            timestamp=int(ts), tx_hash=tx, outcome=str(row.get("outcome") or ""),
            title=str(row.get("title") or ""), kind=kind,
        )
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raw = json.dumps(row, default=str, sort_keys=True)  # since issue 14: a string row too
        return Quarantined(source=source, raw=raw[:4000], reason=str(exc)[:300])


def reference_line(line: str, source: str):
    """What FilesFeed made of a JSONL line before the shortcuts."""
    try:
        row = _DECODER.decode(line)
    except ValueError as exc:
        return Quarantined(source, line.strip()[:4000], f"not JSON: {exc}")
    return reference_row(row, source)


# -- comparing outcomes ---------------------------------------------------------------------------------
def key(payload: Any) -> tuple:
    """Equal keys: equal payloads, Decimal spelling (1.0 vs 1) and the trade id included."""
    if isinstance(payload, LeaderTrade):
        return ("trade", repr(payload), payload.id)
    assert isinstance(payload, Quarantined), payload
    return ("quarantined", payload.source, payload.raw, payload.reason)


def outcome(parse: Callable[[], Any]) -> tuple:
    try:
        return key(parse())
    except Exception as exc:  # noqa: BLE001 - the same exception is part of "the same result"
        return ("raises", type(exc).__name__, str(exc))


def assert_same(line: str) -> tuple:
    fast = outcome(lambda: parse_json_line(line, "f.jsonl:7"))
    old = outcome(lambda: reference_line(line, "f.jsonl:7"))
    assert quarantined_where_reference_raised(fast, old, line, "f.jsonl:7") or fast == old, line[:300]
    try:
        row = _DECODER.decode(line)  # the decoder alone + today's parse_activity_row: the same again
    except Exception:  # noqa: BLE001 - not JSON (compared above), or json raising (InvalidOperation)
        pass
    else:
        assert fast == outcome(lambda: parse_activity_row(row, "f.jsonl:7"))
    return fast


# -- generated lines ------------------------------------------------------------------------------------
READ = ["proxyWallet", "timestamp", "conditionId", "type", "transactionHash", "asset", "side", "size", "price",
        "usdcSize", "title", "outcome"]
OTHER = ["outcomeIndex", "slug", "icon", "eventSlug", "name", "pseudonym", "bio", "profileImage", "zzz"]


def frag(value: Any) -> str:
    return json.dumps(value)


number_text = st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,4})?", fullmatch=True)
odd_numbers = st.sampled_from([
    "0.1000000000000000055511151231257827", "1793491392.0", "1793491392.5", "-1793491392", "1e9", "1.793491392E9",
    "-0", "-0.0", "0e0", "1e400", "1e-400", "1e999999999999999999", "1e99999999999999999999",
    "-1.0e+1000000000000000000000000", "32503680000", "32503679999", "10" + "0" * 30, "18446744073709551616",
    "1" * 4300, "1" * 4301, "NaN", "Infinity", "-Infinity"])
odd_strings = st.sampled_from([
    "abc", "", " ", " 0.5 ", "0.5 ", "\t1\n", "1_000", "nan", "-inf", "sNaN", "0x" + "ab" * 20, " 0x" + "ab" * 20,
    "0x" + "ab" * 20 + "\n", "0x" + "AB" * 32, "0x" + "ab" * 32 + " ", "BUY", " sell ", "trade", "Trade", "REDEEM",
    "1" * 80, "1" * 81, "١٢٣", "٠٫٥", "é", "\u00a0", "\ufeff1"])
plain = st.one_of(st.none(), st.booleans(), st.integers(-(10 ** 20), 10 ** 20), st.text(max_size=12), odd_strings,
                  st.decimals(allow_nan=False).map(str))
nested = st.recursive(plain, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                         max_size=3), max_leaves=6)
# text that is not quite JSON
raw_odd = st.sampled_from(["tru", "01", "1.", ".5", "+1", "'x'", '"\\ud800"', '"\\udc00\\ud800"', '"\\x"', '"a\tb"',
                           '"\\u00e9"', '"\\ud83d\\ude00"', "[1,]", "{}", "[]", '{"a": NaN}', "[" * 40 + "]" * 40])
fragment = st.one_of(number_text, odd_numbers, nested.map(frag), raw_odd)


@st.composite
def lines(draw) -> str:
    wallet = draw(st.sampled_from(["0x" + "a1" * 20, "0x7C3DB723F1D4D8CB9C550095203B686CB11E5C6B"]))
    row = {"proxyWallet": frag(wallet), "timestamp": str(draw(st.integers(1_790_000_000, 1_800_000_000))),
           "conditionId": frag("0x" + "Cd" * 32), "type": frag(draw(st.sampled_from(["TRADE", "trade", "REDEEM"]))),
           "size": draw(number_text), "usdcSize": draw(st.sampled_from(["51.00", '"51.00"', "51", "5.1e1"])),
           "transactionHash": frag("0x" + f"{draw(st.integers(0, 2 ** 256 - 1)):064x}"),
           "price": draw(st.sampled_from(["0.51", '"0.51"', "0.5100", "1", "5.1E-1"])),
           "asset": frag(str(draw(st.integers(1, 10 ** 77)))), "side": frag(draw(st.sampled_from(["BUY", "SELL"]))),
           "title": frag(draw(st.text(max_size=30))), "outcome": frag("Yes")}
    for field in draw(st.lists(st.sampled_from(READ), max_size=4, unique=True)):
        if draw(st.integers(0, 3)) == 0:
            del row[field]
        else:
            row[field] = draw(fragment)
    for field in draw(st.lists(st.sampled_from(OTHER), max_size=3, unique=True)):
        row[field] = draw(fragment)
    pairs = list(row.items())
    if pairs and draw(st.integers(0, 9)) == 0:  # a duplicate key: the last one counts
        pairs.append((draw(st.sampled_from(READ)), draw(fragment)))
    pairs = draw(st.permutations(pairs)) if draw(st.booleans()) else pairs
    text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(fragment)  # not an object at all
    if shape == 1:
        return text[:draw(st.integers(1, max(1, len(text) - 1)))]  # cut short
    if shape == 2:
        return text + draw(st.sampled_from([" x", "}", ",", " {}", "\x00"]))
    return draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["\n", "\r\n", " \n", ""]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(line=lines())
@example(line='{"a": 1}')
@example(line="[1, 2]")
@example(line='"abc"')
@example(line="{not json")
def test_the_line_parser_agrees_with_the_reference_on_any_line(line):
    assert_same(line)


def _valid(**change: Any) -> dict:
    row = {"proxyWallet": "0x" + "a1" * 20, "timestamp": 1_793_491_200, "conditionId": "0x" + "cd" * 32,
           "type": "TRADE", "size": 100, "usdcSize": 51, "transactionHash": "0x" + "00" * 31 + "01",
           "price": Decimal("0.51"), "asset": "1" * 40, "side": "BUY", "title": "t", "outcome": "Yes"}
    row.update(change)
    return row


def _line(row: dict, **raw: str) -> str:
    """A JSON line; ``raw`` values are written as given (NaN, 1.0e9, ...)."""
    parts = [f"{json.dumps(k)}: {json.dumps(v, default=str) if not isinstance(v, Decimal) else str(v)}"
             for k, v in row.items() if k not in raw]
    parts += [f"{json.dumps(k)}: {v}" for k, v in raw.items()]
    return "{" + ", ".join(parts) + "}"


@pytest.mark.parametrize("field", READ)
@pytest.mark.parametrize("value", ["null", "true", "false", "NaN", "-Infinity", '"abc"', '" 0.51 "', '""', "0",
                                   "-1", "1793491200.0", "1793491200.5", "-1793491200", "1e400", "1" * 40,
                                   "[1]", '{"a": 1.5}', '" BUY"', '"0x' + "ab" * 20 + '\\n"'])
def test_each_field_spoiled_each_way_gives_the_same_outcome(field, value):
    assert_same(_line(_valid(), **{field: value}))


@pytest.mark.parametrize("field", READ)
def test_each_field_missing_gives_the_same_outcome(field):
    row = _valid()
    del row[field]
    assert_same(_line(row))
    assert_same(_line({**row, "type": "REDEEM"}))


@pytest.mark.parametrize("junk", ["1" * 5000, "1e99999999999999999999", "-1e-99999999999999999999", "NaN",
                                  '"\\ud800"', '"ok"'])
def test_unread_fields_still_count_as_json_does(junk):
    out = assert_same(_line(_valid(), zzz=junk))
    if junk == '"ok"':
        assert out[0] == "trade"


# -- through the feeds --------------------------------------------------------------------------------
def _reference_items(path: Path, key_: str, skip: int = 0) -> list[tuple]:
    out = []
    with path.open(encoding="utf-8") as fh:
        n = 0
        for line in fh:
            if not line.strip():
                continue
            n += 1
            if n > skip:
                out.append((str(n), key_, key(reference_line(line, f"{path.name}:{n}"))))
    return out


def _items(feed, cursors=lambda key: None) -> list[tuple]:
    return [(i.cursor, i.key, key(i.payload)) for i in feed.read(cursors)]


@pytest.mark.parametrize("skip", [0, 30])
def test_the_sample_through_files_feed_is_what_it_was(skip):
    feed = FilesFeed([SAMPLE])
    got = _items(feed, lambda key: str(skip) if skip else None)
    assert got == _reference_items(SAMPLE, feed.name, skip)
    assert len(got) == 71 - skip and any(k[2][0] == "quarantined" for k in got)
    assert any("price is not a number: 'abc'" in k[2][-1] for k in got if k[2][0] == "quarantined")


@pytest.mark.parametrize("shape", ["jsonl", "array"])
@pytest.mark.parametrize("number", ["1e99999999999999999999", "-1e-99999999999999999999", "1" * 4301])
def test_a_row_with_a_number_no_decimal_holds_is_quarantined_and_the_file_goes_on(tmp_path, shape, number):
    bad = _line(_valid(), zzz=number)
    rows = [_line(_valid(transactionHash="0x" + "00" * 31 + "0a")), bad, _line(_valid(transactionHash="0x" + "00" * 31 + "0b"))]
    path = tmp_path / f"rows.{'jsonl' if shape == 'jsonl' else 'json'}"
    path.write_text("\n".join(rows) + "\n" if shape == "jsonl" else "[" + ",\n".join(rows) + "]")
    got = [item.payload for item in FilesFeed([path]).read(lambda key: None)]
    assert [type(p).__name__ for p in got] == ["LeaderTrade", "Quarantined", "LeaderTrade"]
    assert got[1].raw == bad[:4000] and got[1].source == f"{path.name}:2"
    if number.startswith("1" * 10):  # an int json refuses to read (over 4,300 digits)
        assert got[1].reason.startswith("not JSON: Exceeds the limit")
    else:
        assert got[1].reason == f"the number {number} is out of range"


def test_replay_feed_is_files_feed_over_one_file(tmp_path):
    clock_a, clock_b = ManualClock(), ManualClock()
    replay, feed = ReplayFeed(SAMPLE, clock=clock_a, latency_s=3), FilesFeed([SAMPLE], clock=clock_b, latency_s=3)
    assert replay.name == feed.name == f"replay:{SAMPLE.resolve()}" and replay.path == SAMPLE
    assert _items(replay) == _items(feed) == _reference_items(SAMPLE, feed.name)
    assert clock_a.now() == clock_b.now()
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(SAMPLE.read_bytes() + '{"title": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(FeedError, match="not UTF-8 text"):
        list(ReplayFeed(bad).read(lambda key: None))


def test_a_mixed_file_matches_the_reference(tmp_path):
    rows = [_line(_valid(timestamp=1_793_491_200 + 7_000 * i, transactionHash="0x" + f"{i:064x}")) for i in range(30)]
    rows[3] = _line(_valid(), price='"abc"')
    rows[5] = "{not json"
    rows[7] = "[1, 2]"
    rows[9] = _line(_valid(), timestamp="NaN")
    rows[11] = _line(_valid(), zzz="1" * 5000)
    rows[13] = "\ufeff" + rows[13]
    rows[15] = _line(_valid(), side='" sell "', size='"  12.50 "', timestamp="1793600000.0")
    other = tmp_path / "other.jsonl"
    other.write_text("\n\n".join(rows) + "\n   \n", encoding="utf-8")
    feed = FilesFeed([SAMPLE, other], clock=ManualClock())
    assert len(_items(feed)) == 71 + 30
    assert _items(FilesFeed([other])) == _reference_items(other, f"replay:{other.resolve()}")
