"""Which rollup rows and which raw rows answer a range: the tiling of ``[start, observed end)``.

A query over rollups reads, for every instant of the observed range, exactly one of: a
month row, a day row, an hour row, or the raw event rows. :func:`plan` picks the
coarsest tier whose whole UTC units fit, subject to

- validity: hour rows exist for hours before the watermark, day rows for whole UTC days
  before ``floor_day(watermark)``, month rows for whole UTC months before
  ``floor_month(watermark)`` (see :mod:`analytics_core.rollup.schema`);
- for queries grouped by time bucket, every unit must lie inside ONE output bucket of the
  filters' granularity and zone (``queries.common.bucket``): a rollup row has a single
  timestamp, so its output bucket is that of its start, which is right only if the
  whole unit belongs to that bucket. A UTC day never fits in a Paris day; a UTC hour
  never fits in a Kolkata (+05:30) day's first or last half hour, which is read raw.

Everything else (sub-hour edges, hours straddling a local boundary, the tail at or after
the watermark) is read from the raw tables, whose rows are bucketed by their own time.

Adjacent pieces of one tier are merged, also across output buckets: the condition above
is per unit, not per piece, and raw rows are bucketed one by one. So a tier usually has
a handful of intervals (one per run of that tier); only where local boundaries cut UTC
units (a half-hour zone by day, a non-UTC zone by week or month) is there about one per
output bucket, which the readers join as a list (``rollup.read.restrict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from analytics_core.filters import Filters

TIERS: tuple[str, ...] = ("month", "day", "hour")  # coarsest first
RAW = "raw"


@dataclass(frozen=True)
class Piece:
    """``[start, end)`` (aware UTC) read from ``tier``: a rollup grain or ``"raw"``."""

    tier: str
    start: datetime
    end: datetime


def floor_unit(t: datetime, tier: str) -> datetime:
    """Start of the UTC hour, day, week or month holding ``t``."""
    t = t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if tier == "hour":
        return t
    t = t.replace(hour=0)
    if tier == "week":  # ISO weeks from Monday, as date_trunc('week')
        return t - timedelta(days=t.weekday())
    return t if tier == "day" else t.replace(day=1)


def next_unit(t: datetime, tier: str) -> datetime:
    """Start of the unit after the one starting at ``t``."""
    if tier == "hour":
        return t + timedelta(hours=1)
    if tier == "day":
        return t + timedelta(days=1)
    if tier == "week":
        return t + timedelta(weeks=1)
    return t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)


def _ceil_unit(t: datetime, tier: str) -> datetime:
    floor = floor_unit(t, tier)
    return floor if floor == t else next_unit(floor, tier)


def tier_limits(watermark: datetime | None) -> dict[str, datetime]:
    """Per tier, the end of the span its rows cover (nothing at all without a watermark)."""
    if watermark is None:
        return {}
    return {tier: floor_unit(watermark, tier) for tier in TIERS}


def local_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant whose local wall time is at or after ``day`` 00:00 in ``tz``.

    That is where the database's ``date_trunc(unit, timezone(tz, ts))`` changes value.
    An ambiguous midnight (clocks going back over it) starts at its first occurrence; a
    midnight skipped by clocks going forward starts at the transition itself.
    """
    naive = datetime.combine(day, time.min)
    if tz.key == "UTC":
        return naive.replace(tzinfo=UTC)
    first, second = (naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1))
    lo, hi = min(first, second), max(first, second)
    if lo.astimezone(tz).replace(tzinfo=None) == naive:
        return lo
    # Skipped: the transition lies in (lo, hi]; find it to the second.
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _unit_start(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())  # date_trunc('week'): ISO weeks, Monday
    if granularity == "month":
        return day.replace(day=1)
    return day


def _next_local(day: date, granularity: str) -> date:
    if granularity == "day":
        return day + timedelta(days=1)
    if granularity == "week":
        return day + timedelta(weeks=1)
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def bucket_boundaries(filters: Filters, lo: datetime, hi: datetime) -> list[datetime]:
    """Instants strictly inside ``(lo, hi)`` where the output bucket changes."""
    return list(_bucket_boundaries(filters, lo, hi))


# Pure functions of hashable arguments that every query of a page repeats with the same
# range (a year and a half of daily history: ~550 zone conversions a call).
@lru_cache(maxsize=256)
def _bucket_boundaries(filters: Filters, lo: datetime, hi: datetime) -> tuple[datetime, ...]:
    out: list[datetime] = []
    if filters.granularity == "hour":  # hourly buckets are UTC hours (queries.common.bucket)
        b = next_unit(floor_unit(lo, "hour"), "hour")
        while b < hi:
            out.append(b)
            b += timedelta(hours=1)
        return tuple(out)
    tz = ZoneInfo(filters.tz)
    day = _unit_start(lo.astimezone(tz).date(), filters.granularity)
    while True:
        day = _next_local(day, filters.granularity)
        b = local_start(day, tz)
        if b >= hi:
            return tuple(out)
        if b > lo:
            out.append(b)


def _fill(start: datetime, end: datetime, tiers: tuple[str, ...], limits: dict[str, datetime]):
    """Tile ``[start, end)`` with whole units of ``tiers`` (coarsest first) where valid."""
    if start >= end:
        return []
    if not tiers or tiers[0] not in limits:
        return [Piece(RAW, start, end)]
    tier, rest = tiers[0], tiers[1:]
    first = _ceil_unit(start, tier)
    last = floor_unit(min(end, limits[tier]), tier)
    if first >= last:
        return _fill(start, end, rest, limits)
    return [
        *_fill(start, first, rest, limits),
        Piece(tier, first, last),
        *_fill(last, end, rest, limits),
    ]


def _merged(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for piece in pieces:
        if out and out[-1].tier == piece.tier and out[-1].end == piece.start:
            out[-1] = Piece(piece.tier, out[-1].start, piece.end)
        else:
            out.append(piece)
    return out


def plan(
    filters: Filters,
    now: datetime,
    watermark: datetime | None,
    by_bucket: bool = True,
) -> list[Piece]:
    """The pieces, in time order, that tile ``[filters.start, filters.observed_end(now))``.

    ``by_bucket`` for queries grouped by output bucket (trends); False for figures over
    the whole range (KPIs, breakdowns), which may use any unit inside the range.
    """
    return list(_plan(filters, filters.observed_end(now), watermark, by_bucket))


@lru_cache(maxsize=256)
def _plan(
    filters: Filters, hi: datetime, watermark: datetime | None, by_bucket: bool
) -> tuple[Piece, ...]:
    lo = filters.start
    if hi <= lo:
        return ()
    limits = tier_limits(watermark)
    cuts = bucket_boundaries(filters, lo, hi) if by_bucket and limits else []
    edges = [lo, *cuts, hi]
    pieces = [p for a, b in zip(edges, edges[1:], strict=False) for p in _fill(a, b, TIERS, limits)]
    return tuple(_merged(pieces))


def spans(pieces: list[Piece], tier: str) -> list[tuple[datetime, datetime]]:
    """The ``[start, end)`` intervals read from ``tier``."""
    return [(p.start, p.end) for p in pieces if p.tier == tier]
