"""What the database holds: the values the filters can take and the data's time span."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, union

from analytics_core.filters import Filters, InputError
from analytics_core.schema import api_requests, detection_results, detectors, tenants
from analytics_core.sources.database import read_frame, read_row


@dataclass(frozen=True)
class Dimensions:
    tenants: dict[str, str]  # tenant_id -> name
    algorithms: tuple[str, ...]
    endpoints: tuple[str, ...]
    first_event: datetime | None
    last_event: datetime | None


def _span():
    return select(
        func.least(
            select(func.min(api_requests.c.ts)).scalar_subquery(),
            select(func.min(detection_results.c.created_at)).scalar_subquery(),
        ).label("first"),
        func.greatest(
            select(func.max(api_requests.c.ts)).scalar_subquery(),
            select(func.max(detection_results.c.created_at)).scalar_subquery(),
        ).label("last"),
    )


def first_event(engine: Engine) -> datetime | None:
    """When the stored history begins (the earliest request or detection)."""
    return _utc(read_row(engine, _span())["first"])


def first_request(engine: Engine) -> datetime | None:
    """When the stored request history begins."""
    return _utc(read_row(engine, select(func.min(api_requests.c.ts).label("first")))["first"])


def first_detection(engine: Engine) -> datetime | None:
    """When the stored detection history begins."""
    stmt = select(func.min(detection_results.c.created_at).label("first"))
    return _utc(read_row(engine, stmt)["first"])


def dimensions(engine: Engine) -> Dimensions:
    names = read_frame(engine, select(tenants.c.tenant_id, tenants.c.name).order_by("tenant_id"))
    algos = union(
        select(detectors.c.algorithm), select(detection_results.c.algorithm).distinct()
    ).subquery()
    algorithms = read_frame(engine, select(algos.c.algorithm).order_by(algos.c.algorithm))
    endpoints = read_frame(
        engine, select(api_requests.c.endpoint).distinct().order_by(api_requests.c.endpoint)
    )
    span = read_row(engine, _span())
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
            raise InputError(f"unknown {label} {', '.join(map(repr, unknown))} (known: {listing})")
