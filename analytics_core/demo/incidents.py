"""The incidents injected into the demo data, so the 7- and 30-day views have
something to show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from analytics_core.demo.time_model import as_utc, from_us, to_us

LATENCY_SPIKE_ENDPOINT = "/api/v1/detect"
LATENCY_SPIKE_FACTOR = 8.0
ERROR_BURST_SHARE = 0.35
ANOMALY_JUMP_DETECTOR = "d_03"
ANOMALY_JUMP_FACTOR = 6.0


@dataclass(frozen=True)
class Incident:
    """An anomaly injected by :func:`seed`, active in ``[start, end)``."""

    name: str
    start: datetime
    end: datetime
    table: str
    description: str


# (name, starts this long before the seed's end, duration, table, description)
_INCIDENT_SPECS: tuple[tuple[str, timedelta, timedelta, str, str], ...] = (
    (
        "detect_latency_spike",
        timedelta(days=2),
        timedelta(hours=6),
        "api_requests",
        f"Latency of {LATENCY_SPIKE_ENDPOINT} requests x{LATENCY_SPIKE_FACTOR:g} for 6 hours",
    ),
    (
        "error_burst",
        timedelta(days=5),
        timedelta(hours=2),
        "api_requests",
        f"~{ERROR_BURST_SHARE:.0%} of all API requests fail with 500/503 for 2 hours; "
        "detection runs fail ~30% of the time meanwhile",
    ),
    (
        "anomaly_rate_jump",
        timedelta(days=12),
        timedelta(days=3),
        "detection_results",
        f"Detector {ANOMALY_JUMP_DETECTOR} flags x{ANOMALY_JUMP_FACTOR:g} its usual anomaly "
        "rate for 3 days, most of them marked false positives in feedback",
    ),
)


def incidents(end: datetime) -> list[Incident]:
    """The incidents :func:`seed` injects for a window ending at ``end`` (UTC)."""
    end = as_utc(end)
    return [
        Incident(name, end - before, end - before + duration, table, text)
        for name, before, duration, table, text in _INCIDENT_SPECS
    ]


def incident_windows(end_us: int) -> tuple[tuple[str, int, int], ...]:
    """(name, start, end) of each incident, in epoch microseconds."""
    return tuple((i.name, to_us(i.start), to_us(i.end)) for i in incidents(from_us(end_us)))


def during(t: np.ndarray, windows: Sequence[tuple[str, int, int]], name: str) -> np.ndarray:
    """Which of the times ``t`` fall in a window of the incident ``name``."""
    mask = np.zeros(len(t), dtype=bool)
    for incident, a, b in windows:
        if incident == name:
            mask |= (t >= a) & (t < b)
    return mask
