"""The demo's traffic as the platform's exporter would have exposed it to Prometheus:
OpenMetrics text (``analytics seed --prometheus-out FILE``) that ``promtool tsdb
create-blocks-from openmetrics`` backfills, so a local Prometheus serves the same requests
as the database (``make run-prometheus``).

Counted in the database per scrape interval (requests per method, endpoint and status;
the latency histogram's buckets and sum per method and endpoint), then made cumulative,
as counters are. The resource gauges (CPU per component, memory, the disk on ``/``) are
derived from the same traffic: busier intervals use more CPU, written bytes fill the disk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
from prometheus_client.core import CollectorRegistry, Metric, Sample
from prometheus_client.openmetrics.exposition import generate_latest
from sqlalchemy import Engine, cast, extract, func, literal, select
from sqlalchemy.types import BigInteger

from analytics_core.schema import api_requests as ar
from analytics_core.sources.database import read_frame

# The platform exporter's buckets (seconds), as a Prometheus client library's defaults.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DISK_SIZE = 500e9


def _per_interval(engine: Engine, seconds: int, days: float) -> pd.DataFrame:
    """Per interval end (Unix seconds), method, endpoint and status: requests, requests
    at or under each bucket bound, seconds and bytes over the last ``days`` of requests,
    counted in the database."""
    end = (func.floor(extract("epoch", ar.c.ts) / seconds) + 1) * seconds
    keys = [cast(end, BigInteger).label("scraped_at"), ar.c.method, ar.c.endpoint, ar.c.status_code]
    stmt = select(
        *keys,
        func.count().label("requests"),
        *(
            func.count().filter(ar.c.duration_ms <= le * 1000).label(f"le_{i}")
            for i, le in enumerate(LATENCY_BUCKETS)
        ),
        func.coalesce(func.sum(ar.c.duration_ms), 0.0).label("ms"),
        func.coalesce(func.sum(ar.c.request_bytes), 0.0).label("bytes"),
    )
    newest = select(func.max(ar.c.ts)).scalar_subquery()
    since = newest - literal(timedelta(days=days))
    return read_frame(engine, stmt.where(ar.c.ts >= since).group_by(*keys))


def _samples(family: Metric, name: str, labels: dict, at: pd.Series, values: pd.Series):
    for t, v in zip(at, values, strict=True):
        family.samples.append(Sample(name, labels, float(v), float(t)))


# A Prometheus keeps 15 days by default: the demo's export covers as much.
DAYS = 15.0


def render(engine: Engine, interval: timedelta = timedelta(minutes=5), days: float = DAYS) -> bytes:
    """The OpenMetrics text of the last ``days`` of requests in ``engine``, scraped every
    ``interval`` (the first interval may be partial)."""
    seconds = int(interval.total_seconds())
    rows = _per_interval(engine, seconds, days)
    requests = Metric("pynomaly_http_requests", "HTTP requests", "counter")
    latency = Metric("pynomaly_http_request_duration_seconds", "HTTP latency", "histogram")
    cpu = Metric("pynomaly_cpu_usage_ratio", "CPU in use", "gauge")
    memory = Metric("pynomaly_memory_usage_bytes", "memory in use", "gauge")
    available = Metric("node_filesystem_avail_bytes", "free bytes", "gauge")
    size = Metric("node_filesystem_size_bytes", "bytes", "gauge")
    up = Metric("up", "scrape succeeded", "gauge")
    if rows.empty:
        families = [requests, latency, cpu, memory, available, size, up]
    else:
        times = pd.RangeIndex(
            int(rows.scraped_at.min()), int(rows.scraped_at.max()) + seconds, seconds
        )

        def cumulative(frame: pd.DataFrame, column: str) -> pd.Series:
            return frame.groupby("scraped_at")[column].sum().reindex(times, fill_value=0).cumsum()

        for (method, endpoint, status), group in rows.groupby(
            ["method", "endpoint", "status_code"]
        ):
            labels = {"method": method, "endpoint": endpoint, "status": str(status)}
            _samples(requests, "pynomaly_http_requests_total", labels, times,
                     cumulative(group, "requests"))  # fmt: skip
        for (method, endpoint), group in rows.groupby(["method", "endpoint"]):
            labels = {"method": method, "endpoint": endpoint}
            name = "pynomaly_http_request_duration_seconds"
            for i, le in enumerate(LATENCY_BUCKETS):
                _samples(latency, f"{name}_bucket", {**labels, "le": repr(le)}, times,
                         cumulative(group, f"le_{i}"))  # fmt: skip
            total = cumulative(group, "requests")
            _samples(latency, f"{name}_bucket", {**labels, "le": "+Inf"}, times, total)
            _samples(latency, f"{name}_count", labels, times, total)
            _samples(latency, f"{name}_sum", labels, times, cumulative(group, "ms") / 1000.0)
        busy = rows.groupby("scraped_at").requests.sum().reindex(times, fill_value=0)
        load = busy / max(busy.max(), 1)
        for component, base, span, resident in (("api", 0.08, 0.7, 350e6),
                                                 ("worker", 0.15, 0.5, 1.2e9)):  # fmt: skip
            _samples(cpu, cpu.name, {"component": component}, times, base + span * load)
            _samples(memory, memory.name, {"component": component}, times,
                     resident * (1 + 0.3 * load))  # fmt: skip
        always = pd.Series(1.0, index=times)
        used = 0.35 * DISK_SIZE + cumulative(rows, "bytes")
        _samples(available, available.name, {"mountpoint": "/"}, times, DISK_SIZE - used)
        _samples(size, size.name, {"mountpoint": "/"}, times, DISK_SIZE * always)
        # The platform answered every scrape (its 5xx bursts are in the request counter).
        _samples(up, "up", {"job": "pynomaly", "instance": "api"}, times, always)
        families = [requests, latency, cpu, memory, available, size, up]

    class Collector:
        def collect(self):
            yield from families

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry)


def write(
    engine: Engine, path: Path, interval: timedelta = timedelta(minutes=5), days: float = DAYS
) -> int:
    """Write :func:`render` to ``path``; the number of bytes written."""
    text = render(engine, interval, days)
    path.write_bytes(text)
    return len(text)
