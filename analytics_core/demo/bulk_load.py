"""Bulk loading of generated frames: DuckDB scans a registered pandas frame,
PostgreSQL gets ``COPY ... FROM STDIN``; other dialects fall back to ``executemany``."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from analytics_core import schema

# Every table of the contract, in its order (tenants, users and detectors first).
TABLE_NAMES = tuple(t.name for t in schema.TABLES)
_TABLES = {t.name: t for t in schema.TABLES}
_COPY_CHUNK = 100_000


def load(conn: Connection, frames: dict[str, pd.DataFrame]) -> None:
    """Insert every frame into its table, in the connection's transaction."""
    dialect = conn.dialect.name
    for name in TABLE_NAMES:
        frame = frames.get(name)
        if frame is None or frame.empty:
            continue
        table = _TABLES[name]
        columns = [c.name for c in table.columns]
        frame = frame[columns]
        if dialect == "duckdb":
            _load_duckdb(conn, name, columns, frame)
        elif dialect == "postgresql":
            _load_postgres(conn, name, columns, frame)
        else:
            records = frame.astype(object).where(frame.notna(), None).to_dict("records")
            conn.execute(table.insert(), records)


def _load_duckdb(conn: Connection, name: str, columns: list[str], frame: pd.DataFrame) -> None:
    raw = conn.connection.driver_connection  # duckdb_engine.ConnectionWrapper
    view = f"_seed_{name}"
    cols = ", ".join(f'"{c}"' for c in columns)
    raw.register(view, frame)
    try:
        raw.execute(f'INSERT INTO "{name}" ({cols}) SELECT {cols} FROM "{view}"')
    finally:
        raw.unregister(view)


def _load_postgres(conn: Connection, name: str, columns: list[str], frame: pd.DataFrame) -> None:
    raw = conn.connection.driver_connection  # psycopg.Connection
    frame = frame.copy()
    for col in columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = _pg_timestamps(frame[col])
    cols = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({cols}) FROM STDIN (FORMAT csv)') as copy:
        for i in range(0, len(frame), _COPY_CHUNK):
            copy.write(frame.iloc[i : i + _COPY_CHUNK].to_csv(index=False, header=False))


def _pg_timestamps(values: pd.Series) -> np.ndarray:
    stamps = values.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.char.add(np.datetime_as_string(stamps, unit="us"), "+00")
    return np.where(np.isnat(stamps), None, text.astype(object))
