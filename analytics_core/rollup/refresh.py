"""Rollup maintenance: bring the ``rollup_*`` tables up to the current hour.

Each rollup is declared below as plain SQL over the contract tables: a source, the
event-time column that picks the hour, the dimension columns and the aggregates
(counts, sums, the log-bucket index of a sketch). Nothing else is needed to fill the
same tables from another engine (Spark SQL): the hour rows are
``SELECT bucket, dimensions, aggregates FROM source WHERE time in window GROUP BY ...``
(a sketch's bins gathered into arrays per bucket and key), and day and month rows are the
sums (or, for users, the distinct rows) of the finer grain. The users' day rows come from
the source rows, with each user's active hours as bits. :func:`definition_sql` prints
each one's first statement.

A run (:func:`refresh`):

1. ``new_wm = floor_hour(now)``; the window is ``[floor_hour(old_wm - late_window), new_wm)``
   (first run: from the earliest source event).
2. For every rollup family (steps 2 and 3, in one transaction per family; two families
   at a time on PostgreSQL), DELETE its hour rows in the window, then INSERT them again from
   the source rows in the window (the event-time indexes keep this proportional to the
   rows in the window, whatever the table size). Feedback also recomputes the hours of
   the detections that received feedback in the window.
3. Rebuild the day rows of every complete UTC day touching those hours from the hour
   rows, then the month rows of every complete month touching them from the day rows.
   (The users' day rows: every day touching those hours, the current one too, their
   hours in the window from the source and their other hours kept.)
4. Once every family has committed, store ``new_wm``. A run that fails part way
   leaves the watermark as it was, so the next run recomputes the same window.

Rows inserted with an event time older than the window's start (later than the late
window allows) are not picked up by later runs; ``refresh(..., full=True)``
(``analytics rollup --full``) recomputes everything after such a backfill. Session
ends (``ended_at``) written after the session's start hour has left the late window
are not seen either, for the same reason. Source tables are only read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    CompoundSelect,
    Connection,
    DateTime,
    Engine,
    FromClause,
    Integer,
    MetaData,
    Select,
    SmallInteger,
    Subquery,
    Table,
    Text,
    and_,
    cast,
    delete,
    extract,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by

from analytics_core.rollup.read import sketch_totals, sum_as
from analytics_core.rollup.schema import (
    COUNT_GRAINS,
    PROJECTION_TABLES,
    PROJECTIONS,
    QUANTILE_LEVELS,
    QUANTILE_TABLES,
    SKETCHES,
    STATE_KEY,
    USER_COUNTS,
    USER_DAYS,
    create_rollup_tables,
    key_columns,
    metadata,
    rollup_state,
    rollup_table,
    tables_of,
)
from analytics_core.rollup.sketch import bin_expr, is_sketch, unnested
from analytics_core.rollup.tiles import floor_unit, next_unit
from analytics_core.rollup.user_days import (
    WORDS,
    by_year,
    day_bit_words,
    day_masks,
    hour_segments,
)
from analytics_core.schema import api_requests as ar
from analytics_core.schema import detection_feedback as fb
from analytics_core.schema import detection_results as dr
from analytics_core.schema import user_sessions as us
from analytics_core.schema import users as u

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# Ranges per statement: a long OR list of scattered feedback hours is split in chunks.
_RANGES_PER_STATEMENT = 200
# Serialises concurrent runs on PostgreSQL (cron overlapping a sidecar); any constant.
_ADVISORY_LOCK_KEY = 8_151_742_003


def bucket_start(grain: str, column: ColumnElement) -> ColumnElement:
    """The UTC start of the hour, day or month holding ``column``, as timestamptz.

    Constants are inlined so the expression renders the same in SELECT and GROUP BY.
    """
    return func.timezone(cast(literal_column("'UTC'"), Text), _naive_bucket(grain, column))


def _naive_bucket(grain: str, column: ColumnElement) -> ColumnElement:
    if grain not in COUNT_GRAINS:  # hour, day, week, month: an allow-list, inlined below
        raise ValueError(grain)
    utc_wall_time = func.timezone(cast(literal_column("'UTC'"), Text), column)
    return func.date_trunc(literal_column(f"'{grain}'"), utc_wall_time)


def status_class(status_code: ColumnElement) -> ColumnElement:
    """``status_code / 100`` as an integer (``/`` on integers is float in DuckDB and Spark)."""
    return cast(func.floor(status_code / literal_column("100.0")), SmallInteger)


def _total(expr: ColumnElement) -> ColumnElement:
    """A sum that is 0 rather than NULL over no values."""
    return func.coalesce(func.sum(expr), literal_column("0"))


@dataclass(frozen=True)
class Part:
    """One ``SELECT ... GROUP BY`` over the contract tables feeding a rollup's hour rows."""

    source: FromClause
    time: ColumnElement  # the event time whose hour is the row's bucket
    dimensions: dict[str, ColumnElement]
    measures: dict[str, ColumnElement] = field(default_factory=dict)  # aggregates
    where: tuple[ColumnElement[bool], ...] = ()
    # Another time column whose rows in the window change a bucket outside it
    # (feedback created now about a detection of last week).
    also_changed_by: ColumnElement | None = None


@dataclass(frozen=True)
class Rollup:
    """A rollup: several parts only for set rollups (no measures), combined with UNION."""

    name: str
    parts: tuple[Part, ...]

    def __post_init__(self) -> None:
        if len(self.parts) > 1 and any(p.measures for p in self.parts):
            raise ValueError(f"{self.name}: only measure-free rollups may union parts")


_succeeded = dr.c.status == "success"

ROLLUPS: tuple[Rollup, ...] = (
    Rollup(
        "requests",
        (
            Part(
                source=ar,
                time=ar.c.ts,
                dimensions={
                    "tenant_id": ar.c.tenant_id,
                    "endpoint": ar.c.endpoint,
                    "method": ar.c.method,
                    "status_class": status_class(ar.c.status_code),
                },
                measures={
                    "requests": func.count(),
                    "duration_ms_sum": func.sum(ar.c.duration_ms),
                    "request_bytes_sum": func.sum(ar.c.request_bytes),
                    "response_bytes_sum": func.sum(ar.c.response_bytes),
                },
            ),
        ),
    ),
    Rollup(
        "request_latency",
        (
            Part(
                source=ar,
                time=ar.c.ts,
                dimensions={
                    "tenant_id": ar.c.tenant_id,
                    "endpoint": ar.c.endpoint,
                    "method": ar.c.method,
                    "bin": bin_expr(ar.c.duration_ms),
                },
                measures={"n": func.count()},
                where=(ar.c.duration_ms.is_not(None),),
            ),
        ),
    ),
    Rollup(
        "detections",
        (
            Part(
                source=dr,
                time=dr.c.created_at,
                dimensions={
                    "tenant_id": dr.c.tenant_id,
                    "algorithm": dr.c.algorithm,
                    "detector_id": dr.c.detector_id,
                    "status": dr.c.status,
                },
                measures={
                    "runs": func.count(),
                    "n_anomalies_sum": func.sum(dr.c.n_anomalies),
                    "n_samples_sum": func.sum(dr.c.n_samples),
                    "score_sum": func.sum(dr.c.mean_score),
                    "score_count": func.count(dr.c.mean_score),
                    "exec_ms_sum": func.sum(dr.c.execution_time_ms),
                    "exec_count": func.count(dr.c.execution_time_ms),
                },
            ),
        ),
    ),
    Rollup(
        "detection_runtime",
        (
            Part(
                source=dr,
                time=dr.c.created_at,
                dimensions={
                    "tenant_id": dr.c.tenant_id,
                    "algorithm": dr.c.algorithm,
                    "detector_id": dr.c.detector_id,
                    "bin": bin_expr(dr.c.execution_time_ms),
                },
                measures={"n": func.count()},
                where=(_succeeded, dr.c.execution_time_ms.is_not(None)),
            ),
        ),
    ),
    Rollup(
        "feedback",
        (
            Part(
                source=fb.join(dr, fb.c.detection_id == dr.c.id),
                time=dr.c.created_at,  # the detection's time, as the raw query filters
                dimensions={
                    "tenant_id": dr.c.tenant_id,
                    "algorithm": dr.c.algorithm,
                    "detector_id": dr.c.detector_id,
                },
                measures={
                    "confirmed_sum": func.sum(fb.c.confirmed),
                    "false_positives_sum": func.sum(fb.c.false_positives),
                },
                also_changed_by=fb.c.created_at,
            ),
        ),
    ),
    Rollup(
        "active_users",
        (
            Part(
                source=ar,
                time=ar.c.ts,
                dimensions={"tenant_id": ar.c.tenant_id, "user_id": ar.c.user_id},
                where=(ar.c.user_id.is_not(None),),
            ),
            Part(
                source=us,
                time=us.c.started_at,
                dimensions={"tenant_id": us.c.tenant_id, "user_id": us.c.user_id},
            ),
        ),
    ),
    Rollup(
        "new_users",
        (
            Part(
                source=u,
                time=u.c.created_at,
                dimensions={"tenant_id": u.c.tenant_id},
                measures={"new_users": func.count()},
            ),
        ),
    ),
    Rollup(
        "sessions",
        (
            Part(
                source=us,
                time=us.c.started_at,
                dimensions={"tenant_id": us.c.tenant_id},
                measures={
                    "sessions": func.count(),
                    "ended_sessions": func.count(us.c.ended_at),
                    "ended_seconds_sum": _total(
                        extract("epoch", us.c.ended_at) - extract("epoch", us.c.started_at)
                    ),
                },
            ),
        ),
    ),
)

BY_NAME: dict[str, Rollup] = {r.name: r for r in ROLLUPS}


# --- statements -----------------------------------------------------------------------

Range = tuple[datetime, datetime]


def in_ranges(column: ColumnElement, ranges: Sequence[Range]) -> ColumnElement[bool]:
    """``column`` inside any of the half-open ``ranges`` (index-friendly: plain comparisons)."""
    if not ranges:
        return false()
    return or_(*(and_(column >= lo, column < hi) for lo, hi in ranges))


def hour_select(part: Part, table: Table, ranges: Sequence[Range]) -> Select:
    """The hour rows of one part for the source rows whose event time is in ``ranges``."""
    bucket = bucket_start("hour", part.time)
    types = {
        name: table.c[name].type if name in table.c else BigInteger() for name in part.measures
    }
    measures = [cast(expr, types[name]).label(name) for name, expr in part.measures.items()]
    return (
        select(
            bucket.label("bucket"),
            *(expr.label(name) for name, expr in part.dimensions.items()),
            *measures,
        )
        .select_from(part.source)
        .where(in_ranges(part.time, ranges), *part.where)
        .group_by(bucket, *part.dimensions.values())
    )


def _in_time_order(table: Table, columns: Sequence[str], query: Select | CompoundSelect):
    """INSERT ``query`` into ``table`` in bucket order: the rows of one bucket land on
    neighbouring pages, so reading a range touches few pages (in the aggregate's hash
    order, 85,000 user-set rows of a week sat on 27,000 pages)."""
    rows = query.subquery("new_rows")
    ordered = select(*(rows.c[name] for name in columns)).order_by(rows.c.bucket)
    return insert(table).from_select(list(columns), ordered)


def as_sketches(per_bin: Select, keys: Sequence[str]):
    """``per_bin``'s ``(bucket, keys, bin, n)`` rows as one sketch row per bucket and keys:
    the bins ascending and their counts, aligned (both ordered by bin)."""
    rows = per_bin.subquery("per_bin")
    group = [rows.c.bucket, *(rows.c[k] for k in keys)]
    return select(
        *group,
        func.array_agg(aggregate_order_by(rows.c.bin, rows.c.bin)).label("bins"),
        func.array_agg(aggregate_order_by(rows.c.n, rows.c.bin)).label("counts"),
    ).group_by(*group)


def hour_insert(rollup: Rollup, ranges: Sequence[Range]):
    table = rollup_table(rollup.name, "hour")
    selects = [hour_select(part, table, ranges) for part in rollup.parts]
    query = selects[0] if len(selects) == 1 else union(*selects)  # UNION: distinct rows
    first = rollup.parts[0]
    if is_sketch(table):  # the part's (bin, n) rows, one sketch row per hour and keys
        keys = [name for name in first.dimensions if name != "bin"]
        return _in_time_order(table, ["bucket", *keys, "bins", "counts"], as_sketches(query, keys))
    columns = ["bucket", *first.dimensions, *first.measures]
    return _in_time_order(table, columns, query)


def coarse_insert(rollup: Rollup, grain: str, finer: str, ranges: Sequence[Range]):
    """Rows of ``grain`` as the sums (or distinct rows) of the ``finer`` grain's rows."""
    return summed_insert(
        rollup_table(rollup.name, finer), rollup_table(rollup.name, grain), grain, ranges
    )


def summed_insert(source: Table, target: Table, grain: str, ranges: Sequence[Range]):
    """``target``'s rows at ``grain`` as the sums of ``source``'s measures over the
    ``source`` rows in ``ranges``, grouped by the ``grain`` bucket and ``target``'s keys
    (distinct rows where there are no measures): a coarser grain, or a projection.
    Sketches merge bin by bin."""
    keys = [c.name for c in target.columns if c.primary_key and c.name != "bucket"]
    if is_sketch(target):
        rows = unnested(source, lambda s: s.where(in_ranges(source.c.bucket, ranges)))
        bucket = bucket_start(grain, rows.c.bucket)
        dims = [rows.c[name] for name in keys]
        per_bin = select(
            bucket.label("bucket"), *dims, rows.c.bin, sum_as(rows.c.n, BigInteger).label("n")
        ).group_by(bucket, *dims, rows.c.bin)
        return _in_time_order(
            target, ["bucket", *keys, "bins", "counts"], as_sketches(per_bin, keys)
        )
    bucket = bucket_start(grain, source.c.bucket)
    measures = [c.name for c in target.columns if not c.primary_key]
    dims = [source.c[name] for name in keys]
    sums = [cast(func.sum(source.c[name]), target.c[name].type).label(name) for name in measures]
    query = (
        select(bucket.label("bucket"), *dims, *sums)
        .where(in_ranges(source.c.bucket, ranges))
        .group_by(bucket, *dims)
    )
    return _in_time_order(target, ["bucket", *keys, *measures], query)


def definition_sql(name: str) -> str:
    """The first INSERT ... SELECT of rollup ``name`` (its hour rows; the users' day rows)
    as PostgreSQL text, with the window as ``:window_start`` / ``:window_end`` (for docs
    and for porting)."""
    from sqlalchemy import bindparam

    rollup = BY_NAME[name]
    window = [(bindparam("window_start"), bindparam("window_end"))]
    if name == "active_users":
        stmt = user_day_insert(rollup, window)
    else:
        stmt = hour_insert(rollup, window)
    return str(stmt.compile(dialect=postgresql.dialect()))


# --- the run --------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshResult:
    old_watermark: datetime | None
    new_watermark: datetime | None
    hours_recomputed: int
    rows_written: dict[str, int]  # rollup table name -> rows inserted by this run
    seconds: float


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def floor_month(moment: datetime) -> datetime:
    return floor_day(moment).replace(day=1)


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, overlapping or touching ranges joined."""
    merged: list[Range] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _widen(ranges: Sequence[Range], grain: str, limit: datetime) -> list[Range]:
    """The whole ``grain`` buckets touching ``ranges``, keeping only those ending by ``limit``."""
    out = []
    for lo, hi in ranges:
        last = floor_unit(hi - timedelta(microseconds=1), grain)
        out.append((floor_unit(lo, grain), min(next_unit(last, grain), limit)))
    return merge_ranges(out)


def _touched(hours: list[Range], new_wm: datetime) -> dict[str, list[Range]]:
    """The whole hours, days, ISO weeks and months touching ``hours``, each kept only up
    to the last unit the watermark closes."""
    days = _widen(hours, "day", floor_day(new_wm))
    return {
        "hour": hours,
        "day": days,
        "week": _widen(days, "week", floor_unit(new_wm, "week")),
        "month": _widen(days, "month", floor_month(new_wm)),
    }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _chunks(ranges: Sequence[Range]) -> Iterable[Sequence[Range]]:
    for i in range(0, len(ranges), _RANGES_PER_STATEMENT):
        yield ranges[i : i + _RANGES_PER_STATEMENT]


def _earliest_event(conn: Connection) -> datetime | None:
    columns = {id(p.time): p.time for r in ROLLUPS for p in r.parts}.values()
    found = [
        _utc(conn.execute(select(func.min(col)).select_from(col.table)).scalar()) for col in columns
    ]
    present = [moment for moment in found if moment is not None]
    return min(present) if present else None


def _changed_hours(conn: Connection, part: Part, window: Range) -> list[Range]:
    """Hours outside the window whose rows changed: e.g. detections given feedback now."""
    if part.also_changed_by is None:
        return []
    hour = _naive_bucket("hour", part.time)
    query = (
        select(hour)
        .distinct()
        .select_from(part.source)
        .where(in_ranges(part.also_changed_by, [window]), *part.where)
    )
    starts = [_utc(row[0]) for row in conn.execute(query)]
    return merge_ranges((s, s + HOUR) for s in starts if s is not None)


def _replace(conn: Connection, table: Table, ranges: Sequence[Range], make_insert) -> int:
    """DELETE the rows of ``table`` in ``ranges`` and INSERT them anew; rows inserted."""
    written = 0
    for chunk in _chunks(ranges):
        conn.execute(delete(table).where(in_ranges(table.c.bucket, chunk)))
        # preserve_rowcount: SQLAlchemy otherwise reports -1 for INSERT ... SELECT.
        result = conn.execute(make_insert(chunk).execution_options(preserve_rowcount=True))
        if result.rowcount is not None and result.rowcount >= 0:
            written += result.rowcount
        else:  # a driver that does not report it: count what is there now
            written += conn.execute(
                select(func.count()).where(in_ranges(table.c.bucket, chunk))
            ).scalar_one()
    return written


def _refresh_rollup(
    conn: Connection, rollup: Rollup, hours: list[Range], new_wm: datetime, rows: dict[str, int]
) -> None:
    """Recompute one rollup's hour rows in ``hours``, then the day and month rows on top
    (the user sets: their day rows with active hours, then the month rows)."""
    touched = _touched(hours, new_wm)
    days, months = touched["day"], touched["month"]
    if rollup.name == "active_users":
        _refresh_user_day_sets(conn, rollup, hours, rows)
    else:
        rows[rollup_table(rollup.name, "hour").name] = _replace(
            conn,
            rollup_table(rollup.name, "hour"),
            hours,
            lambda chunk: hour_insert(rollup, chunk),
        )
        rows[rollup_table(rollup.name, "day").name] = _replace(
            conn,
            rollup_table(rollup.name, "day"),
            days,
            lambda chunk: coarse_insert(rollup, "day", "hour", chunk),
        )
    rows[rollup_table(rollup.name, "month").name] = _replace(
        conn,
        rollup_table(rollup.name, "month"),
        months,
        lambda chunk: coarse_insert(rollup, "month", "day", chunk),
    )
    # Projections: each grain summed from the full table's rows of the same grain (a few
    # hundred rows per bucket), in the same ranges.
    for grain, ranges in (("hour", hours), ("day", days), ("month", months)):
        if rollup.name not in PROJECTIONS:
            break
        tables = tables_of(rollup.name, grain)
        for larger, table in zip(tables, tables[1:], strict=False):
            # From the next larger table when it has every key (fewer rows to sum).
            source = larger if key_columns(table) <= key_columns(larger) else tables[0]
            rows[table.name] = _replace(
                conn,
                table,
                ranges,
                lambda chunk, t=table, f=source, g=grain: summed_insert(f, t, g, chunk),
            )


def user_events(rollup: Rollup, ranges: Sequence[Range]) -> Subquery:
    """``(bucket, tenant_id, user_id)`` of every source row of the user sets whose event
    time (``bucket``) lies in ``ranges``: requests and sessions, duplicates kept."""
    return union_all(
        *(
            select(part.time.label("bucket"), *(e.label(n) for n, e in part.dimensions.items()))
            .select_from(part.source)
            .where(in_ranges(part.time, ranges), *part.where)
            for part in rollup.parts
        )
    ).subquery("user_events")


def user_day_insert(rollup: Rollup, ranges: Sequence[Range], kept: FromClause | None = None):
    """The user sets' day rows with the UTC hours each user was active in (bit ``h`` for
    hour ``h``), from the source rows in ``ranges`` and the ``kept`` rows' hours."""
    events = user_events(rollup, ranges)
    utc_wall_time = func.timezone(cast(literal_column("'UTC'"), Text), events.c.bucket)
    hour_bit = cast(func.power(2, extract("hour", utc_wall_time)), Integer)
    fresh = select(
        bucket_start("day", events.c.bucket).label("bucket"),
        events.c.tenant_id,
        events.c.user_id,
        hour_bit.label("hours"),
    )
    both = (fresh if kept is None else union_all(fresh, select(kept))).subquery("both_")
    keys = [both.c.bucket, both.c.tenant_id, both.c.user_id]
    query = select(*keys, cast(func.bit_or(both.c.hours), Integer).label("hours")).group_by(*keys)
    table = rollup_table(rollup.name, "day")
    return _in_time_order(table, ["bucket", "tenant_id", "user_id", "hours"], query)


_ALL_HOURS = (1 << 24) - 1


def hour_bits(hours: Sequence[Range]) -> dict[datetime, int]:
    """Per UTC day touched by the whole ``hours``, the bits of its hours among them (the
    readers' :func:`~analytics_core.rollup.user_days.hour_segments`, merged per day)."""
    bits: dict[datetime, int] = {}
    for day, _, day_bits in hour_segments(hours, None):
        bits[day] = bits.get(day, 0) | day_bits
    return bits


def _refresh_user_day_sets(
    conn: Connection, rollup: Rollup, hours: list[Range], rows: dict[str, int]
) -> None:
    """The day rows of the user sets for every day touching ``hours``: their hours among
    ``hours`` recomputed from the source, their other hours (of a day the window cuts)
    kept from the rows there, staged in a temporary table while the day rows are
    replaced (the window alone is read: a row outside it is left as it was)."""
    table = rollup_table(rollup.name, "day")
    columns = [c.name for c in table.columns]
    staged = Table(
        "rollup_active_users_day_staged",
        MetaData(),
        *(Column(c.name, c.type) for c in table.columns),
        prefixes=["TEMPORARY"],
    )
    staged.create(conn)  # in the family's transaction: a failure rolls it back too
    window = hour_bits(hours)
    cut = {day: bits for day, bits in window.items() if bits != _ALL_HOURS}
    for day, bits in cut.items():
        others = table.c.hours.bitwise_and(literal(_ALL_HOURS & ~bits, Integer))
        conn.execute(
            insert(staged).from_select(
                columns,
                select(table.c.bucket, table.c.tenant_id, table.c.user_id, others).where(
                    table.c.bucket == day, others != 0
                ),
            )
        )
    days = merge_ranges((day, day + timedelta(days=1)) for day in window)
    conn.execute(delete(table).where(in_ranges(table.c.bucket, days)))
    result = conn.execute(
        user_day_insert(rollup, hours, staged).execution_options(preserve_rowcount=True)
    )
    rows[table.name] = max(result.rowcount, 0)
    staged.drop(conn)


def count_insert(source: FromClause, target: Table, grain: str, ranges: Sequence[Range]):
    """Distinct users per ``grain`` unit (and tenant, where ``target`` has it) from the
    ``active_users`` set rows of ``source`` in ``ranges`` (or the source rows of
    :func:`user_events`)."""
    bucket = bucket_start(grain, source.c.bucket)
    keys = [source.c.tenant_id] if "tenant_id" in target.c else []
    users = (
        func.count(source.c.user_id)  # (tenant, user) rows of one unit are distinct already
        if keys and source.name.endswith(f"_{grain}")
        else func.count(source.c.user_id.distinct())
    )
    query = (
        select(bucket.label("bucket"), *keys, cast(users, BigInteger).label("active_users"))
        .where(in_ranges(source.c.bucket, ranges))
        .group_by(bucket, *keys)
    )
    return _in_time_order(target, ["bucket", *(k.name for k in keys), "active_users"], query)


def _user_sets(grain: str, ranges: Sequence[Range]) -> FromClause:
    """The user set rows that tile units of ``grain``: the source rows for hours (there
    are no hour sets), the day sets for ISO weeks (no week sets either: they were read
    only to count weeks)."""
    if grain == "hour":
        return user_events(BY_NAME["active_users"], ranges)
    return rollup_table("active_users", "day" if grain == "week" else grain)


def _refresh_user_counts(
    conn: Connection, hours: list[Range], new_wm: datetime, rows: dict[str, int]
) -> None:
    """The distinct-user counts of every whole unit touching ``hours`` (whose user sets
    were just rebuilt), from the finest set table that tiles the unit."""
    touched = _touched(hours, new_wm)
    for (_, grain), table in USER_COUNTS.items():
        rows[table.name] = _replace(
            conn,
            table,
            touched[grain],
            lambda chunk, t=table, g=grain: count_insert(_user_sets(g, chunk), t, g, chunk),
        )
    _refresh_user_days(conn, touched["day"], rows)


def _refresh_user_days(conn: Connection, days: list[Range], rows: dict[str, int]) -> None:
    """The active-day bitmaps of every year touching ``days`` (whole UTC days whose user
    sets were just rebuilt): each year's rows with those days' bits cleared, OR'ed with
    the bits of the users in those days' sets, replace the year's rows."""
    source = rollup_table("active_users", "day")
    columns = [c.name for c in USER_DAYS.columns]
    rows[USER_DAYS.name] = 0
    for year, spans in by_year(days).items():
        masks = day_masks(year, spans)
        kept = select(
            USER_DAYS.c.tenant_id,
            USER_DAYS.c.user_id,
            *(
                USER_DAYS.c[w].bitwise_and(literal(~m, BigInteger)).label(w)
                for w, m in zip(WORDS, masks, strict=True)
            ),
        ).where(USER_DAYS.c.bucket == year)
        fresh = select(
            source.c.tenant_id, source.c.user_id, *day_bit_words(source.c.bucket, year)
        ).where(in_ranges(source.c.bucket, spans))
        both = union_all(kept, fresh).subquery("both_")
        merged = [cast(func.bit_or(both.c[w]), BigInteger) for w in WORDS]
        query = (
            select(
                literal(year, DateTime(timezone=True)).label("bucket"),
                both.c.tenant_id,
                both.c.user_id,
                *(m.label(w) for m, w in zip(merged, WORDS, strict=True)),
            )
            .group_by(both.c.tenant_id, both.c.user_id)
            .having(or_(*(m != 0 for m in merged)))
        )
        # The new rows read the old ones: staged in a temporary table, then swapped in.
        staged = Table(
            "rollup_active_user_days_staged",
            MetaData(),
            *(Column(c.name, c.type) for c in USER_DAYS.columns),
            prefixes=["TEMPORARY"],
        )
        # Created in the run's transaction: a failure rolls it back with everything else.
        staged.create(conn)
        conn.execute(insert(staged).from_select(columns, query))
        conn.execute(delete(USER_DAYS).where(USER_DAYS.c.bucket == year))
        copy = insert(USER_DAYS).from_select(columns, select(staged))
        result = conn.execute(copy.execution_options(preserve_rowcount=True))
        rows[USER_DAYS.name] += max(result.rowcount, 0)
        staged.drop(conn)


def quantile_insert(source: Table, target: Table, grain: str, ranges: Sequence[Range]):
    """``target``'s rows: per ``grain`` unit, the count and the bins at the ranks of each
    stored quantile level of the merged sketch rows of ``source`` (an ``all`` projection)
    in ``ranges``."""
    sketches = unnested(source, lambda s: s.where(in_ranges(source.c.bucket, ranges)))
    bucket = bucket_start(grain, sketches.c.bucket)
    rows = select(bucket.label("bucket"), sketches.c.bin, sketches.c.n).subquery("units")
    totals = sketch_totals(rows, ["bucket"], {}, QUANTILE_LEVELS)
    bins = [c.name for c in target.columns if c.name not in ("bucket", "sketch_n")]
    query = select(
        totals.c.bucket,
        cast(totals.c.sketch_n, BigInteger).label("sketch_n"),
        *(totals.c[name] for name in bins),
    )
    return _in_time_order(target, ["bucket", "sketch_n", *bins], query)


def _refresh_quantiles(
    conn: Connection, name: str, hours: list[Range], new_wm: datetime, rows: dict[str, int]
) -> None:
    """The stored quantiles of sketch rollup ``name`` for every whole unit touching
    ``hours`` (whose sketches were just rebuilt): weeks from the days' sketches."""
    touched = _touched(hours, new_wm)
    for grain in COUNT_GRAINS:
        ranges = touched[grain]
        source_grain = "day" if grain == "week" else grain  # no week tier of sketches
        source = PROJECTION_TABLES[(name, "all", source_grain)]
        target = QUANTILE_TABLES[(name, grain)]
        rows[target.name] = _replace(
            conn,
            target,
            ranges,
            lambda chunk, s=source, t=target, g=grain: quantile_insert(s, t, g, chunk),
        )


def _store_state(conn: Connection, wm: datetime | None, now: datetime, late: timedelta) -> None:
    # Every row: an older layout's watermark (another key) must not outlive its tables.
    conn.execute(delete(rollup_state))
    conn.execute(
        insert(rollup_state).values(
            name=STATE_KEY,
            watermark=wm,
            refreshed_at=now,
            late_window_seconds=int(late.total_seconds()),
        )
    )


# Tables of earlier layouts that the current one no longer has: dropped with the rest
# when a run finds an older layout.
RETIRED_TABLES = ("rollup_active_users_hour", "rollup_active_users_week")

# Rollup families (a rollup with its coarser grains, projections, counts and quantiles)
# run at once on PostgreSQL, each on its own connection: the work is the server's
# (aggregating and writing), and two backends use two cores. Longest first (measured at
# 10M requests), so that the connections finish together.
REFRESH_WORKERS = 2
_LONGEST_FIRST = (
    "request_latency",
    "active_users",
    "detection_runtime",
    "requests",
    "detections",
    "feedback",
    "sessions",
    "new_users",
)
# Per statement of a run: a run over a million new rows hashes ~800,000 groups (140 MB),
# which spill to disk at the default 4 MB (hash nodes may use work_mem times
# hash_mem_multiplier, 2 by default); JIT compiling each of ~70 statements costs more than
# it saves on them.
_RUN_SETTINGS = {"work_mem": "128MB", "jit": "off"}


def _one_run_at_a_time(conn: Connection) -> None:
    """Serialises concurrent runs on PostgreSQL (cron overlapping a sidecar): a lock held
    until ``conn``'s transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))


def _refresh_family(
    engine: Engine, rollup: Rollup, window: Range, new_wm: datetime
) -> tuple[dict[str, int], list[Range]]:
    """One rollup's tables for the window, in one transaction of its own: the rows
    written per table, and the hours recomputed."""
    rows: dict[str, int] = {}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for name, value in _RUN_SETTINGS.items():
                conn.execute(text(f"SET LOCAL {name} = '{value}'"))
        extra = [r for p in rollup.parts for r in _changed_hours(conn, p, window)]
        # Hours at or after the watermark stay out: readers take them raw.
        hours = merge_ranges([window, *((lo, min(hi, new_wm)) for lo, hi in extra)])
        _refresh_rollup(conn, rollup, hours, new_wm, rows)
        if rollup.name == "active_users":
            _refresh_user_counts(conn, hours, new_wm, rows)
        if rollup.name in SKETCHES:
            _refresh_quantiles(conn, rollup.name, hours, new_wm, rows)
    return rows, hours


def _families() -> list[Rollup]:
    known = [BY_NAME[name] for name in _LONGEST_FIRST]
    return known + [r for r in ROLLUPS if r.name not in _LONGEST_FIRST]


class _Stopped(Exception):
    """A family not started because another failed (or the run was interrupted)."""


def _run_families(engine: Engine, window: Range, new_wm: datetime) -> list:
    """Every family's :func:`_refresh_family`, two at a time on PostgreSQL. After a failure
    (or an interrupt) no family starts; the first failure is raised once the families
    already running have finished, and any other is logged."""
    families = _families()
    if engine.dialect.name != "postgresql":
        return [_refresh_family(engine, f, window, new_wm) for f in families]
    stop = threading.Event()

    def run(family: Rollup):
        if stop.is_set():
            raise _Stopped(family.name)
        try:
            return _refresh_family(engine, family, window, new_wm)
        except BaseException:
            stop.set()
            raise

    pool = ThreadPoolExecutor(REFRESH_WORKERS, thread_name_prefix="rollup")
    futures = [pool.submit(run, f) for f in families]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:  # all done, one failed, or interrupted: none starts from here on
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    failures = [
        f.exception()
        for f in futures
        if not f.cancelled() and not isinstance(f.exception(), _Stopped | type(None))
    ]
    for later in failures[1:]:
        log.error("rollup run: another rollup failed too: %r", later)
    if failures:
        raise failures[0]
    return [f.result() for f in futures]


def refresh(
    engine: Engine,
    now: datetime | None = None,
    late_window: timedelta = timedelta(hours=1),
    full: bool = False,
) -> RefreshResult:
    """Bring the rollup tables up to ``floor_hour(now)`` (see the module docstring).

    Needs a writable engine; creates the rollup tables if missing. ``full`` recomputes
    from the earliest source event (after a backfill older than the late window).
    Each family commits on its own and the watermark moves only after all have: an
    exception leaves the watermark where it was, the families that finished hold rows
    computed from the source as it is (readers take none of them beyond the watermark),
    and the next run recomputes the same window, replacing rows, never adding to them.
    """
    if late_window < timedelta(0):
        raise ValueError("late_window must not be negative")
    began = time.perf_counter()
    now = datetime.now(UTC) if now is None else now.astimezone(UTC)
    create_rollup_tables(engine)
    with engine.begin() as conn:
        _one_run_at_a_time(conn)
        older = select(rollup_state.c.name).where(rollup_state.c.name != STATE_KEY)
        if conn.execute(older).first() is not None:
            # Tables of an older layout: derived data, possibly with other columns, that
            # CREATE IF NOT EXISTS would keep as they are. Start again from nothing
            # (committed here: the families' connections must see the new tables).
            metadata.drop_all(conn)
            for name in RETIRED_TABLES:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
            metadata.create_all(conn)
    # The run's own transaction holds the lock and stores the watermark at its end, so a
    # run whose lock was lost (its connection dropped) stores nothing. A run that got in
    # between the two transactions only makes this one read its watermark.
    with engine.begin() as conn:
        _one_run_at_a_time(conn)
        old_wm = _utc(
            conn.execute(
                select(rollup_state.c.watermark).where(rollup_state.c.name == STATE_KEY)
            ).scalar_one_or_none()
        )
        new_wm = floor_hour(now) if old_wm is None else max(floor_hour(now), old_wm)
        if old_wm is None or full:
            earliest = _earliest_event(conn)
            if earliest is None:
                # Nothing to roll up: leave the watermark unset, so data loaded later
                # (however old) is picked up in full by the first run that sees it.
                _store_state(conn, None, now, late_window)
                return RefreshResult(old_wm, None, 0, {}, time.perf_counter() - began)
            start = floor_hour(earliest)
        else:
            start = floor_hour(old_wm - late_window)
        rows: dict[str, int] = {}
        recomputed: set[datetime] = set()
        if start < new_wm:
            for written, hours in _run_families(engine, (start, new_wm), new_wm):
                rows.update(written)
                for lo, hi in hours:
                    recomputed.update(lo + HOUR * i for i in range((hi - lo) // HOUR))
        _store_state(conn, new_wm, now, late_window)
    if (old_wm is None or full) and engine.dialect.name == "postgresql":
        # A first or full run rewrote every table: reclaim the deleted rows' space (else the
        # next runs' deletes and reads wade through them: 6x slower measured) and give the
        # planner statistics (else a year's read is planned as a few rows). Autovacuum
        # keeps up with incremental runs. VACUUM cannot run inside a transaction.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in metadata.sorted_tables:
                conn.execute(text(f'VACUUM ANALYZE "{table.name}"'))
    return RefreshResult(old_wm, new_wm, len(recomputed), rows, time.perf_counter() - began)
