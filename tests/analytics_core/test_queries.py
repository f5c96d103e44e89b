"""SQL analytics on DuckDB and the real PostgreSQL against independently computed figures."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from analytics_core.config import Costs
from analytics_core.context import QueryContext
from analytics_core.filters import make_filters
from analytics_core.queries import business, detection, performance
from tests.analytics_core import expected
from tests.fixtures import DAYS, T0

COSTS = Costs(compute_hour=0.5, gb_processed=0.09, per_1000_api_calls=0.4)
FULL = (T0, T0 + pd.Timedelta(days=DAYS))
# Whole UTC days: fixture events sit exactly on these edges (half-open check).
MIDDLE = (T0 + pd.Timedelta(days=3), T0 + pd.Timedelta(days=6))
BEFORE = (T0 - pd.Timedelta(days=30), T0 - pd.Timedelta(days=20))

RANGES = {"full": FULL, "middle": MIDDLE}
SCOPES = {
    "all": {},
    "tenant": {"tenants": ("t_a", "t_c")},
}


def _filters(rng, granularity="day", tz="UTC", **scope):
    return make_filters(rng[0].to_pydatetime(), rng[1].to_pydatetime(), tz, granularity, **scope)


def _ctx(filters, now=None) -> QueryContext:
    """The filters at ``now``, the clock by default."""
    return QueryContext(filters, now or datetime.now(UTC))


@pytest.mark.parametrize("range_name", RANGES)
@pytest.mark.parametrize("scope_name", SCOPES)
def test_kpis_match_definitions(engine, dataset, range_name, scope_name):
    rng, scope = RANGES[range_name], SCOPES[scope_name]
    f = _filters(rng, **scope)
    now = T0 + pd.Timedelta(days=365)  # the whole range is in the past
    expected.assert_kpis_equal(
        detection.kpis(engine, _ctx(f)), expected.detection(dataset, *rng, **scope)
    )
    expected.assert_kpis_equal(
        performance.kpis(engine, _ctx(f, now.to_pydatetime())),
        expected.performance(dataset, *rng, **scope),
    )
    expected.assert_kpis_equal(
        business.kpis(engine, _ctx(f), COSTS), expected.business(dataset, *rng, COSTS, **scope)
    )


def test_algorithm_and_endpoint_filters(engine, dataset):
    f = _filters(FULL, algorithms=("lof",), endpoints=("/api/v1/detect", "/api/v1/health"))
    expected.assert_kpis_equal(
        detection.kpis(engine, _ctx(f)), expected.detection(dataset, *FULL, algorithms=("lof",))
    )
    want = expected.performance(dataset, *FULL, endpoints=("/api/v1/detect", "/api/v1/health"))
    expected.assert_kpis_equal(performance.kpis(engine, _ctx(f)), want)


def test_empty_range_is_no_data_not_zero(engine, dataset):
    f = _filters(BEFORE)
    det = detection.kpis(engine, _ctx(f))
    assert det["total_detections"] == 0
    for key in ("anomaly_rate", "avg_confidence", "p95_execution_ms", "false_positive_rate"):
        assert det[key] is None, key
    perf = performance.kpis(engine, _ctx(f))
    assert perf["requests"] == 0
    assert all(perf[k] is None for k in ("error_rate", "availability", "p50_ms", "p99_ms"))
    assert business.kpis(engine, _ctx(f), COSTS)["avg_session_minutes"] is None


@pytest.mark.parametrize(
    ("tz", "granularity"),
    [("UTC", "day"), ("Europe/Paris", "hour"), ("America/New_York", "day"), ("UTC", "week")],
)
def test_detection_trend_buckets_in_time_zone(engine, dataset, tz, granularity):
    f = _filters(FULL, granularity=granularity, tz=tz)
    got = detection.trend(engine, _ctx(f)).set_index("bucket")
    d = dataset.detection_results
    d = d.assign(bucket=expected.local_bucket(d.created_at, tz, granularity))
    ok = d[d.status == "success"]
    want_count = d.groupby("bucket").size()
    assert got["detections"].sum() == len(d)
    assert (got.loc[want_count.index, "detections"] == want_count).all()
    # Buckets with no events are present, with zero counts and no rate.
    empty = got.index.difference(want_count.index)
    assert (got.loc[empty, "detections"] == 0).all()
    assert got.loc[empty, "anomaly_rate"].isna().all()
    rate = ok.groupby("bucket").n_anomalies.sum() / ok.groupby("bucket").n_samples.sum()
    p95 = ok.groupby("bucket").execution_time_ms.apply(lambda s: np.percentile(s, 95))
    np.testing.assert_allclose(got.loc[rate.index, "anomaly_rate"], rate, rtol=1e-9)
    np.testing.assert_allclose(got.loc[p95.index, "p95_execution_ms"], p95, rtol=1e-9)
    assert got.index.is_monotonic_increasing


def test_performance_trend_and_endpoints(engine, dataset):
    f = _filters(FULL, granularity="day", tz="Europe/Paris")
    got = performance.trend(engine, _ctx(f)).set_index("bucket")
    r = dataset.api_requests.assign(
        bucket=expected.local_bucket(dataset.api_requests.ts, "Europe/Paris", "day")
    )
    g = r.groupby("bucket")
    np.testing.assert_array_equal(got.loc[g.size().index, "requests"], g.size())
    np.testing.assert_allclose(
        got.loc[g.size().index, "p99_ms"], g.duration_ms.apply(lambda s: np.percentile(s, 99))
    )
    np.testing.assert_allclose(
        got.loc[g.size().index, "error_rate"], g.status_code.apply(lambda s: (s >= 500).mean())
    )

    table = performance.by_endpoint(engine, _ctx(f)).set_index(["endpoint", "method"])
    e = r.groupby(["endpoint", "method"])
    np.testing.assert_array_equal(table.loc[e.size().index, "requests"], e.size())
    np.testing.assert_allclose(
        table.loc[e.size().index, "p95_ms"], e.duration_ms.apply(lambda s: np.percentile(s, 95))
    )
    assert table["share"].sum() == pytest.approx(1.0)


def test_by_algorithm(engine, dataset):
    f = _filters(FULL)
    table = detection.by_algorithm(engine, _ctx(f)).set_index("algorithm")
    for algo in dataset.detection_results.algorithm.unique():
        want = expected.detection(dataset, *FULL, algorithms=(algo,))
        row = table.loc[algo]
        assert row["detections"] == want["total_detections"]
        assert row["anomaly_rate"] == pytest.approx(want["anomaly_rate"], rel=1e-9)
        assert row["false_positive_rate"] == pytest.approx(want["false_positive_rate"], rel=1e-9)


def test_business_trend_and_tenants(engine, dataset):
    f = _filters(FULL, granularity="week")
    trend = business.trend(engine, _ctx(f), COSTS)
    total = expected.business(dataset, *FULL, COSTS)
    # Volumes add up across buckets; active users do not (distinct per bucket).
    assert trend["api_calls"].sum() == total["api_calls"]
    assert trend["sessions"].sum() == total["sessions"]
    assert trend["cost"].sum() == pytest.approx(total["total_cost"], rel=1e-9)
    assert trend["active_users"].max() <= total["active_users"]
    tenants = business.by_tenant(engine, _ctx(f), COSTS).set_index("tenant_id")
    for tenant in ("t_a", "t_b", "t_c"):
        want = expected.business(dataset, *FULL, COSTS, tenants=(tenant,))
        assert tenants.loc[tenant, "active_users"] == want["active_users"]
        assert tenants.loc[tenant, "cost"] == pytest.approx(want["total_cost"], rel=1e-9)


def test_throughput_counts_only_elapsed_time():
    start = T0.to_pydatetime()
    f = _filters((T0, T0 + pd.Timedelta(days=2)))
    now = start + pd.Timedelta(hours=12)
    assert performance.observed_seconds(f, now) == 12 * 3600
    assert performance.observed_seconds(f, start + pd.Timedelta(days=9)) == 2 * 86400


@pytest.fixture(params=["duckdb", "postgresql"])
def dst_url(request, tmp_path):
    """Two requests in the two different 01:30s of New York's fall-back night."""
    from sqlalchemy import insert

    from analytics_core import schema
    from analytics_core.sources.database import make_engine

    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'dst.duckdb'}"
    else:
        url = request.getfixturevalue("new_pg_database")()
    writer = make_engine(url, read_only=False)
    schema.create_tables(writer)
    rows = [
        {"id": i, "ts": ts.to_pydatetime(), "tenant_id": "t", "user_id": None, "method": "GET",
         "endpoint": "/x", "status_code": 200, "duration_ms": 1.0, "request_bytes": 1,
         "response_bytes": 1}
        for i, ts in enumerate(pd.to_datetime(["2026-11-01T05:30Z", "2026-11-01T06:30Z"]))
    ]  # fmt: skip
    with writer.begin() as conn:
        conn.execute(insert(schema.api_requests), rows)
    writer.dispose()
    yield url


def test_hourly_buckets_keep_both_hours_when_clocks_go_back(dst_url):
    from analytics_core.sources.database import make_engine

    engine = make_engine(dst_url)
    start, end = pd.Timestamp("2026-11-01T04:00Z"), pd.Timestamp("2026-11-01T08:00Z")
    hourly = performance.trend(engine, _ctx(_filters((start, end), "hour", "America/New_York")))
    daily = performance.trend(engine, _ctx(_filters((start, end), "day", "America/New_York")))
    engine.dispose()
    labels = [t.isoformat() for t in hourly["bucket"]]
    assert labels == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]
    assert hourly["requests"].tolist() == [0, 1, 1, 0]
    assert daily["bucket"].tolist() == [pd.Timestamp("2026-11-01", tz="America/New_York")]
    assert daily["requests"].tolist() == [2]


def test_trend_stops_at_now_and_flags_the_running_bucket(engine, dataset):
    # A range reaching two days past now, which sits inside the 05:00 hour of day 4.
    now = (T0 + pd.Timedelta(days=3, hours=5, minutes=30)).to_pydatetime()
    f = _filters((T0, T0 + pd.Timedelta(days=5)), granularity="hour")
    got = performance.trend(engine, _ctx(f, now))
    want_buckets = pd.date_range(T0, T0 + pd.Timedelta(days=3, hours=5), freq="h")
    assert got["bucket"].tolist() == list(want_buckets)  # no zero-filled future hours
    assert got["partial"].tolist() == [False] * (len(want_buckets) - 1) + [True]
    r = dataset.api_requests
    complete = r[r.ts < want_buckets[-1]]
    counts = complete.groupby(complete.ts.dt.floor("h")).size()
    np.testing.assert_array_equal(got.set_index("bucket").loc[counts.index, "requests"], counts)
    # A range starting inside a day: its first daily bucket is partial.
    daily = detection.trend(
        engine, _ctx(_filters((T0 + pd.Timedelta(hours=6), T0 + pd.Timedelta(days=3)), "day"))
    )
    assert daily["partial"].tolist() == [True, False, False]
    business_rows = business.trend(engine, _ctx(f, now), COSTS)
    assert business_rows["bucket"].max() == want_buckets[-1] and business_rows["partial"].iloc[-1]
