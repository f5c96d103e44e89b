"""Shared fixtures: real PostgreSQL and DuckDB databases holding a small hand-built
dataset whose expected figures the tests compute independently with numpy/pandas.

The servers come from ``tests/servers.py``: the one configured or running, else a
throwaway one the tests start; a missing binary skips loudly on a laptop and fails in
CI (CI=true).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from analytics_core.sources.database import make_engine
from tests.fixtures import Dataset, load_dataset, make_dataset
from tests.servers import PostgresServer, postgres_server, redis_server, server_missing


@pytest.fixture(autouse=True, scope="session")
def _served_on_loopback():
    """The app under AppTest listens where ``analytics serve`` puts it by default:
    loopback (unset, Streamlit binds every interface, which sign-in mode none refuses)."""
    from streamlit import config as st_config

    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "127.0.0.1")
    yield
    st_config.set_option("server.address", before)


@pytest.fixture(autouse=True, scope="session")
def _pseudonym_key() -> Iterator[None]:
    """The exports' pseudonym key: the session's, never a key file in the user's data."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANALYTICS_ANONYMISE_KEY", "test-session-key")
        yield


@pytest.fixture(autouse=True)
def _audit_store(tmp_path_factory, monkeypatch) -> str:
    """Each test's own audit log, never the user's: what one test exports does not count
    against another's export limit (tests that read the log set their own URL)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.sqlite'}"
    monkeypatch.setenv("ANALYTICS_AUDIT_URL", url)
    # And its own export budget: the app keeps one in-process limiter per process.
    app_access = sys.modules.get("analytics_app.ui.access")
    if app_access is not None:
        app_access._limiter.clear()
    return url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_admin(pg_server):
    engine = create_engine(
        pg_server.admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means the server is unusable
        server_missing(f"PostgreSQL at {pg_server.admin_url}", f"not usable ({exc})")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def new_pg_database(pg_server, pg_admin):
    """A factory of throwaway PostgreSQL databases, dropped at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"analytics_t_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return pg_server.url_for(name)

    yield make
    with pg_admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return make_dataset(seed=7)


@pytest.fixture(scope="session")
def duckdb_url(tmp_path_factory, dataset) -> str:
    path: Path = tmp_path_factory.mktemp("duck") / "fixture.duckdb"
    url = f"duckdb:///{path}"
    writer = make_engine(url, read_only=False)
    load_dataset(writer, dataset)
    writer.dispose()
    return url


@pytest.fixture(scope="session")
def postgresql_url(new_pg_database, dataset) -> str:
    url = new_pg_database()
    writer = make_engine(url, read_only=False)
    load_dataset(writer, dataset)
    writer.dispose()
    return url


@pytest.fixture(params=["duckdb", "postgresql"])
def db_url(request) -> str:
    """The fixture dataset's URL on each backend in turn."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(db_url) -> Iterator:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
