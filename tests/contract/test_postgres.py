"""PostgreSQL only: migrations, per-follower schemas, the lease, secrets."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from copytrader.adapters.storage.postgres import MIGRATIONS, PostgresStore, lease_key, redact_url
from copytrader.adapters.storage.sqlite import StoreError, StoreLockedError
from copytrader.domain.model import TradingState
from copytrader.ports import StoredState
from copytrader.testing import T0, make_trade

from .test_stores import record


def test_migrations_apply_once_and_survive_reopen(pg_url, pg_schema):
    with PostgresStore(pg_url, pg_schema) as s:
        s.put_intent(record(0))
        assert s.schema_version == len(MIGRATIONS)
    with PostgresStore(pg_url, pg_schema) as s:
        assert s.get_intent("intent-0") == record(0)
        assert s._one(f'SELECT count(*) FROM "{pg_schema}".schema_version')[0] == 1


def test_database_from_the_future_is_refused(pg_url, pg_schema):
    with PostgresStore(pg_url, pg_schema) as s:
        s._db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        PostgresStore(pg_url, pg_schema)


def test_concurrent_first_opens_migrate_once(pg_url, pg_schema):
    errors, stores = [], []

    def open_one():
        try:
            stores.append(PostgresStore(pg_url, pg_schema, lock=False))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(stores) == 4
    assert all(s.schema_version == len(MIGRATIONS) for s in stores)
    for s in stores:
        s.close()


def test_followers_are_isolated_by_schema(pg_url, pg_schema):
    other = pg_schema + "_b"
    try:
        with PostgresStore(pg_url, pg_schema) as a, PostgresStore(pg_url, other) as b:
            a.set_cursor("f", "1")
            a.set_state(StoredState(TradingState.HALTED, "a only", T0))
            assert b.get_cursor("f") is None and b.get_state().state is TradingState.ACTIVE
    finally:
        with PostgresStore(pg_url, other, lock=False) as c:
            c._db.execute(f'DROP SCHEMA "{other}" CASCADE')


def test_uncommitted_writes_are_invisible_to_another_worker(pg_url, pg_schema):
    with PostgresStore(pg_url, pg_schema) as writer, PostgresStore(pg_url, pg_schema, read_only=True) as reader:
        with writer.transaction():
            writer.add_trade(make_trade())
            writer.set_cursor("f", "1")
            assert reader.get_cursor("f") is None and not reader.has_trade(make_trade().id)
        assert reader.get_cursor("f") == "1" and reader.has_trade(make_trade().id)
        with pytest.raises(StoreError, match="read-only"):
            reader.set_cursor("f", "2")


def test_one_writer_per_follower_schema_the_lease(pg_url, pg_schema):
    first = PostgresStore(pg_url, pg_schema)
    try:
        assert first.lease_alive()
        with pytest.raises(StoreLockedError, match="in use by another copytrader worker"):
            PostgresStore(pg_url, pg_schema)
        PostgresStore(pg_url, pg_schema, read_only=True).close()  # readers are welcome
    finally:
        first.close()
    assert not first.lease_alive()
    PostgresStore(pg_url, pg_schema).close()  # released on close


def test_a_lost_lease_connection_is_noticed_and_releases_the_lock(pg_url, pg_schema):
    first = PostgresStore(pg_url, pg_schema)
    try:
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND objid = (%s::bigint & 4294967295)::oid", (lease_key(pg_schema),))
        assert not first.lease_alive()
        with pytest.raises(Exception):
            first.set_cursor("f", "1")  # the old worker cannot write any more
        PostgresStore(pg_url, pg_schema).close()  # another worker may take over now
    finally:
        first.close()


def test_bad_schema_and_unreachable_server_say_so_without_the_password(pg_url):
    with pytest.raises(StoreError, match="schema"):
        PostgresStore(pg_url, "Robert'); DROP TABLE x;--")
    url = "postgresql://ct:hunter2secret@127.0.0.1:1/ct"
    with pytest.raises(StoreError) as err:
        PostgresStore(url, connect_timeout_s=2)
    assert "hunter2secret" not in str(err.value) and "ct:***@127.0.0.1:1" in str(err.value)
    assert redact_url(url) == "postgresql://ct:***@127.0.0.1:1/ct"
    assert redact_url("postgresql://ct@host/db") == "postgresql://ct@host/db"


def test_a_refused_connection_says_why_without_the_password(pg_url):
    host = pg_url.split("@", 1)[1].split("/", 1)[0]
    with pytest.raises(StoreError) as err:
        PostgresStore(f"postgresql://postgres:n0t-shown-s3cret@{host}/no_such_db", connect_timeout_s=5)
    message = str(err.value)
    assert 'database "no_such_db" does not exist' in message and "\n" not in message
    assert "n0t-shown-s3cret" not in message and "postgres:***@" in message


def test_a_role_without_rights_gets_a_one_line_store_error(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS ct_no_rights")
        admin.execute("CREATE ROLE ct_no_rights LOGIN")
    rest = pg_url.split("@", 1)[1]
    with pytest.raises(StoreError, match="permission denied"):
        PostgresStore(f"postgresql://ct_no_rights@{rest}", schema="ct_forbidden")


def _old_schema(admin, schema: str, version: int) -> None:
    """A follower schema made by the migrations up to ``version``, as an older copytrader left it."""
    admin.execute(f'CREATE SCHEMA "{schema}"')
    admin.execute(f'SET search_path TO "{schema}"')
    admin.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for sql in MIGRATIONS[:version]:
        for statement in filter(str.strip, sql.split(";")):
            admin.execute(statement)
    admin.execute("INSERT INTO schema_version VALUES (%s)", (version,))


def test_fills_of_a_version_3_schema_are_final_after_migration(pg_url, pg_schema):
    import psycopg

    from copytrader.domain.model import Settlement

    from .test_stores import OLD_INTENT_FIELDS

    with psycopg.connect(pg_url, autocommit=True) as admin:  # the schema as copytrader's version 3 left it
        _old_schema(admin, pg_schema, 3)
        for n, status in enumerate(("filled", "skipped")):
            admin.execute(f"INSERT INTO intents ({', '.join(OLD_INTENT_FIELDS)}) "
                          f"VALUES ({', '.join(['%s'] * len(OLD_INTENT_FIELDS))})",
                          (f"i{n}", f"t{n}", "f", "0xab", "1", "0xcd", "BUY", 100, "0.5", T0 + timedelta(seconds=n),
                           "approved", status, "", "", 10, "0.5", "FOK", 10 - 10 * n, "0.5" if n == 0 else None, 0,
                           None, "0x1", "", None, "m"))
    with PostgresStore(pg_url, pg_schema) as s:
        assert s.schema_version == len(MIGRATIONS)
        rows = list(reversed(s.history(10)))
        assert [(r.intent_id, r.filled_size, r.settlement, r.booked) for r in rows] == [
            ("i0", 10, Settlement.FINAL, ""), ("i1", 0, Settlement.FINAL, "")]
        assert s.intents_in(Settlement.PROVISIONAL) == []


def test_quarantine_of_an_old_schema_keeps_the_first_of_each_row(pg_url, pg_schema):
    import psycopg

    from copytrader.ports import Quarantined

    from .test_stores import OLD_QUARANTINE

    with psycopg.connect(pg_url, autocommit=True) as admin:  # the schema as copytrader's version 1 left it
        _old_schema(admin, pg_schema, 1)
        with admin.cursor() as cur:
            cur.executemany("INSERT INTO quarantine (at, source, raw, reason) VALUES (%s, %s, %s, %s)", OLD_QUARANTINE)
    with PostgresStore(pg_url, pg_schema) as s:
        assert s.schema_version == len(MIGRATIONS)
        assert s.quarantined() == [(T0, Quarantined(*OLD_QUARANTINE[1][1:])), (T0, Quarantined(*OLD_QUARANTINE[0][1:]))]
        s.quarantine(Quarantined("c.jsonl:3", '{"price": "abc"}', "price is not a number: 'abc'"), T0)
        assert len(s.quarantined()) == 2  # the key the migration computed is the key of a new row


def test_old_reasons_of_a_schema_read_as_the_settings_names(pg_url, pg_schema):
    import psycopg

    from .test_stores import OLD_INTENT_FIELDS as _INTENT_FIELDS
    from .test_stores import OLD_REASONS

    with psycopg.connect(pg_url, autocommit=True) as admin:  # the schema as copytrader's version 1 left it
        _old_schema(admin, pg_schema, 1)
        for n, old in enumerate(OLD_REASONS):
            admin.execute(f"INSERT INTO intents ({', '.join(_INTENT_FIELDS)}) "
                          f"VALUES ({', '.join(['%s'] * len(_INTENT_FIELDS))})",
                          (f"i{n}", f"t{n}", "f", "0xab", "1", "0xcd", "BUY", 100, "0.5", T0 + timedelta(seconds=n),
                           "rejected", "skipped", old, "detail", None, None, "FOK", 0, None, 0, None, "", "", None, "m"))
    with PostgresStore(pg_url, pg_schema) as s:
        assert [r.reason for r in reversed(s.history(20))] == list(OLD_REASONS.values())


def test_positions_of_a_version_4_schema_are_kept_and_settled_rows_stay_settled(pg_url, pg_schema):
    import psycopg

    from .test_stores import OLD_POSITION_COLUMNS, OLD_POSITION_ROWS, assert_old_positions_kept

    with psycopg.connect(pg_url, autocommit=True) as admin:  # the schema as copytrader's version 4 left it
        _old_schema(admin, pg_schema, 4)
        with admin.cursor() as cur:
            cur.executemany(f"INSERT INTO positions ({OLD_POSITION_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})",
                            OLD_POSITION_ROWS)
    with PostgresStore(pg_url, pg_schema) as s:
        assert s.schema_version == len(MIGRATIONS) >= 5
        assert_old_positions_kept(s.positions(include_closed=True))
        assert [q.title for q in s.positions()] == ["open"]
