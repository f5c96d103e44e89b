"""The Performance KPIs from Prometheus, as :func:`analytics_core.queries.performance.kpis`
returns them from the request log: requests and errors from the request counter's
``increase`` over the range (counter resets handled by PromQL), the mean from the
latency histogram's ``_sum`` and ``_count``, and p50/p95/p99 from ``histogram_quantile``
over the range's bucket increases (so within the histogram's bucket resolution).

The endpoint filter applies (label ``endpoint``); the tenant filter and the caller's scope
apply when ``metrics.tenant_label`` names the label holding the tenant."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from analytics_core.config import PrometheusMetrics
from analytics_core.context import QueryContext
from analytics_core.prometheus.client import Client
from analytics_core.prometheus.promql import Matcher, duration, selector
from analytics_core.queries.common import bucket_index, fill_buckets

QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
Figures = dict[str, float | int | None]


def matchers(metrics: PrometheusMetrics, ctx: QueryContext) -> dict[str, Matcher] | None:
    """The label matchers of the filters and scope; None when they leave no tenant."""
    out: dict[str, Matcher] = {}
    if ctx.filters.endpoints:
        out["endpoint"] = ctx.filters.endpoints
    label = metrics.tenant_label
    if label:
        tenants = set(ctx.filters.tenants) if ctx.filters.tenants else None
        if not ctx.scope.unrestricted:
            allowed = set(ctx.scope.tenants or ())
            tenants = allowed if tenants is None else tenants & allowed
        if tenants is not None:
            if not tenants:
                return None
            out[label] = sorted(tenants)
    return out


Interval = tuple[datetime, datetime]
# Points per query_range: a run of more buckets is asked in parts.
MAX_POINTS = 1000
_COUNTS = ("requests", "errors")


def _runs(intervals: Sequence[Interval]) -> list[list[int]]:
    """The indices of ``intervals`` (in UTC) in runs of equal length, each starting where the one
    before ends: one ``query_range`` per run (a DST day, a month, a partial edge bucket
    starts a run of its own)."""
    runs: list[list[int]] = []
    for i, (lo, hi) in enumerate(intervals):
        if runs and len(runs[-1]) < MAX_POINTS:
            plo, phi = intervals[runs[-1][-1]]
            if plo != phi and lo == phi and hi - lo == phi - plo:
                runs[-1].append(i)
                continue
        runs.append([i])
    return runs


def figures(
    client: Client, metrics: PrometheusMetrics, labels: dict[str, Matcher],
    intervals: Sequence[Interval],
) -> pd.DataFrame:  # fmt: skip
    """Per interval ``[lo, hi)``: requests, errors, error_rate, availability, avg_ms and
    the quantiles, from the increases over ``[lo, hi]`` evaluated at ``hi``."""
    histogram = metrics.latency
    buckets = selector(f"{histogram}_bucket", labels)
    expressions = {
        "requests": lambda w: f"sum(increase({selector(metrics.requests, labels)}[{w}]))",
        "errors": lambda w: (
            f"sum(increase({selector(metrics.requests, labels, {'status': '5..'})}[{w}]))"
        ),
        "seconds": lambda w: f"sum(increase({selector(histogram + '_sum', labels)}[{w}]))",
        "count": lambda w: f"sum(increase({selector(histogram + '_count', labels)}[{w}]))",
        **{
            name: lambda w, q=q: f"histogram_quantile({q}, sum by (le) (increase({buckets}[{w}])))"
            for name, q in QUANTILES.items()
        },
    }
    columns: dict[str, list[float]] = {name: [math.nan] * len(intervals) for name in expressions}
    for run in _runs(intervals):
        lo, hi = intervals[run[0]]
        step = round((hi - lo).total_seconds())
        last = intervals[run[-1]][1]
        for name, expression in expressions.items():
            values = client.series(expression(duration(step)), hi, last, step)
            for i in run:
                columns[name][i] = values.get(intervals[i][1].timestamp(), math.nan)
    frame = pd.DataFrame(columns)
    requests = frame.requests.fillna(0.0)
    frame["errors"] = frame.errors.fillna(0.0)
    error_rate = (frame.errors / requests).where(requests > 0)
    out = pd.DataFrame(
        {
            "requests": requests.round().astype("int64"),
            "errors": frame.errors.round().astype("int64"),
            "error_rate": error_rate,
            "availability": 1.0 - error_rate,
            "avg_ms": (1000.0 * frame.seconds / frame["count"]).where(frame["count"] > 0),
            **{name: 1000.0 * frame[name] for name in QUANTILES},
        }
    )
    return out


def _empty() -> Figures:
    return {
        "requests": 0,
        "throughput_rps": None,
        "error_rate": None,
        "availability": None,
        "avg_ms": None,
        **dict.fromkeys(QUANTILES),
    }


def kpis(client: Client, metrics: PrometheusMetrics, ctx: QueryContext) -> Figures:
    f = ctx.filters
    end = f.observed_end(ctx.now)
    seconds = (end - f.start).total_seconds()
    labels = matchers(metrics, ctx)
    if seconds <= 0 or labels is None:
        return _empty()
    row = figures(client, metrics, labels, [(f.start, end)])
    requests = int(row.requests[0])
    if not requests:
        return _empty()
    out: Figures = {"requests": requests, "throughput_rps": requests / seconds}
    for name in ("error_rate", "availability", "avg_ms", *QUANTILES):
        value = float(row[name][0])
        out[name] = None if math.isnan(value) else value
    return out


def trend(client: Client, metrics: PrometheusMetrics, ctx: QueryContext) -> pd.DataFrame:
    """As :func:`analytics_core.queries.performance.trend`: per bucket of the filters'
    granularity and zone (local days are local days), up to the observed end."""
    f = ctx.filters
    end = f.observed_end(ctx.now)
    starts = [b for b in bucket_index(f) if b < pd.Timestamp(end)]
    edges = [max(pd.Timestamp(f.start), b) for b in starts] + [pd.Timestamp(end)]
    # In UTC: Python subtracts two times of one zone by their wall clocks (a DST day
    # would read as 24 hours).
    utc = [e.tz_convert("UTC").to_pydatetime() for e in edges]
    intervals = list(zip(utc, utc[1:], strict=False))
    labels = matchers(metrics, ctx)
    columns = ["requests", "errors", "error_rate", "availability", "avg_ms", *QUANTILES]
    if not intervals or labels is None:
        frame = pd.DataFrame(
            {"bucket": pd.Series(dtype="datetime64[us]")} | dict.fromkeys(columns, [])
        )
    else:
        frame = figures(client, metrics, labels, intervals)
        zone = "UTC" if f.granularity == "hour" else f.tz
        frame.insert(0, "bucket", [b.tz_convert(zone).tz_localize(None) for b in starts])
    return fill_buckets(frame[["bucket", *columns]], f, _COUNTS, ctx.now)
