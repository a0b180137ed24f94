"""Secret hygiene: run the paper, dry-run and live paths (against the loopback
CLOB stand-in) with a known key, at debug log level, through success and
failure, then look for the key (with and without 0x, any case) and the API
credentials in everything we produced: every log line and printed line,
every file we wrote (telemetry included), every database row, every
exception message and the reprs of the wired objects."""
from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path
from typing import Iterable

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from copytrader.testing import make_app
from tests.reliability import FIGURES
from tests.reliability.crash import TOKENS, leader_rows, set_books, write_config
from tests.standins.clob import ClobStandIn

KEY = "0x" + "7d3a" * 16
TOKEN = sorted(TOKENS)[0]


def needles(key: str, creds: Iterable[dict]) -> set[str]:
    found = {key, key[2:], key[2:].upper()}
    for c in creds:
        found |= {c["secret"], c["passphrase"]}
    return found


def leaks(texts: dict[str, str], secrets: set[str]) -> list[str]:
    return sorted(f"{where}: contains {s[:6]}…" for where, text in texts.items() for s in secrets
                  if s.lower() in text.lower())


def database_rows(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as raw:
        return {f"{db.name} row": "\n".join(raw.iterdump())}


def written_files(folder: Path, skip: set[Path]) -> dict[str, str]:
    out = {}
    for path in folder.rglob("*"):
        if path.is_file() and path not in skip:
            out[str(path.relative_to(folder))] = path.read_bytes().decode("utf-8", "replace")
    return out


@pytest.fixture
def world(tmp_path):
    with ClobStandIn() as clob:
        set_books(clob)
        feed = tmp_path / "leaders.jsonl"
        feed.write_text("".join(json.dumps(r) + "\n" for r in leader_rows(12, random.Random(3), 1_900_000_000)))
        config = write_config(tmp_path, clob.url, feed)
        key_file = tmp_path / "secrets" / "key"
        key_file.parent.mkdir()
        key_file.write_text(KEY + "\n")
        os.chmod(key_file, 0o600)
        yield tmp_path, clob, config, key_file


def test_no_secret_anywhere_we_write(world):
    folder, clob, config, key_file = world
    outputs: dict[str, str] = {}

    def cli(name: str, *args: str, key_env: bool = True, db: str = "ct.db", expect: int = 0):
        env = {"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": KEY if key_env else None,
               "COPYTRADER_LIVE__KEY_FILE": None if key_env else str(key_file)}
        res = CliRunner().invoke(main, ["--config", str(config), "--db", str(folder / db), "--log-level", "debug",
                                        *args], env=env)
        outputs[name] = res.output + (repr(res.exception) if res.exception else "")
        assert expect is None or res.exit_code == expect, (name, res.output)
        assert "Traceback" not in res.output, name
        FIGURES["secret scans: command runs"] += 1
        return res

    cli("paper run", "--profile", "paper", "run", "--sample", db="paper.db")
    cli("paper config check", "config", "check", "--json")
    cli("dry-run run", "--profile", "dry-run", "run", db="dry.db")
    cli("dry-run trade-once", "--profile", "dry-run", "trade-once", "--token-id", TOKEN, "--side", "BUY",
        "--size", "5", "--json", db="dry.db")
    cli("live run (key file)", "run", "--live", "--yes", key_env=False)
    clob.inject("POST /order", "500", "timeout", "truncated")
    cli("live run with faults", "run", "--live", "--yes", "--replay", str(folder / "leaders.jsonl"),
        db="faults.db")
    cli("live trade-once", "trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5", "--live", "--yes",
        "--json", "--telemetry-out", str(folder / "telemetry" / "once.json"))
    clob.geo_blocked = True
    cli("live trade-once refused", "trade-once", "--token-id", TOKEN, "--side", "BUY", "--size", "5", "--live",
        "--yes", expect=1)
    clob.geo_blocked = False
    for view in (["history", "--json", "--limit", "1000"], ["positions", "--json"], ["audit", "--json"],
                 ["config", "check", "--json"]):
        cli(" ".join(view), *view, expect=None)
    assert clob.posts, "the live runs must have posted orders"
    assert any("DEBUG" in text for text in outputs.values()), "debug logging must have been on"
    secrets = needles(KEY, clob.creds.values())
    texts = {f"output of {k}": v for k, v in outputs.items()}
    texts.update(written_files(folder, skip={key_file}))
    for db in folder.glob("*.db"):
        texts.update(database_rows(db))
    FIGURES["secret scans: texts searched"] += len(texts)
    assert leaks(texts, secrets) == []


def test_reprs_and_exceptions_hide_the_key(world):
    folder, clob, _, _ = world
    app, _ = make_app({"live": {"host": clob.url, "gamma_host": clob.url, "timeout_s": "0.5"}}, profile="live",
                      environ={"COPYTRADER_PRIVATE_KEY": KEY})
    try:
        container = app.container
        wired = container.config()  # every value the container was built from, the key among them
        objects = [app, wired, wired["private_key"], wired["live"], container.executor(), container.store(),
                   container.market()]
        texts = {f"repr {type(o).__name__}": repr(o) + str(o) for o in objects}
    finally:
        app.close()
    for bad in (KEY[:-2] + "zz", KEY[2:40], KEY + "00"):
        with pytest.raises(Exception) as info:
            make_app({"live": {"host": clob.url}}, profile="live", environ={"COPYTRADER_PRIVATE_KEY": bad})[0] \
                .container.executor()
        texts[f"error for a malformed key {len(bad)}"] = str(info.value) + repr(info.value)
        assert leaks({"error": str(info.value)}, {bad, bad[2:]}) == []
    FIGURES["secret scans: texts searched"] += len(texts)
    assert leaks(texts, needles(KEY, clob.creds.values())) == []


def test_the_scan_finds_a_planted_secret(world):
    """The checker itself: a key written anywhere is reported."""
    folder, clob, _, key_file = world
    db = folder / "planted.db"
    with sqlite3.connect(db) as raw:
        raw.execute("create table t (v text)")
        raw.execute("insert into t values (?)", (json.dumps({"note": KEY[2:].upper()}),))
    (folder / "log.txt").write_text(f"signing with {KEY}\n")
    texts = {**written_files(folder, skip={key_file}), **database_rows(db)}
    found = leaks(texts, needles(KEY, []))
    assert any("log.txt" in f for f in found) and any("planted.db row" in f for f in found)
    assert leaks(written_files(folder, skip=set()), {KEY}) != []  # the key file itself holds it


def test_key_file_wider_than_0600_is_refused(world):
    folder, _, config, key_file = world
    os.chmod(key_file, 0o640)
    res = CliRunner().invoke(main, ["--config", str(config), "--db", str(folder / "ct.db"), "run", "--live", "--yes"],
                             env={"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": None,
                                  "COPYTRADER_LIVE__KEY_FILE": str(key_file)})
    assert res.exit_code == 2 and "0600" in res.output and "Traceback" not in res.output
    assert KEY[2:] not in res.output
