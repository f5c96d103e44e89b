"""What several story kinds share: the watched metrics, bucket widths, and the
clean-up every detector applies to a trend frame before judging it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from analytics_core.kpis import TREND_COLUMN


@dataclass(frozen=True)
class Metric:
    """A metric series the anomaly and trend detectors watch."""

    kpi: str
    label: str
    per_bucket: bool = False  # a volume: its value depends on the bucket width

    @property
    def series(self) -> str:
        return TREND_COLUMN[self.kpi][0]


WATCHED = (
    Metric("anomaly_rate", "anomaly rate"),
    Metric("p95_ms", "p95 latency"),
    Metric("p99_ms", "p99 latency"),
    Metric("error_rate", "error rate"),
    Metric("requests", "request volume", per_bucket=True),
    Metric("active_users", "active users", per_bucket=True),
    Metric("total_cost", "cost", per_bucket=True),
    Metric("data_processed_gb", "data processed", per_bucket=True),
)
# Watched too where Prometheus gives them (the "resources_trend" series).
WATCHED_RESOURCES = (
    Metric("cpu_usage", "CPU usage"),
    Metric("memory_bytes", "memory in use"),
    Metric("disk_used_ratio", "disk used"),
)
BUCKET_WIDTH = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=28),  # the shortest month: a breach all month lasts at least this
}

# The count that says whether a series' source had any events in a bucket.
ACTIVITY = {
    "detection_trend": "detections",
    "performance_trend": "requests",
    "business_trend": "api_calls",
}


def since_first_activity(frame: pd.DataFrame, series: str) -> pd.DataFrame:
    """Drop the buckets before the data begins: zero-filled, they would read as a quiet
    history that never happened (gauges: before their first value)."""
    if series in ACTIVITY:
        active = (frame[ACTIVITY[series]] > 0).to_numpy()
    else:
        values = frame.drop(columns=["bucket", "partial"], errors="ignore")
        active = values.notna().any(axis=1).to_numpy()
    if not active.any():
        return frame.iloc[:0]
    return frame.iloc[int(active.argmax()) :].reset_index(drop=True)


def days_from(frame: pd.DataFrame, start: object) -> pd.DataFrame:
    """The rows of a daily ``frame`` whose day begins at or after ``start``: from a longer
    daily history, the days a daily trend of a range starting at ``start`` holds whole."""
    return frame[frame["bucket"] >= pd.Timestamp(start)].reset_index(drop=True)


def complete_buckets(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop partial buckets (the running hour or day, a first or last bucket the range
    cuts): their counts are not all in, and a half-counted bucket reads as a drop."""
    if "partial" not in frame.columns:
        return frame
    return frame[~frame["partial"].astype(bool)].reset_index(drop=True)


def capitalized(text: str) -> str:
    """The first letter upper-cased, the rest as it is (``str.capitalize`` lowers it)."""
    return text[:1].upper() + text[1:]
