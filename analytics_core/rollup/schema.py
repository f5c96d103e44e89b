"""The rollup tables, declared in code on their own ``MetaData``.

One table per rollup and grain, named ``rollup_<name>_<grain>``, with identical
columns across grains. ``bucket`` is the UTC start of the hour, day or month
(timestamptz). Every figure is additive (counts and sums) or a set (active users), so
a coarser bucket is the sum or union of finer ones, and any range is tiled exactly.
Latency and run-time percentiles are stored as log-bucket sketches
(:mod:`analytics_core.rollup.sketch`): one row per bin with its count.

``rollup_state`` holds the watermark: every source row whose event time is before it
is in the hour tables (except rows that arrived later than the late window allowed).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
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
STATE_KEY = "watermark"


def _bucket() -> Column:
    return Column("bucket", DateTime(timezone=True), primary_key=True)


def _key(name: str) -> Column:
    return Column(name, Text, primary_key=True)


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
        return [
            _bucket(),
            _key("tenant_id"),
            _key("endpoint"),
            _key("method"),
            Column("bin", Integer, primary_key=True),
            Column("n", BigInteger, nullable=False),
        ]
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
        return [
            _bucket(),
            _key("tenant_id"),
            _key("algorithm"),
            _key("detector_id"),
            Column("bin", Integer, primary_key=True),
            Column("n", BigInteger, nullable=False),
        ]
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
}

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


def watermark(engine: Engine) -> datetime | None:
    """The rollup watermark (aware UTC), or None when the rollup has never run.

    None also when the rollup tables do not exist (a fresh database): never raises for
    that, and only reads, so it works on the app's read-only engines. Connection errors
    propagate (callers wrap them with ``database_errors``).
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table(rollup_state.name):
            return None
        value = conn.execute(
            select(rollup_state.c.watermark).where(rollup_state.c.name == STATE_KEY)
        ).scalar_one_or_none()
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rollup_exists(engine: Engine) -> bool:
    """Whether the rollup has run at least once, so its tables can answer queries."""
    return watermark(engine) is not None
