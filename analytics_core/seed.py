"""Deterministic demo data for the analytics contract (``analytics_core.schema``).

:func:`seed` fills an empty database with ``days`` of realistic platform activity
ending at ``end``: tenants, users, detectors, detection runs with feedback, API
requests and UI sessions, with daily/weekly seasonality, gentle growth and three
injected incidents (see :func:`incidents`) so the 7- and 30-day views have
something to show. :func:`top_up` appends the activity missing between the latest
stored event and now, so a demo database stays current.

Everything is generated vectorised with numpy from one seeded generator and
bulk-loaded natively: DuckDB scans a registered pandas frame, PostgreSQL gets
``COPY ... FROM STDIN``. Other dialects fall back to ``executemany``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, bindparam, func, select

from analytics_core import schema

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

_US = 1_000_000
_MINUTE = 60 * _US
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAT = np.iinfo(np.int64).min


class SeedError(ValueError):
    """Seeding was refused: bad arguments or a database that already holds data."""


# --------------------------------------------------------------------------- incidents

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
    end = _as_utc(end)
    return [
        Incident(name, end - before, end - before + duration, table, text)
        for name, before, duration, table, text in _INCIDENT_SPECS
    ]


# --------------------------------------------------------------------------- catalogue

# Volumes at scale 1 over a 90-day window; with 35% growth over 90 days the
# per-day rate at the window's end is the 90-day mean divided by the mean growth.
_GROWTH_90D = 1.35
_GROWTH_PER_US = math.log(_GROWTH_90D) / (90 * _DAY)
_MEAN_GROWTH_90D = (1 - 1 / _GROWTH_90D) / math.log(_GROWTH_90D)
_RATE_AT_END = {
    "detection_results": 20_000 / 90 / _MEAN_GROWTH_90D,
    "api_requests": 300_000 / 90 / _MEAN_GROWTH_90D,
    "user_sessions": 10_000 / 90 / _MEAN_GROWTH_90D,
}
_NEW_USERS_PER_90D = 0.25  # new users over 90 days, as a share of a tenant's base users
_FEEDBACK_SHARE = 0.25
_NULL_USER_SHARE = 0.05  # API-key requests
_DATASETS_PER_DETECTOR = 25

_TENANTS: tuple[tuple[str, str, str], ...] = (
    ("t_acme", "Acme Corp", "enterprise"),
    ("t_globex", "Globex Industries", "pro"),
    ("t_hooli", "Hooli Labs", "free"),
    ("t_initech", "Initech", "starter"),
    ("t_umbrella", "Umbrella Analytics", "pro"),
    ("t_wayne", "Wayne Fintech", "enterprise"),
)
_PLAN_TRAFFIC = {"free": 0.3, "starter": 1.0, "pro": 2.2, "enterprise": 4.0}
_PLAN_USERS = {"free": 5, "starter": 12, "pro": 20, "enterprise": 32}

_DETECTORS: tuple[tuple[str, str, str, str], ...] = (
    ("d_01", "t_acme", "payments-fraud", "isolation_forest"),
    ("d_02", "t_acme", "network-traffic", "autoencoder"),
    ("d_03", "t_acme", "sensor-temperature", "lof"),
    ("d_04", "t_globex", "order-volume", "isolation_forest"),
    ("d_05", "t_globex", "checkout-latency", "zscore"),
    ("d_06", "t_initech", "login-behaviour", "one_class_svm"),
    ("d_07", "t_umbrella", "lab-instrument-drift", "autoencoder"),
    ("d_08", "t_umbrella", "shipment-delays", "lof"),
    ("d_09", "t_hooli", "signup-spikes", "zscore"),
    ("d_10", "t_wayne", "card-transactions", "isolation_forest"),
    ("d_11", "t_wayne", "atm-withdrawals", "one_class_svm"),
    ("d_12", "t_wayne", "trading-volume", "autoencoder"),
)

_ALGORITHMS = ("isolation_forest", "lof", "one_class_svm", "autoencoder", "zscore")
# Per algorithm: base anomaly rate, false-positive share, failure rate,
# execution ms = fixed + coef * n_samples ** power, mean_score ~ Beta(a, b).
_ALGO_RATE = np.array([0.030, 0.040, 0.050, 0.020, 0.012])
_ALGO_FP = np.array([0.18, 0.25, 0.22, 0.14, 0.30])
_ALGO_FAIL = np.array([0.015, 0.020, 0.025, 0.022, 0.010])
_ALGO_FIXED_MS = np.array([40.0, 30.0, 50.0, 800.0, 3.0])
_ALGO_COEF_MS = np.array([0.02, 0.0009, 0.00004, 0.12, 0.0004])
_ALGO_POWER = np.array([1.0, 1.25, 1.6, 1.0, 1.0])
_ALGO_BETA = np.array([[7.0, 3.0], [6.0, 3.0], [5.0, 3.0], [8.0, 2.5], [9.0, 3.0]])

# method, endpoint, share of traffic, success code, p(4xx), latency median ms and
# sigma, request bytes median and sigma, response bytes median and sigma.
_ENDPOINTS = (
    ("POST", "/api/v1/detect", 0.22, 200, 0.035, 180.0, 0.6, 150e3, 1.2, 8e3, 0.8),
    ("POST", "/api/v1/datasets", 0.04, 201, 0.05, 900.0, 0.7, 2.5e6, 1.1, 400.0, 0.3),
    ("GET", "/api/v1/datasets", 0.10, 200, 0.025, 45.0, 0.5, 350.0, 0.3, 4e3, 0.8),
    ("GET", "/api/v1/detectors", 0.14, 200, 0.02, 35.0, 0.5, 350.0, 0.3, 2.5e3, 0.6),
    ("GET", "/api/v1/results", 0.28, 200, 0.03, 60.0, 0.6, 400.0, 0.3, 12e3, 1.0),
    ("GET", "/api/v1/health", 0.15, 200, 0.002, 3.0, 0.4, 120.0, 0.1, 60.0, 0.05),
    ("POST", "/api/v1/auth/token", 0.07, 200, 0.08, 80.0, 0.4, 250.0, 0.2, 900.0, 0.1),
)
_CLIENT_ERRORS = np.array([400, 401, 403, 404, 409, 422, 429])
_CLIENT_ERROR_P = np.array([0.25, 0.22, 0.08, 0.22, 0.03, 0.10, 0.10])
_SERVER_ERRORS = np.array([500, 502, 503, 504])
_SERVER_ERROR_P = np.array([0.6, 0.1, 0.25, 0.05])

# Seasonality (UTC): base + amplitude * office-hours bump, times a weekend factor.
_PROFILES = {
    "api_requests": (0.35, 1.0, 0.45),
    "detection_results": (0.8, 0.6, 0.6),
    "user_sessions": (0.1, 1.0, 0.25),
}

_COUNT_TABLES = tuple(t.name for t in schema.TABLES)


# --------------------------------------------------------------------------- public API


def seed(
    engine: Engine,
    days: float = 90,
    scale: float = 1.0,
    seed: int = 42,
    end: datetime | None = None,
) -> dict[str, int]:
    """Create the tables if missing and fill them with ``days`` of demo data ending at ``end``.

    ``end`` defaults to now (UTC, floored to the second); naive datetimes are
    taken as UTC. The same ``seed``, ``days``, ``scale`` and ``end`` always give
    the same data. Refuses (:class:`SeedError`) when the database already holds
    data. Returns the number of rows written per table.
    """
    days, scale = _check_positive("days", days), _check_positive("scale", scale)
    end_us = _to_us(_as_utc(end) if end is not None else _now())
    start_us = end_us - int(round(days * _DAY))
    if start_us >= end_us:
        raise SeedError(f"days={days!r} is too short: the window is empty")

    schema.create_tables(engine)
    with engine.connect() as conn:
        busy = [t.name for t in schema.TABLES if _has_rows(conn, t)]
    if busy:
        raise SeedError(
            f"refusing to seed {_where(engine)}: it already holds data in {', '.join(busy)}. "
            "Seed into an empty database, or use top_up() to extend existing demo data."
        )

    rng = np.random.default_rng(_seed_seq(seed))
    world, frames = _initial_world(rng, seed, start_us, end_us, scale)
    frames.update(
        _generate(
            rng,
            world,
            start_us,
            end_us,
            anchor=end_us,
            scale=scale,
            first_ids=_Ids(),
            windows=_incident_windows(end_us),
        )
    )
    with engine.begin() as conn:
        _load(conn, frames)
    return {name: len(frames[name]) for name in _COUNT_TABLES}


def top_up(
    engine: Engine,
    seed: int = 42,
    now: datetime | None = None,
    scale: float | None = None,
) -> dict[str, int]:
    """Append the activity missing between the latest stored event and ``now``.

    Reuses the stored tenants, users and detectors (adding new users at the
    usual growth rate), continues every id sequence, and closes sessions left
    open that would have ended by ``now``. ``scale`` defaults to the rate of the
    last week of stored API requests relative to scale 1. Deterministic for a
    given ``seed``, latest stored time and ``now``; a no-op returning zeros when
    less than a minute is missing. Incidents are only injected by :func:`seed`.
    """
    if scale is not None:
        scale = _check_positive("scale", scale)
    now_us = _to_us(_as_utc(now) if now is not None else _now())
    zeros = {name: 0 for name in _COUNT_TABLES}

    schema.create_tables(engine)
    with engine.connect() as conn:
        state = _read_state(conn, seed)
    if state is None:
        raise SeedError(
            f"nothing to top up in {_where(engine)}: no detection results or API requests. "
            "Run seed() first."
        )
    world, last_us, first_us, ids = state
    start_us = last_us + 1
    if now_us - start_us < _MINUTE:
        return zeros

    if scale is None:
        with engine.connect() as conn:
            scale = _detect_scale(conn, first_us, last_us)
    rng = np.random.default_rng(_seed_seq(seed, last_us, now_us))
    frames: dict[str, pd.DataFrame] = {}
    frames["users"] = _new_users(rng, world, start_us, now_us, scale, ids.user)
    closed = _close_sessions(rng, world.open_sessions, now_us)
    frames.update(_generate(rng, world, start_us, now_us, last_us, scale, ids, windows=()))
    with engine.begin() as conn:
        _load(conn, frames)
        if closed:
            t = schema.user_sessions
            conn.execute(
                t.update()
                .where(t.c.session_id == bindparam("sid"))
                .values(ended_at=bindparam("ended")),
                closed,
            )
    zeros.update({name: len(frame) for name, frame in frames.items()})
    return zeros


# --------------------------------------------------------------------------- helpers


def _check_positive(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SeedError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise SeedError(f"{name} must be a positive number, got {value!r}")
    return number


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _to_us(value: datetime) -> int:
    return (_as_utc(value) - _EPOCH) // timedelta(microseconds=1)


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def _seed_seq(*parts: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(p) % 2**64 for p in parts])


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _has_rows(conn: Connection, table: Table) -> bool:
    return conn.execute(select(1).select_from(table).limit(1)).first() is not None


@dataclass(frozen=True)
class _Ids:
    """The last id used per sequence (new ids start after these)."""

    detection: int = 0
    feedback: int = 0
    request: int = 0
    session: int = 0
    user: int = 0


@dataclass
class _World:
    """Entities events are drawn from, as arrays indexed by position."""

    seed: int
    tenant_weight: np.ndarray
    tenant_users: np.ndarray  # base users per tenant at scale 1 (drives new users)
    tenant_ids: np.ndarray
    user_ids: np.ndarray
    user_tenant: np.ndarray
    user_created: np.ndarray
    user_weight: np.ndarray
    det_ids: np.ndarray
    det_tenant: np.ndarray
    det_algo: np.ndarray
    det_weight: np.ndarray
    det_rate_mult: np.ndarray
    det_fp_mult: np.ndarray
    det_threshold: np.ndarray
    open_sessions: list[tuple[str, int]]


def _traits(seed: int, kind: int, n: int, k: int) -> np.ndarray:
    """Stable per-entity uniforms: row ``i`` depends only on (seed, kind, i)."""
    return np.random.default_rng(_seed_seq(seed, 0x5EED, kind)).random((max(n, 0), k))


def _normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def _number(ident: str, pattern: re.Pattern[str]) -> int:
    match = pattern.fullmatch(ident)
    return int(match.group(1)) if match else 0


_USER_RE = re.compile(r"u_(\d+)")
_SESSION_RE = re.compile(r"s_(\d+)")


def _user_traits(seed: int, numbers: np.ndarray) -> np.ndarray:
    """Activity weight per user: lognormal, with ~20% near-dormant users."""
    size = max(int(numbers.max(initial=0)), 1)
    rows = _traits(seed, 1, size, 3)[np.clip(numbers, 1, None) - 1]
    weight = np.exp(0.9 * _normal(rows[:, 1], rows[:, 2]))
    return np.where(rows[:, 0] < 0.2, 0.002 * weight, weight)


def _build_world(
    seed: int,
    tenants: pd.DataFrame,
    users: pd.DataFrame,
    detectors: pd.DataFrame,
    open_sessions: list[tuple[str, int]],
) -> _World:
    tenants = tenants.sort_values("tenant_id", ignore_index=True)
    detectors = detectors.sort_values("detector_id", ignore_index=True)
    tenant_pos = {tid: i for i, tid in enumerate(tenants["tenant_id"])}
    plans = tenants["plan"].to_numpy(dtype=object)
    t_traits = _traits(seed, 0, len(tenants), 2)
    tenant_weight = np.array([_PLAN_TRAFFIC.get(p, 1.0) for p in plans]) * np.exp(
        0.25 * _normal(t_traits[:, 0], t_traits[:, 1])
    )
    tenant_users = np.array([_PLAN_USERS.get(p, 10) for p in plans], dtype=float)

    user_ids = users["user_id"].to_numpy(dtype=object)
    numbers = np.array([_number(u, _USER_RE) for u in user_ids], dtype=np.int64)
    user_tenant = np.array([tenant_pos.get(t, -1) for t in users["tenant_id"]], dtype=np.int64)

    d_traits = _traits(seed, 2, len(detectors), 7)
    det_tenant = np.array([tenant_pos.get(t, -1) for t in detectors["tenant_id"]], dtype=np.int64)
    algo_pos = {a: i for i, a in enumerate(_ALGORITHMS)}
    det_algo = np.array([algo_pos.get(a, 0) for a in detectors["algorithm"]], dtype=np.int64)
    plan_w = np.where(det_tenant >= 0, tenant_weight[np.clip(det_tenant, 0, None)], 1.0)
    keep = det_tenant >= 0
    return _World(
        seed=seed,
        tenant_weight=tenant_weight,
        tenant_users=tenant_users,
        tenant_ids=tenants["tenant_id"].to_numpy(dtype=object),
        user_ids=user_ids[user_tenant >= 0],
        user_tenant=user_tenant[user_tenant >= 0],
        user_created=_us_array(users["created_at"])[user_tenant >= 0],
        user_weight=_user_traits(seed, numbers)[user_tenant >= 0],
        det_ids=detectors["detector_id"].to_numpy(dtype=object)[keep],
        det_tenant=det_tenant[keep],
        det_algo=det_algo[keep],
        det_weight=(np.sqrt(plan_w) * np.exp(0.5 * _normal(d_traits[:, 0], d_traits[:, 1])))[keep],
        det_rate_mult=np.exp(0.3 * _normal(d_traits[:, 2], d_traits[:, 3]))[keep],
        det_fp_mult=np.exp(0.2 * _normal(d_traits[:, 4], d_traits[:, 5]))[keep],
        det_threshold=(0.5 + 0.05 * np.floor(d_traits[:, 6] * 9))[keep],
        open_sessions=open_sessions,
    )


def _initial_world(
    rng: np.random.Generator, seed: int, start_us: int, end_us: int, scale: float
) -> tuple[_World, dict[str, pd.DataFrame]]:
    """Tenants, base users and detectors created before the window."""
    n_t = len(_TENANTS)
    tenant_created = start_us - ((60 + 660 * rng.random(n_t)) * _DAY).astype(np.int64)
    tenant_created -= tenant_created % _US
    tenants = pd.DataFrame(
        {
            "tenant_id": [t[0] for t in _TENANTS],
            "name": [t[1] for t in _TENANTS],
            "plan": [t[2] for t in _TENANTS],
            "created_at": _ts(tenant_created),
        }
    )
    tenant_pos = {t[0]: i for i, t in enumerate(_TENANTS)}

    d_tenant = np.array([tenant_pos[d[1]] for d in _DETECTORS])
    d_created = tenant_created[d_tenant] + (
        rng.random(len(_DETECTORS)) * (start_us - tenant_created[d_tenant])
    ).astype(np.int64)
    d_created -= d_created % _US
    detectors = pd.DataFrame(
        {
            "detector_id": [d[0] for d in _DETECTORS],
            "tenant_id": [d[1] for d in _DETECTORS],
            "name": [d[2] for d in _DETECTORS],
            "algorithm": [d[3] for d in _DETECTORS],
            "created_at": _ts(d_created),
        }
    )

    # Base users: the first of each tenant is created with it (always eligible).
    per_tenant = [max(2, round(_PLAN_USERS[t[2]] * scale)) for t in _TENANTS]
    u_tenant = np.repeat(np.arange(n_t), per_tenant)
    span = start_us - tenant_created[u_tenant]
    u_created = tenant_created[u_tenant] + (rng.random(len(u_tenant)) * span).astype(np.int64)
    firsts = np.r_[0, np.cumsum(per_tenant)[:-1]]
    u_created[firsts] = tenant_created + _HOUR
    u_created -= u_created % _US
    order = np.lexsort((u_tenant, u_created))
    users = pd.DataFrame(
        {
            "user_id": _ids("u_%04d", 1, len(order)),
            "tenant_id": np.array([t[0] for t in _TENANTS], dtype=object)[u_tenant[order]],
            "created_at": _ts(u_created[order]),
        }
    )
    world = _build_world(seed, tenants, users, detectors, [])
    new = _new_users(rng, world, start_us, end_us, scale, len(users))
    return world, {
        "tenants": tenants,
        "detectors": detectors,
        "users": pd.concat([users, new], ignore_index=True),
    }


def _new_users(
    rng: np.random.Generator, world: _World, a: int, b: int, scale: float, last_id: int
) -> pd.DataFrame:
    """Users signing up in ``[a, b)``; appended to ``world`` so events can pick them."""
    expected = world.tenant_users * scale * _NEW_USERS_PER_90D * (b - a) / (90 * _DAY)
    counts = rng.poisson(expected)
    tenant = np.repeat(np.arange(len(counts)), counts)
    created = a + (rng.random(len(tenant)) * (b - a)).astype(np.int64)
    created -= created % _US
    created = np.maximum(created, a)
    order = np.lexsort((tenant, created))
    tenant, created = tenant[order], created[order]
    ids = _ids("u_%04d", last_id + 1, len(tenant))
    numbers = np.arange(last_id + 1, last_id + 1 + len(tenant), dtype=np.int64)
    world.user_ids = np.concatenate([world.user_ids, ids])
    world.user_tenant = np.concatenate([world.user_tenant, tenant])
    world.user_created = np.concatenate([world.user_created, created])
    world.user_weight = np.concatenate([world.user_weight, _user_traits(world.seed, numbers)])
    return pd.DataFrame(
        {"user_id": ids, "tenant_id": world.tenant_ids[tenant], "created_at": _ts(created)}
    )


def _ids(fmt: str, first: int, n: int) -> np.ndarray:
    return np.array([fmt % i for i in range(first, first + n)], dtype=object)


def _ts(us: np.ndarray) -> pd.Series:
    """UTC-aware timestamps from epoch microseconds (``_NAT`` becomes NaT)."""
    return pd.Series(np.asarray(us, dtype=np.int64).view("datetime64[us]")).dt.tz_localize(UTC)


def _us_array(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values, utc=True).dt.tz_convert(UTC).dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[us]").view(np.int64)


# --------------------------------------------------------------------------- time model


@cache
def _profile_mean(kind: str) -> float:
    week = np.arange(0, 7 * _DAY, _MINUTE, dtype=np.int64) + 4 * _DAY  # a Monday 00:00
    return float(_raw_profile(week, kind).mean())


def _raw_profile(t: np.ndarray, kind: str) -> np.ndarray:
    base, amplitude, weekend = _PROFILES[kind]
    day = t // _DAY
    hour = (t - day * _DAY) / _HOUR
    office = np.exp(-0.5 * ((hour - 13.5) / 3.5) ** 2)
    is_weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday; Monday is 0
    return (base + amplitude * office) * np.where(is_weekend, weekend, 1.0)


def _intensity(t: np.ndarray, kind: str, anchor: int) -> np.ndarray:
    """Relative event rate at ``t``: weekly mean 1 at ``anchor``, growing over time."""
    growth = np.exp(_GROWTH_PER_US * (t - anchor).astype(np.float64))
    return _raw_profile(t, kind) / _profile_mean(kind) * growth


def _bins(a: int, b: int, width: int = _MINUTE) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(a, b, width, dtype=np.int64)
    lengths = np.diff(np.append(edges, np.int64(b)))
    return edges, lengths


def _expected(kind: str, per_day: float, a: int, b: int, anchor: int) -> float:
    edges, lengths = _bins(a, b)
    return float((per_day * lengths / _DAY * _intensity(edges + lengths // 2, kind, anchor)).sum())


def _arrivals(
    rng: np.random.Generator, kind: str, per_day: float, a: int, b: int, anchor: int
) -> np.ndarray:
    """Sorted event times in ``[a, b)`` of a Poisson process with the seasonal intensity."""
    edges, lengths = _bins(a, b)
    lam = per_day * lengths / _DAY * _intensity(edges + lengths // 2, kind, anchor)
    counts = rng.poisson(lam)
    offsets = (rng.random(int(counts.sum())) * np.repeat(lengths, counts)).astype(np.int64)
    times = np.repeat(edges, counts) + offsets
    times.sort()
    return times


def _incident_windows(end_us: int) -> tuple[tuple[str, int, int], ...]:
    return tuple((i.name, _to_us(i.start), _to_us(i.end)) for i in incidents(_from_us(end_us)))


def _during(t: np.ndarray, windows: Sequence[tuple[str, int, int]], name: str) -> np.ndarray:
    mask = np.zeros(len(t), dtype=bool)
    for incident, a, b in windows:
        if incident == name:
            mask |= (t >= a) & (t < b)
    return mask


# --------------------------------------------------------------------------- events


def _pick_users(
    rng: np.random.Generator, world: _World, group: np.ndarray | None, t: np.ndarray
) -> np.ndarray:
    """A user per event, by activity weight among users existing at ``t``.

    ``group`` holds tenant positions (users of that tenant) or is None (any user).
    Returns user positions, -1 where the tenant has no user at all.
    """
    out = np.full(len(t), -1, dtype=np.int64)
    groups = range(len(world.tenant_ids)) if group is not None else [None]
    for g in groups:
        rows = np.flatnonzero(group == g) if g is not None else np.arange(len(t))
        members = np.flatnonzero(world.user_tenant == g) if g is not None else None
        if members is None:
            members = np.arange(len(world.user_ids))
        if not len(rows) or not len(members):
            continue
        cum = np.cumsum(world.user_weight[members])
        pending = rows
        for _ in range(32):
            draw = np.searchsorted(cum, rng.random(len(pending)) * cum[-1], side="right")
            pick = members[np.minimum(draw, len(members) - 1)]
            ok = world.user_created[pick] <= t[pending]
            out[pending[ok]] = pick[ok]
            pending = pending[~ok]
            if not len(pending):
                break
        if len(pending):  # the earliest member has been around the longest
            out[pending] = members[np.argmin(world.user_created[members])]
    return out


def _generate(
    rng: np.random.Generator,
    world: _World,
    a: int,
    b: int,
    anchor: int,
    scale: float,
    first_ids: _Ids,
    windows: Sequence[tuple[str, int, int]],
) -> dict[str, pd.DataFrame]:
    results, raw = _detections(rng, world, a, b, anchor, scale, first_ids.detection, windows)
    return {
        "detection_results": results,
        "detection_feedback": _feedback(rng, world, raw, b, first_ids.feedback),
        "api_requests": _requests(rng, world, a, b, anchor, scale, first_ids.request, windows),
        "user_sessions": _sessions(rng, world, a, b, anchor, scale, first_ids.session),
    }


def _detections(
    rng: np.random.Generator,
    world: _World,
    a: int,
    b: int,
    anchor: int,
    scale: float,
    last_id: int,
    windows: Sequence[tuple[str, int, int]],
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    kind = "detection_results"
    t = _arrivals(rng, kind, _RATE_AT_END[kind] * scale, a, b, anchor)
    n = len(t)
    if not len(world.det_ids):
        t, n = t[:0], 0
    p = world.det_weight / world.det_weight.sum() if len(world.det_ids) else None
    det = rng.choice(len(world.det_ids), size=n, p=p) if n else np.zeros(0, dtype=np.int64)
    algo = world.det_algo[det]

    # Each detector scores a couple dozen datasets of roughly stable size.
    k = np.minimum(rng.geometric(0.12, n) - 1, _DATASETS_PER_DETECTOR - 1)
    ds_num = det * _DATASETS_PER_DETECTOR + k + 1
    ds_size = np.exp(
        np.log(100) + np.log(1000) * _traits(world.seed, 3, int(ds_num.max(initial=0)), 1)[:, 0]
    )
    size = ds_size[ds_num - 1] * np.exp(0.15 * rng.standard_normal(n))
    n_samples = np.clip(np.round(size), 100, 100_000).astype(np.int64)

    jump = _during(t, windows, "anomaly_rate_jump") & (world.det_ids[det] == ANOMALY_JUMP_DETECTOR)
    rate = _ALGO_RATE[algo] * world.det_rate_mult[det] * np.exp(0.35 * rng.standard_normal(n))
    rate = np.clip(np.where(jump, rate * ANOMALY_JUMP_FACTOR, rate), 0.0005, 0.6)

    p_fail = _ALGO_FAIL[algo] + np.where((algo == 2) & (n_samples > 50_000), 0.04, 0.0)
    p_fail = np.where(_during(t, windows, "error_burst"), 0.3, p_fail)
    failed = rng.random(n) < p_fail
    n_anomalies = np.where(failed, 0, rng.binomial(n_samples, rate))

    score = rng.beta(_ALGO_BETA[algo, 0], _ALGO_BETA[algo, 1]) if n else np.zeros(0)
    score = np.where(failed, np.nan, np.round(score, 4))
    threshold = np.round(world.det_threshold[det] + 0.01 * rng.standard_normal(n), 3)
    cost = _ALGO_FIXED_MS[algo] + _ALGO_COEF_MS[algo] * n_samples.astype(float) ** _ALGO_POWER[algo]
    exec_ms = cost * np.exp(0.25 * rng.standard_normal(n))
    exec_ms = np.round(np.where(failed, exec_ms * (0.05 + 0.95 * rng.random(n)), exec_ms), 3)

    ids = np.arange(last_id + 1, last_id + 1 + n, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "id": ids,
            "created_at": _ts(t),
            "tenant_id": world.tenant_ids[world.det_tenant[det]],
            "detector_id": world.det_ids[det],
            "algorithm": np.array(_ALGORITHMS, dtype=object)[algo],
            "dataset_id": np.char.mod("ds_%05d", ds_num).astype(object),
            "n_samples": n_samples,
            "n_anomalies": n_anomalies.astype(np.int64),
            "mean_score": score,
            "threshold": threshold,
            "execution_time_ms": exec_ms,
            "status": np.where(failed, "failed", "success").astype(object),
        }
    )
    raw = {"id": ids, "t": t, "det": det, "failed": failed, "n_anomalies": n_anomalies}
    raw["jump"] = jump
    return frame, raw


def _feedback(
    rng: np.random.Generator, world: _World, res: dict[str, np.ndarray], b: int, last_id: int
) -> pd.DataFrame:
    """Reviews of ~25% of successful runs with anomalies, minutes to a day later."""
    eligible = np.flatnonzero(~res["failed"] & (res["n_anomalies"] > 0))
    chosen = eligible[rng.random(len(eligible)) < _FEEDBACK_SHARE]
    delay = np.exp(np.log(2 * _HOUR) + 1.2 * rng.standard_normal(len(chosen)))
    delay = np.clip(delay, _MINUTE, _DAY).astype(np.int64)
    t = res["t"][chosen] + delay
    keep = t < b
    chosen, t = chosen[keep], t[keep]
    det = res["det"][chosen]
    n_anom = res["n_anomalies"][chosen]
    reviewed = np.minimum(np.ceil(n_anom * (0.4 + 0.6 * rng.random(len(chosen)))), n_anom)
    p_fp = _ALGO_FP[world.det_algo[det]] * world.det_fp_mult[det]
    p_fp = np.clip(np.where(res["jump"][chosen], 0.65, p_fp), 0.0, 0.95)
    false_pos = rng.binomial(reviewed.astype(np.int64), p_fp)
    user = _pick_users(rng, world, world.det_tenant[det], t)
    keep = user >= 0
    order = np.argsort(t[keep], kind="stable")
    n = int(keep.sum())
    return pd.DataFrame(
        {
            "id": np.arange(last_id + 1, last_id + 1 + n, dtype=np.int64),
            "detection_id": res["id"][chosen][keep][order],
            "created_at": _ts(t[keep][order]),
            "user_id": world.user_ids[user[keep][order]],
            "confirmed": (reviewed - false_pos)[keep][order].astype(np.int64),
            "false_positives": false_pos[keep][order].astype(np.int64),
        }
    )


def _requests(
    rng: np.random.Generator,
    world: _World,
    a: int,
    b: int,
    anchor: int,
    scale: float,
    last_id: int,
    windows: Sequence[tuple[str, int, int]],
) -> pd.DataFrame:
    kind = "api_requests"
    t = _arrivals(rng, kind, _RATE_AT_END[kind] * scale, a, b, anchor)
    n = len(t)
    ep = _ENDPOINTS
    col = [np.array([e[i] for e in ep]) for i in range(len(ep[0]))]
    method, endpoint, share, ok_code, p4xx = col[:5]
    lat_med, lat_sig, req_med, req_sig, resp_med, resp_sig = (c.astype(float) for c in col[5:])

    tenant = rng.choice(
        len(world.tenant_ids), size=n, p=world.tenant_weight / world.tenant_weight.sum()
    )
    e = rng.choice(len(ep), size=n, p=share.astype(float) / share.astype(float).sum())
    user = _pick_users(rng, world, tenant, t)
    known = np.append(world.user_ids, None)  # position -1 picks None
    user_id = known[user]
    user_id[rng.random(n) < _NULL_USER_SHARE] = None

    burst = _during(t, windows, "error_burst")
    p5xx = np.where(burst, ERROR_BURST_SHARE, 0.005)
    u = rng.random(n)
    server = u < p5xx
    client = ~server & (u < p5xx + p4xx.astype(float)[e] * (1 - p5xx))
    code = ok_code.astype(np.int64)[e]
    code = np.where(client, rng.choice(_CLIENT_ERRORS, size=n, p=_CLIENT_ERROR_P), code)
    too_large = client & (endpoint[e] == "/api/v1/datasets") & (method[e] == "POST")
    code = np.where(too_large & (rng.random(n) < 0.3), 413, code)
    code = np.where(
        client & (endpoint[e] == "/api/v1/auth/token") & (rng.random(n) < 0.6), 401, code
    )
    normal_5xx = rng.choice(_SERVER_ERRORS, size=n, p=_SERVER_ERROR_P)
    burst_5xx = np.where(rng.random(n) < 0.6, 500, 503)
    code = np.where(server, np.where(burst, burst_5xx, normal_5xx), code)

    load = 0.85 + 0.15 * _raw_profile(t, kind) / _profile_mean(kind)
    duration = np.exp(np.log(lat_med[e]) + lat_sig[e] * rng.standard_normal(n)) * load
    spike = _during(t, windows, "detect_latency_spike") & (endpoint[e] == LATENCY_SPIKE_ENDPOINT)
    duration = np.where(spike, duration * LATENCY_SPIKE_FACTOR, duration)
    fast_fail = np.exp(np.log(12.0) + 0.5 * rng.standard_normal(n))
    duration = np.where(client | (code == 502) | (code == 503), fast_fail, duration)
    duration = np.where(code == 500, duration * 1.5, duration)
    duration = np.where(code == 504, 30_000 + 50 * rng.random(n), duration)

    req = np.exp(np.log(req_med[e]) + req_sig[e] * rng.standard_normal(n))
    resp = np.exp(np.log(resp_med[e]) + resp_sig[e] * rng.standard_normal(n))
    resp = np.where(client | server, 120 + 80 * rng.random(n), resp)
    return pd.DataFrame(
        {
            "id": np.arange(last_id + 1, last_id + 1 + n, dtype=np.int64),
            "ts": _ts(t),
            "tenant_id": world.tenant_ids[tenant],
            "user_id": user_id,
            "method": method.astype(object)[e],
            "endpoint": endpoint.astype(object)[e],
            "status_code": code.astype(np.int64),
            "duration_ms": np.round(np.maximum(duration, 0.1), 3),
            "request_bytes": np.clip(np.round(req), 1, 2_000_000_000).astype(np.int64),
            "response_bytes": np.round(resp).astype(np.int64),
        }
    )


def _sessions(
    rng: np.random.Generator,
    world: _World,
    a: int,
    b: int,
    anchor: int,
    scale: float,
    last_id: int,
) -> pd.DataFrame:
    """UI sessions; those still running at ``b`` (or just abandoned) are left open."""
    kind = "user_sessions"
    t = _arrivals(rng, kind, _RATE_AT_END[kind] * scale, a, b, anchor)
    user = _pick_users(rng, world, None, t)
    t, user = t[user >= 0], user[user >= 0]
    n = len(t)
    length = np.exp(np.log(20 * _MINUTE) + 0.9 * rng.standard_normal(n))
    length = np.clip(length, 30 * _US, 10 * _HOUR).astype(np.int64)
    ended = t + length
    recent = (t >= b - 4 * _HOUR) & (rng.random(n) < 0.3)
    ended = np.where((ended >= b) | recent, _NAT, ended)
    return pd.DataFrame(
        {
            "session_id": _ids("s_%06d", last_id + 1, n),
            "user_id": world.user_ids[user],
            "tenant_id": world.tenant_ids[world.user_tenant[user]],
            "started_at": _ts(t),
            "ended_at": _ts(ended),
        }
    )


def _close_sessions(
    rng: np.random.Generator, open_sessions: list[tuple[str, int]], now_us: int
) -> list[dict[str, object]]:
    """End times for sessions left open by an earlier run that have ended by ``now``."""
    if not open_sessions:
        return []
    started = np.array([s for _, s in open_sessions], dtype=np.int64)
    length = np.exp(np.log(20 * _MINUTE) + 0.9 * rng.standard_normal(len(started)))
    ended = started + np.clip(length, 30 * _US, 10 * _HOUR).astype(np.int64)
    return [
        {"sid": sid, "ended": _from_us(e)}
        for (sid, _), e in zip(open_sessions, ended, strict=True)
        if e < now_us
    ]


# --------------------------------------------------------------------------- top-up state


def _read_state(conn: Connection, seed: int) -> tuple[_World, int, int, _Ids] | None:
    s = schema
    last_result, first_result, last_det_id = conn.execute(
        select(
            func.max(s.detection_results.c.created_at),
            func.min(s.detection_results.c.created_at),
            func.max(s.detection_results.c.id),
        )
    ).one()
    last_req, first_req, last_req_id = conn.execute(
        select(
            func.max(s.api_requests.c.ts),
            func.min(s.api_requests.c.ts),
            func.max(s.api_requests.c.id),
        )
    ).one()
    lasts = [_to_us(x) for x in (last_result, last_req) if x is not None]
    firsts = [_to_us(x) for x in (first_result, first_req) if x is not None]
    if not lasts:
        return None
    last_fb = conn.execute(select(func.max(s.detection_feedback.c.id))).scalar()

    def frame(table: Table, *cols: str) -> pd.DataFrame:
        result = conn.execute(select(*(table.c[c] for c in cols)))
        return pd.DataFrame(result.fetchall(), columns=list(cols))

    tenants = frame(s.tenants, "tenant_id", "plan")
    users = frame(s.users, "user_id", "tenant_id", "created_at")
    detectors = frame(s.detectors, "detector_id", "tenant_id", "algorithm")
    session_ids = conn.execute(select(s.user_sessions.c.session_id)).scalars().all()
    open_rows = conn.execute(
        select(s.user_sessions.c.session_id, s.user_sessions.c.started_at)
        .where(s.user_sessions.c.ended_at.is_(None))
        .order_by(s.user_sessions.c.session_id)
    ).all()
    world = _build_world(
        seed, tenants, users, detectors, [(sid, _to_us(st)) for sid, st in open_rows]
    )
    ids = _Ids(
        detection=int(last_det_id or 0),
        feedback=int(last_fb or 0),
        request=int(last_req_id or 0),
        session=max((_number(x, _SESSION_RE) for x in session_ids), default=0),
        user=max((_number(x, _USER_RE) for x in world.user_ids), default=0),
    )
    return world, max(lasts), min(firsts), ids


def _detect_scale(conn: Connection, first_us: int, last_us: int) -> float:
    """Scale of the stored data: last week's API requests over the scale-1 expectation."""
    a = max(first_us, last_us - 7 * _DAY)
    if last_us - a < _HOUR:
        return 1.0
    t = schema.api_requests
    observed = conn.execute(
        select(func.count()).select_from(t).where(t.c.ts >= _from_us(a))
    ).scalar_one()
    kind = "api_requests"
    expected = _expected(kind, _RATE_AT_END[kind], a, last_us, last_us)
    if not observed or expected < 1:
        return 1.0
    return float(min(max(observed / expected, 0.01), 1000.0))


# --------------------------------------------------------------------------- loading

_TABLES = {t.name: t for t in schema.TABLES}
_COPY_CHUNK = 100_000


def _load(conn: Connection, frames: dict[str, pd.DataFrame]) -> None:
    """Insert every frame into its table, in the connection's transaction."""
    dialect = conn.dialect.name
    for name in _COUNT_TABLES:
        frame = frames.get(name)
        if frame is None or frame.empty:
            continue
        table = _TABLES[name]
        columns = [c.name for c in table.columns]
        frame = frame[columns]
        if dialect == "duckdb":
            _load_duckdb(conn, name, columns, frame)
        elif dialect == "postgresql":
            _load_postgres(conn, name, columns, frame)
        else:
            records = frame.astype(object).where(frame.notna(), None).to_dict("records")
            conn.execute(table.insert(), records)


def _load_duckdb(conn: Connection, name: str, columns: list[str], frame: pd.DataFrame) -> None:
    raw = conn.connection.driver_connection  # duckdb_engine.ConnectionWrapper
    view = f"_seed_{name}"
    cols = ", ".join(f'"{c}"' for c in columns)
    raw.register(view, frame)
    try:
        raw.execute(f'INSERT INTO "{name}" ({cols}) SELECT {cols} FROM "{view}"')
    finally:
        raw.unregister(view)


def _load_postgres(conn: Connection, name: str, columns: list[str], frame: pd.DataFrame) -> None:
    raw = conn.connection.driver_connection  # psycopg.Connection
    frame = frame.copy()
    for col in columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = _pg_timestamps(frame[col])
    cols = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({cols}) FROM STDIN (FORMAT csv)') as copy:
        for i in range(0, len(frame), _COPY_CHUNK):
            copy.write(frame.iloc[i : i + _COPY_CHUNK].to_csv(index=False, header=False))


def _pg_timestamps(values: pd.Series) -> np.ndarray:
    stamps = values.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.char.add(np.datetime_as_string(stamps, unit="us"), "+00")
    return np.where(np.isnat(stamps), None, text.astype(object))
