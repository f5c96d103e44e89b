"""The demo platform's tenants, users and detectors, from which its events are drawn,
each with stable random traits."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics_core.demo.time_model import DAY, HOUR, US, to_timestamps, us_array

_NEW_USERS_PER_90D = 0.25  # new users over 90 days, as a share of a tenant's base users

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

ALGORITHMS = ("isolation_forest", "lof", "one_class_svm", "autoencoder", "zscore")


def seed_sequence(*parts: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(p) % 2**64 for p in parts])


@dataclass(frozen=True)
class Ids:
    """The last id used per sequence (new ids start after these)."""

    detection: int = 0
    feedback: int = 0
    request: int = 0
    session: int = 0
    user: int = 0


@dataclass
class World:
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


def traits(seed: int, kind: int, n: int, k: int) -> np.ndarray:
    """Stable per-entity uniforms: row ``i`` depends only on (seed, kind, i)."""
    return np.random.default_rng(seed_sequence(seed, 0x5EED, kind)).random((max(n, 0), k))


def _normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def id_number(ident: str, pattern: re.Pattern[str]) -> int:
    match = pattern.fullmatch(ident)
    return int(match.group(1)) if match else 0


USER_ID = re.compile(r"u_(\d+)")
SESSION_ID = re.compile(r"s_(\d+)")


def _user_traits(seed: int, numbers: np.ndarray) -> np.ndarray:
    """Activity weight per user: lognormal, with ~20% near-dormant users."""
    size = max(int(numbers.max(initial=0)), 1)
    rows = traits(seed, 1, size, 3)[np.clip(numbers, 1, None) - 1]
    weight = np.exp(0.9 * _normal(rows[:, 1], rows[:, 2]))
    return np.where(rows[:, 0] < 0.2, 0.002 * weight, weight)


def build_world(
    seed: int,
    tenants: pd.DataFrame,
    users: pd.DataFrame,
    detectors: pd.DataFrame,
    open_sessions: list[tuple[str, int]],
) -> World:
    tenants = tenants.sort_values("tenant_id", ignore_index=True)
    detectors = detectors.sort_values("detector_id", ignore_index=True)
    tenant_pos = {tid: i for i, tid in enumerate(tenants["tenant_id"])}
    plans = tenants["plan"].to_numpy(dtype=object)
    t_traits = traits(seed, 0, len(tenants), 2)
    tenant_weight = np.array([_PLAN_TRAFFIC.get(p, 1.0) for p in plans]) * np.exp(
        0.25 * _normal(t_traits[:, 0], t_traits[:, 1])
    )
    tenant_users = np.array([_PLAN_USERS.get(p, 10) for p in plans], dtype=float)

    user_ids = users["user_id"].to_numpy(dtype=object)
    numbers = np.array([id_number(u, USER_ID) for u in user_ids], dtype=np.int64)
    user_tenant = np.array([tenant_pos.get(t, -1) for t in users["tenant_id"]], dtype=np.int64)

    d_traits = traits(seed, 2, len(detectors), 7)
    det_tenant = np.array([tenant_pos.get(t, -1) for t in detectors["tenant_id"]], dtype=np.int64)
    algo_pos = {a: i for i, a in enumerate(ALGORITHMS)}
    det_algo = np.array([algo_pos.get(a, 0) for a in detectors["algorithm"]], dtype=np.int64)
    plan_w = np.where(det_tenant >= 0, tenant_weight[np.clip(det_tenant, 0, None)], 1.0)
    keep = det_tenant >= 0
    return World(
        seed=seed,
        tenant_weight=tenant_weight,
        tenant_users=tenant_users,
        tenant_ids=tenants["tenant_id"].to_numpy(dtype=object),
        user_ids=user_ids[user_tenant >= 0],
        user_tenant=user_tenant[user_tenant >= 0],
        user_created=us_array(users["created_at"])[user_tenant >= 0],
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


def initial_world(
    rng: np.random.Generator, seed: int, start_us: int, end_us: int, scale: float
) -> tuple[World, dict[str, pd.DataFrame]]:
    """Tenants, base users and detectors created before the window."""
    n_t = len(_TENANTS)
    tenant_created = start_us - ((60 + 660 * rng.random(n_t)) * DAY).astype(np.int64)
    tenant_created -= tenant_created % US
    tenants = pd.DataFrame(
        {
            "tenant_id": [t[0] for t in _TENANTS],
            "name": [t[1] for t in _TENANTS],
            "plan": [t[2] for t in _TENANTS],
            "created_at": to_timestamps(tenant_created),
        }
    )
    tenant_pos = {t[0]: i for i, t in enumerate(_TENANTS)}

    d_tenant = np.array([tenant_pos[d[1]] for d in _DETECTORS])
    d_created = tenant_created[d_tenant] + (
        rng.random(len(_DETECTORS)) * (start_us - tenant_created[d_tenant])
    ).astype(np.int64)
    d_created -= d_created % US
    detectors = pd.DataFrame(
        {
            "detector_id": [d[0] for d in _DETECTORS],
            "tenant_id": [d[1] for d in _DETECTORS],
            "name": [d[2] for d in _DETECTORS],
            "algorithm": [d[3] for d in _DETECTORS],
            "created_at": to_timestamps(d_created),
        }
    )

    # Base users: the first of each tenant is created with it (always eligible).
    per_tenant = [max(2, round(_PLAN_USERS[t[2]] * scale)) for t in _TENANTS]
    u_tenant = np.repeat(np.arange(n_t), per_tenant)
    span = start_us - tenant_created[u_tenant]
    u_created = tenant_created[u_tenant] + (rng.random(len(u_tenant)) * span).astype(np.int64)
    firsts = np.r_[0, np.cumsum(per_tenant)[:-1]]
    u_created[firsts] = tenant_created + HOUR
    u_created -= u_created % US
    order = np.lexsort((u_tenant, u_created))
    users = pd.DataFrame(
        {
            "user_id": numbered_ids("u_%04d", 1, len(order)),
            "tenant_id": np.array([t[0] for t in _TENANTS], dtype=object)[u_tenant[order]],
            "created_at": to_timestamps(u_created[order]),
        }
    )
    world = build_world(seed, tenants, users, detectors, [])
    new = new_users(rng, world, start_us, end_us, scale, len(users))
    return world, {
        "tenants": tenants,
        "detectors": detectors,
        "users": pd.concat([users, new], ignore_index=True),
    }


def new_users(
    rng: np.random.Generator, world: World, a: int, b: int, scale: float, last_id: int
) -> pd.DataFrame:
    """Users signing up in ``[a, b)``; appended to ``world`` so events can pick them."""
    expected = world.tenant_users * scale * _NEW_USERS_PER_90D * (b - a) / (90 * DAY)
    counts = rng.poisson(expected)
    tenant = np.repeat(np.arange(len(counts)), counts)
    created = a + (rng.random(len(tenant)) * (b - a)).astype(np.int64)
    created -= created % US
    created = np.maximum(created, a)
    order = np.lexsort((tenant, created))
    tenant, created = tenant[order], created[order]
    ids = numbered_ids("u_%04d", last_id + 1, len(tenant))
    numbers = np.arange(last_id + 1, last_id + 1 + len(tenant), dtype=np.int64)
    world.user_ids = np.concatenate([world.user_ids, ids])
    world.user_tenant = np.concatenate([world.user_tenant, tenant])
    world.user_created = np.concatenate([world.user_created, created])
    world.user_weight = np.concatenate([world.user_weight, _user_traits(world.seed, numbers)])
    return pd.DataFrame(
        {
            "user_id": ids,
            "tenant_id": world.tenant_ids[tenant],
            "created_at": to_timestamps(created),
        }
    )


def numbered_ids(fmt: str, first: int, n: int) -> np.ndarray:
    return np.array([fmt % i for i in range(first, first + n)], dtype=object)
