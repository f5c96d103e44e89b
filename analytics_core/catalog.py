"""What the database holds: the values the filters can take and the data's time span,
as far as the caller's scope reaches (another tenant's endpoints, algorithms or first
day are not the caller's to know)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, Select, func, select, union

from analytics_core.context import QueryContext, Scope
from analytics_core.filters import Filters, InputError, clip
from analytics_core.schema import (
    api_requests,
    detection_results,
    detectors,
    tenants,
    user_sessions,
)
from analytics_core.sources.database import read_frame, read_row


@dataclass(frozen=True)
class Dimensions:
    tenants: dict[str, str]  # tenant_id -> name
    algorithms: tuple[str, ...]
    endpoints: tuple[str, ...]
    first_event: datetime | None
    last_event: datetime | None


def _scoped(stmt: Select, tenant: ColumnElement, scope: Scope) -> Select:
    predicate = scope.predicate(tenant)
    return stmt if predicate is None else stmt.where(predicate)


def _first(ts: ColumnElement, tenant: ColumnElement, scope: Scope) -> Select:
    return _scoped(select(func.min(ts)), tenant, scope)


def _span(scope: Scope) -> Select:
    def bound(fn, ts: ColumnElement, tenant: ColumnElement):
        return _scoped(select(fn(ts)), tenant, scope).scalar_subquery()

    return select(
        func.least(
            bound(func.min, api_requests.c.ts, api_requests.c.tenant_id),
            bound(func.min, detection_results.c.created_at, detection_results.c.tenant_id),
        ).label("first"),
        func.greatest(
            bound(func.max, api_requests.c.ts, api_requests.c.tenant_id),
            bound(func.max, detection_results.c.created_at, detection_results.c.tenant_id),
        ).label("last"),
    )


def first_event(engine: Engine, scope: Scope) -> datetime | None:
    """When the stored history in ``scope`` begins (the earliest request or detection)."""
    return _utc(read_row(engine, _span(scope))["first"])


def first_request(engine: Engine, scope: Scope) -> datetime | None:
    """When the stored request history in ``scope`` begins."""
    stmt = _first(api_requests.c.ts, api_requests.c.tenant_id, scope).label("first")
    return _utc(read_row(engine, select(stmt))["first"])


def first_detection(engine: Engine, scope: Scope) -> datetime | None:
    """When the stored detection history in ``scope`` begins."""
    ts, tenant = detection_results.c.created_at, detection_results.c.tenant_id
    return _utc(read_row(engine, select(_first(ts, tenant, scope).label("first")))["first"])


def newest_row(engine: Engine, ctx: QueryContext, areas: Sequence[str]) -> datetime | None:
    """The time of the newest row the given areas' figures use: in the range, scope and
    filters (each an index lookup from the end of the range back)."""
    tables = {
        "detection": [(detection_results.c.created_at, detection_results, "algorithm")],
        "performance": [(api_requests.c.ts, api_requests, "endpoint")],
        "business": [
            (api_requests.c.ts, api_requests, "endpoint"),
            (user_sessions.c.started_at, user_sessions, None),
            (detection_results.c.created_at, detection_results, "algorithm"),
        ],
    }
    parts = {}
    for area in areas:
        for ts, table, filtered in tables[area]:
            extra = {filtered: table.c[filtered]} if filtered else {}
            where = ctx.where(ts, table.c.tenant_id, **extra)
            parts[(table.name, ts.name)] = select(func.max(ts)).where(where).scalar_subquery()
    if not parts:
        return None
    values = list(parts.values())
    newest = values[0] if len(values) == 1 else func.greatest(*values)
    return _utc(read_row(engine, select(newest.label("newest")))["newest"])


def dimensions(engine: Engine, scope: Scope | None = None) -> Dimensions:
    """The tenants, algorithms and endpoints the filters may take within ``scope``
    (default: every tenant), and the span of the data there."""
    scope = scope or Scope()
    names = read_frame(
        engine,
        _scoped(select(tenants.c.tenant_id, tenants.c.name), tenants.c.tenant_id, scope).order_by(
            "tenant_id"
        ),
    )
    algos = union(
        _scoped(select(detectors.c.algorithm), detectors.c.tenant_id, scope),
        _scoped(
            select(detection_results.c.algorithm), detection_results.c.tenant_id, scope
        ).distinct(),
    ).subquery()
    algorithms = read_frame(engine, select(algos.c.algorithm).order_by(algos.c.algorithm))
    endpoints = read_frame(
        engine,
        _scoped(select(api_requests.c.endpoint), api_requests.c.tenant_id, scope)
        .distinct()
        .order_by(api_requests.c.endpoint),
    )
    span = read_row(engine, _span(scope))
    return Dimensions(
        tenants=dict(zip(names["tenant_id"], names["name"], strict=True)),
        algorithms=tuple(algorithms["algorithm"]),
        endpoints=tuple(endpoints["endpoint"]),
        first_event=_utc(span["first"]),
        last_event=_utc(span["last"]),
    )


def _utc(value: object) -> datetime | None:
    if value is None:
        return None
    import pandas as pd

    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def check_filters(filters: Filters, dims: Dimensions) -> None:
    """Reject filter values the database has never seen, naming them."""
    for label, chosen, known in (
        ("tenant", filters.tenants, tuple(dims.tenants)),
        ("algorithm", filters.algorithms, dims.algorithms),
        ("endpoint", filters.endpoints, dims.endpoints),
    ):
        unknown = [v for v in chosen if v not in known]
        if unknown:
            listing = ", ".join(known[:20]) or "none"
            named = ", ".join(repr(clip(v)) for v in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise InputError(f"unknown {label} {named}{more} (known: {listing})")
