"""Synthetic NAB-like series, to check that the detector generalises beyond the dev set.

5-minute series of two weeks (4,032 points), each with a one-point label at the onset of
its anomaly, as NAB labels: spikes, permanent and one-day level jumps, a slow drift, a
variance change, a daily cycle going flat, a burst in heavy-tailed counts, a level shift
in spiky autocorrelated "CPU", a missing cycle of a 37-step period, and a rise in spike
density; plus heavy-tailed counts with no anomaly (false alarms only). Seeds are fixed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = (
    "spikes", "jump", "jump_day", "drift", "variance", "flatline", "bursty",
    "bursty_quiet", "cpu", "cycle37", "spike_density",
)  # fmt: skip
DAY = 288  # 5-minute steps


def make(kind: str, seed: int, n: int = 14 * DAY) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    noise = rng.normal(0, 1, n)
    x = 10 + rng.uniform(0, 3) * np.sin(2 * np.pi * i / DAY) + noise
    lo = int(0.2 * n)  # onsets after NAB's probation period
    onsets: list[int] = []
    if kind == "spikes":
        for t in rng.choice(np.arange(lo, n - 50), size=rng.integers(1, 4), replace=False):
            x[t] += rng.choice([-1, 1]) * rng.uniform(6, 10)
            onsets.append(int(t))
    elif kind == "jump":
        t = rng.integers(lo, n - 300)
        x[t:] += rng.choice([-1, 1]) * rng.uniform(3, 5)
        onsets.append(t)
    elif kind == "jump_day":
        t = rng.integers(lo, n - 400)
        x[t : t + DAY] += rng.uniform(3, 6)
        onsets.append(t)
    elif kind == "drift":
        t = rng.integers(lo, n - 400)
        x[t:] += np.arange(n - t) * rng.uniform(4, 8) / 300
        onsets.append(t)
    elif kind == "variance":
        t = rng.integers(lo, n - 400)
        x[t : t + 400] += noise[t : t + 400] * rng.uniform(2, 3)
        onsets.append(t)
    elif kind == "flatline":
        x = 10 + 5 * np.sin(2 * np.pi * i / DAY) + 0.3 * noise
        t = rng.integers(lo, n - 400)
        x[t : t + DAY] = x[t]
        onsets.append(t)
    elif kind in ("bursty", "bursty_quiet"):
        quiet = kind == "bursty_quiet"
        rate = (5 if quiet else 20) * np.exp(0.5 * np.sin(2 * np.pi * i / DAY))
        rate *= np.exp(rng.standard_t(2.5 if quiet else 3, n) * (0.4 if quiet else 0.3))
        if not quiet:
            t = rng.integers(lo, n - 100)
            rate[t : t + 30] *= rng.uniform(4, 8)
            onsets.append(t)
        x = rng.poisson(rate).astype(float)
    elif kind == "cpu":
        e = np.zeros(n)
        for k in range(1, n):
            e[k] = 0.8 * e[k - 1] + noise[k]
        x = 30 + e + (rng.random(n) < 0.01) * rng.exponential(6, n)
        t = rng.integers(lo, n - 300)
        x[t:] += rng.uniform(5, 9)
        onsets.append(t)
    elif kind == "cycle37":
        x = 5 * np.sin(2 * np.pi * i / 37) + 0.5 * noise
        t = rng.integers(lo, n - 200)
        x[t : t + 37] = 0.5 * noise[t : t + 37]
        onsets.append(t)
    elif kind == "spike_density":
        x = 10 + 0.5 * noise
        spikes = rng.random(n) < 0.01
        t = rng.integers(lo, n - 400)
        spikes[t : t + 300] |= rng.random(300) < 0.15
        x[spikes] += rng.uniform(3, 5, spikes.sum())
        onsets.append(t)
    else:
        raise ValueError(kind)
    label = np.zeros(n, dtype=int)
    label[onsets] = 1
    ts = pd.date_range("2024-01-01", periods=n, freq="5min")
    return pd.DataFrame({"TimeStamp": ts, "Value": x, "Label": label})


def corpus(repeats: int = 4) -> list[tuple[str, str, pd.DataFrame]]:
    """(kind, name, frame) for ``repeats`` seeds of every kind."""
    return [
        (kind, f"{kind}-{r}", make(kind, 1000 * k + r))
        for k, kind in enumerate(KINDS)
        for r in range(repeats)
    ]
