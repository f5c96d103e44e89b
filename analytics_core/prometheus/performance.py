"""The Performance KPIs from Prometheus, as :func:`analytics_core.queries.performance.kpis`
returns them from the request log: requests and errors from the request counter's
``increase`` over the range (counter resets handled by PromQL), the mean from the
latency histogram's ``_sum`` and ``_count``, and p50/p95/p99 from ``histogram_quantile``
over the range's bucket increases (so within the histogram's bucket resolution).

The endpoint filter applies (label ``endpoint``); the tenant filter and the caller's scope
apply when ``metrics.tenant_label`` names the label holding the tenant."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

import pandas as pd

from analytics_core.config import PrometheusMetrics
from analytics_core.context import QueryContext
from analytics_core.prometheus.client import Client
from analytics_core.prometheus.promql import Matcher, duration, selector
from analytics_core.queries.bottlenecks import ENDPOINT_SHARES
from analytics_core.queries.common import bucket_index, fill_buckets, shares

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


def per_interval(
    client: Client,
    expression: Callable[[str], str],
    intervals: Sequence[Interval],
    by: tuple[str, ...] = (),
) -> dict[tuple[str, ...], list[float]]:
    """``expression(window)`` over each interval ``[lo, hi)``, evaluated at ``hi`` with
    the interval's length as the window: per series (``by`` label values), one value per
    interval (NaN where it has none). One ``query_range`` per run of equal intervals."""
    out: dict[tuple[str, ...], list[float]] = {}
    for run in _runs(intervals):
        lo, hi = intervals[run[0]]
        step = round((hi - lo).total_seconds())
        last = intervals[run[-1]][1]
        found = client.series(expression(duration(step)), hi, last, step, by)
        for key, values in found.items():
            column = out.setdefault(key, [math.nan] * len(intervals))
            for i in run:
                column[i] = values.get(round(intervals[i][1].timestamp()), math.nan)
    return out


def bucket_intervals(ctx: QueryContext) -> tuple[list[pd.Timestamp], list[Interval]]:
    """The trend's bucket starts up to the observed end, and each bucket's part of the
    range as a UTC interval (Python subtracts two times of one zone by their wall clocks:
    a DST day would read as 24 hours)."""
    f = ctx.filters
    end = pd.Timestamp(f.observed_end(ctx.now))
    # Buckets with some of the range observed (none when it starts in the future).
    starts = [b for b in bucket_index(f) if b < end]
    edges = [max(pd.Timestamp(f.start), b) for b in starts] + [end]
    utc = [e.tz_convert("UTC").to_pydatetime() for e in edges]
    pairs = list(zip(starts, zip(utc, utc[1:], strict=False), strict=True))
    kept = [(b, (lo, hi)) for b, (lo, hi) in pairs if lo < hi]
    return [b for b, _ in kept], [i for _, i in kept]


def bucket_labels_for(ctx: QueryContext, starts: Sequence[pd.Timestamp]) -> list[pd.Timestamp]:
    """Bucket starts as :func:`~analytics_core.queries.common.fill_buckets` takes them
    (naive wall times: UTC for hours, local otherwise)."""
    zone = "UTC" if ctx.filters.granularity == "hour" else ctx.filters.tz
    return [b.tz_convert(zone).tz_localize(None) for b in starts]


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
    frame = pd.DataFrame(
        {
            name: per_interval(client, expression, intervals).get((), [math.nan] * len(intervals))
            for name, expression in expressions.items()
        }
    )
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


def _empty(seconds: float) -> Figures:
    """No requests: as the log says it (a throughput of 0 over a range that has begun)."""
    return {
        "requests": 0,
        "throughput_rps": 0.0 if seconds > 0 else None,
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
        return _empty(seconds)
    row = figures(client, metrics, labels, [(f.start, end)])
    requests = int(row.requests[0])
    if not requests:
        return _empty(seconds)
    out: Figures = {"requests": requests, "throughput_rps": requests / seconds}
    for name in ("error_rate", "availability", "avg_ms", *QUANTILES):
        value = float(row[name][0])
        out[name] = None if math.isnan(value) else value
    return out


def trend(client: Client, metrics: PrometheusMetrics, ctx: QueryContext) -> pd.DataFrame:
    """As :func:`analytics_core.queries.performance.trend`: per bucket of the filters'
    granularity and zone (local days are local days), up to the observed end."""
    f = ctx.filters
    starts, intervals = bucket_intervals(ctx)
    labels = matchers(metrics, ctx)
    columns = ["requests", "errors", "error_rate", "availability", "avg_ms", *QUANTILES]
    if not intervals or labels is None:
        frame = pd.DataFrame(
            {"bucket": pd.Series(dtype="datetime64[us]")} | dict.fromkeys(columns, [])
        )
    else:
        frame = figures(client, metrics, labels, intervals)
        frame.insert(0, "bucket", bucket_labels_for(ctx, starts))
    return fill_buckets(frame[["bucket", *columns]], f, _COUNTS, ctx.now)


_ENDPOINT = ("endpoint", "method")


def _grouped(
    client: Client, promql: str, at: datetime, by: Sequence[str]
) -> dict[tuple[str, ...], float]:
    """An aggregate ``sum by (by)`` (or a quantile over one) at ``at``: value per label
    values (NaN dropped)."""
    out = {}
    for series in client.vector(promql, at):
        value = float(series["value"][1])
        if value == value:
            out[tuple(series["metric"].get(label, "") for label in by)] = value
    return out


def by_endpoint(client: Client, metrics: PrometheusMetrics, ctx: QueryContext) -> pd.DataFrame:
    """As :func:`analytics_core.queries.performance.by_endpoint`: per (method, endpoint),
    the KPIs over the range and the endpoint's share of requests."""
    f = ctx.filters
    end = f.observed_end(ctx.now)
    labels = matchers(metrics, ctx)
    columns = ["endpoint", "method", "requests", "errors", "error_rate", "availability",
               "avg_ms", *QUANTILES, "share"]  # fmt: skip
    if end <= f.start or labels is None:
        return _endpoint_frame([], columns)
    w, by = duration((end - f.start).total_seconds()), ", ".join(_ENDPOINT)
    histogram = metrics.latency

    def increase(metric: str, patterns: dict[str, str] | None = None) -> dict:
        promql = f"sum by ({by}) (increase({selector(metric, labels, patterns)}[{w}]))"
        return _grouped(client, promql, end, _ENDPOINT)

    requests = increase(metrics.requests)
    errors = increase(metrics.requests, {"status": "5.."})
    seconds, count = increase(f"{histogram}_sum"), increase(f"{histogram}_count")
    buckets = selector(f"{histogram}_bucket", labels)
    quantiles = {
        name: _grouped(
            client,
            f"histogram_quantile({q}, sum by (le, {by}) (increase({buckets}[{w}])))",
            end,
            _ENDPOINT,
        )
        for name, q in QUANTILES.items()
    }
    rows = []
    for key in sorted(k for k, v in requests.items() if round(v) > 0):
        n, e = requests[key], errors.get(key, 0.0)
        c = count.get(key, 0.0)
        rows.append(
            {
                "endpoint": key[0],
                "method": key[1],
                "requests": round(n),
                "errors": round(e),
                "error_rate": e / n,
                "availability": 1.0 - e / n,
                "avg_ms": 1000.0 * seconds.get(key, math.nan) / c if c else math.nan,
                **{name: 1000.0 * q.get(key, math.nan) for name, q in quantiles.items()},
            }
        )
    return _endpoint_frame(rows, columns)


def _endpoint_frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """The rows typed as the log's (counts int64, the rest float64), with each share."""
    frame = pd.DataFrame(rows, columns=columns[:-1])
    for column in columns[2:-1]:
        frame[column] = frame[column].astype("int64" if column in _COUNTS else "float64")
    total = frame["requests"].sum()
    frame["share"] = (frame["requests"] / total if total else math.nan) * 1.0
    return frame


def endpoint_shares(
    client: Client, metrics: PrometheusMetrics, ctx: QueryContext, p95_ms: float | None
) -> pd.DataFrame:
    """As :func:`analytics_core.queries.bottlenecks.endpoints`: per endpoint, requests,
    slow requests, errors, total time and their shares. "Slow" is what the histogram can
    say: the requests above the largest bucket bound at or below ``p95_ms`` (so it may
    count a few from p95's own bucket)."""
    f = ctx.filters
    end = f.observed_end(ctx.now)
    labels = matchers(metrics, ctx)
    columns = ["endpoint", "requests", "slow", "errors", "total_ms"]
    rows: list[dict] = []
    if end > f.start and labels is not None:
        w, histogram = duration((end - f.start).total_seconds()), metrics.latency

        def increase(metric: str, by: tuple[str, ...], patterns=None) -> dict:
            promql = (
                f"sum by ({', '.join(by)}) (increase({selector(metric, labels, patterns)}[{w}]))"
            )
            return _grouped(client, promql, end, by)

        requests = increase(metrics.requests, ("endpoint",))
        errors = increase(metrics.requests, ("endpoint",), {"status": "5.."})
        seconds = increase(f"{histogram}_sum", ("endpoint",))
        cumulative = increase(f"{histogram}_bucket", ("endpoint", "le"))
        for (endpoint,), n in sorted(requests.items()):
            counts = {float(le): c for (e, le), c in cumulative.items() if e == endpoint}
            slow = 0.0
            if p95_ms is not None and counts:
                at_or_below = [le for le in counts if le <= p95_ms / 1000.0]
                slow = counts[max(counts)] - (counts[max(at_or_below)] if at_or_below else 0.0)
            if round(n) > 0:
                rows.append(
                    {
                        "endpoint": endpoint,
                        "requests": round(n),
                        "slow": round(slow),
                        "errors": round(errors.get((endpoint,), 0.0)),
                        "total_ms": 1000.0 * seconds.get((endpoint,), 0.0),
                    }
                )
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("requests", "slow", "errors"):
        frame[column] = frame[column].astype("int64")
    frame["total_ms"] = frame["total_ms"].astype("float64")
    return shares(
        frame,
        ENDPOINT_SHARES,
    )
