"""The demo data's time model: times as int64 microseconds since the epoch (vectorised
with numpy), and event arrivals with daily and weekly seasonality and steady growth."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pandas as pd

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAT = np.iinfo(np.int64).min


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_us(value: datetime) -> int:
    return (as_utc(value) - _EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def to_timestamps(us: np.ndarray) -> pd.Series:
    """UTC-aware timestamps from epoch microseconds (``NAT`` becomes NaT)."""
    return pd.Series(np.asarray(us, dtype=np.int64).view("datetime64[us]")).dt.tz_localize(UTC)


def us_array(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values, utc=True).dt.tz_convert(UTC).dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[us]").view(np.int64)


# Volumes at scale 1 over a 90-day window; with 35% growth over 90 days the
# per-day rate at the window's end is the 90-day mean divided by the mean growth.
_GROWTH_90D = 1.35
_GROWTH_PER_US = math.log(_GROWTH_90D) / (90 * DAY)
_MEAN_GROWTH_90D = (1 - 1 / _GROWTH_90D) / math.log(_GROWTH_90D)
RATE_AT_END = {
    "detection_results": 20_000 / 90 / _MEAN_GROWTH_90D,
    "api_requests": 300_000 / 90 / _MEAN_GROWTH_90D,
    "user_sessions": 10_000 / 90 / _MEAN_GROWTH_90D,
}

# Seasonality (UTC): base + amplitude * office-hours bump, times a weekend factor.
_PROFILES = {
    "api_requests": (0.35, 1.0, 0.45),
    "detection_results": (0.8, 0.6, 0.6),
    "user_sessions": (0.1, 1.0, 0.25),
}


@cache
def profile_mean(kind: str) -> float:
    week = np.arange(0, 7 * DAY, MINUTE, dtype=np.int64) + 4 * DAY  # a Monday 00:00
    return float(raw_profile(week, kind).mean())


def raw_profile(t: np.ndarray, kind: str) -> np.ndarray:
    base, amplitude, weekend = _PROFILES[kind]
    day = t // DAY
    hour = (t - day * DAY) / HOUR
    office = np.exp(-0.5 * ((hour - 13.5) / 3.5) ** 2)
    is_weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday; Monday is 0
    return (base + amplitude * office) * np.where(is_weekend, weekend, 1.0)


def _intensity(t: np.ndarray, kind: str, anchor: int) -> np.ndarray:
    """Relative event rate at ``t``: weekly mean 1 at ``anchor``, growing over time."""
    growth = np.exp(_GROWTH_PER_US * (t - anchor).astype(np.float64))
    return raw_profile(t, kind) / profile_mean(kind) * growth


def _bins(a: int, b: int, width: int = MINUTE) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(a, b, width, dtype=np.int64)
    lengths = np.diff(np.append(edges, np.int64(b)))
    return edges, lengths


def expected_events(kind: str, per_day: float, a: int, b: int, anchor: int) -> float:
    edges, lengths = _bins(a, b)
    return float((per_day * lengths / DAY * _intensity(edges + lengths // 2, kind, anchor)).sum())


def arrivals(
    rng: np.random.Generator, kind: str, per_day: float, a: int, b: int, anchor: int
) -> np.ndarray:
    """Sorted event times in ``[a, b)`` of a Poisson process with the seasonal intensity."""
    edges, lengths = _bins(a, b)
    lam = per_day * lengths / DAY * _intensity(edges + lengths // 2, kind, anchor)
    counts = rng.poisson(lam)
    offsets = (rng.random(int(counts.sum())) * np.repeat(lengths, counts)).astype(np.int64)
    times = np.repeat(edges, counts) + offsets
    times.sort()
    return times
