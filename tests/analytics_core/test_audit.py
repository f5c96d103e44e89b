"""The audit log against real stores: SQLite and DuckDB files in a temp dir and throwaway
PostgreSQL databases. Expected values are written out here, or read back with the
drivers themselves (sqlite3, duckdb, psycopg) rather than through the module."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import psycopg
import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from analytics_core import schema
from analytics_core.audit import (
    ACTIONS,
    COLUMNS,
    POSTGRES_WRITER_GRANTS,
    AuditEvent,
    AuditLog,
    AuditUnavailable,
    check_audit_url,
    default_audit_url,
)
from analytics_core.config import normalize_db_url
from analytics_core.filters import InputError
from analytics_core.sources.database import make_engine
from tests.fixtures import executed_statements

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
DTYPES = {
    "at": "datetime64[us, UTC]",
    "user": "str",
    "role": "str",
    "action": "str",
    "page": "str",
    "filters": "str",
    "format": "str",
    "rows": "Int64",
    "client": "str",
    "detail": "str",
}


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def audit_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite'}"
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'audit.duckdb'}"
    return request.getfixturevalue("new_pg_database")()


@pytest.fixture
def log(audit_url):
    audit = AuditLog(audit_url)
    yield audit
    audit.close()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _raw_rows(url: str, sql: str) -> list[tuple]:
    """Run ``sql`` with the backend's own driver, bypassing the module under test."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        with sqlite3.connect(parsed.database) as conn:
            return conn.execute(sql).fetchall()
    if backend == "duckdb":
        with duckdb.connect(parsed.database) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(_libpq(url)) as conn:
        return conn.execute(sql).fetchall()


def _table_names(url: str) -> set[str]:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema NOT IN "
            "('information_schema', 'pg_catalog')"
        )
    return {name for (name,) in _raw_rows(url, sql)}


def _stored_utc_text(url: str) -> list[str]:
    """The stored times as UTC wall-clock text, read by the driver itself."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        sql = 'SELECT "at" FROM analytics_audit ORDER BY id'
    elif backend == "duckdb":
        sql = """SELECT strftime(timezone('UTC', "at"), '%Y-%m-%d %H:%M:%S.%f')
                 FROM analytics_audit ORDER BY id"""
    else:
        sql = """SELECT to_char("at" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')
                 FROM analytics_audit ORDER BY id"""
    return [value for (value,) in _raw_rows(url, sql)]


# --- the event -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "delete"}, "'delete' is not one of view, export, denied, sign_in"),
        ({"action": "View"}, "'View' is not one of"),
        ({"user": ""}, "non-empty string"),
        ({"at": datetime(2026, 3, 2, 9, 0)}, "aware datetime"),
        ({"filters": {1: "a", "b": 2}}, "cannot be stored as JSON"),
    ],
)
def test_event_rejects_bad_fields(kwargs, message):
    fields = {"user": "ann", "role": "viewer", "action": "view", **kwargs}
    with pytest.raises(ValueError, match=message):
        AuditEvent(**fields)


def test_event_accepts_every_action_and_defaults_to_now():
    before = datetime.now(UTC)
    events = [AuditEvent("ann", None, action) for action in ACTIONS]
    after = datetime.now(UTC)
    assert [e.action for e in events] == ["view", "export", "denied", "sign_in"]
    assert all(before <= e.at <= after and e.at.utcoffset() == timedelta(0) for e in events)


# --- writing and reading back --------------------------------------------------------


def test_round_trip_keeps_every_field(log, audit_url):
    at = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=BERLIN)  # 04:06:07.123456 UTC
    full = AuditEvent(
        user="ann@example.com",
        role="admin",
        action="export",
        page="business",
        filters={"tenants": ["t2", "t1"], "granularity": "day", "day": date(2026, 3, 1)},
        format="csv",
        rows=1234,
        client="10.0.0.7",
        detail="an export",
        at=at,
    )
    bare = AuditEvent(user="bob", role=None, action="sign_in", at=at + timedelta(seconds=1))
    log.record(full)
    log.record(bare)

    frame = log.read()

    assert list(frame.columns) == list(COLUMNS)
    assert {c: str(frame[c].dtype) for c in frame.columns} == DTYPES
    assert list(frame["user"]) == ["bob", "ann@example.com"]  # newest first
    got = frame.iloc[1]
    assert got["at"] == datetime(2026, 3, 4, 4, 6, 7, 123456, tzinfo=UTC)
    assert got["at"].tzinfo is not None and got["at"].utcoffset() == timedelta(0)
    assert (got["role"], got["action"], got["page"]) == ("admin", "export", "business")
    assert (got["format"], got["rows"], got["client"]) == ("csv", 1234, "10.0.0.7")
    assert got["detail"] == "an export"
    # Stored as JSON text with sorted keys; odd values (a date) as their str().
    assert got["filters"] == (
        '{"day": "2026-03-01", "granularity": "day", "tenants": ["t2", "t1"]}'
    )
    assert json.loads(got["filters"]) == {
        "tenants": ["t2", "t1"],
        "granularity": "day",
        "day": "2026-03-01",
    }
    empty = frame.iloc[0]
    assert empty["at"] == datetime(2026, 3, 4, 4, 6, 8, 123456, tzinfo=UTC)
    assert empty["action"] == "sign_in"
    for column in ("role", "page", "filters", "format", "rows", "client", "detail"):
        assert pd.isna(empty[column]), column
    # In the store itself, the times are UTC.
    assert _stored_utc_text(audit_url) == [
        "2026-03-04 04:06:07.123456",
        "2026-03-04 04:06:08.123456",
    ]


def _timeline(log: AuditLog) -> list[tuple[datetime, str, str]]:
    """Ten events an hour apart, recorded out of order; returns (at, user, action)."""
    people, actions = ["ann", "bob", "cy"], ["view", "export", "denied", "sign_in"]
    events = [
        (T0 + timedelta(hours=k), people[k % 3], actions[k % 4], f"event {k}") for k in range(10)
    ]
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != events  # the order must come from the times, not the inserts
    for at, user, action, detail in shuffled:
        log.record(AuditEvent(user, "viewer", action, detail=detail, at=at))
    return [(at, user, action) for at, user, action, _ in events]


def _triples(frame: pd.DataFrame) -> list[tuple[datetime, str, str]]:
    return [
        (at.to_pydatetime(), user, action)
        for at, user, action in zip(frame["at"], frame["user"], frame["action"], strict=True)
    ]


def test_read_filters_and_orders_newest_first(log):
    events = _timeline(log)
    newest_first = sorted(events, reverse=True)

    assert _triples(log.read()) == newest_first

    # Half-open: the event at start is in, the one at end is out; zones are only notation.
    start = (T0 + timedelta(hours=2)).astimezone(ZoneInfo("America/New_York"))
    end = (T0 + timedelta(hours=6)).astimezone(BERLIN)
    assert _triples(log.read(start=start, end=end)) == [
        e for e in newest_first if T0 + timedelta(hours=2) <= e[0] < T0 + timedelta(hours=6)
    ]
    assert [e[0] for e in _triples(log.read(start=start, end=end))] == [
        T0 + timedelta(hours=h) for h in (5, 4, 3, 2)
    ]
    assert _triples(log.read(start=T0 + timedelta(hours=8))) == newest_first[:2]
    assert _triples(log.read(end=T0 + timedelta(hours=1))) == [events[0]]

    assert _triples(log.read(users=["ann", "cy"])) == [
        e for e in newest_first if e[1] in ("ann", "cy")
    ]
    assert _triples(log.read(actions=["export"])) == [e for e in newest_first if e[2] == "export"]
    assert _triples(log.read(users=["ann"], actions=["view", "denied"])) == [
        e for e in newest_first if e[1] == "ann" and e[2] in ("view", "denied")
    ]
    assert _triples(log.read(users=["nobody"])) == []
    assert _triples(log.read(limit=3)) == newest_first[:3]
    assert (
        _triples(log.read(users=["bob"], limit=2)) == [e for e in newest_first if e[1] == "bob"][:2]
    )


def test_read_takes_user_input_only_as_bound_values(log):
    log.record(AuditEvent("ann", None, "view", at=T0))
    hostile = "ann' OR '1'='1"
    log.record(AuditEvent(hostile, None, "view", at=T0 + timedelta(minutes=1)))

    assert list(log.read(users=[hostile])["user"]) == [hostile]
    assert log.read(users=["x' OR '1'='1"]).empty
    assert sorted(log.users()) == sorted(["ann", hostile])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": datetime(2026, 3, 2)}, "start must be an aware datetime"),
        ({"end": datetime(2026, 3, 2)}, "end must be an aware datetime"),
        ({"limit": 0}, "limit must be a positive whole number"),
        ({"limit": True}, "limit must be a positive whole number"),
        ({"users": "ann"}, "users must be a list of strings"),
    ],
)
def test_read_rejects_bad_arguments(tmp_path, kwargs, message):
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    log.record(AuditEvent("ann", None, "view", at=T0))
    with pytest.raises(ValueError, match=message):
        log.read(**kwargs)
    log.close()


def test_an_empty_store_reads_an_empty_frame_and_creates_nothing(log, audit_url):
    frame = log.read()

    assert frame.empty
    assert list(frame.columns) == list(COLUMNS)
    assert {c: str(frame[c].dtype) for c in frame.columns} == DTYPES
    assert log.users() == []
    parsed = make_url(audit_url)
    if parsed.get_backend_name() == "postgresql":
        assert _table_names(audit_url) == set()
    else:
        assert not Path(parsed.database).exists()


def test_users_are_distinct_and_sorted(log):
    names = ["zoe", "Ann", "bob", "zoe", "ann", "bob"]
    for k, name in enumerate(names):
        log.record(AuditEvent(name, None, "view", at=T0 + timedelta(seconds=k)))

    assert log.users() == ["Ann", "ann", "bob", "zoe"]


def test_concurrent_writers_lose_no_rows(log):
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            barrier.wait()
            for k in range(per_thread):
                log.record(AuditEvent(f"user{worker}", None, "view", detail=f"{worker}-{k}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    assert errors == []
    frame = log.read()
    assert len(frame) == threads * per_thread == 200
    assert sorted(frame["detail"]) == sorted(
        f"{w}-{k}" for w in range(threads) for k in range(per_thread)
    )
    assert log.users() == [f"user{w}" for w in range(threads)]


def test_close_then_use_again(log):
    log.record(AuditEvent("ann", None, "view", at=T0))
    log.close()
    log.record(AuditEvent("bob", None, "view", at=T0 + timedelta(hours=1)))

    assert list(log.read()["user"]) == ["bob", "ann"]


# --- the store and only the store ----------------------------------------------------


def test_record_creates_only_the_audit_table(log, audit_url):
    log.record(AuditEvent("ann", None, "view", at=T0))
    log.close()

    assert _table_names(audit_url) == {"analytics_audit"}


def test_the_log_only_ever_creates_inserts_and_selects(log):
    def use() -> None:
        log.record(AuditEvent("ann", None, "view", at=T0))
        log.record(AuditEvent("bob", None, "export", at=T0 + timedelta(hours=1)))
        log.read(start=T0, users=["ann"])
        log.users()

    statements = executed_statements(Engine, use)

    verbs = {s.split(None, 1)[0].upper() for s in statements}
    assert "INSERT" in verbs and "SELECT" in verbs
    assert verbs <= {"SELECT", "INSERT", "CREATE", "PRAGMA", "WITH", "SHOW"}, verbs
    assert len(log.read()) == 2


@pytest.mark.postgres
def test_sharing_a_postgresql_source_database_leaves_its_tables_alone(new_pg_database):
    url = new_pg_database()
    source = make_engine(url, read_only=False)
    schema.metadata.create_all(source)
    with source.begin() as conn:
        conn.execute(
            schema.tenants.insert().values(tenant_id="t1", name="One", plan="pro", created_at=T0)
        )
    source.dispose()
    before = _table_names(url)
    check_audit_url(url, url)  # allowed: a table of its own in the same database

    log = AuditLog(url)
    log.record(AuditEvent("ann", "admin", "view", page="business", at=T0))
    assert len(log.read()) == 1
    log.close()

    assert "tenants" in before and "analytics_audit" not in before
    assert _table_names(url) == before | {"analytics_audit"}
    assert _raw_rows(url, "SELECT tenant_id, name, plan FROM tenants") == [("t1", "One", "pro")]


@pytest.mark.postgres
def test_postgres_writer_grants_make_the_log_append_only(new_pg_database, pg_admin):
    url = new_pg_database()
    role = f"analytics_audit_writer_{uuid.uuid4().hex[:8]}"  # unique: roles are per server
    sql = POSTGRES_WRITER_GRANTS.replace("analytics_audit_writer", role)
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    owner = create_engine(normalize_db_url(url))
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'writer-pw'"))
    try:
        with owner.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        writer = make_url(url).set(username=role, password="writer-pw")
        writer_url = writer.render_as_string(hide_password=False)
        log = AuditLog(writer_url)
        log.record(AuditEvent("ann", "admin", "export", rows=3, at=T0))
        log.record(AuditEvent("bob", "viewer", "view", at=T0 + timedelta(hours=1)))
        assert list(log.read()["user"]) == ["bob", "ann"]
        log.close()

        with psycopg.connect(_libpq(writer_url), autocommit=True) as conn:
            for forbidden in (
                "UPDATE analytics_audit SET user_name = 'mallory'",
                "DELETE FROM analytics_audit",
                "TRUNCATE analytics_audit",
                "DROP TABLE analytics_audit",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(forbidden)
        assert _raw_rows(url, "SELECT user_name FROM analytics_audit ORDER BY id") == [
            ("ann",),
            ("bob",),
        ]

        # The pasted DDL makes the same table as the code's declaration.
        declared = new_pg_database()
        AuditLog(declared).record(AuditEvent("ann", None, "view", at=T0))
        columns = """SELECT column_name, data_type, is_nullable FROM information_schema.columns
                     WHERE table_name = 'analytics_audit' ORDER BY ordinal_position"""
        indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'analytics_audit'"
        sequences = "SELECT sequencename FROM pg_sequences"
        for query in (columns, indexes, sequences):
            assert sorted(_raw_rows(url, query)) == sorted(_raw_rows(declared, query)), query
    finally:
        owner.dispose()
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


# --- failures -----------------------------------------------------------------------


def test_an_unreachable_postgresql_store_is_named_without_its_password():
    log = AuditLog("postgresql://auditor:s3cret-pw@127.0.0.1:1/x")

    with pytest.raises(AuditUnavailable) as written:
        log.record(AuditEvent("ann", None, "view"))
    with pytest.raises(AuditUnavailable) as read:
        log.read()
    with pytest.raises(AuditUnavailable):
        log.users()

    for exc in (written.value, read.value):
        message = str(exc)
        assert "postgresql+psycopg://auditor:***@127.0.0.1:1/x" in message
        assert "s3cret-pw" not in message
        assert "127.0.0.1" in exc.reason and "port 1" in exc.reason
    assert "cannot be written" in str(written.value)
    assert "cannot be read" in str(read.value)
    log.close()


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_unavailable(pg_server):
    url = pg_server.url_for(f"no_such_db_{uuid.uuid4().hex[:8]}")
    log = AuditLog(url)

    with pytest.raises(AuditUnavailable, match=r'database "no_such_db_\w+" does not exist'):
        log.record(AuditEvent("ann", None, "view"))
    log.close()


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_a_file_store_under_a_regular_file_is_unavailable(tmp_path, backend):
    blocker = tmp_path / "plain"
    blocker.write_text("not a directory")
    path = blocker / f"audit.{backend}"
    log = AuditLog(f"{backend}:///{path}")

    with pytest.raises(AuditUnavailable) as written:
        log.record(AuditEvent("ann", None, "view"))
    with pytest.raises(AuditUnavailable) as read:
        log.read()

    for exc in (written.value, read.value):
        assert str(path) in str(exc)
        assert "directory" in exc.reason.lower()
    assert blocker.read_text() == "not a directory"
    log.close()


# --- where the store lives ----------------------------------------------------------


def test_default_store_is_beside_the_demo_database_and_made_on_first_write(tmp_path, monkeypatch):
    demo = tmp_path / "data" / "demo.duckdb"  # its directory does not exist yet
    monkeypatch.setenv("ANALYTICS_DEMO_DB", str(demo))

    url = default_audit_url()

    assert url == f"sqlite:///{tmp_path / 'data' / 'audit.sqlite'}"
    check_audit_url(url, f"duckdb:///{demo}")
    log = AuditLog(url)
    assert log.read().empty and not (tmp_path / "data").exists()
    log.record(AuditEvent("ann", None, "sign_in", at=T0))
    assert (tmp_path / "data" / "audit.sqlite").is_file()
    assert _raw_rows(url, "SELECT user_name, action FROM analytics_audit") == [("ann", "sign_in")]
    log.close()


def test_check_audit_url_refuses_the_source_file(tmp_path):
    source = tmp_path / "src.duckdb"
    source.write_bytes(b"")
    link = tmp_path / "link.duckdb"
    link.symlink_to(source)
    primary = f"duckdb:///{source}"

    for same in (
        primary,
        f"sqlite:///{source}",
        f"duckdb:///{tmp_path / 'sub' / '..' / 'src.duckdb'}",
        f"duckdb:///{link}",
    ):
        with pytest.raises(InputError, match="is the source database file .*read-only"):
            check_audit_url(same, primary)
    # The source not written yet: the paths alone decide.
    later = tmp_path / "later.duckdb"
    with pytest.raises(InputError, match="read-only"):
        check_audit_url(f"duckdb:///{later}", f"duckdb:///{later}")


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ("mysql://u@h/db", "'mysql' is not supported"),
        ("redis://localhost:6379/0", "'redis' is not supported"),
        ("not a url", "is not a database URL"),
        ("sqlite://", "in memory"),
        ("sqlite:///:memory:", "in memory"),
        ("duckdb:///:memory:", "in memory"),
    ],
)
def test_check_audit_url_refuses_unusable_stores(audit, message):
    with pytest.raises(InputError, match=message):
        check_audit_url(audit, "postgresql://u@h/db")


def test_check_audit_url_hides_the_password_in_its_message():
    with pytest.raises(InputError) as refused:
        check_audit_url("mysql://u:hunter2@h/db", "postgresql://u@h/db")
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("audit", "primary"),
    [
        ("sqlite:///{tmp}/audit.sqlite", "duckdb:///{tmp}/src.duckdb"),
        ("duckdb:///{tmp}/audit.duckdb", "duckdb:///{tmp}/src.duckdb"),
        ("sqlite:///{tmp}/audit.sqlite", "postgresql://u@h/db"),
        ("postgresql://writer:pw@h/db", "postgresql://reader@h/db"),
        ("postgres://u@h/db", "postgresql://u@h/db"),
        ("postgresql+psycopg://u@h:5432/audit", "duckdb:///{tmp}/src.duckdb"),
    ],
)
def test_check_audit_url_accepts_a_separate_store(tmp_path, audit, primary):
    assert check_audit_url(audit.format(tmp=tmp_path), primary.format(tmp=tmp_path)) is None
