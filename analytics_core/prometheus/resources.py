"""CPU, memory and disk from Prometheus: per bucket of the filters (in their zone) and per
component, and the latest values. Only Prometheus has them (the request log does not).

Per bucket: the mean CPU ratio (``avg_over_time``), the peak memory (``max_over_time``),
and the disk's used share at the bucket's end (``last_over_time`` of available over size
bytes on the configured mount point). The tenant and endpoint filters do not apply:
these series are per component."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

from analytics_core.config import PrometheusMetrics
from analytics_core.context import QueryContext
from analytics_core.prometheus.client import Client
from analytics_core.prometheus.performance import (
    bucket_intervals,
    bucket_labels_for,
    per_interval,
)
from analytics_core.prometheus.promql import selector
from analytics_core.queries.common import fill_buckets, value_columns

_COMPONENT = ("component",)


def _disk_used(metrics: PrometheusMetrics, window: str) -> str:
    where = {"mountpoint": metrics.disk_mountpoint}
    available = f"max(last_over_time({selector(metrics.disk_available, where)}[{window}]))"
    size = f"max(last_over_time({selector(metrics.disk_size, where)}[{window}]))"
    return f"1 - {available} / {size}"


def resources(client: Client, metrics: PrometheusMetrics, ctx: QueryContext) -> dict:
    """``cpu_usage`` and ``memory_bytes`` (bucket, one column per component),
    ``disk_used_ratio`` (bucket, ``disk_used_ratio``) and ``uptime`` (the share of the
    ``up_job`` scrapes that found it up: availability as Prometheus sees it), each filled
    onto every bucket; and ``resources_trend``, one column per resource KPI, which the
    detectors watch."""
    starts, intervals = bucket_intervals(ctx)
    buckets = bucket_labels_for(ctx, starts)
    cpu = per_interval(
        client,
        lambda w: f"avg by (component) (avg_over_time({selector(metrics.cpu)}[{w}]))",
        intervals,
        _COMPONENT,
    )
    memory = per_interval(
        client,
        lambda w: f"max by (component) (max_over_time({selector(metrics.memory)}[{w}]))",
        intervals,
        _COMPONENT,
    )
    disk = per_interval(client, lambda w: _disk_used(metrics, w), intervals)
    # Uptime: the share of scrapes of the platform's job that found its targets up.
    up = selector("up", {"job": metrics.up_job})
    uptime = per_interval(client, lambda w: f"avg(avg_over_time({up}[{w}]))", intervals)
    out = {}
    for name, found in (("cpu_usage", cpu), ("memory_bytes", memory)):
        frame = pd.DataFrame({"bucket": buckets} | {k[0]: v for k, v in sorted(found.items())})
        out[name] = fill_buckets(frame, ctx.filters, (), ctx.now)
    used = disk.get((), [math.nan] * len(intervals))
    scraped_up = uptime.get((), [math.nan] * len(intervals))
    out["disk_used_ratio"] = fill_buckets(
        pd.DataFrame({"bucket": buckets, "disk_used_ratio": used}), ctx.filters, (), ctx.now
    )
    out["uptime"] = fill_buckets(
        pd.DataFrame({"bucket": buckets, "uptime": scraped_up}), ctx.filters, (), ctx.now
    )
    # One figure per bucket for the detectors: the busiest component's CPU, the
    # components' memory together, the disk.
    cpu_wide, memory_wide = out["cpu_usage"], out["memory_bytes"]
    components, memories = value_columns(cpu_wide), value_columns(memory_wide)
    out["resources_trend"] = pd.DataFrame(
        {
            "bucket": cpu_wide["bucket"],
            "cpu_usage": cpu_wide[components].max(axis=1),
            "memory_bytes": memory_wide[memories].sum(axis=1, min_count=1),
            "disk_used_ratio": out["disk_used_ratio"]["disk_used_ratio"],
            "partial": cpu_wide["partial"],
        }
    )
    return out


def latest(client: Client, metrics: PrometheusMetrics, at: datetime) -> pd.DataFrame:
    """The newest values at ``at`` (within Prometheus' 5-minute lookback): per component,
    ``cpu_usage`` and ``memory_bytes``; the disk's ``disk_used_ratio`` on its own row."""
    rows: dict[str, dict[str, float]] = {}
    for name, metric in (("cpu_usage", metrics.cpu), ("memory_bytes", metrics.memory)):
        for series in client.vector(f"max by (component) ({selector(metric)})", at):
            component = series["metric"].get("component", "")
            rows.setdefault(component, {})[name] = float(series["value"][1])
    disk = client.scalar(_disk_used(metrics, "5m"), at)
    frame = pd.DataFrame(
        [{"component": c, **values} for c, values in sorted(rows.items())],
        columns=["component", "cpu_usage", "memory_bytes"],
    )
    disk_row = pd.DataFrame([{"component": f"disk {metrics.disk_mountpoint}",
                              "disk_used_ratio": disk}])  # fmt: skip
    return pd.concat([frame, disk_row], ignore_index=True)


def gauges(latest: pd.DataFrame) -> pd.DataFrame:
    """The dials of :func:`latest`: per component its CPU, and the disk (label, kpi,
    value)."""
    rows = [
        (f"CPU usage ({row.component})", "cpu_usage", row.cpu_usage)
        for row in latest.itertuples()
        if not pd.isna(row.cpu_usage)
    ]
    rows += [
        (f"Disk used ({row.component.removeprefix('disk ')})", "disk_used_ratio",
         row.disk_used_ratio)
        for row in latest.itertuples()
        if not pd.isna(row.disk_used_ratio)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["label", "kpi", "value"])


def figures(trend: pd.DataFrame) -> dict[str, float | None]:
    """The range's value of each resource KPI from ``resources_trend`` (complete buckets):
    the mean CPU of the busiest component, the peak memory, the disk's latest share."""
    done = trend[~trend["partial"].astype(bool)] if "partial" in trend.columns else trend

    def value(v: float) -> float | None:
        return None if pd.isna(v) else float(v)

    disk = done["disk_used_ratio"].dropna()
    return {
        "cpu_usage": value(done["cpu_usage"].mean()),
        "memory_bytes": value(done["memory_bytes"].max()),
        "disk_used_ratio": value(disk.iloc[-1]) if len(disk) else None,
    }
