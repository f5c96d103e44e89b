"""A log-bucket percentile sketch (DDSketch-style) computed in plain SQL.

A positive value ``v`` falls in bin ``ceil(ln(v) / ln(GAMMA))``: bin ``k`` covers
``(GAMMA**(k-1), GAMMA**k]``, and :func:`bin_value` returns the point of that interval
within ``ALPHA`` relative error of every value in it. Bins from disjoint row sets merge
by adding their counts, so percentiles of any union of buckets come from summed counts.
Values at or below ``MIN_VALUE`` (in practice 0 ms) go to ``ZERO_BIN`` and read as 0.

The SQL expression uses only ``ln``, ``ceil`` and ``CASE`` so it runs unchanged on
PostgreSQL, DuckDB and Spark SQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sqlalchemy import (
    ColumnElement,
    Double,
    FromClause,
    Integer,
    Select,
    Subquery,
    case,
    cast,
    func,
    literal_column,
    select,
)

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
MIN_VALUE = 1e-3  # ms; smaller durations are indistinguishable from 0 for the dashboards
ZERO_BIN = -(2**31) + 1
LN_GAMMA = math.log(GAMMA)
# Subtracted before ceil(): a value exactly on a bin edge (GAMMA**k) would otherwise land
# in k or k+1 depending on the last bit of each engine's ln(). The shift is ~1e-11
# relative, far inside ALPHA.
_EDGE_EPSILON = 1e-9


def bin_expr(col: ColumnElement) -> ColumnElement[int]:
    """SQL for the bin of ``col``: NULL stays NULL, ``<= MIN_VALUE`` is ``ZERO_BIN``.

    Constants are inlined rather than bound so that the expression renders identically
    wherever it appears (a GROUP BY must repeat the SELECT's expression verbatim);
    ``repr`` of a float round-trips exactly through every engine's parser.
    """
    ln_gamma = cast(literal_column(repr(LN_GAMMA)), Double)
    epsilon = cast(literal_column(repr(_EDGE_EPSILON)), Double)
    log_bin = cast(func.ceil(func.ln(cast(col, Double)) / ln_gamma - epsilon), Integer)
    # A NULL col fails the test and gives ln(NULL) = NULL: NULL in, NULL out.
    zero = cast(literal_column(repr(MIN_VALUE)), Double)
    return case(
        (col <= zero, literal_column(str(ZERO_BIN), Integer)),
        else_=log_bin,
    )


def bin_of(value: float | None) -> int | None:
    """The bin of one value, exactly as :func:`bin_expr` computes it (for tests)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value <= MIN_VALUE:
        return ZERO_BIN
    return math.ceil(math.log(value) / LN_GAMMA - _EDGE_EPSILON)


def bin_value(bin_: int) -> float:
    """The representative value of a bin: within ``ALPHA`` relative error of its members."""
    if bin_ == ZERO_BIN:
        return 0.0
    return 2 * GAMMA**bin_ / (GAMMA + 1)


def is_sketch(table: FromClause) -> bool:
    """Whether ``table`` holds sketches (``bins`` and ``counts`` arrays)."""
    return "bins" in table.c


def unnested(table: FromClause, where: Callable[[Select], Select] | None = None) -> Subquery:
    """The rows of sketch ``table`` one per bin: its other columns, ``bin`` and ``n``.

    ``where`` restricts the table's rows before they are unnested. Two ``unnest`` calls
    in one select list run side by side (PostgreSQL, DuckDB; Spark:
    ``explode(arrays_zip(bins, counts))``)."""
    others = [c for c in table.c if c.name not in ("bins", "counts")]
    stmt = select(
        *others, func.unnest(table.c.bins).label("bin"), func.unnest(table.c.counts).label("n")
    )
    return (stmt if where is None else where(stmt)).subquery(f"{table.name}_bins")
