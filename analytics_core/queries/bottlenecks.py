"""Where the time and the errors go: each endpoint's share of slow requests and
errors, each algorithm's share of execution time and failures, for a period.

"Slow" means slower than the period's overall p95, so an endpoint's share of slow
requests is its contribution to the p95 latency.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, func, literal, select

from analytics_core.context import QueryContext
from analytics_core.queries.common import fsum, numeric, shares
from analytics_core.schema import api_requests as ar
from analytics_core.schema import detection_results as dr
from analytics_core.sources.database import read_frame

# An endpoint's share of each of these (the per-endpoint bottleneck figures of every source).
ENDPOINT_SHARES = {
    "requests": "request_share",
    "slow": "slow_share",
    "errors": "error_share",
    "total_ms": "time_share",
}


def endpoints(engine: Engine, ctx: QueryContext, p95_ms: float | None) -> pd.DataFrame:
    """Per endpoint: requests, slow requests (> p95), errors, total time, and their shares."""
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
        .where(ctx.where(ar.c.ts, tenant=ar.c.tenant_id, endpoint=ar.c.endpoint))
        .group_by(ar.c.endpoint)
        .order_by(ar.c.endpoint)
    )
    frame = numeric(read_frame(engine, stmt), ("requests", "slow", "errors"), ("total_ms",))
    return shares(
        frame,
        ENDPOINT_SHARES,
    )


def algorithms(engine: Engine, ctx: QueryContext) -> pd.DataFrame:
    """Per algorithm: runs, failures, total execution time, and their shares."""
    stmt = (
        select(
            dr.c.algorithm,
            func.count().label("runs"),
            func.count().filter(dr.c.status == "failed").label("failed"),
            fsum(dr.c.execution_time_ms).label("total_ms"),
        )
        .where(ctx.where(dr.c.created_at, tenant=dr.c.tenant_id, algorithm=dr.c.algorithm))
        .group_by(dr.c.algorithm)
        .order_by(dr.c.algorithm)
    )
    frame = numeric(read_frame(engine, stmt), ("runs", "failed"), ("total_ms",))
    return shares(frame, {"runs": "run_share", "failed": "failure_share", "total_ms": "time_share"})
