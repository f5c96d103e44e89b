"""Shared fixtures: real PostgreSQL and DuckDB databases holding a small hand-built
dataset whose expected figures the tests compute independently with numpy/pandas.

A server the tests need that is down skips them with a loud reason on a laptop,
and fails them in CI (CI=true), where it must be running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from analytics_core.sources.database import make_engine
from tests.fixtures import Dataset, load_dataset, make_dataset

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def server_missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); these tests need it"
    if IN_CI:
        pytest.fail(f"{message}. In CI it must be running.", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}. Start it to run them.")


@pytest.fixture(scope="session")
def pg_admin():
    engine = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means the server is unusable
        server_missing("PostgreSQL at 127.0.0.1:5432", exc)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def new_pg_database(pg_admin):
    """A factory of throwaway PostgreSQL databases, dropped at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"analytics_t_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    yield make
    with pg_admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
