"""Performance figures from ``rollup_requests`` / ``rollup_request_latency`` plus the raw
``api_requests`` tail: the same frames as :mod:`analytics_core.queries.performance` and
:func:`analytics_core.queries.bottlenecks.endpoints` (see :mod:`analytics_core.rollup.read`).

Tenant and endpoint filters apply.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import BigInteger, DateTime, Double, Engine, Integer, Select, Text, select

from analytics_core.context import QueryContext
from analytics_core.queries.bottlenecks import ENDPOINT_SHARES
from analytics_core.queries.common import fill_buckets, numeric, ratio, shares
from analytics_core.queries.performance import observed_seconds
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
from analytics_core.rollup.sketch import bin_expr, bin_of, bin_value
from analytics_core.rollup.tiles import plan
from analytics_core.rollup.units import stored_split, with_stored
from analytics_core.schema import api_requests as ar

SHAPE = {
    "ts": DateTime(timezone=True),
    "endpoint": Text(),
    "method": Text(),
    "bin": Integer(),
    "n": BigInteger(),
    "requests": BigInteger(),
    "errors": BigInteger(),
    "duration_ms": Double(),
    "slow": BigInteger(),
}
_ADDITIVE = {"requests": BigInteger(), "errors": BigInteger(), "duration_ms": Double()}
QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
_COUNTS = ("requests", "errors")
_FIGURES = ["requests", "errors", "error_rate", "availability", "avg_ms", *QUANTILES]


def slow_bin(p95_ms: float) -> int:
    """The first bin counted as slower than ``p95_ms``: the bins whose value exceeds it.

    Every value in a later bin is above ``p95_ms``, every value in an earlier one is not;
    only the rows in p95's own bin can be misjudged, so "slow" from rollups is exact up
    to that one bin's count.
    """
    b = bin_of(p95_ms)
    assert b is not None
    return b if bin_value(b) > p95_ms else b + 1


def _rows(
    ctx: QueryContext,
    watermark: datetime | None,
    keep: set[str],
    p95_ms: float | None = None,
    sketch_within: list[tuple[datetime, datetime]] | None = None,
):
    """The union of tiled rollup rows (summed down to the ``keep`` columns; ``ts`` for a
    trend) and raw tail rows, in :data:`SHAPE`; the latency sketch rows of the rollup only
    ``sketch_within`` these intervals when given."""
    pieces = plan(ctx.filters, ctx.now, watermark, by_bucket="ts" in keep)
    sketch_pieces = pieces if sketch_within is None else clip(pieces, sketch_within)
    filtered = filtered_dims(ctx)
    threshold = None if p95_ms is None else slow_bin(p95_ms)

    def totals(t) -> Select:
        return select(
            *shaped(
                SHAPE,
                ts=t.c.bucket,
                endpoint=t.c.get("endpoint"),
                method=t.c.get("method"),
                n=0,
                requests=t.c.requests,
                errors=flag(t.c.status_class >= 5, t.c.requests),
                duration_ms=t.c.duration_ms_sum,
                slow=0,
            )
        ).where(ctx.where(None, tenant=t.c.get("tenant_id"), endpoint=t.c.get("endpoint")))

    def latency(t) -> Select:
        slow = 0 if threshold is None else flag(t.c.bin >= threshold, t.c.n)
        return select(
            *shaped(
                SHAPE,
                ts=t.c.bucket,
                endpoint=t.c.get("endpoint"),
                method=t.c.get("method"),
                bin=t.c.bin,
                n=t.c.n,
                requests=0,
                errors=0,
                duration_ms=0.0,
                slow=slow,
            )
        ).where(ctx.where(None, tenant=t.c.get("tenant_id"), endpoint=t.c.get("endpoint")))

    raw = select(
        *shaped(
            SHAPE,
            ts=ar.c.ts,
            endpoint=ar.c.endpoint,
            method=ar.c.method,
            bin=bin_expr(ar.c.duration_ms),
            n=1,
            requests=1,
            errors=flag(ar.c.status_code >= 500),
            duration_ms=ar.c.duration_ms,
            slow=0 if p95_ms is None else flag(ar.c.duration_ms > p95_ms),
        )
    ).where(ctx.where(None, tenant=ar.c.tenant_id, endpoint=ar.c.endpoint))
    parts = [
        raw_part(pieces, raw, ar.c.ts),
        *rollup_parts(pieces, "requests", totals, SHAPE, keep, filtered),
        *rollup_parts(sketch_pieces, "request_latency", latency, SHAPE, keep, filtered),
    ]
    return union_rows(parts)


def _figures(
    engine: Engine,
    ctx: QueryContext,
    watermark: datetime | None,
    keys: list[str],
) -> pd.DataFrame:
    keep = {"ts" if k == "bucket" else k for k in keys} | {"bin"}
    # A trend's whole closed units read their stored quantiles rather than their sketches.
    table, counted, within = stored_split(ctx, watermark, "request_latency", keys)
    rows = grouped(_rows(ctx, watermark, keep, sketch_within=within), keys, ctx.filters)
    t = sketch_totals(rows, keys, _ADDITIVE, QUANTILES)
    error_rate = ratio(t.c.errors, t.c.requests)
    stmt = select(
        *(t.c[k] for k in keys),
        t.c.requests,
        t.c.errors,
        error_rate.label("error_rate"),
        (1.0 - error_rate).label("availability"),
        ratio(t.c.duration_ms, t.c.requests).label("avg_ms"),
        t.c.sketch_n,
        *(t.c[f"{name}__{s}"] for name in QUANTILES for s in ("lo", "hi")),
    )
    frame = read_rollup(engine, stmt.order_by(*(t.c[k] for k in keys)))
    frame = with_stored(engine, frame, table, counted, ctx.filters, QUANTILES)
    return resolve_percentiles(frame, QUANTILES)[[*keys, *_FIGURES]]


def kpis(
    engine: Engine, ctx: QueryContext, watermark: datetime | None
) -> dict[str, float | int | None]:
    """As :func:`analytics_core.queries.performance.kpis`."""
    row = first_row(_figures(engine, ctx, watermark, []))
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


def trend(engine: Engine, ctx: QueryContext, watermark: datetime | None) -> pd.DataFrame:
    """As :func:`analytics_core.queries.performance.trend`."""
    frame = _figures(engine, ctx, watermark, ["bucket"])
    return fill_buckets(frame, ctx.filters, _COUNTS, ctx.now)


def by_endpoint(engine: Engine, ctx: QueryContext, watermark: datetime | None) -> pd.DataFrame:
    """As :func:`analytics_core.queries.performance.by_endpoint`."""
    keys = ["endpoint", "method"]
    frame = _figures(engine, ctx, watermark, keys)
    frame = numeric(frame, _COUNTS, ["error_rate", "availability", "avg_ms", *QUANTILES])
    total = frame["requests"].sum()
    frame["share"] = frame["requests"] / total if total else float("nan")
    return frame


def endpoint_shares(
    engine: Engine, ctx: QueryContext, watermark: datetime | None, p95_ms: float | None
) -> pd.DataFrame:
    """As :func:`analytics_core.queries.bottlenecks.endpoints`: per endpoint, requests,
    slow requests (> ``p95_ms``), errors, total time and their shares.

    "Slow" counts raw tail rows exactly and rollup rows by sketch bin (:func:`slow_bin`):
    exact except for the rows in the bin that holds ``p95_ms``.
    """
    rows = _rows(ctx, watermark, {"endpoint"}, p95_ms=p95_ms)
    stmt = (
        select(
            rows.c.endpoint,
            sum_as(rows.c.requests, BigInteger).label("requests"),
            sum_as(rows.c.slow, BigInteger).label("slow"),
            sum_as(rows.c.errors, BigInteger).label("errors"),
            sum_as(rows.c.duration_ms, Double).label("total_ms"),
        )
        .group_by(rows.c.endpoint)
        .order_by(rows.c.endpoint)
    )
    frame = numeric(read_rollup(engine, stmt), ("requests", "slow", "errors"), ("total_ms",))
    return shares(
        frame,
        ENDPOINT_SHARES,
    )
