"""Rollup + raw tail readers against the raw query functions, on PostgreSQL and DuckDB.

Each database holds the fixture dataset (March 2026, over the Paris spring DST change)
plus a larger seeded dataset (2026-09-28 .. 11-12: Paris and New York fall-back days,
a whole October for the month tier, ~65k requests and ~20k detections). The rollup runs
once at ``REFRESH_NOW``; rows whose event time is at or after its watermark are inserted
only after that run (the tail). Every reader must then return what the raw query returns
on the same database: exactly for counts, sums, rates, means and distinct users (1e-9
relative, for float summation order), and within the sketch's ALPHA = 1% for
percentiles.

Percentile groups: the 1% bound is a per-value guarantee (ranks are exact, every value
is within ALPHA of its bin's value), so it is asserted on every group, whatever its
size; the comparisons include groups of >= 1,000 rows (whole-range KPIs, every endpoint,
algorithm and detector, weekly and most daily buckets), which
``test_percentiles_are_tested_on_large_groups`` checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from analytics_core import schema
from analytics_core.config import Costs
from analytics_core.context import QueryContext, Scope
from analytics_core.filters import Filters, make_filters
from analytics_core.queries import bottlenecks, business, detection, performance
from analytics_core.rollup import business as rollup_business
from analytics_core.rollup import detection as rollup_detection
from analytics_core.rollup import performance as rollup_performance
from analytics_core.rollup.read import MAX_OR_INTERVALS
from analytics_core.rollup.refresh import refresh
from analytics_core.rollup.schema import watermark
from analytics_core.rollup.sketch import ALPHA, bin_of
from analytics_core.rollup.tiles import RAW, plan, spans
from analytics_core.sources.database import make_engine
from tests.fixtures import ENDPOINTS, Dataset, executed_statements, load_dataset

COSTS = Costs(compute_hour=0.5, gb_processed=0.09, per_1000_api_calls=0.4)
REFRESH_NOW = datetime(2026, 11, 6, 13, 27, tzinfo=UTC)
WATERMARK = datetime(2026, 11, 6, 13, tzinfo=UTC)  # floor_hour(REFRESH_NOW)
NOW = datetime(2026, 11, 20, tzinfo=UTC)  # after every event: ranges are in the past
BIG_START = pd.Timestamp("2026-09-28T00:00:00Z")
BIG_DAYS = 45
EXACT = 1e-9
PERCENTILE = ALPHA * (1 + 1e-9)  # the sketch's bound, plus float rounding


# --- a larger seeded dataset ----------------------------------------------------------


def _times(rng: np.random.Generator, n: int) -> pd.Series:
    ms = rng.integers(0, BIG_DAYS * 86_400_000, n)
    # Some events exactly on hour starts, to pin the half-open piece edges.
    on_hour = rng.random(n) < 0.02
    ms[on_hour] = ms[on_hour] // 3_600_000 * 3_600_000
    return pd.Series(BIG_START + pd.to_timedelta(ms, unit="ms"))


def make_big(seed: int = 11) -> Dataset:
    rng = np.random.default_rng(seed)
    tenants = ["t_a", "t_b", "t_c"]
    detectors = pd.DataFrame(
        {
            "detector_id": [f"d{i}" for i in range(5)],
            "tenant_id": ["t_a", "t_a", "t_b", "t_c", "t_c"],
            "algorithm": ["iforest", "lof", "zscore", "iforest", "lof"],
        }
    )
    n_users = 60
    users = pd.DataFrame(
        {
            "user_id": [f"v{i:03d}" for i in range(n_users)],
            "tenant_id": [tenants[i % 3] for i in range(n_users)],
            "created_at": _times(rng, n_users),
        }
    )

    k = 65_000
    user_of = rng.integers(0, n_users, k)
    user_ids = users.user_id.to_numpy()[user_of].astype(object)
    user_ids[rng.random(k) < 0.1] = None
    durations = rng.lognormal(4, 0.8, k).round(3)
    durations[rng.random(k) < 0.001] = 0.0  # the sketch's zero bin
    requests = pd.DataFrame(
        {
            "id": np.arange(100_001, 100_001 + k),
            "ts": _times(rng, k),
            "tenant_id": users.tenant_id.to_numpy()[user_of],
            "user_id": user_ids,
            "method": rng.choice(["GET", "POST"], k),
            "endpoint": rng.choice(ENDPOINTS, k),
            "status_code": rng.choice(
                [200, 201, 404, 500, 503], k, p=[0.8, 0.08, 0.06, 0.04, 0.02]
            ),
            "duration_ms": durations,
            "request_bytes": rng.integers(100, 5_000_000, k),
            "response_bytes": rng.integers(100, 50_000, k),
        }
    )

    n = 20_000
    det = rng.integers(0, 5, n)
    samples = rng.integers(10, 1000, n)
    exec_ms = rng.lognormal(5, 1, n).round(3)
    exec_ms[rng.random(n) < 0.05] = np.nan
    scores = rng.random(n).round(6)
    scores[rng.random(n) < 0.05] = np.nan
    results = pd.DataFrame(
        {
            "id": np.arange(100_001, 100_001 + n),
            "created_at": _times(rng, n),
            "tenant_id": detectors.tenant_id.to_numpy()[det],
            "detector_id": detectors.detector_id.to_numpy()[det],
            "algorithm": detectors.algorithm.to_numpy()[det],
            "dataset_id": [f"ds{i % 37}" for i in range(n)],
            "n_samples": samples,
            "n_anomalies": rng.binomial(samples, 0.04),
            "mean_score": scores,
            "threshold": rng.uniform(0.5, 0.9, n).round(6),
            "execution_time_ms": exec_ms,
            "status": np.where(rng.random(n) < 0.1, "failed", "success"),
        }
    )

    m = 6_000
    reviewed = rng.choice(results.id.to_numpy(), m, replace=False)
    by_id = results.set_index("id")
    anomalies = by_id.loc[reviewed, "n_anomalies"].to_numpy()
    confirmed = rng.integers(0, anomalies + 1)
    feedback = pd.DataFrame(
        {
            "id": np.arange(100_001, 100_001 + m),
            "detection_id": reviewed,
            "created_at": by_id.loc[reviewed, "created_at"].reset_index(drop=True)
            + pd.to_timedelta(rng.integers(60, 86_400, m), unit="s"),
            "user_id": rng.choice(users.user_id.to_numpy(), m),
            "confirmed": confirmed,
            "false_positives": anomalies - confirmed,
        }
    )

    s = 8_000
    session_user = rng.integers(0, n_users, s)
    started = _times(rng, s)
    ended = started + pd.to_timedelta(rng.integers(30, 7200, s), unit="s")
    ended[rng.random(s) < 0.1] = pd.NaT
    sessions = pd.DataFrame(
        {
            "session_id": [f"b{i:05d}" for i in range(s)],
            "user_id": users.user_id.to_numpy()[session_user],
            "tenant_id": users.tenant_id.to_numpy()[session_user],
            "started_at": started,
            "ended_at": ended,
        }
    )
    no_rows = pd.DataFrame()
    return Dataset(no_rows, users, no_rows, results, feedback, requests, sessions)


EVENT_TIME = {
    "users": "created_at",
    "detection_results": "created_at",
    "api_requests": "ts",
    "user_sessions": "started_at",
}


def split_at(data: Dataset, cut: datetime) -> tuple[dict, dict]:
    """(rows before ``cut``, rows at or after it) per table; feedback goes with its
    detection (the rollup files it under the detection's hour)."""
    before: dict[str, pd.DataFrame] = {}
    after: dict[str, pd.DataFrame] = {}
    for name, col in EVENT_TIME.items():
        frame = getattr(data, name)
        early = frame[col] < pd.Timestamp(cut)
        before[name], after[name] = frame[early], frame[~early]
    fb = data.detection_feedback
    early = fb.detection_id.isin(before["detection_results"].id)
    before["detection_feedback"], after["detection_feedback"] = fb[early], fb[~early]
    return before, after


def _plain_rows(frame: pd.DataFrame) -> Iterator[tuple]:
    for row in frame.astype(object).itertuples(index=False):
        yield tuple(
            None
            if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v))
            else v.to_pydatetime()
            if isinstance(v, pd.Timestamp)
            else v.item()
            if hasattr(v, "item")
            else v
            for v in row
        )


def bulk_insert(engine: Engine, frames: dict[str, pd.DataFrame]) -> None:
    """Insert many rows fast: COPY on PostgreSQL, a registered frame on DuckDB."""
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        for name, frame in frames.items():
            if frame.empty:
                continue
            columns = [c.name for c in schema.metadata.tables[name].columns]
            listed = ", ".join(columns)
            if engine.dialect.name == "duckdb":
                driver.register("incoming", frame[columns])
                driver.execute(f"INSERT INTO {name} ({listed}) SELECT {listed} FROM incoming")
                driver.unregister("incoming")
            else:
                with driver.cursor().copy(f"COPY {name} ({listed}) FROM STDIN") as copy:
                    for row in _plain_rows(frame[columns]):
                        copy.write_row(row)


# --- the databases --------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    engine: Engine  # read-only, as the app's
    watermark: datetime | None
    frames: dict[str, pd.DataFrame]  # every row in the database, per table


@pytest.fixture(scope="module")
def big() -> Dataset:
    return make_big()


def _url(backend: str, request, name: str) -> str:
    if backend == "postgresql":
        return request.getfixturevalue("new_pg_database")()
    path = request.getfixturevalue("tmp_path_factory").mktemp("rollup_read") / f"{name}.duckdb"
    return f"duckdb:///{path}"


@pytest.fixture(scope="module", params=["postgresql", "duckdb"])
def rolled(request, dataset, big) -> Iterator[Loaded]:
    """Fixture dataset + the big one, rolled up at REFRESH_NOW, then the tail inserted."""
    url = _url(request.param, request, "rolled")
    writer = make_engine(url, read_only=False)
    load_dataset(writer, dataset)
    before, after = split_at(big, WATERMARK)
    bulk_insert(writer, before)
    result = refresh(writer, now=REFRESH_NOW)
    assert result.new_watermark == WATERMARK
    assert all(len(frame) for frame in after.values())  # a real tail in every table
    bulk_insert(writer, after)
    writer.dispose()  # DuckDB: one configuration per file and process
    engine = make_engine(url)
    frames = {
        name: pd.concat([getattr(dataset, name), getattr(big, name)], ignore_index=True)
        for name in ("api_requests", "detection_results")
    }
    yield Loaded(engine, watermark(engine), frames)
    engine.dispose()


@pytest.fixture(scope="module", params=["postgresql", "duckdb"])
def never_rolled(request, dataset) -> Iterator[Loaded]:
    """The fixture dataset in a database where the rollup never ran (no rollup tables)."""
    url = _url(request.param, request, "never")
    writer = make_engine(url, read_only=False)
    load_dataset(writer, dataset)
    writer.dispose()
    engine = make_engine(url)
    yield Loaded(engine, watermark(engine), {"api_requests": dataset.api_requests})
    engine.dispose()


# --- comparison -----------------------------------------------------------------------


def _close(got, want, rel: float, what: str) -> None:
    if want is None or (isinstance(want, float) and np.isnan(want)):
        assert got is None or (isinstance(got, float) and np.isnan(got)), f"{what}: {got!r}"
        return
    assert got is not None and not (isinstance(got, float) and np.isnan(got)), what
    if isinstance(want, int | np.integer) and rel == EXACT:
        assert got == want, f"{what}: {got!r} != {want!r}"
    else:
        assert abs(got - want) <= rel * abs(want) + 1e-12, f"{what}: {got!r} != {want!r}"


def assert_figures(got: dict, want: dict, percentiles: tuple[str, ...] = ()) -> None:
    assert list(got) == list(want)
    for key, value in want.items():
        assert type(got[key]) is type(value) or got[key] is None or value is None, key
        _close(got[key], value, PERCENTILE if key in percentiles else EXACT, key)


def assert_frames(
    got: pd.DataFrame,
    want: pd.DataFrame,
    percentiles: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
) -> None:
    assert list(got.columns) == list(want.columns)
    assert list(got.dtypes) == list(want.dtypes)
    assert len(got) == len(want)
    for column in want.columns:
        if column in skip:
            continue
        if pd.api.types.is_float_dtype(want[column]):
            rel = PERCENTILE if column in percentiles else EXACT
            g, w = got[column].to_numpy(), want[column].to_numpy()
            assert (np.isnan(g) == np.isnan(w)).all(), column
            ok = np.isnan(w) | (np.abs(g - w) <= rel * np.abs(w) + 1e-12)
            assert ok.all(), f"{column}: {got[column][~ok].tolist()} != {want[column][~ok]}"
        else:
            assert got[column].tolist() == want[column].tolist(), column


# --- the cases ------------------------------------------------------------------------


def _filters(start, end, tz="UTC", granularity="day", **kw) -> Filters:
    return make_filters(
        pd.Timestamp(start).to_pydatetime(),
        pd.Timestamp(end).to_pydatetime(),
        tz,
        granularity,
        **kw,
    )


def _local(text: str, tz: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_localize(tz)


NY, PARIS = "America/New_York", "Europe/Paris"
CASES: dict[str, tuple[Filters, Scope]] = {
    "whole-utc-days": (_filters("2026-09-28T00:00Z", "2026-11-12T00:00Z"), Scope()),
    "mid-bucket": (_filters("2026-10-03T07:23:11Z", "2026-11-09T16:41:05Z"), Scope()),
    "ny-fall-back-days": (
        _filters(_local("2026-10-29", NY), _local("2026-11-04", NY), NY, "day"),
        Scope(),
    ),
    "paris-fall-back-days": (
        _filters(_local("2026-10-22", PARIS), _local("2026-10-28", PARIS), PARIS, "day"),
        Scope(),
    ),
    "paris-spring-forward-days": (
        _filters(_local("2026-03-24", PARIS), _local("2026-04-02", PARIS), PARIS, "day"),
        Scope(),
    ),
    "hours-across-the-watermark": (
        _filters("2026-11-05T09:30Z", "2026-11-07T02:15Z", PARIS, "hour"),
        Scope(),
    ),
    "paris-weeks": (_filters("2026-09-28T00:00Z", "2026-11-12T00:00Z", PARIS, "week"), Scope()),
    "utc-months": (_filters("2026-09-01T00:00Z", "2026-12-01T00:00Z", "UTC", "month"), Scope()),
    "ny-months": (
        _filters(_local("2026-09-01", NY), _local("2026-12-01", NY), NY, "month"),
        Scope(),
    ),
    "kolkata-days": (
        _filters("2026-10-10T00:00Z", "2026-10-20T00:00Z", "Asia/Kolkata", "day"),
        Scope(),
    ),
    "filters": (
        _filters(
            "2026-09-28T00:00Z",
            "2026-11-12T00:00Z",
            "UTC",
            "week",
            tenants=("t_a", "t_c"),
            algorithms=("lof",),
            endpoints=("/api/v1/detect", "/api/v1/health"),
        ),
        Scope(),
    ),
    "scope": (_filters("2026-10-15T00:00Z", "2026-11-12T00:00Z"), Scope(("t_b",))),
    "ends-after-now": (_filters("2026-11-10T00:00Z", "2026-11-30T00:00Z"), Scope()),
    "empty": (_filters("2025-01-01T00:00Z", "2025-02-01T00:00Z"), Scope()),
}


def _ctx(case: str) -> QueryContext:
    filters, scope = CASES[case]
    return QueryContext(filters, NOW, scope)


def test_the_cases_use_every_tier(rolled):
    """The comparisons below are not all-raw: months, days, hours and raw pieces occur."""
    assert rolled.watermark == WATERMARK
    used = {
        piece.tier
        for case in CASES
        for by_bucket in (True, False)
        for piece in plan(CASES[case][0], NOW, WATERMARK, by_bucket)
    }
    assert used == {"month", "day", "hour", RAW}
    months = plan(CASES["utc-months"][0], NOW, WATERMARK)
    assert [p.tier for p in months] == ["month", "day", "hour", RAW]
    # Both ways of restricting a table to its pieces: OR'ed ranges and a joined list.
    kolkata = plan(CASES["kolkata-days"][0], NOW, WATERMARK)
    assert len(spans(kolkata, RAW)) > MAX_OR_INTERVALS >= len(spans(months, RAW))


@pytest.mark.parametrize("case", CASES)
def test_performance_equals_raw(rolled, case):
    ctx, engine, wm = _ctx(case), rolled.engine, rolled.watermark
    percentiles = tuple(rollup_performance.QUANTILES)
    want = performance.kpis(engine, ctx)
    assert_figures(rollup_performance.kpis(engine, ctx, wm), want, percentiles)
    assert_frames(
        rollup_performance.trend(engine, ctx, wm), performance.trend(engine, ctx), percentiles
    )
    assert_frames(
        rollup_performance.by_endpoint(engine, ctx, wm),
        performance.by_endpoint(engine, ctx),
        percentiles,
    )
    _assert_endpoint_shares(rolled, ctx, want["p95_ms"])


def _assert_endpoint_shares(loaded: Loaded, ctx: QueryContext, p95: float | None) -> None:
    """Exact but for "slow": off by at most the rows in p95's own sketch bin."""
    engine = loaded.engine
    got = rollup_performance.endpoint_shares(engine, ctx, loaded.watermark, p95)
    want = bottlenecks.endpoints(engine, ctx, p95)
    assert_frames(got, want, skip=("slow", "slow_share"))
    if p95 is None:
        assert (got["slow"] == 0).all()
        return
    f = ctx.filters
    r = loaded.frames["api_requests"]
    mask = (r.ts >= pd.Timestamp(f.start)) & (r.ts < pd.Timestamp(f.end))
    for values, column in ((f.tenants, "tenant_id"), (f.endpoints, "endpoint")):
        if values:
            mask &= r[column].isin(values)
    if ctx.scope.tenants is not None:
        mask &= r.tenant_id.isin(ctx.scope.tenants)
    in_p95_bin = r[mask & (r.duration_ms.map(bin_of) == bin_of(p95))]
    bound = in_p95_bin.groupby("endpoint").size().reindex(want["endpoint"], fill_value=0)
    assert (np.abs(got["slow"].to_numpy() - want["slow"].to_numpy()) <= bound.to_numpy()).all()
    # The bound means something: one bin 2% wide holds well under 1% of the requests.
    assert bound.sum() <= 0.01 * want["requests"].sum()
    assert np.allclose(got["slow_share"], got["slow"] / got["slow"].sum(), rtol=EXACT)


@pytest.mark.parametrize("case", CASES)
def test_detection_equals_raw(rolled, case):
    ctx, engine, wm = _ctx(case), rolled.engine, rolled.watermark
    p95 = ("p95_execution_ms",)
    assert_figures(rollup_detection.kpis(engine, ctx, wm), detection.kpis(engine, ctx), p95)
    assert_frames(rollup_detection.trend(engine, ctx, wm), detection.trend(engine, ctx), p95)
    assert_frames(
        rollup_detection.by_algorithm(engine, ctx, wm), detection.by_algorithm(engine, ctx), p95
    )
    assert_frames(
        rollup_detection.by_detector(engine, ctx, wm), detection.by_detector(engine, ctx), p95
    )
    assert_frames(
        rollup_detection.algorithm_shares(engine, ctx, wm), bottlenecks.algorithms(engine, ctx)
    )


@pytest.mark.parametrize("case", CASES)
def test_business_equals_raw(rolled, case):
    ctx, engine, wm = _ctx(case), rolled.engine, rolled.watermark
    assert_figures(rollup_business.kpis(engine, ctx, wm, COSTS), business.kpis(engine, ctx, COSTS))
    assert_frames(rollup_business.trend(engine, ctx, wm, COSTS), business.trend(engine, ctx, COSTS))
    assert_frames(
        rollup_business.by_tenant(engine, ctx, wm, COSTS), business.by_tenant(engine, ctx, COSTS)
    )


NEVER_CASES = ("paris-spring-forward-days", "whole-utc-days", "empty")


@pytest.mark.parametrize("case", NEVER_CASES)
def test_never_rolled_up_reads_raw_and_equals_raw(never_rolled, case):
    assert never_rolled.watermark is None
    filters, scope = CASES[case]
    if case == "whole-utc-days":  # the fixture's own fortnight
        filters = _filters("2026-03-20T00:00Z", "2026-04-03T00:00Z", PARIS, "hour")
    ctx, engine = QueryContext(filters, NOW, scope), never_rolled.engine
    assert {p.tier for p in plan(filters, NOW, None)} <= {RAW}
    q = tuple(rollup_performance.QUANTILES)
    assert_figures(rollup_performance.kpis(engine, ctx, None), performance.kpis(engine, ctx), q)
    assert_frames(rollup_performance.trend(engine, ctx, None), performance.trend(engine, ctx), q)
    assert_frames(
        rollup_performance.by_endpoint(engine, ctx, None), performance.by_endpoint(engine, ctx), q
    )
    p95 = ("p95_execution_ms",)
    assert_figures(rollup_detection.kpis(engine, ctx, None), detection.kpis(engine, ctx), p95)
    assert_frames(rollup_detection.trend(engine, ctx, None), detection.trend(engine, ctx), p95)
    assert_frames(
        rollup_detection.by_algorithm(engine, ctx, None), detection.by_algorithm(engine, ctx), p95
    )
    assert_figures(
        rollup_business.kpis(engine, ctx, None, COSTS), business.kpis(engine, ctx, COSTS)
    )
    assert_frames(
        rollup_business.trend(engine, ctx, None, COSTS), business.trend(engine, ctx, COSTS)
    )
    assert_frames(
        rollup_business.by_tenant(engine, ctx, None, COSTS),
        business.by_tenant(engine, ctx, COSTS),
    )


def test_percentiles_are_tested_on_large_groups(rolled):
    """Groups of >= 1,000 rows occur in the comparisons above (see the module docstring)."""
    engine = rolled.engine
    ctx = _ctx("whole-utc-days")
    assert performance.kpis(engine, ctx)["requests"] >= 1000
    assert (performance.by_endpoint(engine, ctx)["requests"] >= 1000).all()
    assert (performance.trend(engine, ctx)["requests"] >= 1000).mean() > 0.9
    assert (performance.trend(engine, _ctx("paris-weeks"))["requests"] >= 1000).all()
    runs = detection.by_detector(engine, ctx)
    assert ((runs["detections"] - runs["failed"]) * 0.9 >= 1000).all()  # timed successes
    weekly = detection.trend(engine, _ctx("paris-weeks"))
    assert ((weekly["detections"] - weekly["failed"]) * 0.9 >= 1000).mean() > 0.5


def test_a_later_watermark_than_now_still_reads_only_up_to_now(rolled):
    """A range that ends at ``now`` before the watermark: rollup rows cover it all."""
    filters = _filters("2026-10-01T00:00Z", "2026-11-12T00:00Z")
    now = datetime(2026, 10, 20, 8, 30, tzinfo=UTC)
    ctx, engine = QueryContext(filters, now), rolled.engine
    # The raw queries count rows up to the range's end; ours stop at now, so compare on
    # a range ending at now.
    cut = QueryContext(_filters("2026-10-01T00:00Z", now), now)
    got = rollup_performance.trend(engine, ctx, rolled.watermark)
    want = performance.trend(engine, cut)
    assert_frames(got, want, tuple(rollup_performance.QUANTILES))
    assert got["bucket"].max() < pd.Timestamp(now)


def _tables_read(engine: Engine, call) -> set[str]:
    """The rollup tables (of a grain) named in the statements ``call()`` executes."""
    statements = " ".join(executed_statements(engine, call))
    return set(re.findall(r"\brollup_[a-z_]+_(?:hour|day|week|month)\b", statements))


@pytest.mark.parametrize(
    ("case", "reads", "never"),
    [
        # The whole platform by UTC day: each day's stored quantiles, no sketch at all.
        ("whole-utc-days", "rollup_request_latency_quantiles_day", "rollup_request_latency_day"),
        # A tenant filter or a scope needs the tenant column: the full tables.
        ("filters", "rollup_request_latency_day", "rollup_request_latency_all_day"),
        ("scope", "rollup_request_latency_day", "rollup_request_latency_all_day"),
    ],
)
def test_reads_the_smallest_projection_that_has_the_filtered_columns(rolled, case, reads, never):
    ctx, engine, wm = _ctx(case), rolled.engine, rolled.watermark
    tables = _tables_read(engine, lambda: rollup_performance.trend(engine, ctx, wm))
    assert reads in tables and never not in tables
    # The endpoint table: per-endpoint sketches without the tenant, unless filtered by it.
    by_endpoint = _tables_read(engine, lambda: rollup_performance.by_endpoint(engine, ctx, wm))
    expected = (
        "rollup_request_latency_endpoint_"
        if case == "whole-utc-days"
        else "rollup_request_latency_"
    )
    assert {t.rsplit("_", 1)[0] + "_" for t in by_endpoint if "latency" in t} == {expected}


@pytest.mark.parametrize(
    ("case", "counts"),
    [
        ("whole-utc-days", "rollup_active_user_counts_all_day"),  # every tenant
        ("scope", "rollup_active_user_counts_day"),  # one tenant: its own counts
        ("filters", None),  # two tenants: a user of both is one user, so the sets
        ("paris-fall-back-days", None),  # Paris days are not UTC days
    ],
)
def test_active_users_of_whole_units_come_from_the_stored_counts(rolled, case, counts):
    ctx, engine, wm = _ctx(case), rolled.engine, rolled.watermark
    tables = _tables_read(engine, lambda: rollup_business.trend(engine, ctx, wm, COSTS))
    assert {t for t in tables if "_counts_" in t} == ({counts} if counts else set())


@pytest.mark.parametrize(
    ("case", "stored"),
    [
        ("whole-utc-days", True),  # every tenant, UTC days: the stored quantiles
        ("scope", False),  # a scope narrows the sketch to its tenants: merge the sketches
        ("filters", False),
        ("paris-fall-back-days", False),  # Paris days are not UTC days
    ],
)
def test_trend_percentiles_of_whole_units_come_from_the_stored_quantiles(rolled, case, stored):
    ctx, engine, wm = _ctx(case), rolled.engine, rolled.watermark
    for trend, sketch in (
        (lambda: rollup_performance.trend(engine, ctx, wm), "request_latency"),
        (lambda: rollup_detection.trend(engine, ctx, wm), "detection_runtime"),
    ):
        tables = _tables_read(engine, trend)
        assert (f"rollup_{sketch}_quantiles_day" in tables) is stored, tables
        if stored:  # the whole days read no sketch rows of the day tier: only the edges do
            assert not {f"rollup_{sketch}_all_day", f"rollup_{sketch}_day"} & tables, tables


def test_distinct_users_of_a_range_read_its_whole_days_from_the_day_bitmaps(rolled):
    """2026-10-15 .. 11-12 (watermark 11-06 13:00): the whole UTC days 10-15 .. 11-05 come
    from the users' active-day bitmaps (no day, week or month set is read), the hours of
    11-06 from the active hours of that day's set (joined to the hours' bits: the only
    read of a set table), the rest raw; the figure is the raw one."""
    ctx, engine, wm = _ctx("scope"), rolled.engine, rolled.watermark
    for call in (
        lambda: rollup_business.kpis(engine, ctx, wm, COSTS),
        lambda: rollup_business.by_tenant(engine, ctx, wm, COSTS),
    ):
        tables = _tables_read(engine, call)
        statements = " ".join(executed_statements(engine, call))
        assert "rollup_active_user_days" in statements and "hour_spans" in statements
        assert {t for t in tables if t.startswith("rollup_active_users_")} == {
            "rollup_active_users_day"
        }
    assert (
        rollup_business.kpis(engine, ctx, wm, COSTS)["active_users"]
        == (business.kpis(engine, ctx, COSTS)["active_users"])
    )
