"""Which trend buckets the figures stored per whole unit can answer: the distinct-user
counts (``rollup_active_user_counts_*``) and the sketch quantiles
(``rollup_<sketch>_quantiles_*``). They are stored per UTC hour, day, ISO week and month,
so they answer a bucket that is exactly one such unit, closed by the watermark, over the
tenants (and endpoints, algorithms) they were counted for; the caller computes the other
buckets from the rollup rows and the raw tail."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, Select, Table, select

from analytics_core.context import QueryContext
from analytics_core.filters import Filters
from analytics_core.rollup.read import filtered_dims, read_rollup, restrict
from analytics_core.rollup.refresh import merge_ranges
from analytics_core.rollup.schema import (
    QUANTILE_LEVELS,
    QUANTILE_TABLES,
    USER_COUNTS,
    key_columns,
    rollup_table,
)
from analytics_core.rollup.tiles import bucket_boundaries, floor_unit, next_unit

Interval = tuple[datetime, datetime]


def counts_table(ctx: QueryContext, granularity: str) -> Table | None:
    """The count table for ``granularity``: the all-tenant counts when every tenant is in
    view, the per-tenant counts when at most one is (a sum of per-tenant counts would
    count twice a user active for two tenants), else None (count the user sets)."""
    chosen, scope = set(ctx.filters.tenants or ()), ctx.scope.tenants
    if not chosen and scope is None:
        return USER_COUNTS[("all", granularity)]
    visible = chosen & set(scope) if chosen and scope is not None else chosen or set(scope or ())
    return USER_COUNTS[("tenant", granularity)] if len(visible) <= 1 else None


def quantiles_table(ctx: QueryContext, sketch: str) -> Table | None:
    """The stored quantiles of ``sketch`` at the trend's granularity when nothing in view
    narrows the sketch's dimensions (a tenant scope or filter, an endpoint filter on
    latencies, an algorithm filter on run times), else None (merge the sketches)."""
    if filtered_dims(ctx) & key_columns(rollup_table(sketch, "hour")):
        return None
    return QUANTILE_TABLES[(sketch, ctx.filters.granularity)]


def is_unit(start: datetime, end: datetime, granularity: str) -> bool:
    """Whether ``[start, end)`` is exactly one UTC unit of ``granularity``."""
    return floor_unit(start, granularity) == start and next_unit(start, granularity) == end


def split_buckets(
    ctx: QueryContext, watermark: datetime | None, stored: bool
) -> tuple[list[Interval], list[Interval]]:
    """The trend's buckets that stored figures answer (whole UTC units of the granularity
    that end by the watermark's unit; none unless ``stored``) and, merged, the others."""
    f = ctx.filters
    lo, hi = f.start, f.observed_end(ctx.now)
    edges = [lo, *bucket_boundaries(f, lo, hi), hi] if hi > lo else []
    buckets = list(zip(edges, edges[1:], strict=False))
    limit = floor_unit(watermark, f.granularity) if watermark else None
    counted = [
        (a, b)
        for a, b in buckets
        if stored and limit is not None and b <= limit and is_unit(a, b, f.granularity)
    ]
    answered = set(counted)
    rest = merge_ranges(x for x in buckets if x not in answered)
    return counted, rest


def read_units(engine: Engine, stmt: Select, counted: list[Interval], filters: Filters):
    """``stmt`` (over a per-unit table, ``bucket`` its first column) for the ``counted``
    buckets, their starts labelled as the trend queries label buckets."""
    table_bucket = stmt.selected_columns[0]
    frame = read_rollup(engine, restrict(stmt, table_bucket, merge_ranges(counted)))
    zone = "UTC" if filters.granularity == "hour" else filters.tz
    frame["bucket"] = (
        pd.to_datetime(frame["bucket"], utc=True).dt.tz_convert(zone).dt.tz_localize(None)
    )
    return frame


def stored_quantiles(
    engine: Engine,
    table: Table,
    counted: list[Interval],
    filters: Filters,
    quantiles: Mapping[str, float],
) -> pd.DataFrame:
    """Per counted bucket, ``sketch_n`` and the ``<name>__lo``/``__hi`` bins of each of
    ``quantiles`` (name -> level, one of the stored levels), as ``sketch_totals`` gives."""
    level = {q: name for name, q in QUANTILE_LEVELS.items()}
    bins = [
        table.c[f"{level[q]}__{end}"].label(f"{name}__{end}")
        for name, q in quantiles.items()
        for end in ("lo", "hi")
    ]
    return read_units(engine, select(table.c.bucket, table.c.sketch_n, *bins), counted, filters)


def stored_split(
    ctx: QueryContext, watermark: datetime | None, sketch: str, keys: list[str]
) -> tuple[Table | None, list[Interval], list[Interval] | None]:
    """For a trend (``keys == ["bucket"]``): the stored quantiles of ``sketch`` that may
    answer it, the buckets they answer, and the intervals left for the sketches (None:
    the whole range). Other groupings merge the sketches everywhere."""
    table = quantiles_table(ctx, sketch) if keys == ["bucket"] else None
    if table is None:
        return None, [], None
    counted, rest = split_buckets(ctx, watermark, True)
    return table, counted, rest if counted else None


def with_stored(
    engine: Engine,
    frame: pd.DataFrame,
    table: Table | None,
    counted: list[Interval],
    filters: Filters,
    quantiles: Mapping[str, float],
) -> pd.DataFrame:
    """``frame`` with the sketch columns of the ``counted`` buckets from ``table``."""
    if table is None or not counted:
        return frame
    return overlay(frame, stored_quantiles(engine, table, counted, filters, quantiles))


def overlay(frame: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (per ``bucket``) with the columns of ``stored`` taken from it for the
    buckets it has."""
    if stored.empty or frame.empty:
        return frame
    at = pd.Index(pd.to_datetime(frame["bucket"])).get_indexer(pd.to_datetime(stored["bucket"]))
    found = at >= 0
    out = frame.copy()
    for column in stored.columns.drop("bucket"):
        values = pd.to_numeric(out[column]).to_numpy(dtype="float64", copy=True)
        values[at[found]] = pd.to_numeric(stored[column]).to_numpy(dtype="float64")[found]
        out[column] = values
    return out
