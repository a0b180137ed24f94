"""Suite-wide options."""
from __future__ import annotations


def pytest_addoption(parser) -> None:
    parser.addoption("--kills", type=int, default=50,
                     help="kill -9 points for the crash-consistency harness (CI: 50; try 200+)")


# -- PostgreSQL: one throwaway cluster per session, one fresh schema per test --
import os  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pg_url():
    """The URL of a running PostgreSQL: $COPYTRADER_TEST_PG_URL or a cluster
    started here. Skips when none can be started, fails under CI or
    COPYTRADER_REQUIRE_PG=1."""
    from tests import pgserver

    given = os.environ.get(pgserver.URL_ENV)
    if given:
        yield given
        return
    cluster = pgserver.Cluster()
    try:
        url = cluster.start()
        pgserver.wait_ready(url)
    except Exception as exc:  # noqa: BLE001 - any reason: say it
        cluster.stop()
        message = f"no PostgreSQL server for the tests: {exc}"
        if pgserver.required():
            pytest.fail(message + " (required: CI or COPYTRADER_REQUIRE_PG=1)")
        pytest.skip(message)
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def pg_schema(pg_url):
    """A schema name unique to this test, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
