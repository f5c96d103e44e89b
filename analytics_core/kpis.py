"""KPI definitions: the key, label, unit and direction of every figure the app shows.

The SQL that computes each KPI lives in ``analytics_core.queries``; this module
is the catalogue that pages, exports, alerts and the config validate against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Unit = Literal["count", "ratio", "ms", "rps", "gb", "bytes", "money", "minutes"]


@dataclass(frozen=True)
class KpiDef:
    key: str
    label: str
    unit: Unit
    # True: a rise is good; False: a rise is bad; None: neutral (volumes).
    higher_is_better: bool | None
    description: str


_DEFS = (
    KpiDef("total_detections", "Detections", "count", None, "Detection runs, any status"),
    KpiDef("failed_detections", "Failed detections", "count", False, "Runs with status failed"),
    KpiDef("total_anomalies", "Anomalies", "count", None, "Sum of n_anomalies, successful runs"),
    KpiDef(
        "anomaly_rate",
        "Anomaly rate",
        "ratio",
        None,
        "Anomalies / samples scored, successful runs",
    ),
    KpiDef("avg_confidence", "Avg confidence", "ratio", True, "Mean of mean_score, successful"),
    KpiDef("avg_execution_ms", "Avg execution", "ms", False, "Mean run time, successful runs"),
    KpiDef(
        "p95_execution_ms", "p95 execution", "ms", False, "95th percentile run time, successful"
    ),
    KpiDef(
        "false_positive_rate",
        "False-positive rate",
        "ratio",
        False,
        "False positives / reviewed anomalies, feedback on results created in range",
    ),
    KpiDef("requests", "Requests", "count", None, "API requests"),
    KpiDef("throughput_rps", "Throughput", "rps", None, "Requests per second over the range"),
    KpiDef("error_rate", "Error rate", "ratio", False, "Share of requests with status >= 500"),
    KpiDef("availability", "Availability", "ratio", True, "1 - error rate"),
    KpiDef("avg_ms", "Avg latency", "ms", False, "Mean request duration"),
    KpiDef("p50_ms", "p50 latency", "ms", False, "Median request duration"),
    KpiDef("p95_ms", "p95 latency", "ms", False, "95th percentile request duration"),
    KpiDef("p99_ms", "p99 latency", "ms", False, "99th percentile request duration"),
    KpiDef(
        "active_users",
        "Active users",
        "count",
        True,
        "Distinct users with a request or a session started in range",
    ),
    KpiDef("new_users", "New users", "count", True, "Users created in range"),
    KpiDef("sessions", "Sessions", "count", True, "Sessions started in range"),
    KpiDef(
        "avg_session_minutes",
        "Avg session",
        "minutes",
        True,
        "Mean length of ended sessions started in range",
    ),
    KpiDef("api_calls", "API calls", "count", None, "API requests"),
    KpiDef("data_processed_gb", "Data processed", "gb", None, "Sum of request bytes / 1e9"),
    KpiDef(
        "total_cost",
        "Total cost",
        "money",
        False,
        "Compute hours, GB processed and API calls times the config's unit prices",
    ),
    KpiDef("avg_response_ms", "Avg response", "ms", False, "Mean request duration"),
    # From Prometheus (data_sources.prometheus): per bucket, on the Performance page.
    KpiDef("cpu_usage", "CPU usage", "ratio", False, "Busiest component's mean CPU share"),
    KpiDef("memory_bytes", "Memory in use", "bytes", False, "Sum of the components' peaks"),
    KpiDef("disk_used_ratio", "Disk used", "ratio", False, "Used share of the watched disk"),
)

KPIS: dict[str, KpiDef] = {d.key: d for d in _DEFS}

DETECTION_KPIS = (
    "total_detections",
    "failed_detections",
    "total_anomalies",
    "anomaly_rate",
    "avg_confidence",
    "avg_execution_ms",
    "p95_execution_ms",
    "false_positive_rate",
)
PERFORMANCE_KPIS = (
    "requests",
    "throughput_rps",
    "error_rate",
    "availability",
    "avg_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
)
BUSINESS_KPIS = (
    "active_users",
    "new_users",
    "sessions",
    "avg_session_minutes",
    "api_calls",
    "data_processed_gb",
    "total_cost",
)
# CPU, memory and disk: series only Prometheus gives (no cards).
RESOURCE_KPIS = ("cpu_usage", "memory_bytes", "disk_used_ratio")
OVERVIEW_KPIS = (
    "total_detections",
    "anomaly_rate",
    "avg_response_ms",
    "availability",
    "data_processed_gb",
    "active_users",
)

NO_DATA = "no data"


def is_missing(value: float | int | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _rate_scale(per_second: float) -> tuple[float, str]:
    """Factor and unit for a rate in req/s: the first of req/s, req/min, req/h that reads
    at least 1, so a quiet tenant shows "12.00 req/h", not "0.003 req/s"."""
    for factor, unit in ((1, "req/s"), (60, "req/min")):
        if abs(per_second) * factor >= 1:
            return factor, unit
    return 3600, "req/h"


def format_kpi(key: str, value: float | int | None, currency: str = "USD") -> str:
    """Human text for a KPI value; a missing value reads "no data", never 0."""
    if is_missing(value):
        return NO_DATA
    unit = KPIS[key].unit
    v = float(value)  # type: ignore[arg-type]
    if unit == "count":
        return f"{int(round(v)):,}"
    if unit == "ratio":
        return f"{v * 100:.2f}%"
    if unit == "ms":
        return f"{v:,.1f} ms"
    if unit == "rps":
        if v == 0:
            return "0 req/s"
        factor, rate_unit = _rate_scale(v)
        return f"{v * factor:,.2f} {rate_unit}"
    if unit == "gb":
        return f"{v:,.3f} GB"
    if unit == "bytes":
        return f"{v / 1e9:,.2f} GB"
    if unit == "minutes":
        return f"{v:,.1f} min"
    return f"{v:,.2f} {currency}"


def delta(current: float | int | None, previous: float | int | None) -> float | None:
    """Change from the previous period; None when either side has no data."""
    if is_missing(current) or is_missing(previous):
        return None
    return float(current) - float(previous)  # type: ignore[arg-type]


def format_delta(
    key: str, current: float | int | None, previous: float | int | None, currency: str = "USD"
) -> str | None:
    """Delta text for a KPI card (ratios in percentage points, rates in the current
    value's unit), None when unknown. A change that rounds to nothing reads "±0",
    so it never carries a sign, or an arrow, it does not have."""
    d = delta(current, previous)
    if d is None:
        return None
    unit = KPIS[key].unit
    if unit == "ratio":
        text = f"{abs(d) * 100:.2f} pp"
    elif unit == "count":
        text = f"{abs(int(round(d))):,}"
    elif unit == "rps":
        factor, rate_unit = _rate_scale(float(current) or d)  # type: ignore[arg-type]
        text = f"{abs(d) * factor:,.2f} {rate_unit}"
    else:
        text = format_kpi(key, abs(d), currency)
    if not any(c in "123456789" for c in text.split(" ")[0]):
        return "±" + text
    return ("+" if d > 0 else "-") + text


def delta_color(key: str, significant: bool | None = None) -> str:
    """Streamlit metric delta colour: green means better, and only for a change that is
    more than noise (``significant`` False or unknown greys it out)."""
    better = KPIS[key].higher_is_better
    if better is None or not significant:
        return "off"
    return "normal" if better else "inverse"


def area_of(key: str) -> str:
    """The page a KPI belongs to (overview-only keys map to their source area)."""
    if key in DETECTION_KPIS:
        return "detection"
    if key in PERFORMANCE_KPIS or key in RESOURCE_KPIS or key == "avg_response_ms":
        return "performance"
    return "business"


# Where each KPI's per-bucket values live in the page series: (series, column).
TREND_COLUMN: dict[str, tuple[str, str]] = {
    **{key: ("resources_trend", key) for key in RESOURCE_KPIS},
    "total_detections": ("detection_trend", "detections"),
    "failed_detections": ("detection_trend", "failed"),
    "total_anomalies": ("detection_trend", "anomalies"),
    "anomaly_rate": ("detection_trend", "anomaly_rate"),
    "avg_confidence": ("detection_trend", "avg_confidence"),
    "avg_execution_ms": ("detection_trend", "avg_execution_ms"),
    "p95_execution_ms": ("detection_trend", "p95_execution_ms"),
    "requests": ("performance_trend", "requests"),
    "error_rate": ("performance_trend", "error_rate"),
    "availability": ("performance_trend", "availability"),
    "avg_ms": ("performance_trend", "avg_ms"),
    "avg_response_ms": ("performance_trend", "avg_ms"),
    "p50_ms": ("performance_trend", "p50_ms"),
    "p95_ms": ("performance_trend", "p95_ms"),
    "p99_ms": ("performance_trend", "p99_ms"),
    "active_users": ("business_trend", "active_users"),
    "new_users": ("business_trend", "new_users"),
    "sessions": ("business_trend", "sessions"),
    "api_calls": ("business_trend", "api_calls"),
    "data_processed_gb": ("business_trend", "data_processed_gb"),
    "total_cost": ("business_trend", "cost"),
}

# A per-bucket rate or percentile over fewer events than this is noise, not signal
# (a p99 of 20 requests is their maximum): detectors treat such buckets as missing.
MIN_BUCKET_EVENTS: dict[str, int] = {
    "anomaly_rate": 5,
    "avg_confidence": 5,
    "avg_execution_ms": 5,
    "p95_execution_ms": 20,
    "error_rate": 50,
    "availability": 50,
    "avg_ms": 10,
    "avg_response_ms": 10,
    "p50_ms": 10,
    "p95_ms": 20,
    "p99_ms": 100,
}
_SUPPORT = {"detection_trend": "detections", "performance_trend": "requests"}


def min_events(key: str) -> tuple[str, int] | None:
    """(count column, minimum events) behind a per-bucket rate or percentile column;
    None for volumes, which mean something in any bucket."""
    minimum = MIN_BUCKET_EVENTS.get(key, 0)
    support = _SUPPORT.get(TREND_COLUMN[key][0]) if key in TREND_COLUMN else None
    return (support, minimum) if support and minimum else None


def bucket_values(frame, key: str):
    """A KPI's per-bucket values from its trend frame, NaN where too few events back them."""
    values = frame[TREND_COLUMN[key][1]].astype(float)
    need = min_events(key)
    if need and need[0] in frame.columns:
        values = values.where(frame[need[0]] >= need[1])
    return values


def judged(frame, column: str):
    """A trend column as charts should draw it: rates and percentiles of buckets with
    too few events as NaN (a gap, not a spike), volumes unchanged."""
    values = frame[column].astype(float)
    need = min_events(column) if column in TREND_COLUMN else None
    if need and need[0] in frame.columns:
        values = values.where(frame[need[0]] >= need[1])
    return values


# Columns of page series and tables that are not KPI keys themselves: trend columns
# named after their KPI's figure, and per-row figures only the breakdown and bottleneck
# tables have.
_EXTRA_COLUMNS = (
    KpiDef("share", "Share of requests", "ratio", None, "This row's requests / all requests"),
    KpiDef("errors", "Server errors", "count", False, "Requests with status >= 500"),
    KpiDef("slow", "Slow requests", "count", False, "Requests slower than the range's p95"),
    KpiDef("runs", "Runs", "count", None, "Detection runs, any status"),
    KpiDef("total_ms", "Total time", "ms", None, "Summed request or execution time"),
    KpiDef("request_share", "Share of requests", "ratio", None, "Row's requests / all"),
    KpiDef("slow_share", "Share of slow requests", "ratio", None, "Row's slow requests / all"),
    KpiDef("error_share", "Share of errors", "ratio", None, "Row's server errors / all"),
    KpiDef("run_share", "Share of runs", "ratio", None, "Row's runs / all runs"),
    KpiDef("failure_share", "Share of failed runs", "ratio", None, "Row's failed runs / all"),
    KpiDef("time_share", "Share of time", "ratio", None, "Row's total time / all"),
)
_COLUMN_KPI: dict[str, KpiDef] = {d.key: d for d in _EXTRA_COLUMNS}
for _key, (_series, _column) in TREND_COLUMN.items():
    _COLUMN_KPI.setdefault(_column, KPIS[_key])  # first wins: avg_ms is "Avg latency"

# The bottleneck tables put each figure's previous-period value beside it as
# ``<column>_before``: same unit, labelled as the previous period's.
PREVIOUS_SUFFIX = "_before"


def base_column(column: str) -> str:
    """``column`` without the previous-period suffix (``time_share_before`` -> ``time_share``)."""
    return column.removesuffix(PREVIOUS_SUFFIX) or column


def column_def(column: str) -> KpiDef | None:
    """The KPI definition (label, unit, direction) behind a series or table column;
    None for keys and labels such as ``endpoint`` or ``plan``."""
    found = KPIS.get(column) or _COLUMN_KPI.get(column)
    if found is None and base_column(column) != column:
        return column_def(base_column(column))
    return found


# Headers for key columns of tables whose snake_case name is not a KPI.
_KEY_COLUMN_LABELS = {
    "tenant_id": "Tenant ID",
    "name": "Tenant",
    "detector_id": "Detector ID",
    "compute_hours": "Compute hours",
}


def table_header(column: str) -> str:
    """A table's header for ``column``: its key-column name, else :func:`column_label`."""
    return _KEY_COLUMN_LABELS.get(column, column_label(column))


def column_label(column: str) -> str:
    """Human header or legend name for a column: the KPI's label, else the words."""
    found = KPIS.get(column) or _COLUMN_KPI.get(column)
    if found is not None:
        return found.label
    if base_column(column) != column:
        return f"{column_label(base_column(column))} (previous period)"
    words = column.replace("_", " ")
    return words[:1].upper() + words[1:]
