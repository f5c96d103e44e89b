"""Tests for analytics_core.demo against a DuckDB file and a throwaway PostgreSQL database."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, text

from analytics_core import schema
from analytics_core.demo import (
    ANOMALY_JUMP_DETECTOR,
    LATENCY_SPIKE_ENDPOINT,
    SeedError,
    incidents,
    seed,
    top_up,
)

END = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)  # a Wednesday afternoon
TABLE_NAMES = [t.name for t in schema.TABLES]
PK = {
    "tenants": "tenant_id",
    "users": "user_id",
    "detectors": "detector_id",
    "detection_results": "id",
    "detection_feedback": "id",
    "api_requests": "id",
    "user_sessions": "session_id",
}

MakeDb = Callable[[], Engine]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def make_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[MakeDb]:
    """A factory of fresh, empty databases of the parametrised backend."""
    created: list[tuple[Engine, str | None]] = []
    admin: Engine | None = None
    if request.param == "postgresql":
        admin = request.getfixturevalue("pg_admin")

    def make() -> Engine:
        if admin is None:
            path = tmp_path / f"seed_{uuid.uuid4().hex[:8]}.duckdb"
            engine = create_engine(f"duckdb:///{path}")
            created.append((engine, None))
            return engine
        name = f"seed_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_engine(admin.url.set(database=name))
        created.append((engine, name))
        return engine

    yield make
    for engine, name in created:
        engine.dispose()
        if name is not None and admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(engine: Engine, sql: str, **params: object) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def dump(engine: Engine) -> dict[str, list[tuple]]:
    """Every table's full content, ordered by primary key."""
    out = {}
    with engine.connect() as conn:
        for table in schema.TABLES:
            stmt = sa.select(table).order_by(table.c[PK[table.name]])
            out[table.name] = [tuple(r) for r in conn.execute(stmt)]
    return out


def counts(engine: Engine) -> dict[str, int]:
    return {name: int(scalar(engine, f"SELECT count(*) FROM {name}")) for name in TABLE_NAMES}


# --------------------------------------------------------------------------- seed


def test_returned_counts_match_tables(make_db: MakeDb) -> None:
    engine = make_db()
    result = seed(engine, days=3, scale=0.2, end=END)
    assert set(result) == set(TABLE_NAMES)
    assert result == counts(engine)
    assert all(result[name] > 0 for name in TABLE_NAMES), result


def test_same_arguments_give_identical_data(make_db: MakeDb) -> None:
    first, second, other = make_db(), make_db(), make_db()
    assert seed(first, days=3, scale=0.2, end=END) == seed(second, days=3, scale=0.2, end=END)
    assert dump(first) == dump(second)
    seed(other, days=3, scale=0.2, seed=7, end=END)
    assert dump(other)["api_requests"] != dump(first)["api_requests"]


@pytest.mark.postgres
def test_duckdb_and_postgres_hold_the_same_data(tmp_path, pg_admin: Engine) -> None:
    duck = create_engine(f"duckdb:///{tmp_path / 'same.duckdb'}")
    name = f"seed_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    pg = create_engine(pg_admin.url.set(database=name))
    try:
        seed(duck, days=2, scale=0.2, end=END)
        seed(pg, days=2, scale=0.2, end=END)
        assert dump(duck) == dump(pg)
    finally:
        duck.dispose()
        pg.dispose()
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_event_times_fall_inside_the_window(make_db: MakeDb) -> None:
    engine = make_db()
    days = 3
    seed(engine, days=days, scale=0.2, end=END)
    start = END - timedelta(days=days)
    checks = {
        "api_requests": "ts",
        "detection_results": "created_at",
        "detection_feedback": "created_at",
        "user_sessions": "started_at",
    }
    for table, col in checks.items():
        outside = scalar(
            engine,
            f"SELECT count(*) FROM {table} WHERE {col} < :start OR {col} >= :end",
            start=start,
            end=END,
        )
        assert outside == 0, table
    assert scalar(engine, "SELECT count(*) FROM users WHERE created_at >= :end", end=END) == 0
    bad_sessions = scalar(
        engine,
        "SELECT count(*) FROM user_sessions "
        "WHERE ended_at IS NOT NULL AND (ended_at < started_at OR ended_at >= :end)",
        end=END,
    )
    assert bad_sessions == 0
    stale_open = scalar(
        engine,
        "SELECT count(*) FROM user_sessions WHERE ended_at IS NULL AND started_at < :cut",
        cut=END - timedelta(hours=10),
    )
    assert stale_open == 0


def test_timestamps_are_stored_as_utc_instants(make_db: MakeDb) -> None:
    engine = make_db()
    seed(engine, days=1, scale=0.2, end=END)
    with engine.connect() as conn:
        first, last = conn.execute(text("SELECT min(ts), max(ts) FROM api_requests")).one()
    assert END - timedelta(days=1) <= first < last < END
    assert last > END - timedelta(hours=1)  # a shifted time zone would push this off by hours


def test_duckdb_instants_do_not_depend_on_session_time_zone(tmp_path) -> None:
    engine = create_engine(f"duckdb:///{tmp_path / 'tz.duckdb'}")

    @sa.event.listens_for(engine, "connect")
    def _new_york(dbapi_conn, _record) -> None:
        dbapi_conn.execute("SET TimeZone='America/New_York'")

    seed(engine, days=1, scale=0.2, end=END)
    epoch_last = scalar(engine, "SELECT epoch(max(ts)) FROM api_requests")
    assert END.timestamp() - 3600 < epoch_last < END.timestamp()
    engine.dispose()


def test_status_values_and_failed_runs(make_db: MakeDb) -> None:
    engine = make_db()
    seed(engine, days=3, scale=0.2, end=END)
    statuses = {r[0] for r in rows(engine, "SELECT DISTINCT status FROM detection_results")}
    assert statuses <= {"success", "failed"}
    assert "success" in statuses
    bad_failed = scalar(
        engine,
        "SELECT count(*) FROM detection_results WHERE status = 'failed' "
        "AND (n_anomalies <> 0 OR mean_score IS NOT NULL OR execution_time_ms IS NULL)",
    )
    assert bad_failed == 0
    bad_success = scalar(
        engine,
        "SELECT count(*) FROM detection_results WHERE status = 'success' AND (mean_score IS NULL "
        "OR mean_score < 0 OR mean_score > 1 OR n_anomalies > n_samples "
        "OR n_samples < 100 OR n_samples > 100000)",
    )
    assert bad_success == 0
    mismatched = scalar(
        engine,
        "SELECT count(*) FROM detection_results r JOIN detectors d "
        "ON d.detector_id = r.detector_id "
        "WHERE d.algorithm <> r.algorithm OR d.tenant_id <> r.tenant_id",
    )
    assert mismatched == 0


def test_feedback_is_consistent_with_its_result(make_db: MakeDb) -> None:
    engine = make_db()
    seed(engine, days=3, scale=0.3, end=END)
    assert scalar(engine, "SELECT count(*) FROM detection_feedback") > 0
    violations = scalar(
        engine,
        "SELECT count(*) FROM detection_feedback f "
        "LEFT JOIN detection_results r ON r.id = f.detection_id "
        "LEFT JOIN users u ON u.user_id = f.user_id "
        "WHERE r.id IS NULL OR f.confirmed + f.false_positives > r.n_anomalies "
        "OR f.confirmed < 0 OR f.false_positives < 0 OR r.status <> 'success' "
        "OR f.created_at <= r.created_at OR u.tenant_id <> r.tenant_id "
        "OR u.created_at > f.created_at",
    )
    assert violations == 0


def test_users_exist_before_their_activity(make_db: MakeDb) -> None:
    engine = make_db()
    seed(engine, days=3, scale=0.2, end=END)
    orphans = scalar(
        engine,
        "SELECT count(*) FROM api_requests a LEFT JOIN users u ON u.user_id = a.user_id "
        "WHERE a.user_id IS NOT NULL "
        "AND (u.user_id IS NULL OR u.tenant_id <> a.tenant_id OR u.created_at > a.ts)",
    )
    assert orphans == 0
    null_share = scalar(
        engine, "SELECT avg(CASE WHEN user_id IS NULL THEN 1.0 ELSE 0.0 END) FROM api_requests"
    )
    assert 0.02 < float(null_share) < 0.09


def test_refuses_a_database_with_data(make_db: MakeDb) -> None:
    engine = make_db()
    seed(engine, days=1, scale=0.1, end=END)
    before = counts(engine)
    with pytest.raises(SeedError, match="already holds data"):
        seed(engine, days=1, scale=0.1, end=END)
    assert counts(engine) == before


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"days": 0}, "days"),
        ({"days": -3}, "days"),
        ({"days": math.nan}, "days"),
        ({"scale": 0}, "scale"),
        ({"scale": -0.5}, "scale"),
    ],
)
def test_rejects_bad_arguments(tmp_path, kwargs: dict[str, float], named: str) -> None:
    engine = create_engine(f"duckdb:///{tmp_path / 'bad.duckdb'}")
    with pytest.raises(SeedError, match=named) as info:
        seed(engine, end=END, **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)
    engine.dispose()


def test_incidents_are_visible(make_db: MakeDb) -> None:
    engine = make_db()
    seed(engine, days=14, scale=0.5, end=END)
    by_name = {i.name: i for i in incidents(END)}
    assert set(by_name) == {"detect_latency_spike", "error_burst", "anomaly_rate_jump"}
    assert all(END - timedelta(days=14) <= i.start < i.end <= END for i in by_name.values())

    burst = by_name["error_burst"]
    share_5xx = (
        "SELECT avg(CASE WHEN status_code >= 500 THEN 1.0 ELSE 0.0 END) FROM api_requests "
        "WHERE (ts >= :a AND ts < :b) = :inside"
    )
    inside = float(scalar(engine, share_5xx, a=burst.start, b=burst.end, inside=True))
    outside = float(scalar(engine, share_5xx, a=burst.start, b=burst.end, inside=False))
    assert inside > 0.25 and outside < 0.02, (inside, outside)

    spike = by_name["detect_latency_spike"]
    mean_ms = (
        "SELECT avg(duration_ms) FROM api_requests "
        "WHERE endpoint = :ep AND status_code < 400 AND (ts >= :a AND ts < :b) = :inside"
    )
    params = {"ep": LATENCY_SPIKE_ENDPOINT, "a": spike.start, "b": spike.end}
    slow = float(scalar(engine, mean_ms, inside=True, **params))
    usual = float(scalar(engine, mean_ms, inside=False, **params))
    assert slow > 4 * usual, (slow, usual)

    jump = by_name["anomaly_rate_jump"]
    rate = (
        "SELECT sum(n_anomalies) * 1.0 / sum(n_samples) FROM detection_results "
        "WHERE detector_id = :d AND status = 'success' "
        "AND (created_at >= :a AND created_at < :b) = :inside"
    )
    params = {"d": ANOMALY_JUMP_DETECTOR, "a": jump.start, "b": jump.end}
    high = float(scalar(engine, rate, inside=True, **params))
    normal = float(scalar(engine, rate, inside=False, **params))
    assert high > 3 * normal, (high, normal)


# --------------------------------------------------------------------------- top_up


def test_top_up_appends_after_the_latest_event(make_db: MakeDb) -> None:
    # A fixed afternoon, not the clock: the rate check below compares three added hours
    # with the two days' mean, and the demo's traffic follows the time of day (at 00-03
    # UTC the added hours ran at a fifth of the mean and the test failed).
    now = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
    engine = make_db()
    seed(engine, days=2, scale=0.2, end=now - timedelta(hours=3))
    before = counts(engine)
    old_max = max(
        scalar(engine, "SELECT max(ts) FROM api_requests"),
        scalar(engine, "SELECT max(created_at) FROM detection_results"),
    )
    max_ids = {
        t: scalar(engine, f"SELECT max(id) FROM {t}")
        for t in ("api_requests", "detection_results", "detection_feedback")
    }
    max_session = scalar(engine, "SELECT max(session_id) FROM user_sessions")

    added = top_up(engine, now=now)
    assert set(added) == set(TABLE_NAMES)
    after = counts(engine)
    assert {t: after[t] - before[t] for t in TABLE_NAMES} == added
    assert added["tenants"] == added["detectors"] == 0
    assert added["api_requests"] > 0 and added["detection_results"] > 0

    for table, col in (("api_requests", "ts"), ("detection_results", "created_at")):
        new_rows = scalar(engine, f"SELECT count(*) FROM {table} WHERE id > :m", m=max_ids[table])
        assert new_rows == added[table]
        outside = scalar(
            engine,
            f"SELECT count(*) FROM {table} WHERE id > :m AND ({col} < :a OR {col} >= :b)",
            m=max_ids[table],
            a=old_max,
            b=now,
        )
        assert outside == 0, table
    new_feedback = scalar(
        engine,
        "SELECT count(*) FROM detection_feedback WHERE id > :m",
        m=max_ids["detection_feedback"],
    )
    assert new_feedback == added["detection_feedback"]
    new_sessions = scalar(
        engine, "SELECT count(*) FROM user_sessions WHERE session_id > :m", m=max_session
    )
    assert new_sessions == added["user_sessions"]
    for table, pk in PK.items():
        assert scalar(engine, f"SELECT count(DISTINCT {pk}) FROM {table}") == after[table]

    # The stored scale (0.2) is detected: the hourly request rate stays comparable.
    seeded_per_hour = before["api_requests"] / 48
    added_per_hour = added["api_requests"] / ((now - old_max).total_seconds() / 3600)
    assert seeded_per_hour / 4 < added_per_hour < seeded_per_hour * 4

    latest = max(
        scalar(engine, "SELECT max(ts) FROM api_requests"),
        scalar(engine, "SELECT max(created_at) FROM detection_results"),
    )
    assert old_max < latest < now
    assert top_up(engine, now=latest + timedelta(seconds=50)) == dict.fromkeys(TABLE_NAMES, 0)
    assert counts(engine) == after


def test_top_up_is_deterministic(make_db: MakeDb) -> None:
    now = END + timedelta(hours=6)
    first, second = make_db(), make_db()
    for engine in (first, second):
        seed(engine, days=1, scale=0.2, end=END)
        top_up(engine, now=now)
    assert dump(first) == dump(second)


def test_top_up_needs_seeded_data(make_db: MakeDb) -> None:
    with pytest.raises(SeedError, match="seed"):
        top_up(make_db(), now=END)


def test_top_up_closes_sessions_that_have_ended(make_db: MakeDb) -> None:
    engine = make_db()
    seed(engine, days=1, scale=1.0, end=END)
    open_sql = "SELECT count(*) FROM user_sessions WHERE ended_at IS NULL AND started_at < :end"
    assert scalar(engine, open_sql, end=END) > 0
    top_up(engine, now=END + timedelta(days=1))
    assert scalar(engine, open_sql, end=END) == 0
    bad = scalar(
        engine,
        "SELECT count(*) FROM user_sessions WHERE ended_at < started_at OR ended_at >= :now",
        now=END + timedelta(days=1),
    )
    assert bad == 0
