"""A deterministic request history as the platform's exporter would have exposed it,
scraped every minute: the OpenMetrics text that ``promtool`` backfills into a real
Prometheus, and the truth (every request with its time, endpoint, status and duration)
to check the figures against.

It has what real series have: several endpoints (one with a hostile name), a counter
reset (a restarted process), a latency shift, and a scrape gap (the exporter was down;
its counters kept counting)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from prometheus_client.core import CollectorRegistry, Metric, Sample
from prometheus_client.openmetrics.exposition import generate_latest

START = datetime(2026, 3, 27, tzinfo=UTC)  # Paris changes to summer time on 29 March
MINUTES = 3 * 24 * 60
ENDPOINTS = (
    ("GET", "/api/v1/results"),
    ("POST", "/api/v1/detect"),
    ("GET", '/api/v1/odd"name\\{x}|.*'),  # a hostile label value
)
STATUSES = ("200", "404", "500")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"))
RESET_MINUTE = 1500  # GET /api/v1/results' process restarts: its counters start again
SHIFT_MINUTE = 2200  # POST /api/v1/detect gets three times slower
GAP = (3000, 3010)  # no scrape in these minutes


def _count(minute: int, endpoint: int, status: str) -> int:
    if status == "200":
        return 20 + (minute * (endpoint + 3)) % 11
    if status == "404":
        return 1 if (minute + 2 * endpoint) % 5 == 0 else 0
    return 1 if (minute + endpoint) % 17 == 0 else 0


def _duration(minute: int, endpoint: int, k: int) -> float:
    base = (0.02, 0.12, 0.004)[endpoint]
    if endpoint == 1 and minute >= SHIFT_MINUTE:
        base *= 3
    return base * (1 + ((minute * 7 + k * 13) % 10) / 10)


COMPONENTS = ("api", "worker")
DISK_SIZE = 100e9


CPU_SPIKE = (2 * 24 * 60 + 600, 2 * 24 * 60 + 720)  # the api runs hot on 29 March, 10-12 UTC


def cpu_at(minute: int, component: str) -> float:
    if component == "api" and CPU_SPIKE[0] <= minute < CPU_SPIKE[1]:
        return 0.97
    return 0.2 + (minute % 60) / 100 if component == "api" else 0.5 + (minute * 7 % 13) / 100


def memory_at(minute: int, component: str) -> float:
    return 200e6 + minute * 1e3 if component == "api" else 1e9 + (minute % 100) * 1e6


def disk_used_at(minute: int) -> float:
    return 40e9 + minute * 5e6  # filling up


INSTANCES = ("api-1", "api-2")
DOWN = (1000, 1030)  # api-2 is down for half an hour


def up_at(minute: int, instance: str) -> float:
    return 0.0 if instance == "api-2" and DOWN[0] <= minute < DOWN[1] else 1.0


def scraped_minutes() -> list[int]:
    return [m for m in range(1, MINUTES + 1) if not GAP[0] <= m < GAP[1]]


@dataclass(frozen=True)
class History:
    requests: pd.DataFrame  # ts (end of its minute), method, endpoint, status, seconds
    openmetrics: bytes


def build() -> History:
    rows = []
    for m in range(1, MINUTES + 1):
        ts = START + timedelta(minutes=m)
        for i, (method, path) in enumerate(ENDPOINTS):
            k = 0
            for status in STATUSES:
                for _ in range(_count(m, i, status)):
                    rows.append((ts, method, path, status, _duration(m, i, k)))
                    k += 1
    requests = pd.DataFrame(rows, columns=["ts", "method", "endpoint", "status", "seconds"])
    return History(requests, _openmetrics(requests))


def _openmetrics(requests: pd.DataFrame) -> bytes:
    """Cumulative counters and histograms sampled at every scraped minute."""
    minute = ((requests.ts - START) / timedelta(minutes=1)).astype(int)
    scraped = scraped_minutes()
    counter = Metric("pynomaly_http_requests", "requests", "counter")
    histogram = Metric("pynomaly_http_request_duration_seconds", "latency", "histogram")
    for method, path in ENDPOINTS:
        mine = requests[(requests.method == method) & (requests.endpoint == path)]
        m = minute[mine.index]
        restart = path == "/api/v1/results"

        def cumulative(per_minute: pd.Series, restart: bool = restart) -> pd.Series:
            full = per_minute.reindex(range(1, MINUTES + 1), fill_value=0)
            total = full.cumsum()
            if restart:  # counted again from 0 from the reset minute on
                total[total.index >= RESET_MINUTE] -= total[RESET_MINUTE - 1]
            return total

        labels = {"method": method, "endpoint": path}
        for status in STATUSES:
            totals = cumulative(m[mine.status == status].value_counts())
            for t in scraped:
                counter.samples.append(
                    Sample(
                        "pynomaly_http_requests_total",
                        {**labels, "status": status},
                        float(totals[t]),
                        (START + timedelta(minutes=t)).timestamp(),
                    )
                )
        series = {}
        for le in BUCKETS:
            series[le] = cumulative(m[mine.seconds <= le].value_counts())
        seconds = cumulative(mine.seconds.groupby(m).sum())
        for t in scraped:
            at = (START + timedelta(minutes=t)).timestamp()
            for le in BUCKETS:
                text = "+Inf" if le == float("inf") else repr(le)
                histogram.samples.append(
                    Sample(
                        "pynomaly_http_request_duration_seconds_bucket",
                        {**labels, "le": text},
                        float(series[le][t]),
                        at,
                    )
                )
            histogram.samples.append(
                Sample(
                    "pynomaly_http_request_duration_seconds_count",
                    labels,
                    float(series[float("inf")][t]),
                    at,
                )
            )
            histogram.samples.append(
                Sample("pynomaly_http_request_duration_seconds_sum", labels, float(seconds[t]), at)
            )

    cpu = Metric("pynomaly_cpu_usage_ratio", "cpu", "gauge")
    memory = Metric("pynomaly_memory_usage_bytes", "memory", "gauge")
    avail = Metric("node_filesystem_avail_bytes", "free bytes", "gauge")
    size = Metric("node_filesystem_size_bytes", "bytes", "gauge")
    up = Metric("up", "scrape succeeded", "gauge")
    for t in scraped:
        at = (START + timedelta(minutes=t)).timestamp()
        for component in COMPONENTS:
            cpu.samples.append(Sample(cpu.name, {"component": component}, cpu_at(t, component), at))
            memory.samples.append(
                Sample(memory.name, {"component": component}, memory_at(t, component), at)
            )
        for family, value in ((avail, DISK_SIZE - disk_used_at(t)), (size, DISK_SIZE)):
            family.samples.append(Sample(family.name, {"mountpoint": "/"}, value, at))
        for instance in INSTANCES:
            up.samples.append(Sample("up", {"job": "pynomaly", "instance": instance},
                                     up_at(t, instance), at))  # fmt: skip

    class Collector:
        def collect(self):
            yield counter
            yield histogram
            yield from (cpu, memory, avail, size, up)

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry)


DISK_DAYS = 20
DISK_START = datetime(2026, 3, 5, tzinfo=UTC)


def disk_share_at(hours: float) -> float:
    """The disk's used share ``hours`` after DISK_START: half full, 1.5 points a day more."""
    return 0.5 + 0.015 * hours / 24


def disk_history(scraped_days: int = DISK_DAYS) -> bytes:
    """Twenty days of the node exporter's filesystem gauges, scraped hourly: a disk
    filling steadily (full 33 1/3 days after DISK_START); only the first
    ``scraped_days`` of them (the exporter down after that)."""
    size = 200e9
    available = Metric("node_filesystem_avail_bytes", "free bytes", "gauge")
    total = Metric("node_filesystem_size_bytes", "bytes", "gauge")
    for hour in range(scraped_days * 24 + 1):
        at = (DISK_START + timedelta(hours=hour)).timestamp()
        free = size * (1 - disk_share_at(hour))
        available.samples.append(Sample(available.name, {"mountpoint": "/"}, free, at))
        total.samples.append(Sample(total.name, {"mountpoint": "/"}, size, at))

    class Collector:
        def collect(self):
            yield from (available, total)

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry)
