"""Deterministic demo data for the analytics contract (``analytics_core.schema``).

:func:`seed` fills an empty database with ``days`` of realistic platform activity
ending at ``end``: tenants, users, detectors, detection runs with feedback, API
requests and UI sessions, with daily/weekly seasonality, gentle growth and three
injected incidents (see :func:`incidents`) so the 7- and 30-day views have
something to show. :func:`top_up` appends the activity missing between the latest
stored event and now, so a demo database stays current.

Everything is generated vectorised with numpy from one seeded generator and
bulk-loaded natively. The modules: ``time_model`` (epoch microseconds, seasonality,
growth, arrivals), ``incidents``, ``world`` (tenants, users, detectors), ``events``
(detection runs, feedback, requests, sessions), ``bulk_load`` and ``seeding`` (the
two entry points and what ``top_up`` reads back).
"""

from analytics_core.demo.incidents import (
    ANOMALY_JUMP_DETECTOR,
    ANOMALY_JUMP_FACTOR,
    ERROR_BURST_SHARE,
    LATENCY_SPIKE_ENDPOINT,
    LATENCY_SPIKE_FACTOR,
    Incident,
    incidents,
)
from analytics_core.demo.seeding import SeedError, seed, top_up

__all__ = [
    "ANOMALY_JUMP_DETECTOR",
    "ANOMALY_JUMP_FACTOR",
    "ERROR_BURST_SHARE",
    "LATENCY_SPIKE_ENDPOINT",
    "LATENCY_SPIKE_FACTOR",
    "Incident",
    "SeedError",
    "incidents",
    "seed",
    "top_up",
]
