"""Scale benchmark (issue 8): page build times and peak memory at ten million rows.

Not a test: it measures and reports (`make bench-scale`), it asserts nothing.

Seeds PostgreSQL server-side (``INSERT ... SELECT ... FROM generate_series``, no rows
travel from Python) with ``--requests`` API requests, ``--detections`` detection runs,
users, sessions, tenants, detectors and feedback over ``--days`` days, then times
``build_page`` for every page over 24 h, 30 d and 365 d in each *mode* (the raw tables;
the rollups after ``analytics rollup``, with no cache; the Redis page cache on a second
visit) in a child process whose peak RSS is read, at the full size and at
``--small-requests``. At full size it also times incremental rollup runs over 100,000 and
1,000,000 new requests; it compares the rollups' percentiles with ``percentile_cont``.
One table to stdout and ``bench/SCALE.md``.

The databases live on ``$TEST_DATABASE_URL``'s server (as the tests use it: a superuser
that may create databases), else on the local server; they are named
``analytics_scale_<requests>r_<detections>d_<days>days`` and kept between runs, since
seeding is the slow part: a run reuses one whose recorded sizes and generator version
match (``--reseed`` forces a new one, ``--drop`` removes them at the end). Ranges end at
the data's end (the minute it was seeded), so a reused database measures the same rows.

Usage: python bench/scale.py [--requests 10_000_000] [--detections 2_000_000] [--days 400]
       [--small-requests 100_000] [--quick] [--reseed] [--repeat 1] [--out bench/SCALE.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import re
import resource
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from sqlalchemy import URL, Connection, Engine, create_engine, make_url, text

# Bump when the generated data changes, so older databases are reseeded rather than reused.
GENERATOR_VERSION = 1
SEED = 8
DB_PREFIX = "analytics_scale"
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
RANGES: tuple[tuple[str, timedelta], ...] = (
    ("24h", timedelta(hours=24)),
    ("30d", timedelta(days=30)),
    ("365d", timedelta(days=365)),
)
AREA_PAGES = ("detection", "performance", "business")


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    requests: int
    detections: int
    users: int
    sessions: int
    days: int

    def scaled_to(self, requests: int) -> Sizes:
        """The same shape with ``requests`` requests: everything else in proportion."""
        factor = requests / self.requests
        return Sizes(
            requests=requests,
            detections=max(1_000, round(self.detections * factor)),
            users=max(240, round(self.users * factor)),
            sessions=max(1_000, round(self.sessions * factor)),
            days=self.days,
        )

    @property
    def database(self) -> str:
        return f"{DB_PREFIX}_{self.requests}r_{self.detections}d_{self.days}days"

    def describe(self) -> str:
        return (
            f"{self.requests:,} requests, {self.detections:,} detections, {self.users:,} users, "
            f"{self.sessions:,} sessions over {self.days} days"
        )


# --------------------------------------------------------------------------- the catalogue

# Twelve tenants of very unequal size (the largest ~27x the smallest), names with accents.
TENANTS: tuple[tuple[str, str, str, float], ...] = (
    ("t_acme", "Acme Corp", "enterprise", 27.0),
    ("t_zurich", "Zürich Rückversicherung", "enterprise", 18.0),
    ("t_munchen", "Müller & Söhne München", "enterprise", 12.0),
    ("t_sao_paulo", "São Paulo Pagamentos", "pro", 9.0),
    ("t_lodz", "Łódź Logistyka", "pro", 7.5),
    ("t_malmo", "Malmö Energi AB", "pro", 6.0),
    ("t_globex", "Globex Industries", "pro", 5.0),
    ("t_besancon", "Société Générale de Données — Besançon", "starter", 4.0),
    ("t_cafe", "Café Olé Coöperatie", "starter", 3.5),
    ("t_kobenhavn", "Københavns Ærø Data", "starter", 3.0),
    ("t_hooli", "Hooli Labs", "free", 1.5),
    ("t_reykjavik", "Reykjavíkur Þjónusta", "free", 1.0),
)

# The demo's algorithms and their behaviour (analytics_core/seed.py): base anomaly rate,
# false-positive share, failure rate, run time = fixed + coef * n_samples ** power ms,
# mean score ~ normal(mean, 0.12).
ALGORITHMS = ("isolation_forest", "lof", "one_class_svm", "autoencoder", "zscore")
ALGO_RATE = (0.030, 0.040, 0.050, 0.020, 0.012)
ALGO_FP = (0.18, 0.25, 0.22, 0.14, 0.30)
ALGO_FAIL = (0.015, 0.020, 0.025, 0.022, 0.010)
ALGO_FIXED_MS = (40.0, 30.0, 50.0, 800.0, 3.0)
ALGO_COEF_MS = (0.02, 0.0009, 0.00004, 0.12, 0.0004)
ALGO_POWER = (1.0, 1.25, 1.6, 1.0, 1.0)
ALGO_SCORE = (0.70, 0.67, 0.62, 0.76, 0.75)
DETECTOR_TOPICS = (
    "payments-fraud", "network-traffic", "sensor-temperature", "order-volume",
    "checkout-latency", "login-behaviour", "instrument-drift", "shipment-delays",
    "signup-spikes", "card-transactions", "atm-withdrawals", "trading-volume",
)  # fmt: skip
N_DETECTORS = 60
DATASETS_PER_DETECTOR = 25
JUMP_DETECTOR = 3  # d_03 flags 6x its usual anomaly rate during the "anomaly jump" incident

# The demo's endpoints: method, path, share, success code, p(4xx), latency median ms and
# sigma, request bytes median and sigma, response bytes median and sigma.
ENDPOINTS = (
    ("POST", "/api/v1/detect", 0.22, 200, 0.035, 180.0, 0.6, 150e3, 1.2, 8e3, 0.8),
    ("POST", "/api/v1/datasets", 0.04, 201, 0.05, 900.0, 0.7, 2.5e6, 1.1, 400.0, 0.3),
    ("GET", "/api/v1/datasets", 0.10, 200, 0.025, 45.0, 0.5, 350.0, 0.3, 4e3, 0.8),
    ("GET", "/api/v1/detectors", 0.14, 200, 0.02, 35.0, 0.5, 350.0, 0.3, 2.5e3, 0.6),
    ("GET", "/api/v1/results", 0.28, 200, 0.03, 60.0, 0.6, 400.0, 0.3, 12e3, 1.0),
    ("GET", "/api/v1/health", 0.15, 200, 0.002, 3.0, 0.4, 120.0, 0.1, 60.0, 0.05),
    ("POST", "/api/v1/auth/token", 0.07, 200, 0.08, 80.0, 0.4, 250.0, 0.2, 900.0, 0.1),
)
CLIENT_ERRORS = ((400, 0.25), (401, 0.22), (403, 0.08), (404, 0.22), (409, 0.03), (422, 0.10),
                 (429, 0.10))  # fmt: skip
SERVER_ERRORS = ((500, 0.6), (502, 0.1), (503, 0.25), (504, 0.05))
BASE_5XX = 0.009
SPIKE_ENDPOINT = 1  # /api/v1/detect, 1-based like SQL arrays
SPIKE_FACTOR = 8.0

# Seasonality per table (UTC): base + amplitude * office-hours bump, times a weekend factor;
# traffic grows GROWTH-fold over the window.
PROFILES = {
    "requests": (0.35, 1.0, 0.45),
    "detections": (0.8, 0.6, 0.6),
    "sessions": (0.1, 1.0, 0.25),
}
GROWTH = 2.2
BASE_USERS = 0.3  # share of each tenant's users who signed up before the window


@dataclass(frozen=True)
class Burst:
    """An incident: ``[end - before, end - before + hours)``."""

    name: str
    before: timedelta
    hours: float
    share_5xx: float = 0.0  # share of requests failing with 5xx meanwhile
    detect_fail: float = 0.0  # detection failure rate meanwhile


BURSTS = (
    Burst("error burst", timedelta(days=5, hours=-10), 2, share_5xx=0.35, detect_fail=0.3),
    Burst("older error burst", timedelta(days=97, hours=-15), 3, share_5xx=0.2, detect_fail=0.15),
)
LATENCY_SPIKE = (timedelta(days=2), 6.0)  # /api/v1/detect x8 for 6 hours
ANOMALY_JUMP = (timedelta(days=12), 72.0)


def _ts(value: datetime) -> str:
    return f"'{value.isoformat()}'::timestamptz"


def _lit(values: Sequence[float | int]) -> str:
    """A float8 array literal of trusted constants (the catalogue above, never input)."""
    return "ARRAY[" + ",".join(repr(float(v)) for v in values) + "]::float8[]"


def _int_lit(values: Sequence[int]) -> str:
    return "ARRAY[" + ",".join(str(int(v)) for v in values) + "]::bigint[]"


def _text_lit(values: Sequence[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]::text[]"


def _cumulative(weights: Sequence[float]) -> list[float]:
    """Inner edges for ``width_bucket(u, edges) + 1``: a 1-based pick by weight."""
    total = float(sum(weights))
    return list(np.cumsum(weights)[:-1] / total)


@dataclass(frozen=True)
class Catalogue:
    """Tenants, users per tenant and detectors, drawn deterministically from ``SEED``."""

    user_offset: list[int]  # users of tenant k are u_{offset+1} .. u_{offset+n}
    user_count: list[int]
    user_base: list[int]  # of which signed up before the window
    detectors: list[tuple[str, str, str, str]]  # id, tenant id, name, algorithm
    detector_weight: list[float]
    detector_rate: list[float]  # anomaly-rate multiplier
    detector_fp: list[float]  # false-positive multiplier
    detector_threshold: list[float]

    @property
    def detector_tenant(self) -> list[str]:
        return [d[1] for d in self.detectors]

    @property
    def detector_algo(self) -> list[int]:
        return [ALGORITHMS.index(d[3]) + 1 for d in self.detectors]


def catalogue(users: int) -> Catalogue:
    rng = np.random.default_rng(SEED)
    weight = np.array([t[3] for t in TENANTS])
    share = weight**0.8 / (weight**0.8).sum()  # big tenants have more, but busier, users
    count = np.maximum(20, np.floor(share * users)).astype(int)
    offset = np.r_[0, np.cumsum(count)[:-1]]
    base = np.maximum(1, np.round(BASE_USERS * count)).astype(int)

    owner = np.searchsorted(
        np.cumsum(weight**0.7) / (weight**0.7).sum(), (np.arange(N_DETECTORS) + 0.5) / N_DETECTORS
    )
    algo = rng.integers(0, len(ALGORITHMS), N_DETECTORS)
    detectors = [
        (
            f"d_{i + 1:02d}",
            TENANTS[owner[i]][0],
            f"{DETECTOR_TOPICS[i % len(DETECTOR_TOPICS)]}-{i // len(DETECTOR_TOPICS) + 1}",
            ALGORITHMS[algo[i]],
        )
        for i in range(N_DETECTORS)
    ]
    det_weight = np.sqrt(weight[owner]) * np.exp(0.8 * rng.standard_normal(N_DETECTORS))
    return Catalogue(
        user_offset=offset.tolist(),
        user_count=count.tolist(),
        user_base=base.tolist(),
        detectors=detectors,
        detector_weight=det_weight.tolist(),
        detector_rate=np.exp(0.3 * rng.standard_normal(N_DETECTORS)).tolist(),
        detector_fp=np.exp(0.2 * rng.standard_normal(N_DETECTORS)).tolist(),
        detector_threshold=(0.5 + 0.05 * rng.integers(0, 9, N_DETECTORS)).tolist(),
    )


# --------------------------------------------------------------------------- seeding SQL

# Deterministic randomness: 64-bit hashes of (row id, salt) split into three 21-bit
# uniforms in (0, 1), so a row's values depend on its id only and runs are comparable.
_BITS = 2097152  # 2 ** 21


def _hash(id_expr: str, salt: int) -> str:
    return f"hashint8extended(({id_expr})::bigint, {SEED * 1000 + salt})"


def _u(h: str, part: int) -> str:
    # float8 throughout: a bigint plus a numeric literal would be slow numeric arithmetic.
    return f"((((({h}) >> {21 * part}) & {_BITS - 1})::float8 + 0.5) / {_BITS}.0)"


def _z(ua: str, ub: str) -> str:
    """A standard normal from two uniforms (Box-Muller)."""
    return f"(sqrt(-2.0 * ln({ua})) * cos(2.0 * pi() * {ub}))"


def _user_id(tenant: str, progress: str, u: str) -> str:
    """A user of tenant ``tenant`` (1-based) who had signed up by ``progress`` (0..1 of the
    window), older users more active: see :func:`_users_sql` for when each signed up."""
    return (
        f"'u_' || lpad((uo[{tenant}] + floor(power({u}, 1.7) * least(un[{tenant}], ub[{tenant}]"
        f" + floor(greatest({progress}, 0.0) * (un[{tenant}] - ub[{tenant}]) + 0.5)))"
        f" + 1)::bigint::text, 6, '0')"
    )


def _catalogue_cte(cat: Catalogue) -> str:
    """The per-tenant user arrays the pickers index (``uo``, ``un``, ``ub``, ``tid``)."""
    return (
        f"cat AS (SELECT {_int_lit(cat.user_offset)} AS uo, {_int_lit(cat.user_count)} AS un, "
        f"{_int_lit(cat.user_base)} AS ub, {_text_lit([t[0] for t in TENANTS])} AS tid)"
    )


def _slots_sql(kind: str, total: int, days: int, end: datetime) -> str:
    """One row per hour of the window with its share of ``total`` rows (diurnal, weekly,
    growth and a little hour-to-hour noise) and the ids it gets: ids rise with time."""
    base, amplitude, weekend = PROFILES[kind]
    hours = days * 24
    salt = {"requests": 1, "detections": 2, "sessions": 3}[kind]
    h = _hash("h", 900 + salt)
    return f"""
    CREATE UNLOGGED TABLE slots_{kind} AS
    WITH w AS (
        SELECT h, hour_start, progress,
               ({base} + {amplitude} * exp(-0.5 * power((hod - 13.5) / 3.5, 2)))
                 * CASE WHEN weekend THEN {weekend} ELSE 1.0 END
                 * exp(ln({GROWTH}) * (progress - 1.0))
                 * exp(0.08 * {_z(_u(h, 0), _u(h, 1))}) AS w,
               (0.85 + 0.15 * exp(-0.5 * power((hod - 13.5) / 3.5, 2)) / 0.45)::float8 AS load
        FROM (
            SELECT h, hour_start, h::float8 / {hours} AS progress,
                   extract(hour FROM hour_start AT TIME ZONE 'UTC')::float8 + 0.5 AS hod,
                   extract(isodow FROM hour_start AT TIME ZONE 'UTC') >= 6 AS weekend
            FROM (SELECT h, {_ts(end)} - make_interval(hours => {hours} - h) AS hour_start
                  FROM generate_series(0, {hours - 1}) AS h) AS s
        ) AS hours
    ), c AS (
        SELECT *, round({total}::float8 * sum(w) OVER (ORDER BY h) / sum(w) OVER ())::bigint
                  AS cum
        FROM w
    )
    SELECT h, hour_start, progress, load, lag(cum, 1, 0::bigint) OVER (ORDER BY h) + 1 AS first_id,
           cum - lag(cum, 1, 0::bigint) OVER (ORDER BY h) AS n
    FROM c
    """


def _window(kind: str) -> str:
    """Rows of ``slots_<kind>``: one per id, spread evenly through its hour (so that id
    order is time order and the indexes are appended to, not split)."""
    return (
        f"slots_{kind} AS s CROSS JOIN LATERAL generate_series(s.first_id, s.first_id + s.n - 1)"
        " AS g(id)"
    )


def _in_bursts(ts: str, end: datetime, pick: Callable[[Burst], float], default: str) -> str:
    cases = " ".join(
        f"WHEN {ts} >= '{(end - b.before).isoformat()}'::timestamptz AND {ts} < "
        f"'{(end - b.before + timedelta(hours=b.hours)).isoformat()}'::timestamptz "
        f"THEN {pick(b)}"
        for b in BURSTS
    )
    return f"(CASE {cases} ELSE {default} END)"


def _between(ts: str, end: datetime, spec: tuple[timedelta, float]) -> str:
    start = end - spec[0]
    stop = start + timedelta(hours=spec[1])
    return (
        f"({ts} >= '{start.isoformat()}'::timestamptz AND {ts} < '{stop.isoformat()}'::timestamptz)"
    )


def _requests_sql(cat: Catalogue, end: datetime) -> str:
    col = list(zip(*ENDPOINTS, strict=True))
    method, path, share, ok, p4xx, lat_med, lat_sig, req_med, req_sig, resp_med, resp_sig = col
    h = [_hash("id", i) for i in range(1, 6)]
    client_codes, client_p = zip(*CLIENT_ERRORS, strict=True)
    server_codes, server_p = zip(*SERVER_ERRORS, strict=True)
    p5 = _in_bursts("ts", end, lambda b: b.share_5xx, str(BASE_5XX))
    user = _user_id("tk", "progress", "u_user")  # 5% of requests use an API key: no user
    return f"""
    INSERT INTO api_requests (id, ts, tenant_id, user_id, method, endpoint, status_code,
                              duration_ms, request_bytes, response_bytes)
    WITH {_catalogue_cte(cat)}
    SELECT id, ts, tid[tk], CASE WHEN u_null < 0.05 THEN NULL ELSE {user} END,
           ({_text_lit(method)})[ek], ({_text_lit(path)})[ek], code,
           round(greatest(0.1, CASE
               WHEN code = 504 THEN 30000 + 50 * u_code
               WHEN code BETWEEN 400 AND 499 OR code IN (502, 503) THEN exp(ln(12.0) + 0.5 * z_lat)
               ELSE exp(ln(({_lit(lat_med)})[ek]) + ({_lit(lat_sig)})[ek] * z_lat) * load
                    * CASE WHEN ek = {SPIKE_ENDPOINT} AND {_between("ts", end, LATENCY_SPIKE)}
                           THEN {SPIKE_FACTOR} ELSE 1.0 END
                    * CASE WHEN code = 500 THEN 1.5 ELSE 1.0 END
           END)::numeric, 3)::float8,
           greatest(1, round(exp(ln(({_lit(req_med)})[ek])
                                 + ({_lit(req_sig)})[ek] * z_req)))::bigint,
           CASE WHEN code >= 400 THEN round(120 + 80 * u_code)
                ELSE round(exp(ln(({_lit(resp_med)})[ek]) + ({_lit(resp_sig)})[ek] * z_resp))
           END::bigint
    FROM cat, (
        SELECT *, CASE
                 WHEN u_status < p5 THEN ({_int_lit(server_codes)})[
                     width_bucket(u_code, {_lit(_cumulative(server_p))}) + 1]
                 WHEN u_status < p5 + ({_lit(p4xx)})[ek] * (1 - p5) THEN ({_int_lit(client_codes)})[
                     width_bucket(u_code, {_lit(_cumulative(client_p))}) + 1]
                 ELSE ({_int_lit(ok)})[ek]
               END AS code
        FROM (
            SELECT *, {p5} AS p5
            FROM (
                SELECT id, ts, progress, load,
                       width_bucket({_u("h1", 1)}, {_lit(_cumulative([t[3] for t in TENANTS]))})
                         + 1 AS tk,
                       width_bucket({_u("h1", 2)}, {_lit(_cumulative(share))}) + 1 AS ek,
                       {_u("h2", 0)} AS u_user, {_u("h2", 1)} AS u_null,
                       {_u("h2", 2)} AS u_status, {_u("h3", 0)} AS u_code,
                       {_z(_u("h3", 1), _u("h3", 2))} AS z_lat,
                       {_z(_u("h4", 0), _u("h4", 1))} AS z_req,
                       {_z(_u("h4", 2), _u("h5", 0))} AS z_resp
                FROM (
                    SELECT g.id, s.progress, s.load, {h[0]} AS h1, {h[1]} AS h2, {h[2]} AS h3,
                           {h[3]} AS h4, {h[4]} AS h5,
                           s.hour_start + (3600.0 * ((g.id - s.first_id) + {_u(h[0], 0)}) / s.n)
                             * interval '1 second' AS ts
                    FROM {_window("requests")}
                    OFFSET 0
                ) AS r
                OFFSET 0
            ) AS picks
        ) AS with_p5
        OFFSET 0
    ) AS coded
    """


def _sessions_sql(cat: Catalogue, end: datetime) -> str:
    h = [_hash("id", i) for i in range(11, 14)]
    return f"""
    INSERT INTO user_sessions (session_id, user_id, tenant_id, started_at, ended_at)
    WITH {_catalogue_cte(cat)}
    SELECT 's_' || lpad(id::text, 8, '0'), {_user_id("tk", "progress", "u_user")}, tid[tk],
           started_at,
           CASE WHEN started_at + length * interval '1 second' >= {_ts(end)}
                  OR (started_at >= {_ts(end)} - interval '4 hours' AND u_open < 0.3) THEN NULL
                ELSE started_at + length * interval '1 second' END
    FROM cat, (
        SELECT id, progress,
               width_bucket({_u("h1", 1)}, {_lit(_cumulative([t[3] for t in TENANTS]))}) + 1
                 AS tk,
               {_u("h1", 2)} AS u_user, {_u("h2", 0)} AS u_open,
               least(36000.0, greatest(30.0,
                     exp(ln(1200.0) + 0.9 * {_z(_u("h2", 1), _u("h2", 2))}))) AS length,
               s_start + (3600.0 * ((id - first_id) + {_u("h1", 0)}) / n) * interval '1 second'
                 AS started_at
        FROM (SELECT g.id, s.progress, s.first_id, s.n, s.hour_start AS s_start,
                     {h[0]} AS h1, {h[1]} AS h2
              FROM {_window("sessions")} OFFSET 0) AS r
        OFFSET 0
    ) AS picked
    """


def _detections_sql(cat: Catalogue, end: datetime) -> str:
    h = [_hash("id", i) for i in range(21, 27)]
    fail = _in_bursts("created_at", end, lambda b: b.detect_fail, f"({_lit(ALGO_FAIL)})[a]")
    # Each detector scores a couple dozen datasets of stable size (log-uniform 100..100k).
    ds_size = f"exp(ln(100.0) + ln(1000.0) * {_u(_hash('ds', 31), 0)})"
    return f"""
    INSERT INTO detection_results (id, created_at, tenant_id, detector_id, algorithm, dataset_id,
        n_samples, n_anomalies, mean_score, threshold, execution_time_ms, status)
    SELECT id, created_at, ({_text_lit(cat.detector_tenant)})[dk], 'd_' || lpad(dk::text, 2, '0'),
           ({_text_lit(ALGORITHMS)})[a], 'ds_' || lpad(ds::text, 5, '0'), n_samples,
           CASE WHEN failed THEN 0 ELSE greatest(0, round(n_samples * rate
                + z_anom * sqrt(n_samples * rate * (1 - rate))))::int END,
           CASE WHEN failed THEN NULL
                ELSE round(least(0.999, greatest(0.0, ({_lit(ALGO_SCORE)})[a] + 0.12 * z_score))
                           ::numeric, 4)::float8 END,
           round((({_lit(cat.detector_threshold)})[dk] + 0.01 * z_thr)::numeric, 3)::float8,
           round(((({_lit(ALGO_FIXED_MS)})[a] + ({_lit(ALGO_COEF_MS)})[a]
                   * power(n_samples::float8, ({_lit(ALGO_POWER)})[a])) * exp(0.25 * z_time)
                  * CASE WHEN failed THEN 0.05 + 0.95 * u_cut ELSE 1.0 END)::numeric, 3)::float8,
           CASE WHEN failed THEN 'failed' ELSE 'success' END
    FROM (
        SELECT *, u_fail < {fail} AS failed,
               least(0.6, greatest(0.0005, ({_lit(ALGO_RATE)})[a] * ({_lit(cat.detector_rate)})[dk]
                   * exp(0.35 * z_rate)
                   * CASE WHEN dk = {JUMP_DETECTOR} AND {_between("created_at", end, ANOMALY_JUMP)}
                          THEN 6.0 ELSE 1.0 END)) AS rate,
               least(100000, greatest(100, round({ds_size} * exp(0.15 * z_size))))::int
                 AS n_samples
        FROM (
            SELECT *, ({_int_lit(cat.detector_algo)})[dk] AS a,
                   (dk - 1) * {DATASETS_PER_DETECTOR}
                     + least({DATASETS_PER_DETECTOR - 1}, floor(ln(u_ds) / ln(0.88)))::int + 1
                     AS ds
            FROM (
                SELECT id,
                       s_start + (3600.0 * ((id - first_id) + {_u("h1", 0)}) / n)
                         * interval '1 second' AS created_at,
                       width_bucket({_u("h1", 1)}, {_lit(_cumulative(cat.detector_weight))}) + 1
                         AS dk,
                       {_u("h1", 2)} AS u_ds, {_u("h2", 0)} AS u_fail, {_u("h2", 1)} AS u_cut,
                       {_z(_u("h2", 2), _u("h3", 0))} AS z_size,
                       {_z(_u("h3", 1), _u("h3", 2))} AS z_rate,
                       {_z(_u("h4", 0), _u("h4", 1))} AS z_anom,
                       {_z(_u("h4", 2), _u("h5", 0))} AS z_score,
                       {_z(_u("h5", 1), _u("h5", 2))} AS z_thr,
                       {_z(_u("h6", 0), _u("h6", 1))} AS z_time
                FROM (SELECT g.id, s.first_id, s.n, s.hour_start AS s_start, {h[0]} AS h1,
                             {h[1]} AS h2, {h[2]} AS h3, {h[3]} AS h4, {h[4]} AS h5,
                             {h[5]} AS h6
                      FROM {_window("detections")} OFFSET 0) AS r
                OFFSET 0
            ) AS picks
            OFFSET 0
        ) AS algo
        OFFSET 0
    ) AS shaped
    """


def _feedback_sql(cat: Catalogue, end: datetime, start: datetime) -> str:
    """Reviews of ~25% of successful runs with anomalies, minutes to a day later, by a user
    of the run's tenant; during the anomaly jump most flags are false positives."""
    h = [_hash("d.id", i) for i in range(41, 43)]
    window = (end - start).total_seconds()
    tenant_index = "array_position(tid, d.tenant_id)"
    return f"""
    INSERT INTO detection_feedback (id, detection_id, created_at, user_id, confirmed,
                                    false_positives)
    WITH {_catalogue_cte(cat)}
    SELECT row_number() OVER (ORDER BY created_at, detection_id), detection_id, created_at,
           user_id, reviewed - fp, fp
    FROM (
        SELECT *, least(reviewed, greatest(0, round(reviewed * p_fp
                  + z_fp * sqrt(reviewed * p_fp * (1 - p_fp)))))::int AS fp
        FROM (
            SELECT d.id AS detection_id, created_at + delay * interval '1 second' AS created_at,
                   {
        _user_id(
            tenant_index,
            f"(extract(epoch FROM d.created_at - {_ts(start)}) / {window})",
            _u(h[1], 0),
        )
    } AS user_id,
                   least(d.n_anomalies, ceil(d.n_anomalies * (0.4 + 0.6 * {_u(h[1], 1)})))::int
                     AS reviewed,
                   CASE WHEN substr(d.detector_id, 3)::int = {JUMP_DETECTOR}
                             AND {_between("d.created_at", end, ANOMALY_JUMP)} THEN 0.65
                        ELSE least(0.95, ({_lit(ALGO_FP)})[array_position(
                                 {_text_lit(ALGORITHMS)}, d.algorithm)]
                             * ({_lit(cat.detector_fp)})[substr(d.detector_id, 3)::int]) END
                     AS p_fp,
                   {_z(_u(h[1], 2), _u(h[0], 2))} AS z_fp
            FROM cat, detection_results AS d,
                 LATERAL (SELECT least(86400.0, greatest(60.0, exp(ln(7200.0) + 1.2 * {
        _z(_u(h[0], 1), _u(h[1], 2))
    }))) AS delay) AS l
            WHERE d.status = 'success' AND d.n_anomalies > 0 AND {_u(h[0], 0)} < 0.25
        ) AS reviews
        WHERE created_at < {_ts(end)}
    ) AS counted
    ORDER BY 1
    """


def _users_sql(cat: Catalogue, start: datetime, days: int) -> str:
    """Users of tenant k are numbered from its offset; the first ``ub[k]`` signed up over the
    year before the window, the rest evenly through it, so the number who had signed up by
    a point of the window is known in closed form (:func:`_user_id`)."""
    return f"""
    INSERT INTO users (user_id, tenant_id, created_at)
    WITH {_catalogue_cte(cat)}
    SELECT 'u_' || lpad(x::text, 6, '0'), tid[k],
           CASE WHEN r < ub[k]
                THEN {_ts(start)} - ((ub[k] - r)::float8 / ub[k]) * interval '365 days'
                ELSE {_ts(start)} + ((r - ub[k] + 0.5) / (un[k] - ub[k])) * interval '{days} days'
           END
    FROM cat, (
        SELECT x, k, x - 1 - ({_int_lit(cat.user_offset)})[k] AS r
        FROM (SELECT x, width_bucket(x, {_int_lit([o + 1 for o in cat.user_offset[1:]])}) + 1 AS k
              FROM generate_series(1::bigint, {sum(cat.user_count)}) AS x) AS numbered
    ) AS ranked
    ORDER BY x
    """


# --------------------------------------------------------------------------- databases


@dataclass
class Seeded:
    """A database holding ``sizes`` of data ending at ``end``."""

    sizes: Sizes
    url: str
    end: datetime
    seconds: float  # how long seeding took (when it was seeded, possibly an earlier run)
    seeded_at: str
    reused: bool
    counts: dict[str, int] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)


def server_url(explicit: str | None) -> URL:
    """The server's maintenance database, as a role that may create databases."""
    raw = explicit or os.environ.get("TEST_DATABASE_URL") or LOCAL_SERVER
    return make_url(raw).set(drivername="postgresql+psycopg")


def _recorded(admin: Connection, name: str) -> dict[str, object] | None:
    row = admin.execute(
        text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"),
        {"n": name},
    ).first()
    if row is None:
        return None
    try:
        return json.loads(row[0] or "null") or {}
    except ValueError:
        return {}


def _drop(admin: Connection, name: str) -> None:
    # Never anything but this benchmark's own databases.
    assert name.startswith(DB_PREFIX), name
    admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def ensure_seeded(admin_engine: Engine, server: URL, sizes: Sizes, reseed: bool) -> Seeded:
    name = sizes.database
    url = server.set(database=name).render_as_string(hide_password=False)
    with admin_engine.connect() as admin:
        meta = _recorded(admin, name)
        wanted = {"generator": GENERATOR_VERSION, "sizes": asdict(sizes)}
        if meta and not reseed and all(meta.get(k) == v for k, v in wanted.items()):
            return Seeded(
                sizes,
                url,
                datetime.fromisoformat(str(meta["end"])),
                float(meta["seconds"]),  # type: ignore[arg-type]
                str(meta["seeded_at"]),
                reused=True,
                counts=dict(meta.get("counts", {})),  # type: ignore[arg-type]
                steps=dict(meta.get("steps", {})),  # type: ignore[arg-type]
            )
        if meta is not None:
            print(f"  {name}: reseeding ({'--reseed' if reseed else 'sizes or generator changed'})")
            _drop(admin, name)
        admin.execute(text(f'CREATE DATABASE "{name}"'))

    end = datetime.now(UTC).replace(second=0, microsecond=0)
    print(f"  seeding {name}: {sizes.describe()} ending {end:%Y-%m-%d %H:%M} UTC", flush=True)
    t0 = time.perf_counter()
    steps, counts = seed(url, sizes, end)
    seconds = time.perf_counter() - t0
    meta = {
        **wanted,
        "end": end.isoformat(),
        "seconds": round(seconds, 1),
        "seeded_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "counts": counts,
        "steps": steps,
    }
    with admin_engine.connect() as admin:
        comment = json.dumps(meta).replace("'", "''")
        admin.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{comment}'"))
    return Seeded(sizes, url, end, seconds, str(meta["seeded_at"]), False, counts, steps)


def seed(url: str, sizes: Sizes, end: datetime) -> tuple[dict[str, float], dict[str, int]]:
    """Fill an empty database; returns seconds per step and rows per table."""
    from analytics_core import schema
    from analytics_core.sources.database import make_engine

    engine = make_engine(url, read_only=False)
    cat = catalogue(sizes.users)
    start = end - timedelta(days=sizes.days)
    steps: dict[str, float] = {}

    def step(label: str, sql: str) -> None:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
        steps[label] = round(time.perf_counter() - t0, 1)
        print(f"    {label}: {steps[label]:,.1f} s", flush=True)

    try:
        schema.create_tables(engine)
        with engine.begin() as conn:
            conn.execute(
                schema.tenants.insert(),
                [
                    {"tenant_id": t[0], "name": t[1], "plan": t[2],
                     "created_at": start - timedelta(days=30 * (i + 2))}
                    for i, t in enumerate(TENANTS)
                ],
            )  # fmt: skip
            conn.execute(
                schema.detectors.insert(),
                [
                    {"detector_id": d[0], "tenant_id": d[1], "name": d[2], "algorithm": d[3],
                     "created_at": start - timedelta(days=20)}
                    for d in cat.detectors
                ],
            )  # fmt: skip
        step("users", _users_sql(cat, start, sizes.days))
        with engine.begin() as conn:
            for kind, total in (
                ("requests", sizes.requests),
                ("detections", sizes.detections),
                ("sessions", sizes.sessions),
            ):
                conn.exec_driver_sql(_slots_sql(kind, total, sizes.days, end))
        try:
            step("api_requests", _requests_sql(cat, end))
            step("detection_results", _detections_sql(cat, end))
            step("detection_feedback", _feedback_sql(cat, end, start))
            step("user_sessions", _sessions_sql(cat, end))
        finally:
            with engine.begin() as conn:
                for kind in ("requests", "detections", "sessions"):
                    conn.execute(text(f"DROP TABLE IF EXISTS slots_{kind}"))
        # autovacuum may be off (it is on this machine's server): set hint bits and the
        # visibility map as a long-lived database would have them, and gather statistics.
        t0 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in schema.TABLES:
                conn.execute(text(f"VACUUM (ANALYZE) {table.name}"))
        steps["vacuum analyze"] = round(time.perf_counter() - t0, 1)
        print(f"    vacuum analyze: {steps['vacuum analyze']:,.1f} s", flush=True)
        with engine.connect() as conn:
            counts = {
                t.name: int(conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar_one())
                for t in schema.TABLES
            }
    finally:
        engine.dispose()
    return steps, counts


# --------------------------------------------------------------------------- modes

NOT_BUILT = "n/a (not built yet)"


def built(module: str) -> bool:
    """Whether ``module`` exists in the ``analytics_core`` the children import: with
    PYTHONPATH on a clean checkout, the editable install would still find the work tree's."""
    import analytics_core

    root = Path(analytics_core.__file__).resolve().parent
    spec = importlib.util.find_spec(module)
    return bool(spec and spec.origin and Path(spec.origin).resolve().is_relative_to(root))


@dataclass(frozen=True)
class Prepared:
    """What a mode's preparation measured: timings for the report's "Preparation" line,
    and facts for the other targets (incremental runs, percentile errors)."""

    notes: dict[str, float]
    facts: dict[str, object]


BuildFn = Callable[..., object]


@dataclass(frozen=True)
class Mode:
    """One way of building pages: one column of the table.

    ``needs``: the module the mode relies on; while it does not exist the column reads
    "n/a (not built yet)". ``prepare`` runs here, before the timing child starts (e.g. the
    rollup itself), and returns what it measured (:class:`Prepared`). ``build`` runs in the
    child, found by ``key`` (spawned children re-import this file). ``warm``: build every
    cell once before timing it (a cache's second visitor)."""

    key: str
    column: str
    needs: str | None
    build: BuildFn
    prepare: Callable[[Seeded], Prepared] | None = None
    warm: bool = False
    vs_raw: bool = False  # show its speed-up over the raw column
    show_cpu: bool = False  # show how much of each time was this process's own CPU

    def unavailable(self) -> str | None:
        if self.needs and not built(self.needs):
            return NOT_BUILT
        return None


def build_raw(engine: Engine, config: object, page: str, filters: object, now: datetime) -> object:
    from analytics_core.page_data import build_page
    from analytics_core.sources.areas import raw_sources

    # Explicitly raw: by default build_page reads rollups once a rollup has run.
    sources = raw_sources(engine)
    return build_page(engine, config, page, filters, now, sources=sources)  # type: ignore[arg-type]


# Rows counted as "new" by the incremental-rollup measurement: appended after a watermark.
INCREMENTS = (100_000, 1_000_000)
# --reuse-rollup: trust a rollup already built by this code on the reused database.
REUSE_ROLLUP = False
REDIS_PREFIX = "analytics:bench-scale:"


def _writer(seeded: Seeded) -> Engine:
    from analytics_core.sources.database import make_engine

    # The rollup role: it may write the rollup_* tables (the app's engines stay read-only).
    return make_engine(seeded.url, read_only=False)


def _hour_holding(conn: Connection, before: datetime, rows: int) -> datetime:
    """The latest UTC hour ``h`` such that at least ``rows`` requests lie in ``[h, before)``."""
    from analytics_core.rollup.refresh import floor_hour

    ts = conn.execute(
        text("SELECT ts FROM api_requests WHERE ts < :before ORDER BY ts DESC OFFSET :n LIMIT 1"),
        {"before": before, "n": rows - 1},
    ).scalar_one()
    return floor_hour(ts)


def _source_rows(conn: Connection, lo: datetime, hi: datetime) -> dict[str, int]:
    """Rows of each source table whose event time lies in ``[lo, hi)``."""
    counted = {
        "api_requests": "ts",
        "detection_results": "created_at",
        "detection_feedback": "created_at",
        "user_sessions": "started_at",
        "users": "created_at",
    }
    return {
        table: int(
            conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE {col} >= :lo AND {col} < :hi"),
                {"lo": lo, "hi": hi},
            ).scalar_one()
        )
        for table, col in counted.items()
    }


def prepare_rollup(seeded: Seeded) -> Prepared:
    """Roll the whole database up, as ``analytics rollup`` does, timing the runs.

    At full size the last requests are rolled up incrementally, as new rows arriving
    after a watermark would be: a full run up to the hour before the newest
    100,000 + 1,000,000 requests, then a run over the next 100,000, then one over the last
    1,000,000 (each run also recomputes its late window, the hour before the old
    watermark: those rows are counted in what the run read)."""
    from sqlalchemy import update

    from analytics_core.rollup.refresh import HOUR, floor_hour, refresh
    from analytics_core.rollup.schema import STATE_KEY, rollup_state
    from analytics_core.rollup.schema import metadata as rollup_metadata
    from analytics_core.rollup.schema import watermark as _watermark

    engine = _writer(seeded)
    notes: dict[str, float] = {}
    facts: dict[str, object] = {}
    late = HOUR
    try:
        top = floor_hour(seeded.end) + HOUR  # every seeded row lies before it
        if seeded.sizes.requests >= 2 * sum(INCREMENTS):
            with engine.connect() as conn:
                last = _hour_holding(conn, top, INCREMENTS[1])
                first = _hour_holding(conn, last - late, INCREMENTS[0])
            if REUSE_ROLLUP and (_watermark(engine) or first) > first:
                # A complete rollup by this code is there: move its watermark back instead
                # of rebuilding it, so the next runs recompute the increments' hours as
                # they would new rows (their old rows are deleted first, which only adds
                # to the time measured).
                with engine.begin() as conn:
                    conn.execute(
                        update(rollup_state)
                        .where(rollup_state.c.name == STATE_KEY)
                        .values(watermark=first)
                    )
                facts["rewound"] = True
            else:
                # From nothing, as a first run: a rollup already there would keep its later
                # watermark (no run moves it back) and leave the increments nothing to do.
                rollup_metadata.drop_all(engine)
                base = refresh(engine, now=first, late_window=late, full=True)
                notes["full rollup up to the increments s"] = base.seconds
            for lo, hi in ((first, last), (last, top)):
                result = refresh(engine, now=hi, late_window=late)
                with engine.connect() as conn:
                    read = _source_rows(conn, lo - late, hi)
                facts.setdefault("increments", []).append(  # type: ignore[union-attr]
                    {"seconds": result.seconds, "rows": read, "hours": result.hours_recomputed}
                )
        t0 = time.perf_counter()
        # Up to now: a reused database's watermark moves on, and no seeded row is left out.
        final = refresh(engine, full=not facts and not REUSE_ROLLUP, late_window=late)
        notes["rollup to now s" if facts else "full rollup s"] = time.perf_counter() - t0
        if facts.get("increments"):
            # The increments rewrote millions of rollup rows: what autovacuum does in the
            # minutes after such runs, done now, so that it does not run (and the pages do
            # not wade through dead rows) while the pages are timed.
            t0 = time.perf_counter()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in rollup_metadata.sorted_tables:
                    conn.execute(text(f'VACUUM ANALYZE "{table.name}"'))
            notes["vacuum analyze after the increments s"] = time.perf_counter() - t0
        facts["watermark"] = final.new_watermark.isoformat() if final.new_watermark else None
        facts["percentiles"] = percentile_errors(seeded)
    finally:
        engine.dispose()
    return Prepared(notes, facts)


def percentile_errors(seeded: Seeded) -> list[dict[str, object]]:
    """p50/p95/p99 (latency) and p95 run time from the rollups against ``percentile_cont``
    over the same rows, and whether every count and sum agrees exactly."""
    from analytics_core.context import QueryContext, Scope
    from analytics_core.filters import make_filters
    from analytics_core.sources.areas import raw_sources, sources_for
    from analytics_core.sources.database import make_engine

    engine = make_engine(seeded.url)
    end = seeded.end
    try:
        raw, rolled = raw_sources(engine), sources_for(engine)
        assert rolled.watermark is not None, "the rollup did not run"
        with engine.connect() as conn:
            tenant = conn.execute(
                text("SELECT tenant_id FROM api_requests GROUP BY 1 ORDER BY count(*) LIMIT 1")
            ).scalar_one()  # the smallest tenant: the fewest rows per sketch
            endpoint = conn.execute(
                text("SELECT endpoint FROM api_requests GROUP BY 1 ORDER BY count(*) LIMIT 1")
            ).scalar_one()
        selections = [
            ("24h, all", make_filters(end - timedelta(hours=24), end)),
            ("30d, all", make_filters(end - timedelta(days=30), end)),
            ("365d, all", make_filters(end - timedelta(days=365), end)),
            (f"365d, tenant {tenant}", make_filters(end - timedelta(days=365), end,
                                                   tenants=[tenant])),
            (f"30d, endpoint {endpoint}", make_filters(end - timedelta(days=30), end,
                                                      endpoints=[endpoint])),
            # Starts and ends mid-hour: raw edges around whole rollup buckets.
            ("7d, mid-hour edges", make_filters(end - timedelta(days=7, minutes=37),
                                                end - timedelta(minutes=23))),
        ]  # fmt: skip
        out = []
        for label, filters in selections:
            ctx = QueryContext(filters, end, Scope())
            exact = raw.performance.kpis(ctx) | raw.detection.kpis(ctx)
            approx = rolled.performance.kpis(ctx) | rolled.detection.kpis(ctx)
            errors = {
                k: abs(approx[k] / exact[k] - 1)
                for k in ("p50_ms", "p95_ms", "p99_ms", "p95_execution_ms")
                if exact.get(k) and approx.get(k) is not None
            }
            counts = ("requests", "error_rate", "avg_ms", "total_detections",
                      "failed_detections", "total_anomalies", "anomaly_rate")  # fmt: skip
            mismatched = [
                k for k in counts if not math.isclose(exact[k] or 0, approx[k] or 0, rel_tol=1e-9)
            ]
            out.append({"selection": label, "errors": errors, "mismatched": mismatched,
                        "requests": exact["requests"]})  # fmt: skip
        return out
    finally:
        engine.dispose()


def build_rollup_cold(
    engine: Engine, config: object, page: str, filters: object, now: datetime
) -> object:
    from analytics_core.page_data import build_page
    from analytics_core.sources.areas import sources_for

    sources = sources_for(engine)  # rollups + raw tail, as the app reads by default
    assert sources.watermark is not None, "no rollup: the cold column would be the raw path"
    return build_page(engine, config, page, filters, now, sources=sources)  # type: ignore[arg-type]


def _redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def prepare_redis(seeded: Seeded) -> Prepared:
    import redis

    # This benchmark's keys only, so the first visit of every cell is a miss.
    client = redis.Redis.from_url(_redis_url())
    try:
        client.ping()
        stale = list(client.scan_iter(match=REDIS_PREFIX + "*", count=1000))
        if stale:
            client.delete(*stale)
    finally:
        client.close()
    return Prepared({}, {})


_CACHE: list[object] = []
_VISITED: set[tuple[str, str, datetime]] = set()


def build_redis_warm(
    engine: Engine, config: object, page: str, filters: object, now: datetime
) -> object:
    from analytics_core.cache import RedisPageCache
    from analytics_core.page_data import load_page

    if not _CACHE:  # one client per child, as one per app process
        _CACHE.append(RedisPageCache(_redis_url(), 3600, prefix=REDIS_PREFIX))
    cache = _CACHE[0]
    cell = (page, repr(filters), now)
    hits = cache.stats().hits  # type: ignore[attr-defined]
    page_data = load_page(engine, config, page, filters, cache, now=now)  # type: ignore[arg-type]
    # Mode(warm=True) built the cell once already, so a second visit must be a hit: a miss
    # (Redis unusable) would time a page build and pass for a slow cache.
    if cell in _VISITED:
        stats = cache.stats()  # type: ignore[attr-defined]
        assert stats.hits == hits + 1, f"the second visit missed the Redis cache ({stats})"
    _VISITED.add(cell)
    return page_data


MODES: tuple[Mode, ...] = (
    Mode("raw", "raw", None, build_raw, show_cpu=True),
    Mode("rollup", "rollup cold", "analytics_core.rollup", build_rollup_cold, prepare_rollup,
         vs_raw=True),
    Mode("redis", "Redis warm", "analytics_core.cache", build_redis_warm, prepare_redis,
         warm=True),
)  # fmt: skip
MODE_BY_KEY = {m.key: m for m in MODES}


@dataclass(frozen=True)
class Target:
    """A target of issue 8 for one mode over some pages and ranges."""

    mode: str
    pages: tuple[str, ...]
    ranges: tuple[str, ...]
    max_ms: float | None
    min_speedup: float | None
    text: str


ALL_RANGES = tuple(r for r, _ in RANGES)
TARGETS = (
    Target("rollup", AREA_PAGES, ("365d",), 300, 20, "rollup ≤ 300 ms, ≥ 20× raw"),
    Target("rollup", ("overview", "insights"), ("365d",), 1000, None, "rollup ≤ 1 s"),
    Target("redis", ("overview", *AREA_PAGES, "insights"), ALL_RANGES, 20, None, "warm ≤ 20 ms"),
)
RSS_TOLERANCE = 0.10


# --------------------------------------------------------------------------- measuring


def measure(*args: object) -> dict[str, object]:
    """:func:`_measure` in the child, its failures sent back as plain text: the app's own
    exceptions do not all survive pickling, which would hide them behind a broken pool."""
    try:
        return _measure(*args)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - reported whole to the parent
        raise RuntimeError(traceback.format_exc()) from None


def _measure(
    url: str,
    mode_key: str,
    pages: Sequence[str],
    ranges: Sequence[tuple[str, float]],
    end_iso: str,
    repeat: int,
) -> dict[str, object]:
    """Every page over every range, best of ``repeat`` wall times in ms, and the process's
    peak RSS (after a warm-up that pays for the imports)."""
    import psutil

    from analytics_core.config import load_config
    from analytics_core.filters import make_filters
    from analytics_core.runtime import freeze_startup_objects, start_worker, stop_worker
    from analytics_core.sources.database import make_engine

    mode = MODE_BY_KEY[mode_key]
    end = datetime.fromisoformat(end_iso)
    config = load_config()
    engine = make_engine(url)
    try:
        # Warm-up: pays for the lazy imports and the first connection, on rows no cell reads.
        a_week_ago = end - timedelta(days=7)
        warm_up = make_filters(a_week_ago - timedelta(days=1), a_week_ago)
        mode.build(engine, config, "overview", warm_up, a_week_ago)
        freeze_startup_objects()  # as the app process does once its imports are done
        start_worker()  # and its detector worker, warm before the first cell
        _wait_for_worker()
        after_imports = psutil.Process().memory_info().rss
        ms: dict[str, float] = {}
        cpu: dict[str, float] = {}
        granularity: dict[str, str] = {}
        for label, seconds in ranges:
            filters = make_filters(end - timedelta(seconds=seconds), end, "UTC")
            granularity[label] = filters.granularity
            for page in pages:
                if mode.warm:
                    mode.build(engine, config, page, filters, end)
                best, best_cpu = math.inf, math.inf
                for _ in range(repeat):
                    t0, c0 = time.perf_counter(), _cpu_seconds()
                    mode.build(engine, config, page, filters, end)
                    wall = (time.perf_counter() - t0) * 1000
                    if wall < best:
                        best, best_cpu = wall, (_cpu_seconds() - c0) * 1000
                ms[f"{page}|{label}"], cpu[f"{page}|{label}"] = best, best_cpu
                print(
                    f"    {mode.column:>12} {page:>11} {label:>4}: {best:>10,.0f} ms "
                    f"(Python CPU {best_cpu:,.0f} ms)",
                    flush=True,
                )
        helpers = _helper_peak_rss()
    finally:
        engine.dispose()
        # Before this child exits: multiprocessing joins a child's own children at its
        # exit before the executor's exit hook would stop them, and would wait forever.
        stop_worker()
    return {
        "ms": ms,
        "cpu": cpu,
        "granularity": granularity,
        "rss_after_imports": after_imports,
        # Linux reports ru_maxrss in KiB.
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "helper_rss": helpers,
    }


def _wait_for_worker(seconds: float = 120) -> None:
    """Until the detector worker answers (it warms up in the background)."""
    from analytics_core.runtime import offload

    deadline = time.monotonic() + seconds
    while offload(os.getpid).result() == os.getpid():
        if time.monotonic() > deadline:
            raise RuntimeError("the detector worker did not start: cells would run inline")
        time.sleep(0.1)


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its helper processes (the detector
    worker): everything the page build computes, wherever it runs."""
    import psutil

    total = time.process_time()
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _helper_peak_rss() -> int:
    """The peak RSS of this process's helper processes (the detector worker, the
    forkserver it forks from, multiprocessing's resource tracker), summed (pages they
    share are counted in each): memory the app uses beside its own process."""
    import psutil

    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
        except OSError:
            continue
        peak = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        total += int(peak.group(1)) * 1024 if peak else 0
    return total


def measure_in_child(seeded: Seeded, mode: Mode, repeat: int) -> dict[str, object]:
    from analytics_core.pages import PAGES

    ranges = [(label, length.total_seconds()) for label, length in RANGES]
    # A fresh process per run, so that each peak RSS is this run's alone.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        future = pool.submit(
            measure, seeded.url, mode.key, list(PAGES), ranges, seeded.end.isoformat(), repeat
        )
        return future.result()


@dataclass
class Run:
    """What one mode gave at one size: timings, or why there are none."""

    ms: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    granularity: dict[str, str] = field(default_factory=dict)
    peak_rss: int | None = None
    rss_after_imports: int | None = None
    helper_rss: int | None = None
    notes: dict[str, float] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)
    missing: str | None = None  # the cell text when there are no timings
    why: str = ""


def run_mode(seeded: Seeded, mode: Mode, repeat: int) -> Run:
    missing = mode.unavailable()
    if missing:
        return Run(missing=missing)
    try:
        prepared = mode.prepare(seeded) if mode.prepare else Prepared({}, {})
        result = measure_in_child(seeded, mode, repeat)
    except Exception as exc:  # noqa: BLE001 - one broken mode must not lose the others' table
        traceback.print_exc()
        last = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
        return Run(missing="**error**", why=last[0][:300])
    return Run(
        ms=dict(result["ms"]),  # type: ignore[arg-type]
        cpu=dict(result["cpu"]),  # type: ignore[arg-type]
        granularity=dict(result["granularity"]),  # type: ignore[arg-type]
        peak_rss=int(result["peak_rss"]),  # type: ignore[arg-type]
        rss_after_imports=int(result["rss_after_imports"]),  # type: ignore[arg-type]
        helper_rss=int(result["helper_rss"]),  # type: ignore[arg-type]
        notes=prepared.notes,
        facts=prepared.facts,
    )


# --------------------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:,.1f} s" if value >= 10_000 else f"{value:,.0f} ms"


def _mb(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f} MB"


def _verdict(page: str, label: str, runs: dict[str, Run]) -> tuple[str, str]:
    """The targets that apply to this cell and whether they are met."""
    texts, verdicts = [], []
    for target in TARGETS:
        if page not in target.pages or label not in target.ranges:
            continue
        texts.append(target.text)
        run = runs.get(target.mode)
        key = f"{page}|{label}"
        if run is None or key not in run.ms:
            verdicts.append("n/a")
            continue
        ms = run.ms[key]
        ok = target.max_ms is None or ms <= target.max_ms
        raw = runs["raw"].ms.get(key) if "raw" in runs else None
        if target.min_speedup is not None:
            ok = ok and raw is not None and raw / ms >= target.min_speedup
        verdicts.append("yes" if ok else "**no**")
    if not texts:
        return "–", "–"
    if all(v == "n/a" for v in verdicts):
        return "; ".join(texts), "n/a"
    return "; ".join(texts), ", ".join(verdicts)


def timing_table(runs: dict[str, Run]) -> list[str]:
    from analytics_core.pages import PAGES

    header = ["page", "range"]
    for mode in MODES:
        header.append(mode.column)
        if mode.vs_raw:
            header.append("raw ÷ " + mode.column)
    header += ["target (issue 8)", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 4)
             + "---|---|"]  # fmt: skip
    granularity = runs["raw"].granularity if "raw" in runs else {}
    for page in PAGES:
        for label, _ in RANGES:
            key = f"{page}|{label}"
            cells = [page, f"{label} (by {granularity.get(label, '?')})"]
            for mode in MODES:
                run = runs[mode.key]
                cell = run.missing or _ms(run.ms.get(key))
                if mode.show_cpu and key in run.cpu:
                    cell += f" (cpu {_ms(run.cpu[key])})"
                cells.append(cell)
                if mode.vs_raw:
                    raw, this = runs["raw"].ms.get(key), run.ms.get(key)
                    cells.append(f"{raw / this:,.0f}×" if raw and this else "n/a")
            cells += list(_verdict(page, label, runs))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def rss_table(full: dict[str, Run], small: dict[str, Run], sizes: tuple[Sizes, Sizes]) -> list[str]:
    big, little = sizes
    lines = [
        f"| mode | peak RSS at {big.requests:,} requests | at {little.requests:,} requests | "
        "after imports (full / small) | difference | target: within 10% | met | "
        "helper processes: detector worker, forkserver (full / small) |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for mode in MODES:
        a, b = full[mode.key], small[mode.key]
        if a.missing or b.missing or a.peak_rss is None or b.peak_rss is None:
            reason = a.missing or b.missing or NOT_BUILT
            lines.append(f"| {mode.column} | {reason} | | | | within 10% | n/a | |")
            continue
        diff = a.peak_rss / b.peak_rss - 1
        met = "yes" if abs(diff) <= RSS_TOLERANCE else "**no**"
        lines.append(
            f"| {mode.column} | {_mb(a.peak_rss)} | {_mb(b.peak_rss)} | "
            f"{_mb(a.rss_after_imports)} / {_mb(b.rss_after_imports)} | {diff:+.1%} | "
            f"within 10% | {met} | {_mb(a.helper_rss)} / {_mb(b.helper_rss)} |"
        )
    return lines


def small_table(small: dict[str, Run], sizes: Sizes) -> list[str]:
    from analytics_core.pages import PAGES

    lines = [
        "| page | "
        + " | ".join(f"{label} {m.column}" for label, _ in RANGES for m in MODES)
        + " |",
        "|---|" + "---:|" * (len(RANGES) * len(MODES)),
    ]
    for page in PAGES:
        cells = [
            small[m.key].missing or _ms(small[m.key].ms.get(f"{page}|{label}"))
            for label, _ in RANGES
            for m in MODES
        ]
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    return lines


def other_targets(rollup: Run | None) -> list[str]:
    """Issue 8's targets that are not page timings, from what the rollup's preparation
    measured at full size."""
    lines = ["| measure | target | result | met |", "|---|---|---|---|"]
    facts = rollup.facts if rollup else {}
    increments = facts.get("increments") or []
    if increments:
        parts, per_row = [], []
        for inc in increments:  # type: ignore[union-attr]
            rows = inc["rows"]
            read = sum(rows.values())
            per_row.append(inc["seconds"] / read)
            parts.append(
                f"{inc['seconds']:,.2f} s for {rows['api_requests']:,} new requests "
                f"({read:,} source rows in the window, {inc['hours']:,} hours recomputed)"
            )
        big = increments[-1]  # type: ignore[index]
        ok = big["seconds"] <= 10 and max(per_row) <= 2 * min(per_row)
        cost = f"; {min(per_row) * 1e6:,.1f}–{max(per_row) * 1e6:,.1f} µs per row read"
        if facts.get("rewound"):
            cost += (
                " (the watermark of the rollup already built was moved back before them, "
                "`--reuse-rollup`: their hours' old rows were deleted first)"
            )
        lines.append(
            "| incremental rollup of 1,000,000 new rows (and 100,000) | ≤ 10 s, cost ∝ new "
            f"rows | {'; '.join(parts)}{cost} | {'yes' if ok else '**no**'} |"
        )
    else:
        why = (rollup.missing or "not measured at this size") if rollup else NOT_BUILT
        lines.append(
            f"| incremental rollup of 1,000,000 new rows (and 100,000) | ≤ 10 s | {why} | n/a |"
        )
    checks = facts.get("percentiles") or []
    if checks:
        worst = max((e for c in checks for e in c["errors"].values()), default=None)  # type: ignore[union-attr]
        mismatched = sorted({k for c in checks for k in c["mismatched"]})  # type: ignore[union-attr]
        selections = "; ".join(
            f"{c['selection']} ({c['requests']:,} requests): "
            + ", ".join(f"{k} {v:.3%}" for k, v in c["errors"].items())  # type: ignore[union-attr]
            for c in checks  # type: ignore[union-attr]
        )
        ok = worst is not None and worst <= 0.01 and not mismatched
        counts = (
            "counts, sums, rates and means equal"
            if not mismatched
            else ("**differ**: " + ", ".join(mismatched))
        )
        lines.append(
            f"| percentile error against percentile_cont; counts | ≤ 1% relative; counts exact "
            f"| worst {worst:.3%}; {counts}. {selections} | {'yes' if ok else '**no**'} |"
        )
    else:
        why = rollup.missing if rollup and rollup.missing else "not measured"
        lines.append(f"| percentile error against percentile_cont; counts | ≤ 1% | {why} | n/a |")
    return lines


def seeding_table(seeded: Sequence[Seeded]) -> list[str]:
    lines = [
        "| database | rows | seeding | steps (s) |",
        "|---|---|---:|---|",
    ]
    for s in seeded:
        rows = ", ".join(f"{name} {n:,}" for name, n in s.counts.items())
        when = f"reused (seeded {s.seeded_at})" if s.reused else "seeded in this run"
        steps = ", ".join(f"{k} {v:,.1f}" for k, v in s.steps.items())
        seconds = f"{s.seconds:,.0f} s"
        if s.sizes.requests:
            seconds += (
                f" ({s.sizes.requests / max(s.steps.get('api_requests', 0), 0.1):,.0f} req/s)"
            )
        lines.append(f"| `{s.sizes.database}`: {when} | {rows} | {seconds} | {steps} |")
    return lines


def code_measured() -> str:
    """Which ``analytics_core`` the children import, and at which commit (other work may be
    in progress in the tree: PYTHONPATH can point the benchmark at a clean checkout)."""
    import subprocess

    spec = importlib.util.find_spec("analytics_core")
    where = Path(spec.origin).parent if spec and spec.origin else Path(".")

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=where, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"`{where}`"
    dirty = ", with uncommitted changes" if git("status", "--porcelain", ".") else ""
    return f"`{where}` at commit {commit}{dirty}"


def environment(admin_engine: Engine) -> list[str]:
    import pandas
    import psutil
    import sqlalchemy

    with admin_engine.connect() as conn:
        server = conn.execute(text("SHOW server_version")).scalar_one()
    return [
        f"- Code: {code_measured()}",
        f"- Machine: {os.cpu_count()} cores ({platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:,.0f} GB RAM, shared with other work",
        f"- PostgreSQL {server}; Python {platform.python_version()}, pandas {pandas.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}",
    ]


def render(
    args: argparse.Namespace,
    admin_engine: Engine,
    seeded: tuple[Seeded, Seeded],
    full: dict[str, Run],
    small: dict[str, Run],
    loads: Sequence[float],
) -> str:
    big, little = seeded
    notes = [f"{k} {v:,.1f}" for run in full.values() for k, v in run.notes.items()]
    unmeasured = [
        f"{m.column}: {full[m.key].missing}" + (f" ({full[m.key].why})" if full[m.key].why else "")
        for m in MODES
        if full[m.key].missing
    ]
    lines = [
        "# Scale benchmark (issue 8)",
        "",
        f"Written by `make bench-scale` (`bench/scale.py`) on {datetime.now(UTC):%Y-%m-%d %H:%M}"
        " UTC. Measures, never asserts.",
        "",
        *environment(admin_engine),
        f"- Load average (1 min) around the measuring runs: {min(loads):.1f} to "
        f"{max(loads):.1f} on {os.cpu_count()} cores (other work shares the machine and "
        "the PostgreSQL server)",
        f"- Data: {big.sizes.describe()}; {len(TENANTS)} tenants, {N_DETECTORS} detectors; "
        f"ending {big.end:%Y-%m-%d %H:%M} UTC",
        f"- Each cell: wall time of `build_page` (KPIs, previous period, every series, insights "
        f"where the page has them) with the default config on a read-only engine, best of "
        f"{args.repeat}, in a child process after one warm-up build; ranges end at the data's end.",
        "",
        "## Seeding",
        "",
        *seeding_table(seeded),
        "",
        f"## Pages at {big.sizes.requests:,} requests",
        "",
        *timing_table(full),
        "",
        "Targets as issue 8 states them: cold from rollups at 365 d, ≤ 300 ms and ≥ 20× the "
        "raw path for an area page, ≤ 1 s for Overview and Insights; Redis-warm ≤ 20 ms for "
        'every page. "cpu": CPU time of the page-building process, all threads (pandas, '
        "numpy, the insight detectors and forecasts), plus that of its detector worker "
        "process (anomaly scores and trend tests, on the other core while the page waits "
        "for PostgreSQL or writes its stories); the rest of the wall time is mostly waiting "
        "for PostgreSQL.",
        *([f"Preparation: {', '.join(notes)}."] if notes else []),
        *([f"Not measured: {'; '.join(unmeasured)}."] if unmeasured else []),
        "",
        "## Peak memory of the process building every page",
        "",
        *rss_table(full, small, (big.sizes, little.sizes)),
        "",
        "The target compares the page-building process; its helper processes (the detector "
        "worker and the forkserver it forks from) are shown beside it: they hold small "
        "series only, whatever the data's size.",
        "",
        "## Other targets",
        "",
        *other_targets(full.get("rollup")),
        "",
        f"## Pages at {little.sizes.requests:,} requests (the memory comparison's run)",
        "",
        *small_table(small, little.sizes),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

DEFAULT_SIZES = Sizes(requests=10_000_000, detections=2_000_000, users=20_000,
                      sessions=1_500_000, days=400)  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d = DEFAULT_SIZES
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=d.requests)
    ap.add_argument("--detections", type=int, default=d.detections)
    ap.add_argument("--users", type=int, default=d.users)
    ap.add_argument("--sessions", type=int, default=d.sessions)
    ap.add_argument("--days", type=int, default=d.days)
    ap.add_argument("--small-requests", type=int, default=100_000,
                    help="size of the second database, for the memory comparison")  # fmt: skip
    ap.add_argument("--quick", action="store_true",
                    help="200,000 requests (20,000 small), the rest in proportion")  # fmt: skip
    ap.add_argument("--reseed", action="store_true", help="seed again even if sizes match")
    ap.add_argument("--drop", action="store_true", help="drop the benchmark databases at the end")
    ap.add_argument("--repeat", type=int, default=1, help="best of N per cell")
    ap.add_argument("--server", help="admin URL of the PostgreSQL server "
                    "(default: $TEST_DATABASE_URL, else the local server)")  # fmt: skip
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "SCALE.md"))
    ap.add_argument("--reuse-rollup", action="store_true",
                    help="keep the rollup already on a reused database (built by this code) "
                    "instead of rebuilding it in full before the incremental runs")  # fmt: skip
    ap.add_argument("--modes", default=",".join(m.key for m in MODES),
                    help="comma-separated modes to measure (others read 'not measured in "
                    "this run'), e.g. rollup,redis while tuning; the report wants all")  # fmt: skip
    args = ap.parse_args(argv)
    unknown = set(args.modes.split(",")) - set(MODE_BY_KEY)
    if unknown:
        ap.error(f"--modes: unknown {', '.join(sorted(unknown))}; one of {', '.join(MODE_BY_KEY)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global REUSE_ROLLUP
    REUSE_ROLLUP = args.reuse_rollup
    full = Sizes(args.requests, args.detections, args.users, args.sessions, args.days)
    small_requests = args.small_requests
    if args.quick:
        full = replace(DEFAULT_SIZES.scaled_to(200_000), days=args.days)
        small_requests = 20_000
    small = full.scaled_to(small_requests)
    server = server_url(args.server)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    print(f"Server: {server.render_as_string(hide_password=True)}")
    try:
        seeded = (
            ensure_seeded(admin, server, full, args.reseed),
            ensure_seeded(admin, server, small, args.reseed),
        )
        for s in seeded:
            state = "reused" if s.reused else "seeded"
            print(f"  {s.sizes.database}: {state}, {s.seconds:,.0f} s to seed", flush=True)
        runs: list[dict[str, Run]] = []
        loads = [os.getloadavg()[0]]
        for s in seeded:
            print(f"Measuring {s.sizes.database}", flush=True)
            by_mode = {}
            for m in MODES:
                if m.key in args.modes.split(","):
                    by_mode[m.key] = run_mode(s, m, args.repeat)
                else:
                    by_mode[m.key] = Run(missing="not measured in this run", why="--modes")
                loads.append(os.getloadavg()[0])
            runs.append(by_mode)
        report = render(args, admin, seeded, runs[0], runs[1], loads)
        Path(args.out).write_text(report, encoding="utf-8")
        print()
        print(report)
        print(f"Written to {args.out}")
        if args.drop:
            with admin.connect() as conn:
                for s in seeded:
                    _drop(conn, s.sizes.database)
    finally:
        admin.dispose()
    failed = [m.key for r in runs for m in MODES if r[m.key].missing == "**error**"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
