"""The data contract: the tables the app reads, declared in code.

Declared rather than reflected because reflection fails on duckdb-engine under
SQLAlchemy 2.1, and because the contract is what the queries rely on: in
production these names are views over the platform's own tables.
All timestamps are stored in UTC (timestamptz).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("plan", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_users_created_at", "created_at"),
)

detectors = Table(
    "detectors",
    metadata,
    Column("detector_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

detection_results = Table(
    "detection_results",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("detector_id", Text, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("n_samples", Integer, nullable=False),
    Column("n_anomalies", Integer, nullable=False),
    Column("mean_score", Double),
    Column("threshold", Double),
    Column("execution_time_ms", Double),
    Column("status", Text, nullable=False),  # 'success' or 'failed'
    Index("ix_detection_results_created_at", "created_at"),
)

detection_feedback = Table(
    "detection_feedback",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("detection_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("confirmed", Integer, nullable=False),
    Column("false_positives", Integer, nullable=False),
    Index("ix_detection_feedback_created_at", "created_at"),
    Index("ix_detection_feedback_detection_id", "detection_id"),
)

api_requests = Table(
    "api_requests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("user_id", Text, nullable=True),
    Column("method", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("request_bytes", BigInteger, nullable=False),
    Column("response_bytes", BigInteger, nullable=False),
    Index("ix_api_requests_ts", "ts"),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Index("ix_user_sessions_started_at", "started_at"),
)

TABLES: tuple[Table, ...] = (
    tenants,
    users,
    detectors,
    detection_results,
    detection_feedback,
    api_requests,
    user_sessions,
)


def create_tables(engine: Engine) -> None:
    """Create the contract's tables and indexes where missing (idempotent)."""
    metadata.create_all(engine, checkfirst=True)


def missing_tables(engine: Engine) -> list[str]:
    """Names of contract tables the database does not have."""
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    return [t.name for t in TABLES if t.name not in present]
