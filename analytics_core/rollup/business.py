"""Business figures from ``rollup_active_users`` / ``rollup_new_users`` / ``rollup_sessions``
/ ``rollup_requests`` / ``rollup_detections`` plus the raw tail of the request log,
sessions, users and runs: the same frames as :mod:`analytics_core.queries.business`
(see :mod:`analytics_core.rollup.read`).

Active users are exact: ``count(distinct user_id)`` over the union of the per-tile user
sets and the raw tail's users. The tenant filter applies; algorithm and endpoint
filters do not (cost covers all of a tenant's usage).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    Engine,
    Select,
    Text,
    cast,
    extract,
    func,
    literal,
    select,
)

from analytics_core.config import Costs
from analytics_core.context import QueryContext
from analytics_core.queries.business import BYTES_PER_GB, MS_PER_HOUR, cost
from analytics_core.queries.common import fill_buckets, numeric, ratio
from analytics_core.rollup.read import (
    clip,
    compact,
    filtered_dims,
    first_row,
    flag,
    grouped,
    raw_part,
    read_rollup,
    rollup_parts,
    shaped,
    sum_as,
    union_rows,
)
from analytics_core.rollup.refresh import merge_ranges
from analytics_core.rollup.tiles import bucket_boundaries, plan, spans
from analytics_core.rollup.units import counts_table, read_units, split_buckets
from analytics_core.rollup.user_days import active_in_hours, active_on
from analytics_core.schema import api_requests as ar
from analytics_core.schema import detection_results as dr
from analytics_core.schema import tenants as tn
from analytics_core.schema import user_sessions as us
from analytics_core.schema import users as u

SHAPE = {
    "ts": DateTime(timezone=True),
    "tenant_id": Text(),
    "user_id": Text(),
    "new_users": BigInteger(),
    "sessions": BigInteger(),
    "ended_sessions": BigInteger(),
    "ended_seconds": Double(),
    "api_calls": BigInteger(),
    "request_bytes": Double(),
    "exec_ms": Double(),
}
_TREND_COUNTS = ("active_users", "new_users", "sessions", "api_calls")


def _rows(
    ctx: QueryContext,
    watermark: datetime | None,
    keep: set[str],
    users: bool,
    within: list[tuple[datetime, datetime]] | None = None,
):
    """The union of tiled rollup rows (summed down to the ``keep`` columns; ``ts`` for a
    trend) and raw tail rows, in :data:`SHAPE`: the user sets (``users``, for distinct
    counts) or the additive measures. ``within``: only these intervals of the range."""
    pieces = plan(ctx.filters, ctx.now, watermark, by_bucket="ts" in keep)
    if within is not None:
        pieces = clip(pieces, within)
    filtered = filtered_dims(ctx)

    def part(t, ts=None, **values) -> Select:
        ts = t.c.bucket if ts is None else ts
        row = shaped(SHAPE, ts=ts, tenant_id=t.c.get("tenant_id"), **values)
        return select(*row).where(ctx.where(None, tenant=t.c.get("tenant_id")))

    def raw(table, ts, **values) -> Select:
        row = shaped(SHAPE, ts=ts, tenant_id=table.c.tenant_id, **values)
        stmt = select(*row).select_from(table).where(ctx.where(None, tenant=table.c.tenant_id))
        return raw_part(pieces, stmt, ts)

    def rolled(name: str, build) -> list[Select]:
        return rollup_parts(pieces, name, build, SHAPE, keep, filtered)

    if users:
        keep = keep | {"user_id"}

        # Whole days from the day bitmaps: over the whole range, or per output bucket
        # when few buckets have any (a trend's partial first and current weeks).
        days = merge_ranges([*spans(pieces, "month"), *spans(pieces, "day")])
        by_bucket = _per_bucket(ctx, days) if "ts" in keep else {None: days}
        sets, bitmaps = pieces, []
        if days and len(by_bucket) <= BITMAP_BUCKETS:
            sets = [p for p in pieces if p.tier not in ("month", "day")]
            for start, intervals in by_bucket.items():
                ts = None if start is None else literal(start, DateTime(timezone=True))
                bitmaps += active_on(intervals, lambda t, ts=ts: part(t, ts, user_id=t.c.user_id))
        # Whole hours from the day sets' active hours (there are no hour sets).
        hours = active_in_hours(
            spans(sets, "hour"),
            ctx.filters if "ts" in keep else None,
            lambda t, ts: part(t, ts, user_id=t.c.user_id),
        )
        return union_rows(
            [
                raw(ar, ar.c.ts, user_id=ar.c.user_id),
                raw(us, us.c.started_at, user_id=us.c.user_id),
                *rollup_parts(
                    [p for p in sets if p.tier != "hour"],
                    "active_users",
                    lambda t: part(t, user_id=t.c.user_id),
                    SHAPE,
                    keep,
                    filtered,
                ),
                *bitmaps,
                *(compact(stmt, SHAPE, keep) for stmt in hours),
            ]
        )
    seconds = extract("epoch", us.c.ended_at) - extract("epoch", us.c.started_at)
    return union_rows(
        [
            raw(ar, ar.c.ts, api_calls=1, request_bytes=ar.c.request_bytes),
            raw(
                us,
                us.c.started_at,
                sessions=1,
                ended_sessions=flag(us.c.ended_at.is_not(None)),
                ended_seconds=seconds,
            ),
            raw(u, u.c.created_at, new_users=1),
            raw(dr, dr.c.created_at, exec_ms=dr.c.execution_time_ms),
            *rolled("new_users", lambda t: part(t, new_users=t.c.new_users)),
            *rolled(
                "sessions",
                lambda t: part(
                    t,
                    sessions=t.c.sessions,
                    ended_sessions=t.c.ended_sessions,
                    ended_seconds=t.c.ended_seconds_sum,
                ),
            ),
            *rolled(
                "requests",
                lambda t: part(t, api_calls=t.c.requests, request_bytes=t.c.request_bytes_sum),
            ),
            *rolled("detections", lambda t: part(t, exec_ms=t.c.exec_ms_sum)),
        ]
    )


# A trend reads per-bucket bitmaps (one scan of a year's bitmaps each) for at most this many
# buckets with whole days outside the stored counts; more read the day sets.
BITMAP_BUCKETS = 4


def _per_bucket(
    ctx: QueryContext, days: list[tuple[datetime, datetime]]
) -> dict[datetime | None, list[tuple[datetime, datetime]]]:
    """The whole-day ``days`` of a trend cut at its bucket boundaries, per bucket start
    (a moment inside the bucket, which the trend's bucketing maps back to it)."""
    f = ctx.filters
    out: dict[datetime | None, list[tuple[datetime, datetime]]] = {}
    for lo, hi in days:
        edges = [lo, *bucket_boundaries(f, lo, hi), hi]
        for a, b in zip(edges, edges[1:], strict=False):
            out.setdefault(a, []).append((a, b))
    return out


def _sums(ctx: QueryContext, watermark: datetime | None, keys: list[str]) -> Select:
    """Everything but active users, per ``keys``."""
    keep = {"ts" if k == "bucket" else k for k in keys}
    rows = grouped(_rows(ctx, watermark, keep, users=False), keys, ctx.filters)
    key_cols = [rows.c[k] for k in keys]
    stmt = select(
        *key_cols,
        sum_as(rows.c.new_users, BigInteger).label("new_users"),
        sum_as(rows.c.sessions, BigInteger).label("sessions"),
        (ratio(func.sum(rows.c.ended_seconds), func.sum(rows.c.ended_sessions)) / 60.0).label(
            "avg_session_minutes"
        ),
        sum_as(rows.c.api_calls, BigInteger).label("api_calls"),
        (sum_as(rows.c.request_bytes, Double) / BYTES_PER_GB).label("data_processed_gb"),
        (sum_as(rows.c.exec_ms, Double) / MS_PER_HOUR).label("compute_hours"),
    )
    return stmt.group_by(*key_cols) if keys else stmt


def _distinct_users(
    ctx: QueryContext,
    watermark: datetime | None,
    keys: list[str],
    within: list[tuple[datetime, datetime]] | None = None,
) -> Select:
    """Active users per ``keys``: the distinct users of the union of user sets (the
    DISTINCT first, so the database hashes rather than sorts)."""
    keep = {"ts" if k == "bucket" else k for k in keys}
    rows = grouped(_rows(ctx, watermark, keep, users=True, within=within), keys, ctx.filters)
    pairs = select(*(rows.c[k] for k in keys), rows.c.user_id).distinct().subquery("pairs")
    key_cols = [pairs.c[k] for k in keys]
    stmt = select(*key_cols, cast(func.count(pairs.c.user_id), BigInteger).label("active_users"))
    return stmt.group_by(*key_cols) if keys else stmt


def _counted_users(
    engine: Engine, ctx: QueryContext, watermark: datetime | None
) -> tuple[pd.DataFrame, list[tuple[datetime, datetime]]]:
    """Active users of the trend's buckets that are whole rollup units (UTC hours; days,
    ISO weeks, months that begin and end on UTC midnights) from the stored counts, and
    the intervals of the other buckets, which the caller counts from the user sets.

    Counts are per tenant, so they answer only when at most one tenant is in view (a
    user active for two tenants is one user): all tenants read the all-tenant count."""
    table = counts_table(ctx, ctx.filters.granularity)
    counted, rest = split_buckets(ctx, watermark, table is not None)
    frame = pd.DataFrame({"bucket": pd.Series(dtype="datetime64[us]"), "active_users": []})
    if counted and table is not None:
        stmt = (
            select(table.c.bucket, sum_as(table.c.active_users, BigInteger).label("active_users"))
            .where(ctx.where(None, tenant=table.c.get("tenant_id")))
            .group_by(table.c.bucket)
        )
        frame = read_units(engine, stmt, counted, ctx.filters)
    return frame, rest


def kpis(
    engine: Engine, ctx: QueryContext, watermark: datetime | None, costs: Costs
) -> dict[str, float | int | None]:
    """As :func:`analytics_core.queries.business.kpis`."""
    row = first_row(read_rollup(engine, _sums(ctx, watermark, [])))
    row["active_users"] = first_row(read_rollup(engine, _distinct_users(ctx, watermark, [])))[
        "active_users"
    ]
    api_calls = int(row["api_calls"] or 0)
    gb = float(row["data_processed_gb"] or 0.0)
    compute_hours = float(row["compute_hours"] or 0.0)
    return {
        "active_users": int(row["active_users"] or 0),
        "new_users": int(row["new_users"] or 0),
        "sessions": int(row["sessions"] or 0),
        "avg_session_minutes": row["avg_session_minutes"],
        "api_calls": api_calls,
        "data_processed_gb": gb,
        "total_cost": cost(compute_hours, gb, api_calls, costs),
    }


def trend(
    engine: Engine, ctx: QueryContext, watermark: datetime | None, costs: Costs
) -> pd.DataFrame:
    """As :func:`analytics_core.queries.business.trend`."""
    sums = _sums(ctx, watermark, ["bucket"]).subquery()
    columns = ["new_users", "sessions", "api_calls", "data_processed_gb", "compute_hours"]
    stmt = select(sums.c.bucket, *(sums.c[c] for c in columns)).order_by(sums.c.bucket)
    frame = read_rollup(engine, stmt)
    counted, rest = _counted_users(engine, ctx, watermark)
    users = [counted]
    if rest:
        users.append(read_rollup(engine, _distinct_users(ctx, watermark, ["bucket"], rest)))
    users = [u for u in users if not u.empty]
    if users:
        active = pd.concat(users, ignore_index=True)
        active["bucket"] = pd.to_datetime(active["bucket"])
        frame["bucket"] = pd.to_datetime(frame["bucket"])
        frame = active.merge(frame, on="bucket", how="outer").sort_values("bucket")
    else:
        frame["active_users"] = 0
    frame = frame[["bucket", "active_users", *columns]]
    out = fill_buckets(frame, ctx.filters, _TREND_COUNTS, ctx.now)
    out["data_processed_gb"] = out["data_processed_gb"].fillna(0.0)
    out["compute_hours"] = out["compute_hours"].fillna(0.0)
    out["cost"] = cost(out["compute_hours"], out["data_processed_gb"], out["api_calls"], costs)
    out["partial"] = out.pop("partial")  # last, as in the other trends
    return out


def by_tenant(
    engine: Engine, ctx: QueryContext, watermark: datetime | None, costs: Costs
) -> pd.DataFrame:
    """As :func:`analytics_core.queries.business.by_tenant`."""
    totals = _sums(ctx, watermark, ["tenant_id"]).subquery()
    users = _distinct_users(ctx, watermark, ["tenant_id"]).subquery()
    stmt = (
        select(
            tn.c.tenant_id,
            tn.c.name,
            tn.c.plan,
            users.c.active_users,
            totals.c.api_calls,
            totals.c.data_processed_gb,
            totals.c.compute_hours,
        )
        .select_from(
            tn.outerjoin(totals, totals.c.tenant_id == tn.c.tenant_id).outerjoin(
                users, users.c.tenant_id == tn.c.tenant_id
            )
        )
        .where(ctx.where(None, tn.c.tenant_id))
        .order_by(tn.c.tenant_id)
    )
    frame = read_rollup(engine, stmt)
    frame = numeric(frame, ("active_users", "api_calls"), ("data_processed_gb", "compute_hours"))
    frame["data_processed_gb"] = frame["data_processed_gb"].fillna(0.0)
    frame["compute_hours"] = frame["compute_hours"].fillna(0.0)
    frame["cost"] = cost(
        frame["compute_hours"], frame["data_processed_gb"], frame["api_calls"], costs
    )
    return frame
