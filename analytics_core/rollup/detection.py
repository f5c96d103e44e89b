"""Detection figures from ``rollup_detections`` / ``rollup_detection_runtime`` /
``rollup_feedback`` plus the raw ``detection_results`` (and their feedback) tail: the same
frames as :mod:`analytics_core.queries.detection` and
:func:`analytics_core.queries.bottlenecks.algorithms` (see :mod:`analytics_core.rollup.read`).

Tenant and algorithm filters apply. Feedback counts by its detection's time, as the raw
false-positive rate does; feedback given after the last rollup run about a detection
older than the watermark is counted from the next run on.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import BigInteger, DateTime, Double, Engine, Integer, Select, Text, and_, select

from analytics_core.context import QueryContext
from analytics_core.queries.common import fill_buckets, numeric, ratio, shares, when
from analytics_core.rollup.read import (
    clip,
    filtered_dims,
    first_row,
    flag,
    grouped,
    raw_part,
    read_rollup,
    resolve_percentiles,
    rollup_parts,
    shaped,
    sketch_totals,
    sum_as,
    union_rows,
)
from analytics_core.rollup.sketch import bin_expr
from analytics_core.rollup.tiles import plan
from analytics_core.rollup.units import stored_split, with_stored
from analytics_core.schema import detection_feedback as fb
from analytics_core.schema import detection_results as dr

SHAPE = {
    "ts": DateTime(timezone=True),
    "algorithm": Text(),
    "detector_id": Text(),
    "bin": Integer(),
    "n": BigInteger(),
    "detections": BigInteger(),
    "failed": BigInteger(),
    # Success-only figures stay NULL for failed runs, as in the raw aggregates.
    "anomalies": BigInteger(),
    "samples": BigInteger(),
    "score_sum": Double(),
    "score_count": BigInteger(),
    "exec_sum": Double(),
    "exec_count": BigInteger(),
    "exec_all_ms": Double(),  # every run's time (shares of execution time)
    "confirmed": BigInteger(),
    "false_positives": BigInteger(),
}
_KEYS = ("ts", "algorithm", "detector_id", "bin", "n")
_ADDITIVE = {name: t for name, t in SHAPE.items() if name not in _KEYS}
QUANTILES = {"p95_execution_ms": 0.95}
_COUNTS = ("detections", "failed", "anomalies")
_FIGURES = [
    "detections",
    "failed",
    "anomalies",
    "anomaly_rate",
    "avg_confidence",
    "avg_execution_ms",
    "p95_execution_ms",
]


def _rows(
    ctx: QueryContext,
    watermark: datetime | None,
    keep: set[str],
    feedback: bool,
    sketch_within: list[tuple[datetime, datetime]] | None = None,
    sketch: bool = True,
):
    """The union of tiled rollup rows (summed down to the ``keep`` columns; ``ts`` for a
    trend) and raw tail rows, in :data:`SHAPE`; feedback rows only when ``feedback``
    (the false-positive rate); the run-time sketch rows of the rollup only
    ``sketch_within`` these intervals when given."""
    pieces = plan(ctx.filters, ctx.now, watermark, by_bucket="ts" in keep)
    sketch_pieces = pieces if sketch_within is None else clip(pieces, sketch_within)
    filtered = filtered_dims(ctx)

    def where(t):
        return ctx.where(None, tenant=t.c.get("tenant_id"), algorithm=t.c.get("algorithm"))

    def runs(t) -> Select:
        ok = t.c.status == "success"
        return select(
            *shaped(
                SHAPE,
                ts=t.c.bucket,
                algorithm=t.c.get("algorithm"),
                detector_id=t.c.get("detector_id"),
                n=0,
                detections=t.c.runs,
                failed=flag(t.c.status == "failed", t.c.runs),
                anomalies=when(ok, t.c.n_anomalies_sum),
                samples=when(ok, t.c.n_samples_sum),
                score_sum=when(ok, t.c.score_sum),
                score_count=flag(ok, t.c.score_count),
                exec_sum=when(ok, t.c.exec_ms_sum),
                exec_count=flag(ok, t.c.exec_count),
                exec_all_ms=t.c.exec_ms_sum,
            )
        ).where(where(t))

    def runtime(t) -> Select:
        return select(
            *shaped(
                SHAPE,
                ts=t.c.bucket,
                algorithm=t.c.get("algorithm"),
                detector_id=t.c.get("detector_id"),
                bin=t.c.bin,
                n=t.c.n,
                detections=0,
                failed=0,
                score_count=0,
                exec_count=0,
            )
        ).where(where(t))

    def reviews(t) -> Select:
        return select(
            *shaped(
                SHAPE,
                ts=t.c.bucket,
                algorithm=t.c.get("algorithm"),
                detector_id=t.c.get("detector_id"),
                n=0,
                detections=0,
                failed=0,
                score_count=0,
                exec_count=0,
                confirmed=t.c.confirmed_sum,
                false_positives=t.c.false_positives_sum,
            )
        ).where(where(t))

    ok = dr.c.status == "success"
    timed = and_(ok, dr.c.execution_time_ms.is_not(None))
    raw_runs = select(
        *shaped(
            SHAPE,
            ts=dr.c.created_at,
            algorithm=dr.c.algorithm,
            detector_id=dr.c.detector_id,
            bin=bin_expr(when(ok, dr.c.execution_time_ms)),
            n=flag(timed),
            detections=1,
            failed=flag(dr.c.status == "failed"),
            anomalies=when(ok, dr.c.n_anomalies),
            samples=when(ok, dr.c.n_samples),
            score_sum=when(ok, dr.c.mean_score),
            score_count=flag(and_(ok, dr.c.mean_score.is_not(None))),
            exec_sum=when(ok, dr.c.execution_time_ms),
            exec_count=flag(timed),
            exec_all_ms=dr.c.execution_time_ms,
        )
    ).where(where(dr))
    parts = [
        raw_part(pieces, raw_runs, dr.c.created_at),
        *rollup_parts(pieces, "detections", runs, SHAPE, keep, filtered),
        *(
            rollup_parts(sketch_pieces, "detection_runtime", runtime, SHAPE, keep, filtered)
            if sketch
            else []
        ),
    ]
    if feedback:
        raw_reviews = (
            select(
                *shaped(
                    SHAPE,
                    ts=dr.c.created_at,
                    algorithm=dr.c.algorithm,
                    detector_id=dr.c.detector_id,
                    n=0,
                    detections=0,
                    failed=0,
                    score_count=0,
                    exec_count=0,
                    confirmed=fb.c.confirmed,
                    false_positives=fb.c.false_positives,
                )
            )
            .select_from(fb.join(dr, fb.c.detection_id == dr.c.id))
            .where(where(dr))
        )
        parts.append(raw_part(pieces, raw_reviews, dr.c.created_at))
        parts.extend(rollup_parts(pieces, "feedback", reviews, SHAPE, keep, filtered))
    return union_rows(parts)


def _figures(
    engine: Engine,
    ctx: QueryContext,
    watermark: datetime | None,
    keys: list[str],
    feedback: bool,
    percentiles: bool = True,
) -> pd.DataFrame:
    quantiles = QUANTILES if percentiles else {}
    keep = {"ts" if k == "bucket" else k for k in keys} | ({"bin"} if percentiles else set())
    # A trend's whole closed units read their stored quantiles rather than their sketches.
    table, counted, within = stored_split(ctx, watermark, "detection_runtime", keys)
    rows = grouped(
        _rows(ctx, watermark, keep, feedback, within, sketch=percentiles), keys, ctx.filters
    )
    t = sketch_totals(rows, keys, _ADDITIVE, quantiles)
    figures = [
        t.c.detections,
        t.c.failed,
        t.c.anomalies,
        ratio(t.c.anomalies, t.c.samples).label("anomaly_rate"),
        ratio(t.c.score_sum, t.c.score_count).label("avg_confidence"),
        ratio(t.c.exec_sum, t.c.exec_count).label("avg_execution_ms"),
    ]
    names = list(_FIGURES)
    if feedback:
        reviewed = t.c.confirmed + t.c.false_positives
        figures.append(ratio(t.c.false_positives, reviewed).label("false_positive_rate"))
        names.append("false_positive_rate")
    stmt = select(
        *(t.c[k] for k in keys),
        *figures,
        t.c.sketch_n,
        *(t.c[f"{name}__{s}"] for name in quantiles for s in ("lo", "hi")),
    )
    if keys:  # a group exists where a run does (feedback alone does not make one)
        stmt = stmt.where(t.c.detections > 0)
    frame = read_rollup(engine, stmt.order_by(*(t.c[k] for k in keys)))
    frame = with_stored(engine, frame, table, counted, ctx.filters, QUANTILES)
    names = [n for n in names if n not in QUANTILES or n in quantiles]
    return resolve_percentiles(frame, quantiles)[[*keys, *names]]


def kpis(
    engine: Engine, ctx: QueryContext, watermark: datetime | None
) -> dict[str, float | int | None]:
    """As :func:`analytics_core.queries.detection.kpis`."""
    row = first_row(_figures(engine, ctx, watermark, [], feedback=True))
    return {
        "total_detections": int(row["detections"] or 0),
        "failed_detections": int(row["failed"] or 0),
        "total_anomalies": int(row["anomalies"] or 0),
        "anomaly_rate": row["anomaly_rate"],
        "avg_confidence": row["avg_confidence"],
        "avg_execution_ms": row["avg_execution_ms"],
        "p95_execution_ms": row["p95_execution_ms"],
        "false_positive_rate": row["false_positive_rate"],
    }


def trend(engine: Engine, ctx: QueryContext, watermark: datetime | None) -> pd.DataFrame:
    """As :func:`analytics_core.queries.detection.trend`."""
    frame = _figures(engine, ctx, watermark, ["bucket"], feedback=False)
    return fill_buckets(frame, ctx.filters, _COUNTS, ctx.now)


def _breakdown(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    floats = [c for c in frame.columns if c not in _COUNTS and c not in keys]
    return numeric(frame, _COUNTS, floats)


def by_algorithm(engine: Engine, ctx: QueryContext, watermark: datetime | None) -> pd.DataFrame:
    """As :func:`analytics_core.queries.detection.by_algorithm`."""
    keys = ["algorithm"]
    frame = _figures(engine, ctx, watermark, keys, feedback=True)
    return _breakdown(frame, keys)


def by_detector(engine: Engine, ctx: QueryContext, watermark: datetime | None) -> pd.DataFrame:
    """As :func:`analytics_core.queries.detection.by_detector`."""
    keys = ["detector_id", "algorithm"]
    frame = _figures(engine, ctx, watermark, keys, feedback=False, percentiles=False)
    return _breakdown(frame, keys)


def algorithm_shares(engine: Engine, ctx: QueryContext, watermark: datetime | None) -> pd.DataFrame:
    """As :func:`analytics_core.queries.bottlenecks.algorithms`: per algorithm, runs,
    failures, total execution time (every run's) and their shares."""
    rows = _rows(ctx, watermark, {"algorithm"}, feedback=False)
    stmt = (
        select(
            rows.c.algorithm,
            sum_as(rows.c.detections, BigInteger).label("runs"),
            sum_as(rows.c.failed, BigInteger).label("failed"),
            sum_as(rows.c.exec_all_ms, Double).label("total_ms"),
        )
        .group_by(rows.c.algorithm)
        .having(sum_as(rows.c.detections, BigInteger) > 0)
        .order_by(rows.c.algorithm)
    )
    frame = numeric(read_rollup(engine, stmt), ("runs", "failed"), ("total_ms",))
    return shares(frame, {"runs": "run_share", "failed": "failure_share", "total_ms": "time_share"})
