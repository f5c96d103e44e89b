"""The rollup tables, declared in code on their own ``MetaData``.

One table per rollup and grain, named ``rollup_<name>_<grain>``, with identical
columns across grains. ``bucket`` is the UTC start of the hour, day or month
(timestamptz). Every figure is additive (counts and sums) or a set (active users), so
a coarser bucket is the sum or union of finer ones, and any range is tiled exactly.
Latency and run-time percentiles are stored as log-bucket sketches
(:mod:`analytics_core.rollup.sketch`): one row per bucket and key with the bins that
hold values and their counts as two arrays (one row per bin was as many rows as the
requests at 10M requests, and the rows, not their bytes, cost a run its time).

``rollup_state`` holds the watermark: every source row whose event time is before it
is in the hour tables (except rows that arrived later than the late window allowed).
"""

from __future__ import annotations

import weakref
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Double,
    Engine,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.exc import ProgrammingError

metadata = MetaData()

GRAINS: tuple[str, ...] = ("hour", "day", "month")
ROLLUPS: tuple[str, ...] = (
    "requests",
    "request_latency",
    "detections",
    "detection_runtime",
    "feedback",
    "active_users",
    "new_users",
    "sessions",
)
# The watermark's row in ``rollup_state``, named with the version of the rollup tables'
# layout: after an upgrade that adds or changes tables, the old row no longer counts, so
# readers fall back to the raw tables (never half-filled new tables) and the next run
# rebuilds everything, as a first run does. Bump it with every such change.
ROLLUP_LAYOUT = 6
STATE_KEY = f"watermark:v{ROLLUP_LAYOUT}"


def _bucket() -> Column:
    return Column("bucket", DateTime(timezone=True), primary_key=True)


def _key(name: str) -> Column:
    return Column(name, Text, primary_key=True)


def _sketch() -> list[Column]:
    """A sketch in one row: the bins that hold values, ascending, and their counts."""
    return [
        Column("bins", ARRAY(Integer), nullable=False),
        Column("counts", ARRAY(BigInteger), nullable=False),
    ]


def _columns(name: str) -> list[Column]:
    """The columns of rollup ``name`` (fresh objects: a Column belongs to one Table)."""
    if name == "requests":
        return [
            _bucket(),
            _key("tenant_id"),
            _key("endpoint"),
            _key("method"),
            Column("status_class", SmallInteger, primary_key=True),
            Column("requests", BigInteger, nullable=False),
            Column("duration_ms_sum", Double, nullable=False),
            Column("request_bytes_sum", Double, nullable=False),
            Column("response_bytes_sum", Double, nullable=False),
        ]
    if name == "request_latency":
        return [_bucket(), _key("tenant_id"), _key("endpoint"), _key("method"), *_sketch()]
    if name == "detections":
        return [
            _bucket(),
            _key("tenant_id"),
            _key("algorithm"),
            _key("detector_id"),
            _key("status"),
            Column("runs", BigInteger, nullable=False),
            Column("n_anomalies_sum", BigInteger, nullable=False),
            Column("n_samples_sum", BigInteger, nullable=False),
            Column("score_sum", Double),  # NULL when no run of the group has a score
            Column("score_count", BigInteger, nullable=False),
            Column("exec_ms_sum", Double),  # NULL when no run of the group has a time
            Column("exec_count", BigInteger, nullable=False),
        ]
    if name == "detection_runtime":
        return [_bucket(), _key("tenant_id"), _key("algorithm"), _key("detector_id"), *_sketch()]
    if name == "feedback":
        return [
            _bucket(),
            _key("tenant_id"),
            _key("algorithm"),
            _key("detector_id"),
            Column("confirmed_sum", BigInteger, nullable=False),
            Column("false_positives_sum", BigInteger, nullable=False),
        ]
    if name == "active_users":
        return [_bucket(), _key("tenant_id"), _key("user_id")]
    if name == "new_users":
        return [_bucket(), _key("tenant_id"), Column("new_users", BigInteger, nullable=False)]
    if name == "sessions":
        return [
            _bucket(),
            _key("tenant_id"),
            Column("sessions", BigInteger, nullable=False),
            Column("ended_sessions", BigInteger, nullable=False),
            Column("ended_seconds_sum", Double, nullable=False),
        ]
    raise KeyError(name)


TABLES: dict[tuple[str, str], Table] = {
    (name, grain): Table(f"rollup_{name}_{grain}", metadata, *_columns(name))
    for name in ROLLUPS
    for grain in GRAINS
    if name != "active_users" or grain == "month"
}
# The user sets per UTC day carry the hours of the day the user was active in (bit h:
# hour h), and there are no hour sets: a user's hour is one or two requests, so hour sets
# were as many rows as the requests they came from. A range's partial days read the day
# rows whose hours meet the range's. The current day's row holds the hours before the
# watermark (the day tier reads only days before ``floor_day(watermark)``).
TABLES[("active_users", "day")] = Table(
    "rollup_active_users_day",
    metadata,
    *_columns("active_users"),
    Column("hours", Integer, nullable=False),
)

# Projections: the same rollup summed over fewer dimensions, per grain, for the queries
# that need no more (no tenant scope or filter, no endpoint): a year's trend of the whole
# platform reads a few hundred sketch bins a day instead of one set per tenant and
# endpoint. Each keeps the named key columns (with ``bucket``) and every measure; its rows
# are the sums of the full rollup's rows, so any projection answers exactly as the full
# table would. Named ``rollup_<name>_<label>_<grain>``.
PROJECTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "requests": {"all": ("status_class",), "endpoint": ("endpoint", "method", "status_class")},
    "request_latency": {"all": (), "endpoint": ("endpoint", "method")},
    "detections": {"all": ("status",), "algorithm": ("algorithm", "status")},
    "detection_runtime": {"all": (), "algorithm": ("algorithm",)},
    "feedback": {"all": (), "algorithm": ("algorithm",)},
    "sessions": {"all": ()},
    "new_users": {"all": ()},
}


def _projected(name: str, keys: tuple[str, ...]) -> list[Column]:
    full = _columns(name)
    return [c for c in full if c.name == "bucket" or c.name in keys or not c.primary_key]


PROJECTION_TABLES: dict[tuple[str, str, str], Table] = {
    (name, label, grain): Table(f"rollup_{name}_{label}_{grain}", metadata, *_projected(name, keys))
    for name, labels in PROJECTIONS.items()
    for label, keys in labels.items()
    for grain in GRAINS
}


def key_columns(table: Table) -> set[str]:
    """The dimension columns of a rollup table (its primary key but ``bucket``)."""
    return {c.name for c in table.primary_key.columns} - {"bucket"}


def tables_of(name: str, grain: str) -> list[Table]:
    """Every table of rollup ``name`` at ``grain``, the full one first, then its
    projections from the most to the fewest dimensions."""
    projected = [
        PROJECTION_TABLES[(name, label, grain)]
        for label in PROJECTIONS.get(name, {})
        if (name, label, grain) in PROJECTION_TABLES
    ]
    return [TABLES[(name, grain)], *sorted(projected, key=lambda t: -len(key_columns(t)))]


def smallest_table(name: str, grain: str, needed: set[str]) -> Table:
    """The table of rollup ``name`` at ``grain`` with the fewest dimensions that still
    has every column in ``needed`` (the full table has them all)."""
    return _smallest_table(name, grain, frozenset(needed))


@lru_cache(maxsize=512)
def _smallest_table(name: str, grain: str, needed: frozenset[str]) -> Table:
    for table in reversed(tables_of(name, grain)):
        if needed & set(_all_keys(name)) <= key_columns(table):
            return table
    raise AssertionError("the full table has every dimension")


def _all_keys(name: str) -> tuple[str, ...]:
    return tuple(c.name for c in _columns(name) if c.primary_key and c.name != "bucket")


# Exact distinct active users per whole unit (UTC hour, day, ISO week from Monday, month),
# per tenant and over all tenants: a trend whose buckets are such units (hourly; daily,
# weekly, monthly in UTC) reads one number per bucket instead of counting the union of
# its user sets. Filled from the ``active_users`` sets by the same run.
COUNT_GRAINS: tuple[str, ...] = ("hour", "day", "week", "month")
USER_COUNTS: dict[tuple[str, str], Table] = {
    **{
        ("tenant", grain): Table(
            f"rollup_active_user_counts_{grain}",
            metadata,
            _bucket(),
            _key("tenant_id"),
            Column("active_users", BigInteger, nullable=False),
        )
        for grain in COUNT_GRAINS
    },
    **{
        ("all", grain): Table(
            f"rollup_active_user_counts_all_{grain}",
            metadata,
            _bucket(),
            Column("active_users", BigInteger, nullable=False),
        )
        for grain in COUNT_GRAINS
    },
}

# Quantiles per whole unit over all tenants, for the sketch rollups: the sketch's count and
# the bins holding the ranks of each stored level (as
# :func:`analytics_core.rollup.read.sketch_totals` returns them). A trend over every tenant
# whose buckets are such units (hourly; daily, weekly, monthly in UTC) reads one row per
# bucket instead of merging a few hundred bins per bucket: a year and a half of daily
# history is 545 rows. Filled from the ``all`` projections by the same run.
SKETCHES: tuple[str, ...] = ("request_latency", "detection_runtime")
QUANTILE_LEVELS: dict[str, float] = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
QUANTILE_TABLES: dict[tuple[str, str], Table] = {
    (name, grain): Table(
        f"rollup_{name}_quantiles_{grain}",
        metadata,
        _bucket(),
        Column("sketch_n", BigInteger, nullable=False),
        *(Column(f"{level}__{end}", Integer) for level in QUANTILE_LEVELS for end in ("lo", "hi")),
    )
    for name in SKETCHES
    for grain in COUNT_GRAINS
}

# Each user's active days per UTC year as bitmaps (see analytics_core.rollup.user_days):
# bit b of days_k is day 62k + b of the year. A range's distinct users read one row per
# user and year instead of one per user and day, week or month.
DAY_BITS = 62
DAY_WORDS = 6  # 372 days
USER_DAYS = Table(
    "rollup_active_user_days",
    metadata,
    _bucket(),  # 1 January 00:00 UTC
    _key("tenant_id"),
    _key("user_id"),
    *(Column(f"days_{k}", BigInteger, nullable=False) for k in range(DAY_WORDS)),
)


rollup_state = Table(
    "rollup_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("watermark", DateTime(timezone=True)),
    Column("refreshed_at", DateTime(timezone=True)),
    Column("late_window_seconds", Integer),
)


def rollup_table(name: str, grain: str) -> Table:
    """The table of rollup ``name`` (e.g. ``"requests"``) at ``grain`` (``"hour"``…)."""
    return TABLES[(name, grain)]


def create_rollup_tables(engine: Engine) -> None:
    """Create the rollup tables where missing (idempotent; needs a writable engine)."""
    metadata.create_all(engine, checkfirst=True)


# The engines whose database was seen holding ``rollup_state`` (weakly: an engine disposed
# and dropped leaves the set).
_HAS_STATE_TABLE: weakref.WeakSet[Engine] = weakref.WeakSet()


def watermark(engine: Engine) -> datetime | None:
    """The rollup watermark (aware UTC), or None when the rollup has never run.

    None also when the rollup tables do not exist (a fresh database): never raises for
    that, and only reads, so it works on the app's read-only engines. Connection errors
    propagate (callers wrap them with ``database_errors``).
    """
    with engine.connect() as conn:
        # Every page build reads the watermark. Once the table is known to be there, one
        # statement; until then the catalog is asked first, so that a database without
        # rollups gets no failed statement (an ERROR line in its log) per page.
        if engine not in _HAS_STATE_TABLE:
            if not inspect(conn).has_table(rollup_state.name):
                return None
            _HAS_STATE_TABLE.add(engine)
        try:
            value = conn.execute(
                select(rollup_state.c.watermark).where(rollup_state.c.name == STATE_KEY)
            ).scalar_one_or_none()
        except ProgrammingError:
            conn.rollback()
            if inspect(conn).has_table(rollup_state.name):
                raise
            _HAS_STATE_TABLE.discard(engine)  # dropped since: no rollup, as on a fresh database
            return None
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rollup_exists(engine: Engine) -> bool:
    """Whether the rollup has run at least once, so its tables can answer queries."""
    return watermark(engine) is not None
