"""Reading rollups plus the raw tail: the machinery shared by the per-area readers.

A reader (:mod:`~analytics_core.rollup.performance`, :mod:`~analytics_core.rollup.detection`,
:mod:`~analytics_core.rollup.business`) maps every source it needs to one row shape
(``ts``, dimensions, additive measures, sketch ``bin`` and ``n``): each rollup table of
each tier restricted to its pieces from :func:`~analytics_core.rollup.tiles.plan` (and
summed down to the dimensions the query groups by, :func:`compact`), and the raw rows of
the raw pieces (one event = counts of 1, its own values, the bin of its value). The
UNION ALL of those is aggregated in ONE statement, grouped by the output bucket
(``queries.common.bucket`` applied to ``ts``: a rollup row's bucket start, or a raw
event's time; right because every rollup unit read lies inside one output bucket) or by
dimensions. Counts and sums add up exactly; distinct users are counted over the union of
per-tile user sets, so they are exact too.

Percentiles come from the merged sketch (:mod:`analytics_core.rollup.sketch`): the
statement sums ``n`` per (group, bin), takes cumulative counts with a window function,
and returns per group the total ``N`` and the bins holding ranks ``floor((N-1)q)`` and
``ceil((N-1)q)``. :func:`resolve_percentiles` then interpolates between those bins' values
as ``percentile_cont`` interpolates between the rows at those ranks. Each bin value is
within ``ALPHA`` (1%) of every value in its bin, and the ranks are exact, so the result is
within 1% of ``percentile_cont`` on the same rows. Only O(groups) rows leave the database.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Double,
    Engine,
    FromClause,
    Select,
    Subquery,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    values,
)
from sqlalchemy import column as sql_column
from sqlalchemy.sql.elements import Label
from sqlalchemy.types import TypeEngine

from analytics_core.context import QueryContext
from analytics_core.filters import Filters
from analytics_core.queries.common import bucket, in_range
from analytics_core.rollup.schema import key_columns, smallest_table
from analytics_core.rollup.sketch import GAMMA, ZERO_BIN, is_sketch, unnested
from analytics_core.rollup.tiles import RAW, Piece, spans
from analytics_core.sources.database import read_frame

# A reader's row shape: column name -> type (every part of the union is cast to it).
Shape = Mapping[str, TypeEngine]
# Shape columns that identify a row rather than count something: never summed.
DIMENSIONS = frozenset(
    {"ts", "bin", "tenant_id", "user_id", "endpoint", "method", "algorithm", "detector_id"}
)


# Up to this many intervals are OR'ed in WHERE (index range scans); more are joined as a
# VALUES list: hundreds of OR terms (a Kolkata day trend has one raw hour per day) are
# evaluated per row, and make PostgreSQL JIT-compile a huge expression.
MAX_OR_INTERVALS = 4


def restrict(
    stmt: Select, column: ColumnElement, intervals: Sequence[tuple[datetime, datetime]]
) -> Select:
    """``stmt`` restricted to rows whose ``column`` lies in one of the disjoint half-open
    ``intervals`` (no rows for none)."""
    if not intervals:
        return stmt.where(false())
    if len(intervals) <= MAX_OR_INTERVALS:
        return stmt.where(or_(*(in_range(column, a, b) for a, b in intervals)))
    listed = values(
        sql_column("lo", DateTime(timezone=True)),
        sql_column("hi", DateTime(timezone=True)),
        name="spans",
    ).data(list(intervals))
    lo, hi = (cast(c, DateTime(timezone=True)) for c in (listed.c.lo, listed.c.hi))
    # Disjoint intervals: each row joins at most one, so nothing is counted twice.
    return stmt.join(listed, and_(column >= lo, column < hi))


def shaped(shape: Shape, **columns: ColumnElement | float | int | None) -> list[ColumnElement]:
    """The select list of one part of the union, in the shape's column order.

    Columns not given are NULL; every value is cast to its column's type, so that
    the parts of the union agree on types in both databases.
    """
    unknown = set(columns) - set(shape)
    if unknown:
        raise KeyError(f"not in the row shape: {sorted(unknown)}")
    out = []
    for name, type_ in shape.items():
        value = columns.get(name)
        if not isinstance(value, ColumnElement):
            value = literal(value)
        out.append(cast(value, type_).label(name))
    return out


def compact(stmt: Select, shape: Shape, keep: Collection[str]) -> Select:
    """``stmt`` (a part in ``shape``) summed over everything but the ``keep`` columns.

    A trend needs neither tenant nor endpoint, and KPIs not even the time: summing the
    rollup rows down to the kept dimensions (and the sketch bin) as they are read
    shrinks the union before the output bucket is computed for each row. Columns not
    kept are either additive (summed) or dimensions (set to NULL). The same SELECT,
    grouped, not a query around it: fewer objects to build for every part of a page.
    """
    columns, group = [], []
    for column in stmt.selected_columns:
        name = column.name
        value = column.element if isinstance(column, Label) else column
        if name in keep:
            columns.append(column)
            group.append(value)
        elif name in DIMENSIONS:
            columns.append(cast(literal(None), shape[name]).label(name))
        else:
            columns.append(cast(func.sum(value), shape[name]).label(name))
    return stmt.with_only_columns(*columns).group_by(*group)


def filtered_dims(ctx: QueryContext) -> set[str]:
    """The dimension columns that ``ctx.where`` needs on a table: the tenant under a scope
    or tenant filter, the algorithm or endpoint under their filters."""
    f, needed = ctx.filters, set()
    if f.tenants or not ctx.scope.unrestricted:
        needed.add("tenant_id")
    if f.algorithms:
        needed.add("algorithm")
    if f.endpoints:
        needed.add("endpoint")
    return needed


def rollup_parts(
    pieces: Sequence[Piece],
    name: str,
    build: Callable[[FromClause], Select],
    shape: Shape,
    keep: Collection[str],
    filtered: Collection[str],
) -> list[Select]:
    """``build(table)`` for each tier table of rollup ``name`` that the plan reads, each
    restricted to its pieces and :func:`compact`-ed to the ``keep`` columns (a sketch
    table's rows one per bin, with ``bin`` and ``n``: :func:`.sketch.unnested`).

    The table of each tier is the smallest projection that has the kept dimensions and
    the ``filtered`` ones (:func:`filtered_dims`); ``build`` reads its optional columns
    with ``table.c.get``, which gives None (NULL, or no predicate) for a column the
    projection summed away."""
    parts = []
    needed = set(keep) | set(filtered)
    for tier in dict.fromkeys(p.tier for p in pieces if p.tier != RAW):
        intervals = spans(pieces, tier)
        if intervals:
            table = smallest_table(name, tier, needed)
            if is_sketch(table):  # its rows one per bin, the table restricted first
                bins = unnested(table, lambda s, t=table, i=intervals: restrict(s, t.c.bucket, i))
                stmt = build(bins)
            else:
                stmt = restrict(build(table), table.c.bucket, intervals)
            # Rows keyed by exactly the kept columns are one per group already.
            unique = "ts" in keep and key_columns(table) <= set(keep)
            parts.append(stmt if unique else compact(stmt, shape, keep))
    return parts


def clip(pieces: Sequence[Piece], intervals: Sequence[tuple[datetime, datetime]]) -> list[Piece]:
    """The parts of ``pieces`` inside the disjoint ``intervals``."""
    out = []
    for piece in pieces:
        for lo, hi in intervals:
            start, end = max(piece.start, lo), min(piece.end, hi)
            if start < end:
                out.append(Piece(piece.tier, start, end))
    return out


def raw_part(pieces: Sequence[Piece], stmt: Select, time_column: ColumnElement) -> Select:
    """``stmt`` over raw rows restricted to the raw pieces (no rows when there are none)."""
    return restrict(stmt, time_column, spans(pieces, RAW))


def union_rows(parts: Sequence[Select]) -> Subquery:
    return union_all(*parts).subquery("tiled") if len(parts) > 1 else parts[0].subquery("tiled")


def grouped(rows: Subquery, keys: Sequence[str], filters: Filters) -> Subquery:
    """``rows`` with the group keys as columns: ``"bucket"`` is the output bucket of
    ``ts`` (computed in this subquery, so that GROUP BY can name the column: the zone is
    a bound parameter, and two renderings of it would not match), others are columns."""
    key_cols = [
        bucket(rows.c.ts, filters).label("bucket") if k == "bucket" else rows.c[k] for k in keys
    ]
    others = [c for c in rows.c if c.name not in keys and c.name != "ts"]
    return select(*key_cols, *others).subquery("keyed")


def sum_as(column: ColumnElement, type_: TypeEngine) -> ColumnElement:
    """SUM cast back to the column's type (PostgreSQL sums bigint to numeric)."""
    return cast(func.sum(column), type_)


def sketch_totals(
    rows: Subquery,
    keys: Sequence[str],
    additive: Mapping[str, TypeEngine],
    quantiles: Mapping[str, float],
) -> Subquery:
    """Per group (``keys`` of ``rows``, see :func:`grouped`): the sums of the ``additive``
    columns, ``sketch_n`` and, per quantile ``name``, the bins ``name__lo`` and ``name__hi``
    holding ranks ``floor((N-1)q)`` and ``ceil((N-1)q)`` (0-based) of the merged sketch.

    The sums and the sketch are aggregated apart over the same rows (a CTE): per
    (group, bin) only ``n`` is carried, so a year of daily sketches hashes a narrow row
    rather than every additive column once per bin."""
    keyed = select(rows).cte("keyed")
    key_cols = [keyed.c[k] for k in keys]
    sums = select(
        *key_cols, *(sum_as(keyed.c[name], t).label(name) for name, t in additive.items())
    )
    sums = (sums.group_by(*key_cols) if key_cols else sums).subquery("sums")
    if not quantiles:  # no sketch to merge
        stmt = select(*sums.c, literal(0.0, Double).label("sketch_n"))
        return stmt.subquery("totals")
    per_bin = (
        select(*key_cols, keyed.c.bin, sum_as(keyed.c.n, BigInteger).label("n"))
        .where(keyed.c.bin.is_not(None))
        .group_by(*key_cols, keyed.c.bin)
        .subquery("per_bin")
    )
    partition = [per_bin.c[k] for k in keys] or None
    # Rows before the bin and the bin itself.
    cumulative = func.sum(per_bin.c.n).over(partition_by=partition, order_by=per_bin.c.bin)
    total = func.sum(per_bin.c.n).over(partition_by=partition)
    ranked = select(
        *per_bin.c,
        cast(cumulative, Double).label("cum"),
        cast(total, Double).label("total"),
    ).subquery("ranked")
    bins = [func.max(ranked.c.total).label("sketch_n")]
    for name, q in quantiles.items():
        position = (ranked.c.total - 1.0) * q
        for suffix, rank in (("lo", func.floor(position)), ("hi", func.ceil(position))):
            first_bin = func.min(ranked.c.bin).filter(ranked.c.cum > rank)
            bins.append(first_bin.label(f"{name}__{suffix}"))
    ranked_keys = [ranked.c[k] for k in keys]
    sketch = select(*ranked_keys, *bins)
    sketch = (sketch.group_by(*ranked_keys) if ranked_keys else sketch).subquery("sketch")
    on = and_(true(), *(sums.c[k].is_not_distinct_from(sketch.c[k]) for k in keys))
    stmt = select(
        *(sums.c[k] for k in keys),
        *(sums.c[name] for name in additive),
        func.coalesce(sketch.c.sketch_n, 0.0).label("sketch_n"),
        *(sketch.c[c.name] for c in sketch.c if c.name.endswith(("__lo", "__hi"))),
    ).select_from(sums.outerjoin(sketch, on))
    return stmt.subquery("totals")


def read_rollup(engine: Engine, stmt: Select) -> pd.DataFrame:
    """A reader's statement (rollup rows and a raw tail) run without parallel workers:
    see :func:`analytics_core.sources.database.read_frame`."""
    return read_frame(engine, stmt, serial=True)


def bin_values(bins: pd.Series) -> np.ndarray:
    """:func:`analytics_core.rollup.sketch.bin_value` over a column (NaN stays NaN)."""
    b = pd.to_numeric(bins).astype("float64").to_numpy()
    zero = b == ZERO_BIN
    values = 2.0 * np.power(GAMMA, np.where(zero, 0.0, b)) / (GAMMA + 1.0)
    return np.where(zero, 0.0, values)


def resolve_percentiles(frame: pd.DataFrame, quantiles: Mapping[str, float]) -> pd.DataFrame:
    """Replace the ``name__lo``/``name__hi`` bins by the interpolated percentile ``name``
    (NaN where the group has no sketched value), as ``percentile_cont`` does."""
    frame = frame.copy()
    n = pd.to_numeric(frame.pop("sketch_n")).astype("float64").to_numpy()
    for name, q in quantiles.items():
        lo = bin_values(frame.pop(f"{name}__lo"))
        hi = bin_values(frame.pop(f"{name}__hi"))
        position = (n - 1.0) * q
        fraction = position - np.floor(position)
        frame[name] = np.where(n > 0, lo + fraction * (hi - lo), np.nan)
    return frame


def first_row(frame: pd.DataFrame) -> dict[str, object]:
    """The one row of an ungrouped aggregate as plain Python values (NaN → None)."""
    if frame.empty:
        return {c: None for c in frame.columns}
    out: dict[str, object] = {}
    for column in frame.columns:
        value = frame.iloc[0][column]
        if value is None or pd.isna(value):
            out[column] = None
        else:
            out[column] = value.item() if hasattr(value, "item") else value
    return out


def flag(condition: ColumnElement[bool], value: ColumnElement | int = 1) -> ColumnElement:
    """``value`` where ``condition`` holds, else 0 (for additive counts)."""
    return case((condition, value), else_=0)
