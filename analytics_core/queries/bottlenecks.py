"""Where the time and the errors go: each endpoint's share of slow requests and
errors, each algorithm's share of execution time and failures, for a period.

"Slow" means slower than the period's overall p95, so an endpoint's share of slow
requests is its contribution to the p95 latency.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, and_, func, literal, select

from analytics_core.filters import Filters
from analytics_core.queries.common import fsum, in_range, numeric
from analytics_core.schema import api_requests as ar
from analytics_core.schema import detection_results as dr
from analytics_core.sources.database import read_frame


def _shares(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Add ``<name>_share`` = column / its total (NaN when the total is 0)."""
    for column, share in columns.items():
        total = frame[column].sum()
        frame[share] = frame[column] / total if total else float("nan")
    return frame


def endpoints(engine: Engine, filters: Filters, p95_ms: float | None) -> pd.DataFrame:
    """Per endpoint: requests, slow requests (> p95), errors, total time, and their shares."""
    where = and_(
        in_range(ar.c.ts, filters.start, filters.end),
        *([ar.c.tenant_id.in_(filters.tenants)] if filters.tenants else []),
        *([ar.c.endpoint.in_(filters.endpoints)] if filters.endpoints else []),
    )
    # No p95 (no requests) means nothing is slow.
    slow = func.count().filter(ar.c.duration_ms > p95_ms) if p95_ms is not None else literal(0)
    stmt = (
        select(
            ar.c.endpoint,
            func.count().label("requests"),
            slow.label("slow"),
            func.count().filter(ar.c.status_code >= 500).label("errors"),
            fsum(ar.c.duration_ms).label("total_ms"),
        )
        .where(where)
        .group_by(ar.c.endpoint)
        .order_by(ar.c.endpoint)
    )
    frame = numeric(read_frame(engine, stmt), ("requests", "slow", "errors"), ("total_ms",))
    return _shares(
        frame,
        {
            "requests": "request_share",
            "slow": "slow_share",
            "errors": "error_share",
            "total_ms": "time_share",
        },
    )


def algorithms(engine: Engine, filters: Filters) -> pd.DataFrame:
    """Per algorithm: runs, failures, total execution time, and their shares."""
    where = and_(
        in_range(dr.c.created_at, filters.start, filters.end),
        *([dr.c.tenant_id.in_(filters.tenants)] if filters.tenants else []),
        *([dr.c.algorithm.in_(filters.algorithms)] if filters.algorithms else []),
    )
    stmt = (
        select(
            dr.c.algorithm,
            func.count().label("runs"),
            func.count().filter(dr.c.status == "failed").label("failed"),
            fsum(dr.c.execution_time_ms).label("total_ms"),
        )
        .where(where)
        .group_by(dr.c.algorithm)
        .order_by(dr.c.algorithm)
    )
    frame = numeric(read_frame(engine, stmt), ("runs", "failed"), ("total_ms",))
    return _shares(
        frame, {"runs": "run_share", "failed": "failure_share", "total_ms": "time_share"}
    )
