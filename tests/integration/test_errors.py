"""Errors are sentences with the documented exit codes (issue 14, items 6 and 5.3).

Bad input (a market file of the wrong shape, a --db that is not a database or
cannot be made, a missing extra) is one line and exit 2, never an exception
name; a failed command leaves no database, lock file or folder it made; a
database this user cannot write can still be read; a reader that stops
reading (`| head`) ends the command quietly; a state-changing command refuses
a database that does not exist unless given --create."""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from copytrader.entrypoints.cli import main
from copytrader.entrypoints.config import SAMPLE_ACTIVITY, SAMPLE_MARKETS

ROOT = Path(__file__).resolve().parents[2]
ENV = {"COPYTRADER_CONFIG": None, "COPYTRADER_PRIVATE_KEY": None}
KEY = "0x" + "4c" * 32
LEADER = "0x" + "ab" * 20
# what a message must never show: a Python exception's name, a traceback
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|Traceback|\bErrno\b|halted; None")


def cli(*args, env=None):
    return CliRunner().invoke(main, list(args), env={**ENV, **(env or {})})


def assert_one_sentence(res, *named, code=2):
    """Exit ``code``, one "Error:" line naming each of ``named``, no exception name."""
    assert res.exit_code == code, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert not EXCEPTION_NAME.search(lines[0]), lines[0]
    for text in named:
        assert str(text) in lines[0], (text, lines[0])


def leftovers(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("sample") / "ct.db"
    res = cli("--db", str(db), "run", "--sample")
    assert res.exit_code == 0, res.output
    Path(f"{db}.lock").unlink()
    return db


# -- market files of the wrong shape -------------------------------------------------
BOOK = {"bids": [["0.49", "100"]], "asks": [["0.51", "80"]]}


def _market(**changes):
    token = {"token_id": "1", "book": BOOK, **changes.pop("token", {})}
    return {"markets": [{"condition_id": "0x" + "cd" * 32, "tokens": [token], **changes}]}


@pytest.mark.parametrize("content, where", [
    ({"markets": {"x": 1}}, "markets must be a list"),
    ({"tokens": 3}, 'no "markets"'),
    ([], "the top level is []"),
    (["a", "b"], 'the top level is ["a", "b"]'),
    ({"markets": ["a"]}, "markets[0] must be an object"),
    ({"markets": [{"tokens": []}]}, "markets[0] has no condition_id"),
    ({"markets": [{"condition_id": "0x1"}]}, "markets[0] has no tokens"),
    ({"markets": [{"condition_id": "0x1", "tokens": 3}]}, "markets[0].tokens must be a list"),
    ({"markets": [{"condition_id": "0x1", "tokens": [{"book": BOOK}]}]}, "markets[0].tokens[0] has no token_id"),
    (_market(token={"book": {"bids": [["x", "1"]]}}), "markets[0].tokens[0].book.bids[0] price must be a number"),
    (_market(token={"book": {"asks": [["0.5"]]}}), "markets[0].tokens[0].book.asks[0] must be a [price, size] pair"),
    (_market(token={"book": {"asks": [["1.5", "10"]]}}), "book.asks[0] price must be above 0 and below 1"),
    (_market(token={"book": {"asks": [["0.5", "-1"]]}}), "book.asks[0] size must be above 0"),
    (_market(token={"book": {"asks": "none"}}), "book.asks must be a list"),
    (_market(token={"book": []}), "markets[0].tokens[0].book must be an object"),
    (_market(token={"books": [{"bids": []}]}), "markets[0].tokens[0].books[0] has no at"),
    (_market(token={"books": [{"at": "soon"}]}), "books[0].at must be a Unix time"),
    (_market(token={"winner": "yes"}), "markets[0].tokens[0].winner must be true, false or null"),
    (_market(closed="no"), "markets[0].closed must be true or false"),
    (_market(tick_size="0"), "markets[0].tick_size must be above 0 and below 1"),
    (_market(min_order_size="lots"), "markets[0].min_order_size must be a number"),
    (_market(resolved_at=-5), "markets[0].resolved_at must be a Unix time"),
])
def test_a_market_file_of_the_wrong_shape_names_the_entry_and_leaves_nothing(tmp_path, content, where):
    markets = tmp_path / "m.json"
    markets.write_text(json.dumps(content))
    db = tmp_path / "data" / "new.db"
    res = cli("--db", str(db), "run", "--sample", "--markets", str(markets))
    assert_one_sentence(res, f"market file {markets}: ", where)
    assert leftovers(tmp_path) == {"m.json"}  # no new.db, new.db.lock, nor the data/ folder made for them


def test_a_market_file_with_a_token_twice_is_refused(tmp_path):
    content = _market()
    content["markets"][0]["tokens"].append({"token_id": "1", "book": BOOK})
    markets = tmp_path / "m.json"
    markets.write_text(json.dumps(content))
    assert_one_sentence(cli("--db", str(tmp_path / "a.db"), "run", "--sample", "--markets", str(markets)),
                        "markets[0].tokens[1].token_id 1 is already in markets[0].tokens[0]")


def test_a_failed_command_on_a_database_with_data_keeps_it(sample_db, tmp_path):
    before = sample_db.read_bytes()
    markets = tmp_path / "m.json"
    markets.write_text('{"markets": {"x": 1}}')
    assert_one_sentence(cli("--db", str(sample_db), "run", "--sample", "--markets", str(markets)), "markets")
    assert sample_db.read_bytes() == before
    assert cli("--db", str(sample_db), "positions", "--json").exit_code == 0


# -- --db paths that cannot be used -------------------------------------------------
def test_a_db_in_a_missing_folder_makes_the_folder(tmp_path):
    db = tmp_path / "nodir" / "deeper" / "a.db"
    res = cli("--db", str(db), "run", "--sample")
    assert res.exit_code == 0, res.output
    assert db.is_file()


def test_a_db_under_a_file_is_one_sentence_and_makes_nothing(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    db = tmp_path / "file.txt" / "sub" / "a.db"
    assert_one_sentence(cli("--db", str(db), "run", "--sample"), f"cannot create folder {tmp_path / 'file.txt'}",
                        "choose a path in a folder you can write")
    assert leftovers(tmp_path) == {"file.txt"}


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, where no file can be made")
def test_a_db_where_no_lock_file_can_be_made_is_one_sentence():
    res = cli("--db", "/proc/copytrader-test.db", "run", "--sample")
    assert_one_sentence(res, "cannot create lock file /proc/copytrader-test.db.lock",
                        "choose a path in a folder you can write")


@pytest.mark.parametrize("command", [
    ["run", "--sample"], ["positions"], ["history"], ["halt"], ["resume"], ["leaders", "add", LEADER],
    ["leaders", "remove", LEADER], ["leaders", "list"], ["report"], ["audit"], ["backtest", "--sample"],
])
def test_a_file_that_is_not_a_database_is_one_sentence_for_every_command(tmp_path, command):
    db = tmp_path / "x.db"
    db.write_text("not a database\n")
    res = cli("--db", str(db), *command)
    assert_one_sentence(res, db)
    assert "database" in res.output
    assert db.read_text() == "not a database\n" and leftovers(tmp_path) == {"x.db"}  # no x.db.lock, -wal, -shm


@pytest.mark.parametrize("command", [["run", "--sample"], ["positions"], ["history"], ["halt"], ["report"]])
def test_dev_null_as_the_database_is_one_sentence(command):
    assert_one_sentence(cli("--db", "/dev/null", *command), "/dev/null")


@pytest.mark.parametrize("command", [["positions"], ["history"], ["report"], ["leaders", "list"], ["audit"]])
def test_reading_a_missing_database_creates_none(tmp_path, command):
    db = tmp_path / "missing.db"
    res = cli("--db", str(db), *command, *(["--out", str(tmp_path / "out")] if command == ["audit"] else []))
    if command in (["leaders", "list"], ["audit"]):  # the config's leaders / no evidence (3): not an error
        assert res.exit_code in (0, 1, 3) and not EXCEPTION_NAME.search(res.output), res.output
    else:
        assert_one_sentence(res, f"database {db} does not exist", "check --db or store.path")
    assert not db.exists() and not Path(f"{db}.lock").exists()


# -- state-changing commands on a database that does not exist (5.3) ----------------
@pytest.mark.parametrize("command", [["halt"], ["halt", "--reduce-only"], ["resume"], ["leaders", "add", LEADER],
                                     ["leaders", "remove", LEADER]])
def test_a_state_change_on_a_missing_database_is_refused(tmp_path, command):
    db = tmp_path / "typo.db"
    res = cli("--db", str(db), *command)
    assert_one_sentence(res, f"database {db} does not exist", "check --db or store.path")
    # only where making a new database is of use (halted before its first run, leaders added before it)
    assert ("pass --create" in res.output) == (command[0] == "halt" or command[:2] == ["leaders", "add"])
    assert leftovers(tmp_path) == set()


def test_create_makes_the_database_on_purpose(tmp_path):
    db = tmp_path / "new.db"
    res = cli("--db", str(db), "halt", "--create", "--reason", "before the first run")
    assert res.exit_code == 0 and "HALTED" in res.output, res.output
    assert cli("--db", str(db), "resume").exit_code == 0  # it exists now: no --create needed
    res = cli("--db", str(tmp_path / "other.db"), "leaders", "add", LEADER, "--create")
    assert res.exit_code == 0, res.output


def test_a_state_change_on_an_existing_database_needs_no_create(sample_db):
    res = cli("--db", str(sample_db), "halt", "--reason", "desk")
    assert res.exit_code == 0 and "HALTED" in res.output, res.output
    assert cli("--db", str(sample_db), "resume").exit_code == 0


def test_a_state_change_on_a_missing_postgres_schema_is_refused(pg_url, pg_schema):
    env = {"COPYTRADER_STORE__URL": pg_url, "COPYTRADER_STORE__SCHEMA": pg_schema}
    assert_one_sentence(cli("halt", env=env), f"follower schema {pg_schema} does not exist", "--create")
    assert_one_sentence(cli("positions", env=env), f"follower schema {pg_schema} does not exist")
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema,)).fetchone() is None
    res = cli("halt", "--create", env=env)
    assert res.exit_code == 0 and "HALTED" in res.output, res.output
    assert cli("resume", env=env).exit_code == 0


# -- a database this user cannot write is read -------------------------------------
READ_AS = """
import contextlib, io, json, os, sys
from copytrader.entrypoints.cli import main
warm, uid, args = json.loads(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
# every module the command imports is loaded first, on a copy: the interpreter's
# own files may be out of the other user's reach
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(warm, standalone_mode=False)
    except (SystemExit, Exception):
        pass
if uid >= 0:
    os.setgid(uid)
    os.setuid(uid)
main(args)
"""


@pytest.fixture
def read_only_db(sample_db):
    """The sample database in a folder (0555) and file (0444) this user cannot
    write: as root, the commands run as ``nobody``."""
    if os.geteuid() == 0:
        try:
            uid = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            pytest.skip("running as root without a 'nobody' user to read as")
    else:
        uid = -1
    top = Path(tempfile.mkdtemp(prefix="copytrader-ro-"))
    try:
        top.chmod(0o755)
        folder, out = top / "ro", top / "out"
        folder.mkdir()
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        shutil.copy(sample_db, top / "warm.db")
        shutil.copy(sample_db, folder / "ct.db")
        # the bundled sample, where that user can read it (a checkout may sit in a folder only root can)
        for sample in (SAMPLE_ACTIVITY, SAMPLE_MARKETS):
            shutil.copy(sample, top / sample.name)
            (top / sample.name).chmod(0o644)
        (folder / "ct.db").chmod(0o444)
        folder.chmod(0o555)

        def run(*args, out_name="r"):
            def argv(db, where):
                extra = ["--out", str(where)] if args[0] in ("report", "audit") else []
                return json.dumps(["--db", str(db), *args, *extra])
            return subprocess.run(
                [sys.executable, "-c", READ_AS, argv(top / "warm.db", top / "warm-out"), str(uid),
                 argv(folder / "ct.db", out / out_name)],
                capture_output=True, text=True, timeout=120, cwd=top,
                env={**os.environ, "COPYTRADER_CONFIG": "", "MPLCONFIGDIR": str(out)})
        run.folder = folder
        run.sample = ["--replay", str(top / SAMPLE_ACTIVITY.name), "--markets", str(top / SAMPLE_MARKETS.name)]
        yield run
    finally:
        for path in (top / "ro",):
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(top)


def test_a_database_this_user_cannot_write_can_be_read(read_only_db):
    folder = read_only_db.folder
    assert sorted(leftovers(folder)) == ["ct.db"]
    assert (folder / "ct.db").read_bytes()[18:20] == b"\x02\x02"  # a WAL database, whose -shm cannot be made here
    for args in (["positions", "--all"], ["history", "--limit", "3"], ["leaders", "list"], ["report", "--json"]):
        res = read_only_db(*args)
        assert res.returncode == 0, (args, res.stdout[-500:], res.stderr[-2000:])
        assert res.stdout.strip() and not EXCEPTION_NAME.search(res.stderr), (args, res.stderr)
    assert json.loads(read_only_db("report", "--json").stdout)["runs"][0]["counts"]["copied"] > 0
    assert sorted(leftovers(folder)) == ["ct.db"]  # no -wal, -shm or .lock next to it


def test_writing_to_a_database_this_user_cannot_write_is_one_sentence(read_only_db):
    for args in (["halt"], ["run", *read_only_db.sample]):
        res = read_only_db(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and not EXCEPTION_NAME.search(lines[0]), lines
        assert str(read_only_db.folder / "ct.db") in lines[0]
    assert sorted(leftovers(read_only_db.folder)) == ["ct.db"]


def test_reads_create_nothing_next_to_the_database(sample_db, tmp_path):
    db = tmp_path / "ct.db"
    shutil.copy(sample_db, db)
    for args in (["positions"], ["history"], ["leaders", "list"], ["report", "--json", "--out", str(tmp_path / "r")]):
        res = cli("--db", str(db), *args)
        assert res.exit_code == 0, res.output
    assert leftovers(tmp_path) == {"ct.db", "r"}


# -- extras that are not installed ---------------------------------------------------
WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # "import name" now fails as if it were not installed
from copytrader.entrypoints.cli import main
main(sys.argv[2:])
"""
LIVE_MODULES = "httpx,web3,eth_account,eth_abi,eth_utils,polymarket,coincurve"


def without(modules: str, *args, cwd):
    return subprocess.run([sys.executable, "-c", WITHOUT, modules, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "COPYTRADER_CONFIG": "",
                                                     "COPYTRADER_PRIVATE_KEY": KEY})


@pytest.mark.parametrize("args", [
    ["doctor"],
    ["trade-once", "--token-id", "1", "--side", "BUY", "--usdc", "5"],
    ["--profile", "dry-run", "run", "--sample"],
])
def test_a_live_command_on_a_base_install_names_the_live_extra(tmp_path, args):
    res = without(LIVE_MODULES, "--db", str(tmp_path / "new.db"), *args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'copytrader[live]'" in lines[0], res.stderr
    assert "httpx" in lines[0] and not EXCEPTION_NAME.search(lines[0]), lines[0]
    assert leftovers(tmp_path) == set()  # no database made for a command that could not run


def test_serve_without_the_service_extra_names_it(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[feed]\nkind = "replay"\npath = "{SAMPLE_ACTIVITY}"\n[[followers]]\nname = "a"\n'
                      f'[store]\npath = "{tmp_path / "a.db"}"\n')
    res = without("prometheus_client", "--config", str(config), "serve", "--port", "0", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'copytrader[service]'" in lines[0], res.stderr
    assert not EXCEPTION_NAME.search(lines[0]), lines[0]


def test_the_extras_table_knows_every_module_each_extra_installs():
    """EXTRAS (cli) names a missing module's extra: it must list each extra's direct requirements."""
    from importlib.metadata import requires

    from copytrader.entrypoints.cli import EXTRAS

    declared: dict[str, set[str]] = {}
    imported_as = {"polymarket_client": "polymarket"}  # distributions whose module has another name
    for requirement in requires("copytrader") or []:
        match = re.match(r"([A-Za-z0-9_.-]+).*extra == \"(\w+)\"", requirement)
        if match and match.group(2) != "test":
            name = match.group(1).lower().replace("-", "_")
            declared.setdefault(match.group(2), set()).add(imported_as.get(name, name))
    assert set(declared) == set(EXTRAS)
    for extra, modules in declared.items():
        assert modules <= set(EXTRAS[extra]), (extra, modules - set(EXTRAS[extra]))


# -- a reader that stops reading ---------------------------------------------------
@pytest.mark.parametrize("args", [
    ["history"], ["history", "--json"], ["positions", "--all"], ["leaders", "list"], ["config", "check"],
    ["report", "--json"], ["watch", "--replay", str(SAMPLE_ACTIVITY)],
])
def test_output_into_a_closed_pipe_ends_quietly(sample_db, tmp_path, args):
    db = tmp_path / "ct.db"
    shutil.copy(sample_db, db)
    out = ["--out", str(tmp_path / "r")] if args[0] == "report" else []
    env = {**os.environ, "COPYTRADER_CONFIG": "", "COPYTRADER_LEADERS": LEADER}
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line (`| head -0`): every write fails
    try:
        child = subprocess.run([sys.executable, "-m", "copytrader.entrypoints.cli", "--db", str(db), *args, *out],
                               stdout=write, stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    finally:
        os.close(write)
    assert child.returncode == 0, child.stderr
    if args[0] == "watch":  # its quarantine notes go to stderr by design
        assert not EXCEPTION_NAME.search(child.stderr) and "Error" not in child.stderr, child.stderr
    else:
        assert child.stderr == ""


def test_history_into_head_is_quiet(sample_db, tmp_path):
    db = tmp_path / "ct.db"
    shutil.copy(sample_db, db)
    exe = Path(sys.executable).with_name("copytrader")
    res = subprocess.run(f"'{exe}' --db '{db}' history --limit 1000 | head -1", shell=True, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "COPYTRADER_CONFIG": ""})
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 1 and res.stderr == "", res.stderr


# -- the store's lock file ------------------------------------------------------------
def test_a_lock_file_replaced_after_it_was_opened_is_not_the_lock(tmp_path):
    """A failed opener removes the lock file it made while holding it; a process
    that had opened that file must not count its lock as the store's."""
    from copytrader.adapters.storage.sqlite import _same_file

    path = tmp_path / "a.db.lock"
    path.write_text("")
    fd = os.open(path, os.O_RDWR)
    try:
        assert _same_file(fd, path)
        path.unlink()
        assert not _same_file(fd, path)
        path.write_text("")  # made again by the next opener
        assert not _same_file(fd, path)
    finally:
        os.close(fd)


def test_an_app_left_by_an_exception_keeps_a_database_with_data(tmp_path):
    from copytrader.entrypoints.api import connect

    db = tmp_path / "a.db"
    with pytest.raises(RuntimeError):
        with connect("paper", overrides={"store": {"path": str(db)}}, environ={}) as app:
            app.halt("kept")
            raise RuntimeError("the command failed after writing")
    assert cli("--db", str(db), "history").exit_code == 0 and db.exists()
    with connect("paper", overrides={"store": {"path": str(db)}}, environ={}) as app:
        assert app.state().reason == "kept"
    with pytest.raises(RuntimeError):
        with connect("paper", overrides={"store": {"path": str(tmp_path / "b.db")}}, environ={}) as app:
            app.positions()
            raise RuntimeError("the command failed before writing")
    assert leftovers(tmp_path) == {"a.db", "a.db.lock"}


def test_stores_opened_at_once_in_one_new_folder_all_open(tmp_path):
    """Followers of `serve` open their stores in parallel threads: one of them
    finding the folder made by another meanwhile is no error (it once failed
    a follower with "cannot create folder ... File exists")."""
    import threading

    from copytrader.adapters.storage.sqlite import SqliteStore

    folder = tmp_path / "new" / "data"
    start, errors, stores = threading.Barrier(16), [], []

    def open_one(i):
        start.wait()
        try:
            stores.append(SqliteStore(folder / f"f{i}.db"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in stores:
        s.close()
    assert errors == [] and len(stores) == 16
