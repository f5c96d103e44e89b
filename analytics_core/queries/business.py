"""Business analytics: users, sessions, usage and cost. The tenant filter applies;
algorithm and endpoint filters do not (cost covers all of a tenant's usage)."""

from __future__ import annotations

from functools import reduce

import pandas as pd
from sqlalchemy import Double, Engine, Select, cast, extract, func, select, union

from analytics_core.config import Costs
from analytics_core.context import QueryContext
from analytics_core.queries.common import bucket, fill_buckets, fsum, numeric
from analytics_core.schema import api_requests as ar
from analytics_core.schema import detection_results as dr
from analytics_core.schema import tenants as tn
from analytics_core.schema import user_sessions as us
from analytics_core.schema import users as u
from analytics_core.sources.database import read_frame, read_row

MS_PER_HOUR = 3_600_000.0
BYTES_PER_GB = 1e9


def cost(compute_hours: float, gb: float, api_calls: float, costs: Costs) -> float:
    """Usage priced with the config's unit prices."""
    return (
        compute_hours * costs.compute_hour
        + gb * costs.gb_processed
        + api_calls * costs.per_1000_api_calls / 1000.0
    )


def _active_user_events(ctx: QueryContext, with_bucket: bool, with_tenant: bool = False):
    """(bucket?, tenant?, user_id) of every request and session start in range."""

    def part(ts, user, tenant, table):
        cols = [user.label("user_id")]
        if with_tenant:
            cols.insert(0, tenant.label("tenant_id"))
        if with_bucket:
            cols.insert(0, bucket(ts, ctx.filters).label("bucket"))
        return select(*cols).select_from(table).where(ctx.where(ts, tenant), user.is_not(None))

    return union(
        part(ar.c.ts, ar.c.user_id, ar.c.tenant_id, ar),
        part(us.c.started_at, us.c.user_id, us.c.tenant_id, us),
    ).subquery()


def _session_minutes(c=us.c):
    """Mean length in minutes of ended sessions (open ones have NULL ended_at)."""
    seconds = extract("epoch", c.ended_at) - extract("epoch", c.started_at)
    return cast(func.avg(seconds), Double) / 60.0


def _usage(c=ar.c):
    return (
        func.count().label("api_calls"),
        (fsum(c.request_bytes) / BYTES_PER_GB).label("data_processed_gb"),
    )


def kpis(engine: Engine, ctx: QueryContext, costs: Costs) -> dict[str, float | int | None]:
    events = _active_user_events(ctx, with_bucket=False)
    active = read_row(engine, select(func.count(events.c.user_id.distinct()).label("n")))["n"]
    new = read_row(
        engine, select(func.count().label("n")).where(ctx.where(u.c.created_at, u.c.tenant_id))
    )["n"]
    sessions = read_row(
        engine,
        select(func.count().label("sessions"), _session_minutes().label("minutes")).where(
            ctx.where(us.c.started_at, us.c.tenant_id)
        ),
    )
    usage = read_row(engine, select(*_usage()).where(ctx.where(ar.c.ts, ar.c.tenant_id)))
    compute_ms = read_row(
        engine,
        select(fsum(dr.c.execution_time_ms).label("ms")).where(
            ctx.where(dr.c.created_at, dr.c.tenant_id)
        ),
    )["ms"]
    api_calls = int(usage["api_calls"] or 0)
    gb = float(usage["data_processed_gb"] or 0.0)
    compute_hours = float(compute_ms or 0.0) / MS_PER_HOUR
    return {
        "active_users": int(active or 0),
        "new_users": int(new or 0),
        "sessions": int(sessions["sessions"] or 0),
        "avg_session_minutes": sessions["minutes"],
        "api_calls": api_calls,
        "data_processed_gb": gb,
        "total_cost": cost(compute_hours, gb, api_calls, costs),
    }


_TREND_COUNTS = ("active_users", "new_users", "sessions", "api_calls")


def _grouped(stmt: Select, key) -> Select:
    return stmt.group_by(key).order_by(key)


def trend(engine: Engine, ctx: QueryContext, costs: Costs) -> pd.DataFrame:
    """Per bucket up to ``ctx.now``: active_users, new_users, sessions, api_calls,
    data_processed_gb, compute_hours, cost, partial (see :func:`fill_buckets`)."""
    events = _active_user_events(ctx, with_bucket=True)
    frames = [
        read_frame(
            engine,
            _grouped(
                select(
                    events.c.bucket, func.count(events.c.user_id.distinct()).label("active_users")
                ),
                events.c.bucket,
            ),
        )
    ]
    for table, ts, tenant, aggs in (
        (u, u.c.created_at, u.c.tenant_id, (func.count().label("new_users"),)),
        (us, us.c.started_at, us.c.tenant_id, (func.count().label("sessions"),)),
        (ar, ar.c.ts, ar.c.tenant_id, None),
        (dr, dr.c.created_at, dr.c.tenant_id, None),
    ):
        inner = (
            select(bucket(ts, ctx.filters).label("bucket"), *table.c)
            .where(ctx.where(ts, tenant))
            .subquery()
        )
        if table is ar:
            aggs = _usage(inner.c)
        elif table is dr:
            aggs = ((fsum(inner.c.execution_time_ms) / MS_PER_HOUR).label("compute_hours"),)
        frames.append(read_frame(engine, _grouped(select(inner.c.bucket, *aggs), inner.c.bucket)))
    merged = reduce(
        lambda a, b: a.merge(b, on="bucket", how="outer"),
        [f.assign(bucket=pd.to_datetime(f["bucket"]).dt.tz_localize(None)) for f in frames],
    )
    out = fill_buckets(merged, ctx.filters, _TREND_COUNTS, ctx.now)
    out["data_processed_gb"] = out["data_processed_gb"].fillna(0.0)
    out["compute_hours"] = out["compute_hours"].fillna(0.0)
    out["cost"] = cost(out["compute_hours"], out["data_processed_gb"], out["api_calls"], costs)
    out["partial"] = out.pop("partial")  # last, as in the other trends
    return out


def by_tenant(engine: Engine, ctx: QueryContext, costs: Costs) -> pd.DataFrame:
    """One row per tenant (within the filter and scope): plan, active users, usage and cost."""
    events = _active_user_events(ctx, with_bucket=False, with_tenant=True)
    active = _grouped(
        select(events.c.tenant_id, func.count(events.c.user_id.distinct()).label("active_users")),
        events.c.tenant_id,
    )
    usage = _grouped(
        select(ar.c.tenant_id, *_usage()).where(ctx.where(ar.c.ts, ar.c.tenant_id)),
        ar.c.tenant_id,
    )
    compute = _grouped(
        select(
            dr.c.tenant_id, (fsum(dr.c.execution_time_ms) / MS_PER_HOUR).label("compute_hours")
        ).where(ctx.where(dr.c.created_at, dr.c.tenant_id)),
        dr.c.tenant_id,
    )
    names = select(tn.c.tenant_id, tn.c.name, tn.c.plan).where(ctx.where(None, tn.c.tenant_id))
    frame = read_frame(engine, names.order_by(tn.c.tenant_id))
    for stmt in (active, usage, compute):
        frame = frame.merge(read_frame(engine, stmt), on="tenant_id", how="left")
    frame = numeric(frame, ("active_users", "api_calls"), ("data_processed_gb", "compute_hours"))
    frame["data_processed_gb"] = frame["data_processed_gb"].fillna(0.0)
    frame["compute_hours"] = frame["compute_hours"].fillna(0.0)
    frame["cost"] = cost(
        frame["compute_hours"], frame["data_processed_gb"], frame["api_calls"], costs
    )
    return frame
