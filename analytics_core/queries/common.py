"""Building blocks shared by the per-area queries: the range predicate (applied through
:meth:`analytics_core.context.QueryContext.where`), time buckets computed in the
database, percentiles, and gap filling.

Every statement is SQLAlchemy Core and runs unchanged on PostgreSQL and DuckDB.
Filter values are bound parameters; the bucket width comes from an allow-list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Double, Text, and_, case, cast, func, literal, literal_column
from sqlalchemy.sql.elements import KeyedColumnElement

from analytics_core.filters import GRANULARITIES, Filters

_PANDAS_FREQ = {"hour": "h", "day": "D", "week": "W-MON", "month": "MS"}
BUCKET_STEP = {
    "hour": pd.DateOffset(hours=1),
    "day": pd.DateOffset(days=1),
    "week": pd.DateOffset(weeks=1),
    "month": pd.DateOffset(months=1),
}


def in_range(column: KeyedColumnElement, start, end) -> ColumnElement[bool]:
    """Half-open ``[start, end)`` on a timestamptz column."""
    return and_(column >= start, column < end)


def bucket(column: KeyedColumnElement, filters: Filters) -> ColumnElement:
    """Start of the bucket holding ``column``, as a naive timestamp for :func:`bucket_labels`.

    Hours are UTC hours: a local hour is ambiguous when clocks go back (two 01:00s)
    and missing when they go forward, so hourly buckets follow the instants and are
    labelled in local time afterwards. Days, weeks and months are local calendar
    units (a DST day has 23 or 25 hours, as it should).
    """
    if filters.granularity not in GRANULARITIES:  # guarded by make_filters; defence in depth
        raise ValueError(filters.granularity)
    zone = "UTC" if filters.granularity == "hour" else filters.tz
    local = func.timezone(cast(literal(zone), Text), column)
    return func.date_trunc(literal_column(f"'{filters.granularity}'"), local)


def _localize(naive: pd.Series | pd.DatetimeIndex, tz: str):
    """Local wall times to aware ones; a wall time that DST skips moves forward."""
    flags = np.ones(len(naive), dtype=bool)  # an ambiguous midnight: the first of the two
    return naive.tz_localize(tz, ambiguous=flags, nonexistent="shift_forward")


def bucket_labels(raw: pd.Series, filters: Filters) -> pd.Series:
    """Bucket starts from :func:`bucket` as aware timestamps in the filters' zone."""
    naive = pd.to_datetime(raw)
    if naive.dt.tz is not None:
        naive = naive.dt.tz_localize(None)
    if filters.granularity == "hour":
        return naive.dt.tz_localize("UTC").dt.tz_convert(filters.tz)
    return pd.Series(_localize(pd.DatetimeIndex(naive), filters.tz), index=raw.index)


def bucket_end(buckets: pd.Series, granularity: str) -> pd.Series:
    """Where each bucket ends, in wall-clock terms (a local day ends at the next midnight)."""
    return buckets + BUCKET_STEP[granularity]


def percentile(fraction: float, expr: ColumnElement) -> ColumnElement:
    """Continuous percentile (``percentile_cont``); NULLs are ignored."""
    return func.percentile_cont(literal_column(repr(float(fraction)))).within_group(expr)


def ratio(numerator: ColumnElement, denominator: ColumnElement) -> ColumnElement:
    """``numerator / denominator`` as a float, NULL when the denominator is 0 or NULL."""
    return cast(numerator, Double) / func.nullif(cast(denominator, Double), 0.0)


def when(condition: ColumnElement[bool], value: ColumnElement) -> ColumnElement:
    """``value`` where ``condition`` holds, else NULL (aggregates skip it)."""
    return case((condition, value))


def fsum(expr: ColumnElement) -> ColumnElement:
    """SUM as double precision (PostgreSQL sums bigint to numeric)."""
    return cast(func.sum(expr), Double)


def bucket_index(filters: Filters) -> pd.DatetimeIndex:
    """Every bucket start the range touches (aware, in the filters' zone), for gap filling."""
    g = filters.granularity
    if g == "hour":
        first = pd.Timestamp(filters.start).tz_convert("UTC").floor("h")
        last = (pd.Timestamp(filters.end) - pd.Timedelta(microseconds=1)).tz_convert("UTC")
        hours = pd.date_range(first, last.floor("h"), freq="h")
        return hours.tz_convert(filters.tz).rename("bucket")
    first = pd.Timestamp(filters.start).tz_convert(filters.tz).tz_localize(None)
    last = (pd.Timestamp(filters.end) - pd.Timedelta(microseconds=1)).tz_convert(filters.tz)
    last = last.tz_localize(None)
    if g == "day":
        first, last = first.normalize(), last.normalize()
    elif g == "week":
        first = first.normalize() - pd.Timedelta(days=first.weekday())
        last = last.normalize() - pd.Timedelta(days=last.weekday())
    else:
        first = first.normalize().replace(day=1)
        last = last.normalize().replace(day=1)
    local = pd.date_range(first, last, freq=_PANDAS_FREQ[g])
    return _localize(local, filters.tz).rename("bucket")


def fill_buckets(
    frame: pd.DataFrame,
    filters: Filters,
    counts: Sequence[str],
    now: datetime | None = None,
) -> pd.DataFrame:
    """Reindex a per-bucket aggregate onto every bucket of the range that has begun.

    Empty buckets get 0 for the ``counts`` columns (nothing happened) and NaN
    for rates and percentiles (nothing to measure). Buckets starting at or after the
    observed end (``min(end, now)``, default now) are left out: a zero there would
    read as a drop that never happened. ``partial`` marks buckets the observed range
    covers only in part (a first bucket the range starts inside, the running hour or
    day, a last bucket the range ends inside): their counts are incomplete, so charts
    draw them apart and detectors skip them.
    """
    observed = pd.Timestamp(filters.observed_end(now or datetime.now(UTC)))
    index = bucket_index(filters)
    index = index[index < observed] if observed > pd.Timestamp(filters.start) else index[:0]
    if frame.empty:
        out = pd.DataFrame(index=index, columns=[c for c in frame.columns if c != "bucket"])
    else:
        frame = frame.copy()
        frame["bucket"] = bucket_labels(frame["bucket"], filters)
        out = frame.set_index("bucket").reindex(index)
    for col in out.columns:
        if col in counts:
            out[col] = pd.to_numeric(out[col]).fillna(0).astype("int64")
        else:
            out[col] = pd.to_numeric(out[col]).astype("float64")
    out = out.reset_index()
    starts, ends = out["bucket"], bucket_end(out["bucket"], filters.granularity)
    out["partial"] = ((starts < pd.Timestamp(filters.start)) | (ends > observed)).astype(bool)
    return out


def numeric(frame: pd.DataFrame, counts: Sequence[str], floats: Sequence[str]) -> pd.DataFrame:
    """Coerce aggregate columns to int64 (counts) and float64 (rates, sums, percentiles)."""
    frame = frame.copy()
    for col in counts:
        frame[col] = pd.to_numeric(frame[col]).fillna(0).astype("int64")
    for col in floats:
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    return frame


def shares(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Add ``share`` = column / its total (NaN when the total is 0), per column."""
    for column, share in columns.items():
        total = frame[column].sum()
        frame[share] = frame[column] / total if total else float("nan")
    return frame


def value_columns(frame: pd.DataFrame) -> list[str]:
    """The series of a per-bucket frame: every column but the bucket and its flag."""
    return [c for c in frame.columns if c not in ("bucket", "partial")]
