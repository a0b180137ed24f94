"""The backtest feed streams JSONL and JSON arrays and merges files by time."""
from __future__ import annotations

import json

import pytest

from copytrader.adapters.clock import ManualClock
from copytrader.adapters.feeds import files
from copytrader.adapters.feeds.files import FilesFeed, count_rows, iter_entries
from copytrader.adapters.feeds.http import FeedError
from copytrader.domain.model import LeaderTrade
from copytrader.ports import Quarantined


def row(ts: int, n: int, leader: str = "ab", price: str = "0.5") -> dict:
    return {"proxyWallet": "0x" + leader * 20, "timestamp": ts, "conditionId": "0x" + "cd" * 32, "type": "TRADE",
            "size": 10, "usdcSize": 5, "transactionHash": "0x" + f"{n:064x}", "price": price,
            "asset": "123", "side": "BUY", "title": "t"}


@pytest.mark.parametrize("chunk", [7, 64, 1 << 16])
def test_json_array_is_decoded_element_by_element_across_chunks(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(files, "_CHUNK", chunk)
    rows = [row(1000 + i, i) for i in range(40)] + [1.25, "x", [1, 2]]
    path = tmp_path / "a.json"
    path.write_text("  [\n" + ",\n ".join(json.dumps(r) for r in rows) + "\n]\n")
    entries = list(iter_entries(path))
    assert not any(is_line for _, is_line in entries)  # array elements come decoded
    got = [r for r, _ in entries]
    assert got[:40] == json.loads(path.read_text(), parse_float=__import__("decimal").Decimal)[:40]
    assert [str(x) for x in got[40:]] == ["1.25", "x", "[1, 2]"]
    assert count_rows(path) is None


def test_unclosed_array_is_a_one_line_feed_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"a": 1}, {"b": ')
    with pytest.raises(FeedError, match="not valid JSON"):
        list(iter_entries(path))


def test_files_merge_by_timestamp_with_cursors_per_file_and_quarantine(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.json"
    a.write_text("\n".join(json.dumps(row(t, t, "ab")) for t in (10, 30, 50)) + "\nnot json\n")
    b.write_text(json.dumps([row(t, t + 1000, "ef") for t in (20, 40)]))
    assert count_rows(a) == 4
    clock = ManualClock()
    seen = []
    feed = FilesFeed([a, b], clock=clock, observe=lambda t: seen.append(t.timestamp))
    items = list(feed.read(lambda key: None))
    stamps = [i.payload.timestamp for i in items if isinstance(i.payload, LeaderTrade)]
    assert stamps == [10, 20, 30, 40, 50] == seen
    assert isinstance(items[-1].payload, Quarantined) and items[-1].key == feed.names[0]
    assert clock.now().timestamp() == 50
    # resume: cursors per file skip what was consumed
    cursors = {feed.names[0]: "2", feed.names[1]: "1"}
    rest = [i.payload.timestamp for i in feed.read(cursors.get) if isinstance(i.payload, LeaderTrade)]
    assert rest == [40, 50]


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(FeedError, match="not found"):
        FilesFeed([tmp_path / "nope.jsonl"])


@pytest.mark.parametrize("kind", ["jsonl", "array"])
def test_rows_are_streamed_not_loaded_whole(tmp_path, kind):
    import tracemalloc

    rows = [json.dumps(row(1000 + i, i)) for i in range(20_000)]
    path = tmp_path / f"big.{kind}"
    path.write_text("\n".join(rows) if kind == "jsonl" else "[" + ",\n".join(rows) + "]")
    assert path.stat().st_size > 6_000_000
    tracemalloc.start()
    n = 0
    for item in FilesFeed([path]).read(lambda key: None):
        n += isinstance(item.payload, LeaderTrade)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 20_000
    assert peak < 1_500_000  # a few rows and a 64 KiB buffer, not the 6 MB file
