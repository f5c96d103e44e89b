"""The audit log: who viewed or exported what, appended to a store of its own.

The store is separate from the sources. The primary database is opened read-only (a
DuckDB file with ``read_only``, PostgreSQL with ``default_transaction_read_only``), so
the log lives in a writable database named by its own URL: by default a SQLite file
beside the demo database (:func:`default_audit_url`), else any SQLite or DuckDB file,
or PostgreSQL. :func:`check_audit_url` refuses a file database that is the source file
itself; on PostgreSQL the log may share the sources' database, as a table of its own
written by a role of its own.

Events go in one table, ``analytics_audit``, declared below with SQLAlchemy Core and
created on first use (``CREATE ... IF NOT EXISTS``). This module only ever INSERTs and
SELECTs: nothing here updates or deletes a row. On PostgreSQL, make that a guarantee:
create the table as its owner with :data:`POSTGRES_WRITER_GRANTS` and give the app a
role that holds only ``INSERT`` and ``SELECT`` on it (and ``USAGE`` on its id sequence).
Without ``UPDATE``, ``DELETE`` or ``TRUNCATE`` grants the log is append-only for the
app: a compromised or buggy app can add events but not rewrite or erase them. Create
the role once, for example::

    CREATE ROLE analytics_audit_writer LOGIN PASSWORD '...';

Times are stored in UTC (``timestamptz``; on SQLite, UTC text) and read back as aware
UTC datetimes. A DuckDB file may be written by one process at a time: while the app
writes, the CLI's write fails with :class:`AuditUnavailable` (SQLite waits for the lock
instead, so prefer it, or PostgreSQL, when both write).

Any database failure surfaces as :class:`AuditUnavailable`, naming the store (its URL
without the password) and the reason, so callers decide whether a page may go on
without its audit record.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    URL,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    NullPool,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    inspect,
    make_url,
    select,
)
from sqlalchemy import (
    Sequence as DbSequence,
)
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from analytics_core.config import demo_database_path, normalize_db_url
from analytics_core.filters import InputError

if TYPE_CHECKING:
    import pandas as pd

ACTIONS = ("view", "export", "denied", "sign_in")
BACKENDS = ("sqlite", "duckdb", "postgresql")
TABLE = "analytics_audit"
# The frame read() returns, in this order.
COLUMNS = ("at", "user", "role", "action", "page", "filters", "format", "rows", "client", "detail")
SUPPORTED = (
    "sqlite:///path/to/audit.sqlite, duckdb:///path/to/audit.duckdb "
    "or postgresql://user@host:port/db"
)
SQLITE_TIMEOUT_SECONDS = 5  # wait this long for another writer's lock
POSTGRES_CONNECT_TIMEOUT_SECONDS = 3


class AuditUnavailable(Exception):
    """The audit store cannot be written or read; str() names the store (URL without
    password) and the reason."""

    def __init__(self, store: str, reason: str):
        self.store, self.reason = store, reason
        super().__init__(f"audit store {store} is unavailable: {reason}")


@dataclass(frozen=True)
class AuditEvent:
    """One thing a user did: viewed a page, exported it, was refused, or signed in."""

    user: str  # who (proxy user / OIDC e-mail / OS user for the CLI)
    role: str | None
    action: str  # one of ACTIONS
    page: str | None = None
    filters: Mapping[str, object] | None = None  # stored as JSON text
    format: str | None = None  # of an export
    rows: int | None = None  # exported or shown
    client: str | None = None  # client address (from the proxy header)
    detail: str | None = None  # e.g. why a request was denied
    at: datetime = field(default_factory=lambda: datetime.now(UTC))  # aware; stored UTC

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"audit action {self.action!r} is not one of {', '.join(ACTIONS)}")
        if not isinstance(self.user, str) or not self.user:
            raise ValueError(f"audit user must be a non-empty string, got {self.user!r}")
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise ValueError(f"audit time must be an aware datetime, got {self.at!r}")
        self.filters_json()  # unserialisable filters fail here, in the caller, not at write

    def filters_json(self) -> str | None:
        """The filters as stored: JSON text with sorted keys, odd values as ``str()``."""
        if self.filters is None:
            return None
        try:
            return json.dumps(dict(self.filters), sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"audit filters cannot be stored as JSON ({exc})") from None


class _UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` that takes aware datetimes only and gives back aware UTC ones; on
    SQLite (no zones) the UTC wall time is stored, fixed-width text that sorts in order."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"audit times must be aware datetimes, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: stored as UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()
# An explicit sequence: DuckDB has no SERIAL or IDENTITY; PostgreSQL gets the same name
# as a SERIAL's (granted in POSTGRES_WRITER_GRANTS); SQLite ignores it and uses its rowid.
id_sequence = DbSequence(f"{TABLE}_id_seq", metadata=metadata)

audit_table = Table(
    TABLE,
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), id_sequence, primary_key=True),
    # Quoted: AT is a reserved word in DuckDB.
    Column("at", _UTCDateTime(), nullable=False, quote=True),
    Column("user_name", Text, nullable=False),
    Column("role", Text),
    Column("action", Text, nullable=False),
    Column("page", Text),
    Column("filters", Text),  # JSON text
    Column("format", Text),
    Column("row_count", Integer),
    Column("client", Text),
    Column("detail", Text),
    Index(f"ix_{TABLE}_at", "at"),
)

# Run once as the table's owner (a role other than the app's), so that the app's role
# can add and read events but never change or remove them.
POSTGRES_WRITER_GRANTS = f"""\
CREATE SEQUENCE IF NOT EXISTS {TABLE}_id_seq;
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigint PRIMARY KEY DEFAULT nextval('{TABLE}_id_seq'),
    "at" timestamptz NOT NULL,
    user_name text NOT NULL,
    role text,
    action text NOT NULL,
    page text,
    filters text,
    format text,
    row_count integer,
    client text,
    detail text
);
ALTER SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id;
CREATE INDEX IF NOT EXISTS ix_{TABLE}_at ON {TABLE} ("at");
GRANT INSERT, SELECT ON {TABLE} TO analytics_audit_writer;
GRANT USAGE ON SEQUENCE {TABLE}_id_seq TO analytics_audit_writer;
"""


def default_audit_url() -> str:
    """A SQLite file beside the demo database (its directory is made on first write)."""
    return f"sqlite:///{demo_database_path().parent / 'audit.sqlite'}"


def _hide_password(url: str | URL) -> str:
    """The URL without its password, for messages (as ``sources.database.redact``, which
    this module does not import: it brings pandas, which the CLI's start-up must not pay
    for)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def _file_path(url: URL) -> Path | None:
    """The file of a SQLite or DuckDB URL; None for an in-memory database."""
    database = url.database
    return None if not database or database == ":memory:" else Path(database)


def _creatable(path: Path) -> None:
    """Raise :class:`NotADirectoryError` when a missing ``path`` cannot be made because
    a folder on the way to it is a regular file."""
    ancestor = next(p for p in path.parents if p.exists())  # the root at the latest
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{ancestor} is not a directory")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return a.samefile(b)  # also through hard links
    return a.resolve() == b.resolve()


def check_audit_url(audit_url: str, primary_url: str) -> None:
    """Refuse an audit URL that cannot hold the log: an unsupported or in-memory
    database, or the source database's own file (opened read-only, so the log must live
    elsewhere). PostgreSQL may share the sources' database: the log is a table of its
    own, written by a role of its own."""
    try:
        url = make_url(normalize_db_url(audit_url))
    except ArgumentError:
        raise InputError(
            f"audit log URL {audit_url!r} is not a database URL; use {SUPPORTED}"
        ) from None
    backend = url.get_backend_name()
    if backend not in BACKENDS:
        raise InputError(f"audit log database {backend!r} is not supported; use {SUPPORTED}")
    if backend == "postgresql":
        return
    path = _file_path(url)
    if path is None:
        raise InputError(
            f"audit log {_hide_password(url)} is in memory and would be lost when the "
            f"process ends; give it a file, e.g. {default_audit_url()}"
        )
    try:
        primary = make_url(normalize_db_url(primary_url))
    except ArgumentError:
        return  # the primary URL is checked (and reported) where it is used
    if primary.get_backend_name() not in ("sqlite", "duckdb"):
        return
    primary_path = _file_path(primary)
    if primary_path is not None and _same_file(path, primary_path):
        raise InputError(
            f"audit log {_hide_password(url)} is the source database file {primary_path}, "
            "which is opened read-only; give the audit log a file of its own, "
            f"e.g. {default_audit_url()}"
        )


class AuditLog:
    """Append-only audit events in the store at ``url``; one per process, shared by its
    threads. The engine is made on first use and the table created on first write."""

    # After a failed write, writes fail at once for this long (then the store is asked
    # again): a down store must not cost every page view a connect timeout.
    retry_after_seconds = 10.0

    def __init__(self, url: str):
        self._url = normalize_db_url(url)
        self._engine: Engine | None = None
        self._table_ready = False  # the table is known to exist
        self._lock = threading.Lock()
        self._down: tuple[float, AuditUnavailable] | None = None  # (since, why)

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"AuditLog({_hide_password(self._url)!r})"

    # --- writing --------------------------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Append one event."""
        row = {
            "at": event.at,
            "user_name": event.user,
            "role": event.role,
            "action": event.action,
            "page": event.page,
            "filters": event.filters_json(),
            "format": event.format,
            "row_count": event.rows,
            "client": event.client,
            "detail": event.detail,
        }
        down = self._down
        if down is not None and time.monotonic() - down[0] < self.retry_after_seconds:
            raise down[1]
        try:
            with self._errors("cannot be written"):
                engine = self._ready_for_writes()
                with engine.begin() as conn:
                    conn.execute(audit_table.insert().values(**row))
        except AuditUnavailable as exc:
            self._down = (time.monotonic(), exc)
            raise
        self._down = None

    def _ready_for_writes(self) -> Engine:
        engine = self._get_engine()
        if self._table_ready:
            return engine
        with self._lock:
            if not self._table_ready:
                path = self._file()
                if path is not None and not path.exists():
                    _creatable(path)
                    path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    metadata.create_all(engine, checkfirst=True)
                except SQLAlchemyError:
                    # Another process may have created it between the check and CREATE.
                    if not self._table_exists(engine):
                        raise
                self._table_ready = True
        return engine

    # --- reading --------------------------------------------------------------------

    def read(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        users: Sequence[str] = (),
        actions: Sequence[str] = (),
        limit: int = 10_000,
    ) -> pd.DataFrame:
        """Events in ``[start, end)`` by any of ``users`` doing any of ``actions`` (empty:
        all), newest first, at most ``limit``; columns as in :data:`COLUMNS`."""
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime, got {value!r}")
        for name, values in (("users", users), ("actions", actions)):
            if isinstance(values, str):
                raise ValueError(f"{name} must be a list of strings, not the string {values!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"limit must be a positive whole number, got {limit!r}")
        t = audit_table.c
        stmt = select(
            t.at, t.user_name, t.role, t.action, t.page, t.filters, t.format, t.row_count,
            t.client, t.detail,
        )  # fmt: skip
        if start is not None:
            stmt = stmt.where(t.at >= start)
        if end is not None:
            stmt = stmt.where(t.at < end)
        if users:
            stmt = stmt.where(t.user_name.in_(list(users)))
        if actions:
            stmt = stmt.where(t.action.in_(list(actions)))
        stmt = stmt.order_by(t.at.desc(), t.id.desc()).limit(limit)
        rows: list[tuple[Any, ...]] = []
        with self._errors("cannot be read"):
            engine = self._ready_for_reads()
            if engine is not None:
                with engine.connect() as conn:
                    rows = [tuple(r) for r in conn.execute(stmt)]
        return _frame(rows)

    def users(self) -> list[str]:
        """Every user in the log, sorted: the Audit page's filter choices."""
        with self._errors("cannot be read"):
            engine = self._ready_for_reads()
            if engine is None:
                return []
            with engine.connect() as conn:
                names = conn.execute(select(audit_table.c.user_name).distinct()).scalars()
                return sorted(names)  # in Python's order, whatever the database's collation

    def _ready_for_reads(self) -> Engine | None:
        """The engine, or None when the store holds no log yet (no file, no table):
        reading must not create either."""
        path = self._file()
        if path is not None and not path.exists():
            _creatable(path)  # a path that can never be a file must not pass for empty
            return None
        engine = self._get_engine()
        if not self._table_ready:
            if not self._table_exists(engine):
                return None
            self._table_ready = True
        return engine

    # --- plumbing -------------------------------------------------------------------

    def close(self) -> None:
        """Close the engine's connections (a later call opens a new engine)."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def _file(self) -> Path | None:
        url = make_url(self._url)
        return _file_path(url) if url.get_backend_name() in ("sqlite", "duckdb") else None

    def _get_engine(self) -> Engine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                self._engine = self._make_engine()
            return self._engine

    def _make_engine(self) -> Engine:
        url = make_url(self._url)
        backend = url.get_backend_name()
        if backend == "sqlite":
            # The default pool (QueuePool for a file; SQLAlchemy already allows its
            # connections to move between threads). The timeout waits for another
            # writer's lock instead of failing at once.
            return create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT_SECONDS})
        if backend == "postgresql":
            return create_engine(
                url,
                connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
                pool_pre_ping=True,
            )
        if backend == "duckdb":
            # No pool: DuckDB locks its file per process for as long as a connection is
            # open, so hold it only while writing or reading, leaving it to the CLI.
            return create_engine(url, poolclass=NullPool)
        raise ArgumentError(f"database {backend!r} is not supported; use {SUPPORTED}")

    @staticmethod
    def _table_exists(engine: Engine) -> bool:
        with engine.connect() as conn:
            return inspect(conn).has_table(TABLE)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn any failure of the store into :class:`AuditUnavailable`."""
        try:
            yield
        except (SQLAlchemyError, OSError, ImportError) as exc:
            raise self._unavailable(doing, exc) from exc
        except Exception as exc:  # DuckDB raises its own exception types on open
            if "duckdb" in type(exc).__module__:
                raise self._unavailable(doing, exc) from exc
            raise

    def _unavailable(self, doing: str, exc: Exception) -> AuditUnavailable:
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        try:
            password = make_url(self._url).password
        except ArgumentError:
            password = None
        if password:
            reason = reason.replace(str(password), "***")
        return AuditUnavailable(_hide_password(self._url), f"{doing}: {reason}")


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    import pandas as pd  # lazy: the CLI records events without paying for pandas

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    by_name = dict(zip(COLUMNS, columns, strict=True))
    data: dict[str, Any] = {}
    for name in COLUMNS:
        values = list(by_name[name])
        if name == "at":
            data[name] = pd.Series(values, dtype="datetime64[us, UTC]")
        elif name == "rows":
            data[name] = pd.Series(values, dtype="Int64")
        else:
            data[name] = pd.Series(values, dtype="str")
    return pd.DataFrame(data)
