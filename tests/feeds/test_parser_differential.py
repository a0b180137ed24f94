"""The row parser of issue 20 (msgspec for JSONL lines, json for what msgspec refuses, fewer steps
per row) against the parser of e1cbd7b, kept verbatim in ``activity_e1cbd7b``: on fuzzed and edge
lines and rows, every LeaderTrade field (Decimal spelling and id included), every quarantine
(source, raw text, reason) and every exception is the same. The only differences are the guards:
a line nested deeper than a decoder goes (where e1cbd7b raised RecursionError), longer than
MAX_LINE characters, or with a number no Decimal holds (where e1cbd7b raised InvalidOperation)
is quarantined with its reason."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from copytrader.adapters.feeds import activity
from copytrader.adapters.feeds.activity import parse_activity_row, parse_json_line
from copytrader.domain.model import LeaderTrade
from copytrader.ports import Quarantined

from . import activity_e1cbd7b as reference
from .guards import quarantined_where_reference_raised


def outcome(parse: Callable[[], Any]) -> tuple:
    """Every field of what a parser made, Decimals by repr (1.0 is not 1), or the exception."""
    try:
        got = parse()
    except Exception as exc:  # noqa: BLE001 - the same exception is part of "the same result"
        return ("raises", type(exc).__name__, str(exc))
    if isinstance(got, LeaderTrade):
        return ("trade", tuple((f.name, type(v).__name__, repr(v)) for f in attrs.fields(LeaderTrade)
                               for v in [getattr(got, f.name)]))
    assert isinstance(got, Quarantined), got
    return ("quarantined", got.source, got.raw, got.reason)


def assert_same_line(line: str) -> tuple:
    new = outcome(lambda: parse_json_line(line, "a.jsonl:3"))
    old = outcome(lambda: reference.parse_json_line(line, "a.jsonl:3"))
    assert quarantined_where_reference_raised(new, old, line, "a.jsonl:3") or new == old, line[:300]
    return new


def assert_same_row(row: Any) -> tuple:
    new = outcome(lambda: parse_activity_row(row, "api"))
    assert new == outcome(lambda: reference.parse_activity_row(row, "api")), repr(row)[:300]
    return new


# -- the corpus ------------------------------------------------------------------------------------------
json_number = st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,5})?", fullmatch=True)
edge_number = st.sampled_from([
    "0", "-0", "-0.0", "0e0", "0E-7", "1e3", "1E+3", "5.1E-1", "0.1000000000000000055511151231257827",
    "1793491200", "1793491200.0", "1793491200.5", "-1793491200", "32503680000", "32503679999", "1e400",
    "1e-400", "1.5e9999999999", "1e999999999999999999", "1e99999999999999999999", "-1e-99999999999999999999",
    "18446744073709551616", "-9223372036854775809", "999999999999999999", "1000000000000000000",
    "1" * 78, "1" * 4300, "1" * 4301, "-" + "9" * 4300, "0." + "1" * 5000, "NaN", "Infinity", "-Infinity"])
text = st.sampled_from([
    "", " ", "abc", " 0.51 ", "0.51", "\t1\n", "1_000", "1e3", "nan", "-inf", "sNaN", "Infinity", "-0",
    "١٢٣", "٠٫٥", "\u00a0 1", "\ufeff1", "\u2003", "BUY", " sell ", "HOLD", "TRADE", "trade", " Redeem ", "MERGE",
    "0x" + "ab" * 20, "0x" + "AB" * 20, " 0x" + "ab" * 20, "0x" + "ab" * 20 + "\n", "0x" + "00" * 20,
    "0x" + "ab" * 32, "0x" + "Ab" * 32 + "\n", "0x" + "ab" * 31, "1" * 100, "1" * 101, "é", "😀", "x\x7fy"]) | st.text(max_size=8)
plain = st.one_of(st.none(), st.booleans(), st.integers(-(10 ** 20), 10 ** 20), text,
                  st.decimals(allow_nan=False).map(str))
nested = st.recursive(plain, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
# JSON text that decoders may read differently: escapes, surrogates, bad literals, deep nests
raw_odd = st.sampled_from([
    "tru", "01", "1.", ".5", "+1", "'x'", '"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', '"\\u00e9"', '"\\x"',
    '"a\tb"', '"a\\tb"', '"\\/"', "[1,]", "{}", "[]", '{"a": NaN}', "[" * 40 + "]" * 40, "[" * 500 + "]" * 500,
    '{"a": {"b": [1, {"c": null}]}}', "1 ", " 1", "\u00a0"])
fragment = st.one_of(json_number, edge_number, nested.map(json.dumps), text.map(json.dumps),
                     text.map(lambda t: json.dumps(t, ensure_ascii=False)), raw_odd)
READ = ["proxyWallet", "timestamp", "conditionId", "type", "transactionHash", "asset", "side", "size", "price",
        "usdcSize", "title", "outcome"]
OTHER = ["outcomeIndex", "slug", "icon", "eventSlug", "name", "pseudonym", "bio", "profileImage", "zzz"]


@st.composite
def lines(draw) -> str:
    n = draw(st.integers(0, 2 ** 256 - 1))
    row = {"proxyWallet": json.dumps(draw(st.sampled_from(["0x" + "a1" * 20, "0x7C3DB723F1D4D8CB9C550095203B686CB11E5C6B"]))),
           "timestamp": draw(st.sampled_from([str(draw(st.integers(1_790_000_000, 1_800_000_000))), "1793491200.0"])),
           "conditionId": json.dumps("0x" + "Cd" * 32),
           "type": json.dumps(draw(st.sampled_from(["TRADE", "trade", " TRADE", "REDEEM", "MERGE", "SPLIT", ""]))),
           "size": draw(st.one_of(json_number, json_number.map(json.dumps), st.sampled_from(["100", '"12.5"']))),
           "usdcSize": draw(st.sampled_from(["51.00", '"51.00"', "51", "5.1e1", "null"])),
           "transactionHash": json.dumps(f"0x{n:064x}"),
           "price": draw(st.sampled_from(["0.51", '"0.51"', "0.5100", "1", "5.1E-1", "null", '" 0.51"'])),
           "asset": json.dumps(str(draw(st.integers(1, 10 ** 77)))),
           "side": json.dumps(draw(st.sampled_from(["BUY", "SELL", "buy"]))),
           "title": json.dumps(draw(st.text(max_size=20)), ensure_ascii=draw(st.booleans())),
           "outcome": json.dumps("Yes")}
    for field in draw(st.lists(st.sampled_from(READ), max_size=4, unique=True)):
        if draw(st.integers(0, 3)) == 0:
            del row[field]
        else:
            row[field] = draw(fragment)
    for field in draw(st.lists(st.sampled_from(OTHER), max_size=3, unique=True)):
        row[field] = draw(fragment)
    pairs = list(row.items())
    if pairs and draw(st.integers(0, 7)) == 0:  # a duplicate key: the last one counts
        pairs.append((draw(st.sampled_from(READ)), draw(fragment)))
    pairs = draw(st.permutations(pairs)) if draw(st.booleans()) else pairs
    sep = draw(st.sampled_from([(", ", ": "), (",", ":"), (" ,\t", " :\n")]))
    body = "{" + sep[0].join(f"{json.dumps(k)}{sep[1]}{v}" for k, v in pairs) + "}"
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(fragment)  # not an object at all
    if shape == 1:
        return body[:draw(st.integers(1, max(1, len(body) - 1)))]  # cut short
    if shape == 2:
        return body + draw(st.sampled_from([" x", "}", ",", " {}", "\x00", "\ufeff"]))
    if shape == 3:
        return draw(st.sampled_from(["\ufeff", "\x0c", "\u00a0"])) + body
    return draw(st.sampled_from(["", " ", "\t", "\r"])) + body + draw(st.sampled_from(["\n", "\r\n", " \n", ""]))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(line=lines())
@example(line='{"a": 1}')
@example(line="[1, 2]")
@example(line='"abc"')
@example(line="{not json")
@example(line="")
def test_a_line_parses_as_it_did_at_e1cbd7b(line):
    assert_same_line(line)
    try:  # and the row json decodes, as the array reader and the API hand it over
        row = reference.DECODER.decode(line)
    except (ValueError, ArithmeticError):
        return
    assert_same_row(row)


def _valid(**change: str) -> str:
    row = {"proxyWallet": '"0x' + "a1" * 20 + '"', "timestamp": "1793491200", "conditionId": '"0x' + "cd" * 32 + '"',
           "type": '"TRADE"', "size": "100", "usdcSize": "51", "transactionHash": '"0x' + "00" * 31 + '01"',
           "price": "0.51", "asset": '"' + "1" * 40 + '"', "side": '"BUY"', "title": '"t"', "outcome": '"Yes"',
           "icon": '"https://example.invalid/i.png"', "outcomeIndex": "0", "slug": '"s"'}
    row.update(change)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in row.items()) + "}"


@pytest.mark.parametrize("field", READ + ["icon", "zzz"])
@pytest.mark.parametrize("value", [
    "null", "true", "false", "NaN", "Infinity", "-Infinity", '"abc"', '" 0.51 "', '""', '"1_000"', '"\\u0661"',
    "0", "-0", "-1", "1e3", "1E+3", "0.5100", "1793491200.0", "1793491200.5", "32503680000", "1e400",
    "1e99999999999999999999", "1" * 30, "1" * 4301, "[1]", '{"a": 1.5}', '" BUY"', '"sell"', '"\\ud800"',
    '"\\ud83d\\ude00"', '"0x' + "ab" * 20 + '\\n"', '"0x' + "00" * 20 + '"', '"0x' + "AB" * 32 + '"',
    '"' + "9" * 101 + '"', "[" * 30 + "]" * 30])
def test_each_field_each_way_parses_as_it_did_at_e1cbd7b(field, value):
    assert_same_line(_valid(**{field: value}))
    assert_same_line(_valid(**{"type": '"REDEEM"', field: value}))


@pytest.mark.parametrize("field", READ)
def test_each_field_missing_parses_as_it_did_at_e1cbd7b(field):
    for kind in ('"TRADE"', '"REDEEM"', '""'):
        line = json.loads(_valid(type=kind))
        del line[field]
        assert_same_line(json.dumps(line))


@pytest.mark.parametrize("row", [
    {"proxyWallet": "0x" + "a1" * 20, "timestamp": True, "type": "TRADE"}, {"size": 10 ** 5000},
    [1], "x", None, 7, {"type": 5, "timestamp": 1.5}, {"type": "REDEEM", "size": 10 ** 4400, "price": float("nan")}])
def test_rows_not_from_json_parse_as_they_did_at_e1cbd7b(row):
    base = json.loads(_valid())
    assert_same_row(row)
    if isinstance(row, dict):
        assert_same_row({**base, **row})


def test_the_usual_rows_are_trades_with_every_amount_exact():
    got = parse_json_line(_valid(size="12.50", price="0.5100", usdcSize='"6.375"'), "a.jsonl:1")
    assert isinstance(got, LeaderTrade)
    assert (repr(got.size), repr(got.price), repr(got.usdc_size)) == ("Decimal('12.50')", "Decimal('0.5100')",
                                                                      "Decimal('6.375')")
    got = parse_json_line(_valid(size="0.1000000000000000055511151231257827", price="1E-1"), "a.jsonl:1")
    assert (repr(got.size), repr(got.price)) == ("Decimal('0.1000000000000000055511151231257827')", "Decimal('0.1')")


@pytest.mark.parametrize("depth", [1_000, 1_500, 3_000, 100_000])
def test_a_line_nested_too_deep_is_quarantined_where_e1cbd7b_raised(depth):
    for line in ("[" * depth + "]" * depth, _valid(zzz="[" * depth + "]" * depth),
                 _valid(zzz="[" * depth + "]" * depth, proxyWallet="1")):
        got = parse_json_line(line, "a.jsonl:9")
        assert isinstance(got, (Quarantined, LeaderTrade))  # never an exception
        if isinstance(got, Quarantined):
            assert got.raw == line.strip()[:4000]
            assert got.reason == "not JSON: nested too deep" or got.reason.startswith("proxyWallet is not")
    with pytest.raises(RecursionError):  # what e1cbd7b did with it
        reference.parse_json_line("[" * 100_000 + "]" * 100_000, "a.jsonl:9")
    got = parse_json_line("[" * 100_000 + "]" * 100_000, "a.jsonl:9")
    assert isinstance(got, Quarantined) and got.reason == "not JSON: nested too deep"


def test_a_line_longer_than_max_line_is_quarantined_unread(monkeypatch):
    monkeypatch.setattr(activity, "MAX_LINE", 1_000)
    line = _valid(title=json.dumps("x" * 1_000))
    got = parse_json_line(line, "a.jsonl:4")
    assert isinstance(got, Quarantined) and got.raw == line[:4000]
    assert got.reason == f"not JSON: a row of {len(line):,} characters, more than 1,000"
    assert isinstance(parse_json_line(_valid(), "a.jsonl:5"), LeaderTrade)


def test_reading_no_line_does_not_import_msgspec():
    import subprocess
    import sys

    code = ("import sys, copytrader.adapters.feeds.activity as a, copytrader.adapters.feeds.files;"
            "assert 'msgspec' not in sys.modules; a.parse_json_line('{}', 'x'); assert 'msgspec' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_amounts_never_pass_through_a_float():
    """A float would spell 0.1000000000000000055511151231257827 as 0.1: every amount keeps its text."""
    line = _valid(size="0.1000000000000000055511151231257827", price="0.30000000000000004441",
                  usdcSize="1e-400")
    got = parse_json_line(line, "a.jsonl:1")
    assert (str(got.size), str(got.price), str(got.usdc_size)) == (
        "0.1000000000000000055511151231257827", "0.30000000000000004441", "1E-400")
    assert Decimal(json.loads(line)["size"]) != got.size  # json's float has lost the digits


@pytest.mark.parametrize("change", [
    {}, {"type": '"REDEEM"', "price": "null", "size": "null"}, {"type": '" merge "', "asset": '""'},
    {"proxyWallet": '"0x' + "A1" * 20 + '"', "transactionHash": '"0x' + "AB" * 32 + '"', "conditionId": '"0xAB"'},
    {"side": '" sell "', "price": '" 0.51 "', "size": '"12.50"', "usdcSize": "6.375", "title": "null"}])
def test_a_usual_row_is_read_by_the_usual_path_as_by_the_general_one(change, monkeypatch):
    """A row of the Data API's own keys, each of a usual kind, is read without _trade (the general
    path, which gives the reasons), and to the same trade, caches cold or warm."""
    line = _valid(**change)
    for _ in range(2):  # the second time its address, condition id and amounts are known
        assert_same_line(line)
    general = parse_activity_row(json.loads(line, parse_float=Decimal), "a.jsonl:1")
    monkeypatch.setattr(activity, "_trade", None)
    assert outcome(lambda: parse_json_line(line, "a.jsonl:1")) == outcome(lambda: general)
