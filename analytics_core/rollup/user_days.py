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
)

from analytics_core.rollup.schema import DAY_BITS, DAY_WORDS, USER_DAYS

Interval = tuple[datetime, datetime]
WORDS = tuple(f"days_{k}" for k in range(DAY_WORDS))
_DAY = timedelta(days=1)


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
