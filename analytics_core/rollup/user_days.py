"""Each user's active days per UTC year, as a bitmap: ``rollup_active_user_days``.

One row per (year, tenant, user) with ``DAY_WORDS`` bigint words: bit ``b`` of word ``k``
is set when the user was active (in the ``active_users`` day sets) on day ``62k + b`` of
the year, counting 1 January as day 0 (62 bits a word keep every power of two a positive
bigint). The distinct users of any whole UTC days of a year are then the rows whose words
meet the days' mask: about one row per user and year, however long the range, where the
day, week and month sets hold one row per user and unit (a year's range read ~200,000
set rows; it reads ~20,000 bitmaps). Bitwise ``&``, ``|``, ``bit_or`` and ``power`` are
plain SQL in PostgreSQL, DuckDB and Spark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    Table,
    Text,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    or_,
    values,
)
from sqlalchemy import column as sql_column

from analytics_core.filters import Filters
from analytics_core.rollup.schema import DAY_BITS, DAY_WORDS, USER_DAYS, rollup_table
from analytics_core.rollup.tiles import bucket_boundaries, floor_unit, next_unit

Interval = tuple[datetime, datetime]
WORDS = tuple(f"days_{k}" for k in range(DAY_WORDS))
_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)


def year_start(moment: datetime) -> datetime:
    return datetime(moment.astimezone(UTC).year, 1, 1, tzinfo=UTC)


def by_year(intervals: Sequence[Interval]) -> dict[datetime, list[Interval]]:
    """The whole-UTC-day ``intervals`` cut at year ends, per year start."""
    out: dict[datetime, list[Interval]] = {}
    for lo, hi in intervals:
        while lo < hi:
            year = year_start(lo)
            end = min(hi, year.replace(year=year.year + 1))
            out.setdefault(year, []).append((lo, end))
            lo = end
    return out


def day_masks(year: datetime, intervals: Sequence[Interval]) -> list[int]:
    """Per word, the bits of the days of ``year`` inside ``intervals``."""
    masks = [0] * DAY_WORDS
    for lo, hi in intervals:
        first, last = (lo - year) // _DAY, (hi - year) // _DAY
        for day in range(first, last):
            masks[day // DAY_BITS] |= 1 << (day % DAY_BITS)
    return masks


def day_bit_words(day: ColumnElement, year: datetime) -> list[ColumnElement]:
    """Per word, the bit of the UTC day starting at ``day`` (a day set's bucket, in
    ``year``), as SQL: 0 in every word but its own."""
    utc_wall_time = func.timezone(cast(literal_column("'UTC'"), Text), day)
    index = cast(extract("doy", utc_wall_time), Integer) - 1
    return [
        case(
            (
                and_(index >= k * DAY_BITS, index < (k + 1) * DAY_BITS),
                cast(func.power(2, index - k * DAY_BITS), BigInteger),
            ),
            else_=literal(0, BigInteger),
        ).label(word)
        for k, word in enumerate(WORDS)
    ]


def active_on(intervals: Sequence[Interval], build: Callable[[Table], Select]) -> list[Select]:
    """``build(USER_DAYS)`` per year touched by the whole-UTC-day ``intervals``, for the
    users active on any of those days (one row per tenant and user and year)."""
    parts = []
    for year, spans in by_year(intervals).items():
        masks = day_masks(year, spans)
        met = [
            USER_DAYS.c[word].bitwise_and(literal(mask, BigInteger)) != 0
            for word, mask in zip(WORDS, masks, strict=True)
            if mask
        ]
        parts.append(build(USER_DAYS).where(USER_DAYS.c.bucket == year, or_(*met)))
    return parts


def hour_segments(
    intervals: Sequence[Interval], filters: Filters | None
) -> list[tuple[datetime, datetime, int]]:
    """``(day, start, hour bits)`` per piece of the whole-UTC-hour ``intervals`` cut at UTC
    midnights and, given a trend's ``filters``, at its output bucket boundaries."""
    out = []
    for lo, hi in intervals:
        cuts = {lo, hi, *(bucket_boundaries(filters, lo, hi) if filters else ())}
        day = next_unit(floor_unit(lo, "day"), "day")
        while day < hi:
            cuts.add(day)
            day += _DAY
        edges = sorted(cuts)
        for a, b in zip(edges, edges[1:], strict=False):
            day = floor_unit(a, "day")
            first, last = (a - day) // _HOUR, (b - day) // _HOUR
            out.append((day, a, sum(1 << h for h in range(first, last))))
    return out


def active_in_hours(
    intervals: Sequence[Interval],
    filters: Filters | None,
    build: Callable[[Table, ColumnElement], Select],
) -> list[Select]:
    """``build(day_sets, ts)`` for the users active in the whole UTC hours ``intervals``:
    the day set rows whose active hours meet them (none for no intervals).

    With a trend's ``filters`` each piece inside one output bucket is read apart and
    ``ts`` is its start (inside the bucket); else ``ts`` is the row's day."""
    segments = hour_segments(intervals, filters)
    if not segments:
        return []
    sets = rollup_table("active_users", "day")
    listed = values(
        sql_column("day", DateTime(timezone=True)),
        sql_column("start", DateTime(timezone=True)),
        sql_column("bits", Integer),
        name="hour_spans",
    ).data(segments)
    day, start = (cast(c, DateTime(timezone=True)) for c in (listed.c.day, listed.c.start))
    meets = and_(sets.c.bucket == day, sets.c.hours.bitwise_and(listed.c.bits) != 0)
    return [build(sets, start if filters else sets.c.bucket).join(listed, meets)]
