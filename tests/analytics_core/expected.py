"""Independent expectations: the KPI definitions computed with pandas/numpy from
the fixture frames, never through SQL."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics_core.config import Costs
from tests.fixtures import Dataset


def _in(frame: pd.DataFrame, col: str, start, end, tenants=(), **isin) -> pd.DataFrame:
    mask = (frame[col] >= pd.Timestamp(start)) & (frame[col] < pd.Timestamp(end))
    if tenants:
        mask &= frame["tenant_id"].isin(tenants)
    for column, values in isin.items():
        if values:
            mask &= frame[column].isin(values)
    return frame[mask]


def _none_if_nan(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def detection(ds: Dataset, start, end, tenants=(), algorithms=()) -> dict:
    d = _in(ds.detection_results, "created_at", start, end, tenants, algorithm=algorithms)
    ok = d[d.status == "success"]
    fb = ds.detection_feedback[ds.detection_feedback.detection_id.isin(d.id)]
    reviewed = (fb.confirmed + fb.false_positives).sum()
    return {
        "total_detections": len(d),
        "failed_detections": int((d.status == "failed").sum()),
        "total_anomalies": int(ok.n_anomalies.sum()),
        "anomaly_rate": ok.n_anomalies.sum() / ok.n_samples.sum() if len(ok) else None,
        "avg_confidence": _none_if_nan(ok.mean_score.mean()) if len(ok) else None,
        "avg_execution_ms": _none_if_nan(ok.execution_time_ms.mean()) if len(ok) else None,
        "p95_execution_ms": float(np.percentile(ok.execution_time_ms, 95)) if len(ok) else None,
        "false_positive_rate": fb.false_positives.sum() / reviewed if reviewed else None,
    }


def performance(ds: Dataset, start, end, tenants=(), endpoints=()) -> dict:
    r = _in(ds.api_requests, "ts", start, end, tenants, endpoint=endpoints)
    n = len(r)
    seconds = (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds()
    err = (r.status_code >= 500).sum() / n if n else None
    pct = np.percentile(r.duration_ms, [50, 95, 99]) if n else [None] * 3
    return {
        "requests": n,
        "throughput_rps": n / seconds,
        "error_rate": err,
        "availability": None if err is None else 1 - err,
        "avg_ms": float(r.duration_ms.mean()) if n else None,
        "p50_ms": pct[0],
        "p95_ms": pct[1],
        "p99_ms": pct[2],
    }


def business(ds: Dataset, start, end, costs: Costs, tenants=()) -> dict:
    r = _in(ds.api_requests, "ts", start, end, tenants)
    s = _in(ds.user_sessions, "started_at", start, end, tenants)
    u = _in(ds.users, "created_at", start, end, tenants)
    d = _in(ds.detection_results, "created_at", start, end, tenants)
    active = set(r.user_id.dropna()) | set(s.user_id)
    ended = s.dropna(subset=["ended_at"])
    minutes = [
        (e - b).total_seconds() / 60 for b, e in zip(ended.started_at, ended.ended_at, strict=True)
    ]
    gb = r.request_bytes.sum() / 1e9
    hours = d.execution_time_ms.sum() / 3.6e6
    return {
        "active_users": len(active),
        "new_users": len(u),
        "sessions": len(s),
        "avg_session_minutes": float(np.mean(minutes)) if minutes else None,
        "api_calls": len(r),
        "data_processed_gb": float(gb),
        "total_cost": hours * costs.compute_hour
        + gb * costs.gb_processed
        + len(r) * costs.per_1000_api_calls / 1000,
    }


def local_bucket(ts: pd.Series, tz: str, granularity: str) -> pd.Series:
    """Hours: the UTC hour, shown in ``tz``. Days and up: the local calendar unit's start."""
    utc = pd.to_datetime(ts).dt.tz_convert("UTC")
    if granularity == "hour":
        return utc.dt.floor("h").dt.tz_convert(tz)
    day = utc.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    if granularity == "week":
        day = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    elif granularity == "month":
        day = day - pd.to_timedelta(day.dt.day - 1, unit="D")
    return day.dt.tz_localize(tz)


PERCENTILE_KPIS = ("p50_ms", "p95_ms", "p99_ms", "p95_execution_ms")


def assert_kpis_equal(
    actual: dict, expected: dict, rel: float = 1e-9, percentile_rel: float | None = None
) -> None:
    """``percentile_rel``: the tolerance of percentiles read from rollup sketches (1%)."""
    assert set(actual) >= set(expected), set(expected) - set(actual)
    for key, want in expected.items():
        got = actual[key]
        tolerance = percentile_rel if percentile_rel and key in PERCENTILE_KPIS else rel
        if want is None:
            assert got is None, f"{key}: expected no data, got {got!r}"
        elif isinstance(want, int | np.integer):
            assert got == int(want), f"{key}: {got!r} != {want!r}"
        else:
            assert got is not None, f"{key}: expected {want!r}, got no data"
            assert np.isclose(got, float(want), rtol=tolerance, atol=1e-12), (
                f"{key}: {got!r} != {want!r}"
            )
