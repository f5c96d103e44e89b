"""A small hand-built dataset (pandas frames) and its loader.

Tests compute expected KPIs from these frames with numpy/pandas, independently
of the SQL under test. The window spans the Europe/Paris DST change
(2026-03-29) so time-zone bucketing is exercised, and some events sit exactly on
day boundaries so half-open ranges are too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, event, insert

from analytics_core import schema

T0 = pd.Timestamp("2026-03-20T00:00:00Z")
DAYS = 14
ALGORITHMS = ("iforest", "lof", "zscore")
ENDPOINTS = ("/api/v1/detect", "/api/v1/datasets", "/api/v1/results", "/api/v1/health")


@dataclass(frozen=True)
class Dataset:
    tenants: pd.DataFrame
    users: pd.DataFrame
    detectors: pd.DataFrame
    detection_results: pd.DataFrame
    detection_feedback: pd.DataFrame
    api_requests: pd.DataFrame
    user_sessions: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        return {t.name: getattr(self, t.name) for t in schema.TABLES}


def _times(rng: np.random.Generator, n: int, on_boundaries: int = 0) -> pd.Series:
    seconds = rng.integers(0, DAYS * 86400, n)
    # A few events exactly at midnight UTC, to pin the half-open range edges.
    seconds[:on_boundaries] = rng.integers(1, DAYS, on_boundaries) * 86400
    return pd.Series(T0 + pd.to_timedelta(seconds, unit="s"))


def make_dataset(seed: int = 7) -> Dataset:
    rng = np.random.default_rng(seed)
    tenants = pd.DataFrame(
        {
            "tenant_id": ["t_a", "t_b", "t_c"],
            "name": ["Alpha", "Beta", "Gamma"],
            "plan": ["pro", "free", "enterprise"],
            "created_at": [pd.Timestamp("2026-01-01T00:00:00Z")] * 3,
        }
    )
    n_users = 12
    users = pd.DataFrame(
        {
            "user_id": [f"u{i:02d}" for i in range(n_users)],
            "tenant_id": [tenants.tenant_id[i % 3] for i in range(n_users)],
            "created_at": list(pd.Series([pd.Timestamp("2026-02-01T00:00:00Z")] * 6))
            + list(_times(rng, 6)),
        }
    )
    detectors = pd.DataFrame(
        {
            "detector_id": [f"d{i}" for i in range(5)],
            "tenant_id": ["t_a", "t_a", "t_b", "t_c", "t_c"],
            "name": [f"detector {i}" for i in range(5)],
            "algorithm": ["iforest", "lof", "zscore", "iforest", "lof"],
            "created_at": [pd.Timestamp("2026-01-15T00:00:00Z")] * 5,
        }
    )

    n = 400
    det_idx = rng.integers(0, 5, n)
    n_samples = rng.integers(10, 1000, n)
    status = np.where(rng.random(n) < 0.1, "failed", "success")
    detection_results = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "created_at": _times(rng, n, on_boundaries=10),
            "tenant_id": detectors.tenant_id.to_numpy()[det_idx],
            "detector_id": detectors.detector_id.to_numpy()[det_idx],
            "algorithm": detectors.algorithm.to_numpy()[det_idx],
            "dataset_id": [f"ds{i % 37}" for i in range(n)],
            "n_samples": n_samples,
            "n_anomalies": rng.binomial(n_samples, 0.04),
            # Failed runs keep a score and a time so that "successful only" is tested.
            "mean_score": rng.random(n).round(6),
            "threshold": rng.uniform(0.5, 0.9, n).round(6),
            "execution_time_ms": rng.lognormal(5, 1, n).round(3),
            "status": status,
        }
    )

    m = 150
    reviewed = rng.choice(detection_results.id.to_numpy(), m, replace=False)
    anomalies = detection_results.set_index("id").loc[reviewed, "n_anomalies"].to_numpy()
    confirmed = rng.integers(0, anomalies + 1)
    false_pos = anomalies - confirmed
    detection_feedback = pd.DataFrame(
        {
            "id": np.arange(1, m + 1),
            "detection_id": reviewed,
            "created_at": detection_results.set_index("id")
            .loc[reviewed, "created_at"]
            .reset_index(drop=True)
            + pd.to_timedelta(rng.integers(60, 86400, m), unit="s"),
            "user_id": rng.choice(users.user_id.to_numpy(), m),
            "confirmed": confirmed,
            "false_positives": false_pos,
        }
    )

    k = 3000
    tenant_of = rng.choice(tenants.tenant_id.to_numpy(), k, p=[0.5, 0.2, 0.3])
    user_ids = rng.choice(users.user_id.to_numpy(), k).astype(object)
    user_ids[rng.random(k) < 0.1] = None
    api_requests = pd.DataFrame(
        {
            "id": np.arange(1, k + 1),
            "ts": _times(rng, k, on_boundaries=40),
            "tenant_id": tenant_of,
            "user_id": user_ids,
            "method": rng.choice(["GET", "POST"], k),
            "endpoint": rng.choice(ENDPOINTS, k),
            "status_code": rng.choice(
                [200, 201, 404, 500, 503], k, p=[0.8, 0.08, 0.06, 0.04, 0.02]
            ),
            "duration_ms": rng.lognormal(4, 0.8, k).round(3),
            "request_bytes": rng.integers(100, 5_000_000, k),
            "response_bytes": rng.integers(100, 50_000, k),
        }
    )

    s = 300
    started = _times(rng, s, on_boundaries=5)
    ended = started + pd.to_timedelta(rng.integers(30, 7200, s), unit="s")
    ended = ended.astype(object)
    ended[rng.random(s) < 0.1] = None
    user_sessions = pd.DataFrame(
        {
            "session_id": [f"s{i:04d}" for i in range(s)],
            "user_id": rng.choice(users.user_id.to_numpy(), s),
            "tenant_id": "",
            "started_at": started,
            "ended_at": ended,
        }
    )
    user_sessions["tenant_id"] = user_sessions.user_id.map(users.set_index("user_id").tenant_id)
    return Dataset(
        tenants,
        users,
        detectors,
        detection_results,
        detection_feedback,
        api_requests,
        user_sessions,
    )


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    out = []
    for row in frame.astype(object).to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                clean[key] = None
            elif isinstance(value, pd.Timestamp):
                clean[key] = value.to_pydatetime()
            elif hasattr(value, "item"):
                clean[key] = value.item()
            else:
                clean[key] = value
        out.append(clean)
    return out


def load_dataset(engine: Engine, data: Dataset) -> None:
    """Create the tables and insert the frames (small: plain INSERTs are fine)."""
    schema.create_tables(engine)
    with engine.begin() as conn:
        for table in schema.TABLES:
            conn.execute(insert(table), _records(getattr(data, table.name)))


def executed_statements(target: Engine | type[Engine], call) -> list[str]:
    """The SQL statements ``call()`` executes on ``target`` (an engine, or ``Engine`` for
    every engine)."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(target, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(target, "before_cursor_execute", record)
    return statements
