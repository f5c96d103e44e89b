"""Rollup maintenance on the real PostgreSQL and DuckDB: every rollup table at every grain
equals an independent pandas computation over the same rows, incrementally, with late
rows, after an interrupted run, and on empty or fresh databases."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Engine,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import ProgrammingError

from analytics_core import schema
from analytics_core.rollup import refresh as refresh_module
from analytics_core.rollup.refresh import refresh
from analytics_core.rollup.schema import (
    COUNT_GRAINS,
    DAY_BITS,
    DAY_WORDS,
    GRAINS,
    PROJECTION_TABLES,
    PROJECTIONS,
    QUANTILE_LEVELS,
    QUANTILE_TABLES,
    STATE_KEY,
    TABLES,
    USER_COUNTS,
    USER_DAYS,
    metadata,
    rollup_exists,
    rollup_state,
    rollup_table,
    watermark,
)
from analytics_core.rollup.sketch import bin_of, is_sketch, unnested
from analytics_core.sources.database import make_engine
from tests.fixtures import Dataset, _records, load_dataset, make_dataset

# Inside the fixture's 14 days (2026-03-20 .. 04-03), so February and March are whole
# months below the watermark (users created 2026-02-01 give February rows).
NOW = datetime(2026, 4, 1, 10, 37, tzinfo=UTC)
LATE = timedelta(hours=1)


# --- the independent expectation ------------------------------------------------------


def _floor(times: pd.Series, grain: str) -> pd.Series:
    t = pd.to_datetime(times, utc=True)
    if grain == "hour":
        return t.dt.floor("h")
    if grain == "day":
        return t.dt.floor("D")
    if grain == "week":  # ISO weeks from Monday
        return t.dt.floor("D") - pd.to_timedelta(t.dt.day_of_week, unit="D")
    return t.dt.tz_localize(None).dt.to_period("M").dt.to_timestamp().dt.tz_localize("UTC")


def _limit(grain: str, wm: datetime) -> pd.Timestamp:
    """Buckets of ``grain`` that must exist: those that end by the watermark's floor."""
    w = pd.Timestamp(wm)
    day = w.floor("D")
    week = day - pd.Timedelta(days=day.weekday())
    return {"hour": w, "day": day, "week": week, "month": day.replace(day=1)}[grain]


def _events(frame: pd.DataFrame, time_col: str, grain: str, wm: datetime) -> pd.DataFrame:
    """Rows whose event time is before the watermark, with their bucket, in whole buckets."""
    frame = frame.copy()
    frame["_time"] = pd.to_datetime(frame[time_col], utc=True)
    frame = frame[frame["_time"] < pd.Timestamp(wm)]
    frame["bucket"] = _floor(frame["_time"], grain)
    return frame[frame["bucket"] < _limit(grain, wm)]


def _grouped(frame: pd.DataFrame, keys: list[str], **aggs) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=["bucket", *keys, *aggs])
    return frame.groupby(["bucket", *keys], dropna=False).agg(**aggs).reset_index()


def _user_events(data: Dataset, grain: str, wm: datetime) -> pd.DataFrame:
    """Who was active (a request with a user, or a session) in which bucket."""
    requests = data.api_requests
    return pd.concat(
        [
            _events(requests[requests.user_id.notna()], "ts", grain, wm),
            _events(data.user_sessions, "started_at", grain, wm),
        ]
    )


def _user_sets(data: Dataset, grain: str, wm: datetime) -> pd.DataFrame:
    users = _user_events(data, grain, wm)[["bucket", "tenant_id", "user_id"]]
    return users.drop_duplicates().reset_index(drop=True)


def expected_user_counts(data: Dataset, wm: datetime) -> dict[tuple[str, str], pd.DataFrame]:
    """Distinct active users per whole UTC unit, per tenant ("tenant") and overall ("all")."""
    out = {}
    for g in COUNT_GRAINS:
        users = _user_events(data, g, wm)
        per_tenant = users.groupby(["bucket", "tenant_id"]).user_id.nunique()
        out[("tenant", g)] = per_tenant.rename("active_users").reset_index()
        out[("all", g)] = users.groupby("bucket").user_id.nunique().rename("active_users")
        out[("all", g)] = out[("all", g)].reset_index()
    return out


def expected_user_days(data: Dataset, wm: datetime) -> pd.DataFrame:
    """Per UTC year, tenant and user: bit d % 62 of word d // 62 set for each whole UTC
    day d (1 January = 0) of the year on which the user was active."""
    days = _user_sets(data, "day", wm)
    rows: dict[tuple, list[int]] = {}
    for day, tenant, user in days[["bucket", "tenant_id", "user_id"]].itertuples(index=False):
        year = pd.Timestamp(datetime(day.year, 1, 1, tzinfo=UTC))
        index = day.day_of_year - 1
        words = rows.setdefault((year, tenant, user), [0] * DAY_WORDS)
        words[index // DAY_BITS] |= 1 << (index % DAY_BITS)
    return pd.DataFrame(
        [(*key, *words) for key, words in rows.items()],
        columns=["bucket", "tenant_id", "user_id", *(f"days_{k}" for k in range(DAY_WORDS))],
    )


def expected_quantiles(data: Dataset, wm: datetime) -> dict[tuple[str, str], pd.DataFrame]:
    """Per whole UTC unit over all tenants: the count of sketched values and, per level q,
    the bins of the values at 0-based ranks floor((n-1)q) and ceil((n-1)q) in sorted order."""
    requests = data.api_requests[data.api_requests.duration_ms.notna()]
    runs = data.detection_results
    runs = runs[(runs.status == "success") & runs.execution_time_ms.notna()]
    values = {
        "request_latency": (requests, "ts", "duration_ms"),
        "detection_runtime": (runs, "created_at", "execution_time_ms"),
    }
    out = {}
    for name, (frame, time_col, value_col) in values.items():
        for g in COUNT_GRAINS:
            rows = []
            for start, unit in _events(frame, time_col, g, wm).groupby("bucket"):
                bins = sorted(bin_of(float(v)) for v in unit[value_col])
                n = len(bins)
                row = {"bucket": start, "sketch_n": n}
                for level, q in QUANTILE_LEVELS.items():
                    row[f"{level}__lo"] = bins[math.floor((n - 1) * q)]
                    row[f"{level}__hi"] = bins[math.ceil((n - 1) * q)]
                rows.append(row)
            out[(name, g)] = pd.DataFrame(rows)
    return out


def expected_tables(data: Dataset, wm: datetime) -> dict[tuple[str, str], pd.DataFrame]:
    out = {}
    requests = data.api_requests.assign(status_class=data.api_requests.status_code // 100)
    requests["bin"] = [bin_of(float(v)) for v in requests.duration_ms]
    runs = data.detection_results.copy()
    runs["bin"] = [None if pd.isna(v) else bin_of(float(v)) for v in runs.execution_time_ms]
    feedback = data.detection_feedback.merge(
        runs[["id", "created_at", "tenant_id", "algorithm", "detector_id"]],
        left_on="detection_id",
        right_on="id",
        suffixes=("_fb", ""),
    )
    sessions = data.user_sessions.copy()
    ended = pd.to_datetime(sessions.ended_at, utc=True)
    sessions["seconds"] = (ended - pd.to_datetime(sessions.started_at, utc=True)).dt.total_seconds()
    dims = ["tenant_id", "endpoint", "method"]
    det_dims = ["tenant_id", "algorithm", "detector_id"]
    for g in GRAINS:
        out[("requests", g)] = _grouped(
            _events(requests, "ts", g, wm),
            [*dims, "status_class"],
            requests=("id", "count"),
            duration_ms_sum=("duration_ms", "sum"),
            request_bytes_sum=("request_bytes", "sum"),
            response_bytes_sum=("response_bytes", "sum"),
        )
        out[("request_latency", g)] = _grouped(
            _events(requests, "ts", g, wm), [*dims, "bin"], n=("id", "count")
        )
        r = _events(runs, "created_at", g, wm)
        out[("detections", g)] = _grouped(
            r,
            [*det_dims, "status"],
            runs=("id", "count"),
            n_anomalies_sum=("n_anomalies", "sum"),
            n_samples_sum=("n_samples", "sum"),
            score_sum=("mean_score", lambda s: s.sum(min_count=1)),
            score_count=("mean_score", "count"),
            exec_ms_sum=("execution_time_ms", lambda s: s.sum(min_count=1)),
            exec_count=("execution_time_ms", "count"),
        )
        ok = r[(r.status == "success") & r.execution_time_ms.notna()]
        out[("detection_runtime", g)] = _grouped(ok, [*det_dims, "bin"], n=("id", "count"))
        out[("feedback", g)] = _grouped(
            _events(feedback, "created_at", g, wm),
            det_dims,
            confirmed_sum=("confirmed", "sum"),
            false_positives_sum=("false_positives", "sum"),
        )
        if g != "hour":  # no hour sets: the day sets carry the hours
            out[("active_users", g)] = _user_sets(data, g, wm)
        out[("new_users", g)] = _grouped(
            _events(data.users, "created_at", g, wm), ["tenant_id"], new_users=("user_id", "count")
        )
        out[("sessions", g)] = _grouped(
            _events(sessions, "started_at", g, wm),
            ["tenant_id"],
            sessions=("session_id", "count"),
            ended_sessions=("ended_at", "count"),
            ended_seconds_sum=("seconds", "sum"),
        )
    out[("active_users", "day")] = expected_user_day_hours(data, wm)
    return out


def expected_user_day_hours(data: Dataset, wm: datetime) -> pd.DataFrame:
    """Per UTC day up to the watermark (the current day too, its hours before it), tenant
    and user: the sum of 2**h over the hours h of the day in which the user was active."""
    hours = _user_sets(data, "hour", wm)
    hours["day"] = hours.bucket.dt.floor("D")
    hours["hours"] = 2 ** hours.bucket.dt.hour.astype("int64")
    summed = hours.groupby(["day", "tenant_id", "user_id"], as_index=False).hours.sum()
    return summed.rename(columns={"day": "bucket"})


# --- reading the rollup tables back ----------------------------------------------------


_PER_BIN: dict[str, Table] = {}


def _per_bin(table: Table) -> Table:
    """A table as the tests compare it: a sketch table one row per bin (``bin`` a key,
    ``n`` its count), as :func:`unnested` reads it; other tables as they are."""
    if not is_sketch(table):
        return table
    if table.name not in _PER_BIN:
        columns = [
            Column(c.name, c.type, primary_key=c.primary_key)
            for c in table.columns
            if c.name not in ("bins", "counts")
        ]
        _PER_BIN[table.name] = Table(
            table.name,
            MetaData(),
            *columns,
            Column("bin", Integer, primary_key=True),
            Column("n", BigInteger),
        )
    return _PER_BIN[table.name]


def _normal(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    table = _per_bin(table)
    frame = frame[[c.name for c in table.columns]].copy()
    for col in table.columns:
        if col.name == "bucket":
            frame[col.name] = pd.to_datetime(frame[col.name], utc=True)
        elif isinstance(col.type, Integer | BigInteger | SmallInteger):
            frame[col.name] = pd.to_numeric(frame[col.name]).astype("int64")
        elif isinstance(col.type, Double):
            frame[col.name] = pd.to_numeric(frame[col.name]).astype("float64")
        else:
            frame[col.name] = frame[col.name].astype(str)
    keys = [c.name for c in table.primary_key.columns]
    return frame.sort_values(keys).reset_index(drop=True)


def read_tables(engine: Engine) -> dict[tuple[str, ...], pd.DataFrame]:
    """Every rollup table: the full ones keyed (name, grain), projections (name, grain, label)."""
    tables = {
        **TABLES,
        **{(n, g, label): t for (n, label, g), t in PROJECTION_TABLES.items()},
        **{(f"user_counts_{label}", g): t for (label, g), t in USER_COUNTS.items()},
        **{(f"{name}_quantiles", g): t for (name, g), t in QUANTILE_TABLES.items()},
        ("user_days",): USER_DAYS,
    }
    out = {}
    with engine.connect() as conn:
        for key, table in tables.items():
            result = conn.execute(select(unnested(table) if is_sketch(table) else table))
            raw = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            out[key] = _normal(raw, table)
    return out


def _projected(full: pd.DataFrame, table: Table) -> pd.DataFrame:
    """A projection's expected rows: the full table's rows summed over the dropped keys."""
    table = _per_bin(table)
    keys = [c.name for c in table.primary_key.columns]
    measures = [c.name for c in table.columns if not c.primary_key]
    # min_count: a sum over only NULLs (e.g. no run with a score) stays NULL, as in SQL.
    summed = (
        full.groupby(keys, as_index=False)[measures].sum(min_count=1)
        if measures
        else (full[keys].drop_duplicates())
    )
    return _normal(summed, table)


def assert_rollups_equal(engine: Engine, data: Dataset, wm: datetime) -> None:
    actual = read_tables(engine)
    for (name, grain), frame in expected_tables(data, wm).items():
        want = _normal(frame, rollup_table(name, grain))
        assert len(want) > 0 or name in ("feedback", "new_users"), (name, grain)  # a real check
        pd.testing.assert_frame_equal(
            actual[(name, grain)], want, rtol=1e-9, obj=f"rollup_{name}_{grain}"
        )
        for label in PROJECTIONS.get(name, {}):
            table = PROJECTION_TABLES[(name, label, grain)]
            pd.testing.assert_frame_equal(
                actual[(name, grain, label)], _projected(want, table), rtol=1e-9, obj=table.name
            )

    for (label, grain), frame in expected_user_counts(data, wm).items():
        table = USER_COUNTS[(label, grain)]
        assert len(frame) > 0, table.name
        pd.testing.assert_frame_equal(
            actual[(f"user_counts_{label}", grain)], _normal(frame, table), obj=table.name
        )
    want = expected_user_days(data, wm)
    assert len(want) > 0 and (want.days_1 > 0).any()  # more than one word in use
    pd.testing.assert_frame_equal(
        actual[("user_days",)], _normal(want, USER_DAYS), obj=USER_DAYS.name
    )
    for (name, grain), frame in expected_quantiles(data, wm).items():
        table = QUANTILE_TABLES[(name, grain)]
        assert len(frame) > 0, table.name
        pd.testing.assert_frame_equal(
            actual[(f"{name}_quantiles", grain)], _normal(frame, table), obj=table.name
        )


def assert_unchanged(before, after) -> None:
    for key in before:
        pd.testing.assert_frame_equal(after[key], before[key], check_exact=True)


# --- databases ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> Dataset:
    return make_dataset(seed=11)


@pytest.fixture(scope="module")
def duckdb_template(tmp_path_factory, base) -> Path:
    path = tmp_path_factory.mktemp("rollup") / "template.duckdb"
    engine = make_engine(f"duckdb:///{path}", read_only=False)
    load_dataset(engine, base)
    engine.dispose()
    return path


@pytest.fixture(params=["postgresql", "duckdb"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def writer(backend, request, tmp_path, base) -> Iterator[Engine]:
    """A writable engine on a fresh database holding the base dataset."""
    if backend == "postgresql":
        engine = make_engine(request.getfixturevalue("new_pg_database")(), read_only=False)
        load_dataset(engine, base)
    else:
        path = tmp_path / "db.duckdb"
        shutil.copy(request.getfixturevalue("duckdb_template"), path)
        engine = make_engine(f"duckdb:///{path}", read_only=False)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_url(backend, request, tmp_path) -> str:
    """A database with no tables at all."""
    if backend == "postgresql":
        return request.getfixturevalue("new_pg_database")()
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    engine = make_engine(url, read_only=False)
    engine.connect().close()  # creates the file
    engine.dispose()
    return url


def add_rows(engine: Engine, data: Dataset, at: datetime, ids_from: int, about: int = 0) -> Dataset:
    """Insert one row per source table with event time ``at``, the feedback being about
    the ``about``-th oldest detection (days before ``at``); return ``data`` plus those
    rows, for the expectation."""
    t = pd.Timestamp(at)
    old = data.detection_results.sort_values("created_at").iloc[about]
    rows = {
        "users": {"user_id": f"late{ids_from}", "tenant_id": "t_b", "created_at": t},
        "detection_results": {
            **old.to_dict(),
            "id": ids_from,
            "created_at": t,
            "execution_time_ms": 42.5,
            "status": "success",
        },
        "detection_feedback": {
            "id": ids_from,
            "detection_id": int(old.id),
            "created_at": t,
            "user_id": "u01",
            "confirmed": 3,
            "false_positives": 2,
        },
        "api_requests": {
            **data.api_requests.iloc[0].to_dict(),
            "id": ids_from,
            "ts": t,
            "user_id": f"late{ids_from}",
            "duration_ms": 1234.5,
        },
        "user_sessions": {
            "session_id": f"late{ids_from}",
            "user_id": "u02",
            "tenant_id": data.users.set_index("user_id").tenant_id["u02"],
            "started_at": t,
            "ended_at": t + pd.Timedelta(minutes=5),
        },
    }
    frames = data.frames()
    with engine.begin() as conn:
        for name, row in rows.items():
            one = pd.DataFrame([row])
            conn.execute(insert(getattr(schema, name)), _records(one))
            frames[name] = pd.concat([frames[name], one], ignore_index=True)
    return Dataset(**frames)


# --- tests ---------------------------------------------------------------------------------


def test_first_run_equals_pandas_at_every_grain(writer, base):
    result = refresh(writer, now=NOW)
    assert result.old_watermark is None
    assert result.new_watermark == datetime(2026, 4, 1, 10, tzinfo=UTC)
    assert watermark(writer) == result.new_watermark and rollup_exists(writer)
    assert_rollups_equal(writer, base, result.new_watermark)
    hour_rows = sum(n for t, n in result.rows_written.items() if t.endswith("_hour"))
    tables = read_tables(writer)

    def stored(frame: pd.DataFrame) -> int:  # a sketch table stores one row per bin's keys
        return (
            len(frame.drop(columns=["bin", "n"]).drop_duplicates())
            if "bin" in frame
            else len(frame)
        )

    assert hour_rows == sum(stored(frame) for key, frame in tables.items() if "hour" in key)
    assert any(len(key) == 3 and len(frame) for key, frame in tables.items())  # projections


def test_rerun_is_idempotent(writer, base):
    refresh(writer, now=NOW)
    before = read_tables(writer)
    again = refresh(writer, now=NOW)
    assert again.old_watermark == again.new_watermark
    assert_unchanged(before, read_tables(writer))
    assert watermark(writer) == datetime(2026, 4, 1, 10, tzinfo=UTC)


def test_a_rollup_of_an_older_layout_is_not_read_and_is_rebuilt_in_full(writer, base):
    """After an upgrade that adds tables, the old watermark must not vouch for them: the
    readers see no rollup (raw path) until a run rebuilds every table from the start."""
    first = refresh(writer, now=NOW)
    with writer.begin() as conn:  # as an older version left it: its own key, other tables
        conn.execute(update(rollup_state).values(name="watermark"))
        for table in QUANTILE_TABLES.values():
            conn.execute(delete(table))
        # ... one of them with fewer columns, which CREATE IF NOT EXISTS would keep.
        USER_DAYS.drop(conn)
        conn.execute(
            text(
                f"CREATE TABLE {USER_DAYS.name} (bucket timestamptz, tenant_id text, user_id text)"
            )
        )
        # ... and tables the current layout no longer has.
        for name in refresh_module.RETIRED_TABLES:
            conn.execute(text(f"CREATE TABLE {name} (bucket timestamptz)"))
    assert watermark(writer) is None and not rollup_exists(writer)
    again = refresh(writer, now=NOW)
    assert again.old_watermark is None and again.new_watermark == first.new_watermark
    assert_rollups_equal(writer, base, again.new_watermark)
    with writer.connect() as conn:
        assert conn.execute(select(rollup_state.c.name)).scalars().all() == [STATE_KEY]
        left = set(inspect(conn).get_table_names()) & set(refresh_module.RETIRED_TABLES)
        assert not left, left


def test_new_rows_after_the_watermark_are_picked_up(writer, base):
    first = refresh(writer, now=NOW)
    data = add_rows(writer, base, first.new_watermark + timedelta(minutes=20), ids_from=90_000)
    later = NOW + timedelta(hours=3)
    second = refresh(writer, now=later)
    assert second.old_watermark == first.new_watermark
    assert second.new_watermark == datetime(2026, 4, 1, 13, tzinfo=UTC)
    assert_rollups_equal(writer, data, second.new_watermark)


def test_rolls_over_days_and_months(writer, base):
    """Runs that cross midnight and a month end build the day and month rows."""
    refresh(writer, now=datetime(2026, 3, 31, 22, 5, tzinfo=UTC))
    data = add_rows(writer, base, datetime(2026, 3, 31, 23, 30, tzinfo=UTC), ids_from=91_000)
    wm = refresh(writer, now=datetime(2026, 4, 1, 0, 10, tzinfo=UTC)).new_watermark
    assert_rollups_equal(writer, data, wm)
    assert not read_tables(writer)[("requests", "month")].empty  # March is now whole


def test_late_rows_inside_the_window_count_and_older_ones_do_not(writer, base):
    """Documented behaviour: a run recomputes from ``watermark - late_window``; rows
    arriving later than that with older event times stay out until ``--full``."""
    first = refresh(writer, now=NOW, late_window=LATE)
    inside = add_rows(writer, base, first.new_watermark - timedelta(minutes=30), ids_from=92_000)
    # Its feedback is about another detection hour: feedback on the same detection hour as
    # the rows inside the window would be recomputed with them (from the source, exactly).
    both = add_rows(
        writer, inside, first.new_watermark - timedelta(hours=3), ids_from=93_000, about=50
    )
    second = refresh(writer, now=NOW + timedelta(hours=1), late_window=LATE)
    assert_rollups_equal(writer, inside, second.new_watermark)  # the 3-hour-late rows: no
    refresh(writer, now=NOW + timedelta(hours=1), full=True)
    assert_rollups_equal(writer, both, second.new_watermark)


def test_interrupted_run_keeps_the_watermark_and_the_next_run_repairs(writer, base, monkeypatch):
    """Each family commits on its own: the failing one's tables are as they were, one
    that ran before it holds the source's rows, the watermark stays, and the next run
    recomputes the window without counting anything twice."""
    first = refresh(writer, now=NOW)
    data = add_rows(writer, base, first.new_watermark + timedelta(minutes=5), ids_from=94_000)
    data = add_rows(writer, data, first.new_watermark - timedelta(minutes=5), ids_from=95_000)
    before = read_tables(writer)

    real = refresh_module._refresh_rollup

    def fail_on_detections(conn, rollup, *args, **kwargs):
        if rollup.name == "detections":  # started after "requests" (longest first)
            raise RuntimeError("injected failure")
        return real(conn, rollup, *args, **kwargs)

    monkeypatch.setattr(refresh_module, "_refresh_rollup", fail_on_detections)
    later = NOW + timedelta(hours=2)
    with pytest.raises(RuntimeError, match="injected"):
        refresh(writer, now=later)
    assert watermark(writer) == first.new_watermark
    after = read_tables(writer)
    detections = [k for k in before if k[0] == "detections"]
    assert detections and all(after[k].equals(before[k]) for k in detections)
    expected = expected_tables(data, refresh_module.floor_hour(later))
    for grain in GRAINS:
        want = _normal(expected[("requests", grain)], rollup_table("requests", grain))
        pd.testing.assert_frame_equal(after[("requests", grain)], want, rtol=1e-9)
    assert not after[("requests", "hour")].equals(before[("requests", "hour")])

    monkeypatch.setattr(refresh_module, "_refresh_rollup", real)
    second = refresh(writer, now=later)
    assert second.old_watermark == first.new_watermark
    assert_rollups_equal(writer, data, second.new_watermark)


def test_no_rollup_starts_after_one_fails(writer, base, monkeypatch):
    """Two rollups run at once on PostgreSQL: once one fails, the other finishes and no
    further one starts; every rollup is in the run's order."""
    assert sorted(r.name for r in refresh_module._families()) == sorted(refresh_module.BY_NAME)
    real = refresh_module._refresh_rollup
    calls = []

    def fail_the_first(conn, rollup, *args, **kwargs):
        calls.append(rollup.name)
        if rollup.name == refresh_module._families()[0].name:
            raise RuntimeError("injected failure")
        return real(conn, rollup, *args, **kwargs)

    monkeypatch.setattr(refresh_module, "_refresh_rollup", fail_the_first)
    with pytest.raises(RuntimeError, match="injected"):
        refresh(writer, now=NOW)
    first, second = (r.name for r in refresh_module._families()[:2])
    concurrent = refresh_module.REFRESH_WORKERS > 1 and writer.dialect.name == "postgresql"
    assert first in calls and set(calls) <= ({first, second} if concurrent else {first})
    assert watermark(writer) is None


def test_interrupted_first_run_leaves_no_rollup(writer, base, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(refresh_module, "_refresh_rollup", boom)
    with pytest.raises(RuntimeError):
        refresh(writer, now=NOW)
    assert watermark(writer) is None and not rollup_exists(writer)
    assert all(frame.empty for frame in read_tables(writer).values())
    monkeypatch.undo()
    assert_rollups_equal(writer, base, refresh(writer, now=NOW).new_watermark)


def test_empty_database_sets_no_rows_and_no_watermark(empty_url, base):
    engine = make_engine(empty_url, read_only=False)
    try:
        schema.create_tables(engine)
        result = refresh(engine, now=NOW)
        assert result.new_watermark is None and watermark(engine) is None
        assert all(frame.empty for frame in read_tables(engine).values())
        # Data loaded afterwards, however old, is rolled up in full by the next run.
        load_dataset(engine, base)
        assert_rollups_equal(engine, base, refresh(engine, now=NOW).new_watermark)
    finally:
        engine.dispose()


def test_fresh_database_has_no_watermark_even_read_only(empty_url):
    engine = make_engine(empty_url)  # read-only, no tables at all
    try:
        assert watermark(engine) is None
        assert rollup_exists(engine) is False
    finally:
        engine.dispose()


def test_a_state_table_that_cannot_be_read_is_an_error_not_a_missing_rollup(empty_url):
    # Only a missing table means "never rolled up"; one of another shape is reported.
    engine = make_engine(empty_url, read_only=False)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE rollup_state (name text)"))
        with pytest.raises(ProgrammingError):
            watermark(engine)
    finally:
        engine.dispose()


def test_rollup_tables_dropped_after_being_read_are_no_rollup(writer, base):
    # The watermark skips the catalog once it has seen the state table; a drop since
    # (a reset) is noticed from the failed read, and the connection stays usable.
    first = refresh(writer, now=NOW)
    assert watermark(writer) == first.new_watermark
    metadata.drop_all(writer)
    assert watermark(writer) is None and watermark(writer) is None
    assert refresh(writer, now=NOW).new_watermark == first.new_watermark
    assert watermark(writer) == first.new_watermark


def test_source_tables_are_never_written(writer, base):
    refresh(writer, now=NOW)
    add_rows(writer, base, NOW, ids_from=96_000)  # only to move on; then compare sources
    with writer.connect() as conn:
        counts = {t.name: conn.execute(select(t).with_only_columns(*t.primary_key)).all()
                  for t in schema.TABLES}  # fmt: skip
    refresh(writer, now=NOW + timedelta(hours=5), full=True)
    with writer.connect() as conn:
        for t in schema.TABLES:
            assert conn.execute(select(t).with_only_columns(*t.primary_key)).all() == counts[t.name]


def test_sketch_bins_in_the_tables_match_python(writer):
    """The bins the database computed are bin_of() of the stored values, ``n`` per bin."""
    wm = refresh(writer, now=NOW).new_watermark
    ar = schema.api_requests
    with writer.connect() as conn:
        durations = conn.execute(select(ar.c.duration_ms).where(ar.c.ts < wm)).scalars().all()
    expected = pd.Series([bin_of(float(v)) for v in durations]).value_counts().sort_index()
    latency = read_tables(writer)[("request_latency", "hour")]
    actual = latency.groupby("bin").n.sum().sort_index()
    assert actual.to_dict() == expected.to_dict()
