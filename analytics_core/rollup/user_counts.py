"""Which stored distinct-user counts (``rollup_active_user_counts_*``) can answer a trend
bucket: only a bucket that is one whole unit of the stored grain, of a unit the rollup has
closed, counted over the tenants in view."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table

from analytics_core.context import QueryContext
from analytics_core.rollup.schema import USER_COUNTS
from analytics_core.rollup.tiles import floor_unit, next_unit


def counts_table(ctx: QueryContext, granularity: str) -> Table | None:
    """The count table for ``granularity``: the all-tenant counts when every tenant is in
    view, the per-tenant counts when at most one is (a sum of per-tenant counts would
    count twice a user active for two tenants), else None (count the user sets)."""
    chosen, scope = set(ctx.filters.tenants or ()), ctx.scope.tenants
    if not chosen and scope is None:
        return USER_COUNTS[("all", granularity)]
    visible = chosen & set(scope) if chosen and scope is not None else chosen or set(scope or ())
    return USER_COUNTS[("tenant", granularity)] if len(visible) <= 1 else None


def is_unit(start: datetime, end: datetime, granularity: str) -> bool:
    """Whether ``[start, end)`` is exactly one UTC unit of ``granularity``."""
    return floor_unit(start, granularity) == start and next_unit(start, granularity) == end
