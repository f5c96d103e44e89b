"""Performance analytics from the API request log (``api_requests``).

Tenant and endpoint filters apply. Prometheus slots in beside this module as
another source of the same figures.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Engine, func, select

from analytics_core.context import QueryContext
from analytics_core.filters import Filters
from analytics_core.queries.common import bucket, fill_buckets, numeric, percentile, ratio
from analytics_core.schema import api_requests as ar
from analytics_core.sources.database import read_frame, read_row

_COUNTS = ("requests", "errors")


def _where(ctx: QueryContext):
    return ctx.where(ar.c.ts, tenant=ar.c.tenant_id, endpoint=ar.c.endpoint)


def _aggregates(c=ar.c):
    return (
        func.count().label("requests"),
        func.count().filter(c.status_code >= 500).label("errors"),
        ratio(func.count().filter(c.status_code >= 500), func.count()).label("error_rate"),
        (1.0 - ratio(func.count().filter(c.status_code >= 500), func.count())).label(
            "availability"
        ),
        func.avg(c.duration_ms).label("avg_ms"),
        percentile(0.50, c.duration_ms).label("p50_ms"),
        percentile(0.95, c.duration_ms).label("p95_ms"),
        percentile(0.99, c.duration_ms).label("p99_ms"),
    )


def observed_seconds(filters: Filters, now: datetime | None = None) -> float:
    """Seconds of the range that have happened: a range reaching into the future
    would otherwise dilute throughput with time that has not come yet."""
    return (filters.observed_end(now or datetime.now(UTC)) - filters.start).total_seconds()


def kpis(engine: Engine, ctx: QueryContext) -> dict[str, float | int | None]:
    row = read_row(engine, select(*_aggregates()).where(_where(ctx)))
    requests = int(row["requests"] or 0)
    seconds = observed_seconds(ctx.filters, ctx.now)
    error_rate = row["error_rate"]
    return {
        "requests": requests,
        "throughput_rps": requests / seconds if seconds > 0 else None,
        "error_rate": error_rate,
        "availability": None if error_rate is None else 1.0 - float(error_rate),
        "avg_ms": row["avg_ms"],
        "p50_ms": row["p50_ms"],
        "p95_ms": row["p95_ms"],
        "p99_ms": row["p99_ms"],
    }


def trend(engine: Engine, ctx: QueryContext) -> pd.DataFrame:
    """Per bucket up to ``ctx.now``: requests, errors, error_rate, avg_ms, p50_ms, p95_ms,
    p99_ms, partial (see :func:`fill_buckets`)."""
    inner = (
        select(bucket(ar.c.ts, ctx.filters).label("bucket"), ar.c.status_code, ar.c.duration_ms)
        .where(_where(ctx))
        .subquery()
    )
    stmt = select(inner.c.bucket, *_aggregates(inner.c)).group_by(inner.c.bucket)
    frame = read_frame(engine, stmt.order_by(inner.c.bucket))
    return fill_buckets(frame, ctx.filters, _COUNTS, ctx.now)


def by_endpoint(engine: Engine, ctx: QueryContext) -> pd.DataFrame:
    """One row per (method, endpoint) with the trend's figures and its share of requests."""
    stmt = (
        select(ar.c.endpoint, ar.c.method, *_aggregates())
        .where(_where(ctx))
        .group_by(ar.c.endpoint, ar.c.method)
        .order_by(ar.c.endpoint, ar.c.method)
    )
    frame = read_frame(engine, stmt)
    floats = ["error_rate", "availability", "avg_ms", "p50_ms", "p95_ms", "p99_ms"]
    frame = numeric(frame, _COUNTS, floats)
    total = frame["requests"].sum()
    frame["share"] = frame["requests"] / total if total else float("nan")
    return frame
