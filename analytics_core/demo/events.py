"""The demo platform's events, drawn from its entities: detection runs with feedback,
API requests and UI sessions, with the injected incidents in them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics_core.demo.incidents import (
    ANOMALY_JUMP_DETECTOR,
    ANOMALY_JUMP_FACTOR,
    ERROR_BURST_SHARE,
    LATENCY_SPIKE_ENDPOINT,
    LATENCY_SPIKE_FACTOR,
    during,
)
from analytics_core.demo.time_model import (
    DAY,
    HOUR,
    MINUTE,
    NAT,
    RATE_AT_END,
    US,
    arrivals,
    from_us,
    profile_mean,
    raw_profile,
    to_timestamps,
)
from analytics_core.demo.world import ALGORITHMS, Ids, World, numbered_ids, traits

_FEEDBACK_SHARE = 0.25
_NULL_USER_SHARE = 0.05  # API-key requests
_DATASETS_PER_DETECTOR = 25

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


@dataclass(frozen=True)
class _Span:
    """What one run draws events for: times in ``[start, end)`` at rates growing towards
    ``anchor``, times ``scale``, with the incidents of ``windows`` injected."""

    start: int
    end: int
    anchor: int
    scale: float
    windows: Sequence[tuple[str, int, int]]

    def arrivals(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        per_day = RATE_AT_END[kind] * self.scale
        return arrivals(rng, kind, per_day, self.start, self.end, self.anchor)

    def during(self, t: np.ndarray, incident: str) -> np.ndarray:
        return during(t, self.windows, incident)


def _pick_users(
    rng: np.random.Generator, world: World, group: np.ndarray | None, t: np.ndarray
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


def generate(
    rng: np.random.Generator,
    world: World,
    a: int,
    b: int,
    anchor: int,
    scale: float,
    first_ids: Ids,
    windows: Sequence[tuple[str, int, int]],
) -> dict[str, pd.DataFrame]:
    span = _Span(a, b, anchor, scale, windows)
    results, raw = _detections(rng, world, span, first_ids.detection)
    return {
        "detection_results": results,
        "detection_feedback": _feedback(rng, world, raw, b, first_ids.feedback),
        "api_requests": _requests(rng, world, span, first_ids.request),
        "user_sessions": _sessions(rng, world, span, first_ids.session),
    }


def _detections(
    rng: np.random.Generator, world: World, span: _Span, last_id: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    t = span.arrivals(rng, "detection_results")
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
        np.log(100) + np.log(1000) * traits(world.seed, 3, int(ds_num.max(initial=0)), 1)[:, 0]
    )
    size = ds_size[ds_num - 1] * np.exp(0.15 * rng.standard_normal(n))
    n_samples = np.clip(np.round(size), 100, 100_000).astype(np.int64)

    jump = span.during(t, "anomaly_rate_jump") & (world.det_ids[det] == ANOMALY_JUMP_DETECTOR)
    rate = _ALGO_RATE[algo] * world.det_rate_mult[det] * np.exp(0.35 * rng.standard_normal(n))
    rate = np.clip(np.where(jump, rate * ANOMALY_JUMP_FACTOR, rate), 0.0005, 0.6)

    p_fail = _ALGO_FAIL[algo] + np.where((algo == 2) & (n_samples > 50_000), 0.04, 0.0)
    p_fail = np.where(span.during(t, "error_burst"), 0.3, p_fail)
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
            "created_at": to_timestamps(t),
            "tenant_id": world.tenant_ids[world.det_tenant[det]],
            "detector_id": world.det_ids[det],
            "algorithm": np.array(ALGORITHMS, dtype=object)[algo],
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
    rng: np.random.Generator, world: World, res: dict[str, np.ndarray], b: int, last_id: int
) -> pd.DataFrame:
    """Reviews of ~25% of successful runs with anomalies, minutes to a day later."""
    eligible = np.flatnonzero(~res["failed"] & (res["n_anomalies"] > 0))
    chosen = eligible[rng.random(len(eligible)) < _FEEDBACK_SHARE]
    delay = np.exp(np.log(2 * HOUR) + 1.2 * rng.standard_normal(len(chosen)))
    delay = np.clip(delay, MINUTE, DAY).astype(np.int64)
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
            "created_at": to_timestamps(t[keep][order]),
            "user_id": world.user_ids[user[keep][order]],
            "confirmed": (reviewed - false_pos)[keep][order].astype(np.int64),
            "false_positives": false_pos[keep][order].astype(np.int64),
        }
    )


def _requests(rng: np.random.Generator, world: World, span: _Span, last_id: int) -> pd.DataFrame:
    kind = "api_requests"
    t = span.arrivals(rng, kind)
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

    burst = span.during(t, "error_burst")
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

    load = 0.85 + 0.15 * raw_profile(t, kind) / profile_mean(kind)
    duration = np.exp(np.log(lat_med[e]) + lat_sig[e] * rng.standard_normal(n)) * load
    spike = span.during(t, "detect_latency_spike") & (endpoint[e] == LATENCY_SPIKE_ENDPOINT)
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
            "ts": to_timestamps(t),
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


def _sessions(rng: np.random.Generator, world: World, span: _Span, last_id: int) -> pd.DataFrame:
    """UI sessions; those still running at the span's end (or just abandoned) are left open."""
    t = span.arrivals(rng, "user_sessions")
    user = _pick_users(rng, world, None, t)
    t, user = t[user >= 0], user[user >= 0]
    n = len(t)
    length = np.exp(np.log(20 * MINUTE) + 0.9 * rng.standard_normal(n))
    length = np.clip(length, 30 * US, 10 * HOUR).astype(np.int64)
    ended = t + length
    recent = (t >= span.end - 4 * HOUR) & (rng.random(n) < 0.3)
    ended = np.where((ended >= span.end) | recent, NAT, ended)
    return pd.DataFrame(
        {
            "session_id": numbered_ids("s_%06d", last_id + 1, n),
            "user_id": world.user_ids[user],
            "tenant_id": world.tenant_ids[world.user_tenant[user]],
            "started_at": to_timestamps(t),
            "ended_at": to_timestamps(ended),
        }
    )


def close_sessions(
    rng: np.random.Generator, open_sessions: list[tuple[str, int]], now_us: int
) -> list[dict[str, object]]:
    """End times for sessions left open by an earlier run that have ended by ``now``."""
    if not open_sessions:
        return []
    started = np.array([s for _, s in open_sessions], dtype=np.int64)
    length = np.exp(np.log(20 * MINUTE) + 0.9 * rng.standard_normal(len(started)))
    ended = started + np.clip(length, 30 * US, 10 * HOUR).astype(np.int64)
    return [
        {"sid": sid, "ended": from_us(e)}
        for (sid, _), e in zip(open_sessions, ended, strict=True)
        if e < now_us
    ]
