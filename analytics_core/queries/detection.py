"""Detection analytics: KPIs, trend and per-algorithm breakdown from ``detection_results``
and ``detection_feedback``. Tenant and algorithm filters apply."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, func, select

from analytics_core.context import QueryContext
from analytics_core.queries.common import (
    bucket,
    fill_buckets,
    fsum,
    numeric,
    percentile,
    ratio,
    when,
)
from analytics_core.schema import detection_feedback as fb
from analytics_core.schema import detection_results as dr
from analytics_core.sources.database import read_frame, read_row


def _where(ctx: QueryContext):
    return ctx.where(dr.c.created_at, tenant=dr.c.tenant_id, algorithm=dr.c.algorithm)


def _aggregates(c=dr.c, percentiles: bool = True):
    """The per-group detection figures, shared by KPIs, trend and breakdown.

    ``c`` is the column collection to aggregate: the table's, or a bucketed subquery's;
    without ``percentiles``, no p95 run time.
    """
    ok = c.status == "success"
    p95 = percentile(0.95, when(ok, c.execution_time_ms)).label("p95_execution_ms")
    return (
        func.count().label("detections"),
        func.count().filter(c.status == "failed").label("failed"),
        fsum(when(ok, c.n_anomalies)).label("anomalies"),
        ratio(func.sum(when(ok, c.n_anomalies)), func.sum(when(ok, c.n_samples))).label(
            "anomaly_rate"
        ),
        func.avg(when(ok, c.mean_score)).label("avg_confidence"),
        func.avg(when(ok, c.execution_time_ms)).label("avg_execution_ms"),
        *([p95] if percentiles else []),
    )


def _false_positive_rate(ctx: QueryContext, group_col=None):
    cols = [group_col] if group_col is not None else []
    stmt = (
        select(
            *cols,
            ratio(
                func.sum(fb.c.false_positives),
                func.sum(fb.c.confirmed + fb.c.false_positives),
            ).label("false_positive_rate"),
        )
        .select_from(fb.join(dr, fb.c.detection_id == dr.c.id))
        .where(_where(ctx))
    )
    return stmt.group_by(*cols) if cols else stmt


def kpis(engine: Engine, ctx: QueryContext) -> dict[str, float | int | None]:
    row = read_row(engine, select(*_aggregates()).where(_where(ctx)))
    fp = read_row(engine, _false_positive_rate(ctx))
    return {
        "total_detections": int(row["detections"] or 0),
        "failed_detections": int(row["failed"] or 0),
        "total_anomalies": int(row["anomalies"] or 0),
        "anomaly_rate": row["anomaly_rate"],
        "avg_confidence": row["avg_confidence"],
        "avg_execution_ms": row["avg_execution_ms"],
        "p95_execution_ms": row["p95_execution_ms"],
        "false_positive_rate": fp["false_positive_rate"],
    }


_TREND_COUNTS = ("detections", "failed", "anomalies")


def trend(engine: Engine, ctx: QueryContext) -> pd.DataFrame:
    """Per bucket up to ``ctx.now``: detections, failed, anomalies, anomaly_rate, avg_confidence,
    avg_execution_ms, p95_execution_ms, partial (see :func:`fill_buckets`)."""
    inner = (
        select(bucket(dr.c.created_at, ctx.filters).label("bucket"), *dr.c)
        .where(_where(ctx))
        .subquery()
    )
    stmt = (
        select(inner.c.bucket, *_aggregates(inner.c))
        .group_by(inner.c.bucket)
        .order_by(inner.c.bucket)
    )
    return fill_buckets(read_frame(engine, stmt), ctx.filters, _TREND_COUNTS, ctx.now)


def by_algorithm(engine: Engine, ctx: QueryContext) -> pd.DataFrame:
    """One row per algorithm: the trend's figures plus false_positive_rate."""
    stmt = (
        select(dr.c.algorithm, *_aggregates())
        .where(_where(ctx))
        .group_by(dr.c.algorithm)
        .order_by(dr.c.algorithm)
    )
    frame = read_frame(engine, stmt)
    fp = read_frame(engine, _false_positive_rate(ctx, dr.c.algorithm))
    frame = frame.merge(fp, on="algorithm", how="left")
    floats = [c for c in frame.columns if c not in _TREND_COUNTS and c != "algorithm"]
    return numeric(frame, _TREND_COUNTS, floats)


def by_detector(engine: Engine, ctx: QueryContext) -> pd.DataFrame:
    """One row per detector (with its algorithm): the trend's figures but the p95 run
    time (what singles out a detector is its anomaly rate; a percentile per detector
    would cost more than the rest of the row at any range)."""
    stmt = (
        select(dr.c.detector_id, dr.c.algorithm, *_aggregates(percentiles=False))
        .where(_where(ctx))
        .group_by(dr.c.detector_id, dr.c.algorithm)
        .order_by(dr.c.detector_id)
    )
    frame = read_frame(engine, stmt)
    keys = ("detector_id", "algorithm")
    floats = [c for c in frame.columns if c not in _TREND_COUNTS and c not in keys]
    return numeric(frame, _TREND_COUNTS, floats)
