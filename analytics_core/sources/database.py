"""The primary database source: engines for PostgreSQL (psycopg 3) and DuckDB.

Engines opened for reading are read-only at the connection level, so the app
cannot write to the source tables even by mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.sql import Executable

from analytics_core.config import normalize_db_url
from analytics_core.filters import InputError, clip
from analytics_core.sources import SourceUnavailable


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


SUPPORTED = "postgresql://user@host:port/db or duckdb:///path/to/file.duckdb"


def dialect_of(url: str) -> str:
    """The backend of a database URL; anything but PostgreSQL or DuckDB is bad input."""
    try:
        backend = make_url(normalize_db_url(url)).get_backend_name()
    except ArgumentError:
        raise InputError(f"{clip(url)!r} is not a database URL; use {SUPPORTED}") from None
    if backend not in ("postgresql", "duckdb"):
        raise InputError(f"database {clip(backend)!r} is not supported; use {SUPPORTED}")
    return backend


def make_engine(url: str, read_only: bool = True) -> Engine:
    """An engine for ``url``; ``read_only`` engines refuse writes in the database itself."""
    url = normalize_db_url(url)
    backend = dialect_of(url)
    connect_args: dict[str, object] = {}
    if backend == "duckdb":
        database = make_url(url).database
        if read_only:
            if not database or database == ":memory:" or not Path(database).exists():
                raise SourceUnavailable(
                    "primary database",
                    f"DuckDB file {database!r} does not exist",
                    "Run `analytics demo` (creates the demo database) or "
                    "`analytics seed --db duckdb:///PATH`",
                )
            connect_args["read_only"] = True
    elif backend == "postgresql":
        connect_args["connect_timeout"] = 5
        # work_mem: a page's aggregates over rollup rows (a year of sketch bins) hash in
        # memory instead of spilling to disk at the 4 MB default; per sort or hash node of
        # this connection only, a few of which run at once (QUERY_WORKERS).
        # jit=off: a page's statements are short; compiling them (about 0.1 s measured on
        # a year of rollup rows) costs more than it saves.
        options = ["-c work_mem=64MB", "-c jit=off"]
        if read_only:
            options.append("-c default_transaction_read_only=on")
        connect_args["options"] = " ".join(options)
    try:
        return create_engine(url, connect_args=connect_args, pool_pre_ping=backend != "duckdb")
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise InputError(f"cannot use {redact(url)} ({exc}); use {SUPPORTED}") from None


def unavailable(engine: Engine, exc: Exception) -> SourceUnavailable:
    backend = engine.dialect.name
    hint = (
        "Check that PostgreSQL is running and DATABASE_URL (or --db) points at it"
        if backend == "postgresql"
        else "Check the DuckDB file path; another process may hold it open for writing"
    )
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return SourceUnavailable(f"primary database {redact(str(engine.url))}", detail, hint)


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn driver errors into :class:`SourceUnavailable` naming the source and the fix."""
    try:
        yield
    except (DBAPIError, SQLAlchemyError) as exc:
        raise unavailable(engine, exc) from exc
    except Exception as exc:  # DuckDB raises its own exception types on open
        if "duckdb" in type(exc).__module__:
            raise unavailable(engine, exc) from exc
        raise


def read_frame(engine: Engine, stmt: Executable, *, serial: bool = False) -> pd.DataFrame:
    """Run an aggregate query and return its (small) result as a DataFrame.

    ``serial``: without PostgreSQL's parallel workers, for the short statements over
    rollup rows that a page runs several at once (QUERY_WORKERS): workers on top of those
    oversubscribe the cores (the Business page at 10M rows: 530 ms with them, 320 ms
    without, on 2 cores). Scans of raw event tables keep them: there they pay."""
    with database_errors(engine), engine.connect() as conn:
        if serial and conn.dialect.name == "postgresql":
            # LOCAL: for this transaction only, which ends when the connection goes back
            # to the pool.
            conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        result = conn.execute(stmt)
        # Plain tuples: pandas probes a Row for attributes, twice as slow per row.
        rows = [tuple(row) for row in result.fetchall()]
        return pd.DataFrame(rows, columns=list(result.keys()))


def read_row(engine: Engine, stmt: Executable) -> dict[str, object]:
    frame = read_frame(engine, stmt)
    if frame.empty:
        return {c: None for c in frame.columns}
    return {c: _plain(frame.iloc[0][c]) for c in frame.columns}


def _plain(value: object) -> object:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if pd.isna(value):  # type: ignore[arg-type]
        return None
    if hasattr(value, "item"):
        return value.item()  # type: ignore[union-attr]
    return value
