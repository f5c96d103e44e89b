"""Period-over-period changes with a significance test fitted to the kind of KPI.

* counts (requests, alerts): exact conditional test of two Poisson rates over equal
  exposure. Given ``current + previous`` events, ``current`` is Binomial(total, 1/2)
  when the rates are equal (``scipy.stats.binomtest``).
* proportions (error rate, alert precision): two independent proportions, Agresti-Caffo
  test of the difference (``statsmodels`` ``test_proportions_2indep``); it stays
  defined with zero or full counts and is slightly conservative on small samples.
* means / percentiles (latency p95, mean score): two-sided Mann-Whitney U test on the
  per-bucket values of each period (``scipy.stats.mannwhitneyu``), NaN dropped; no test
  with fewer than 3 values on either side.

A side without data (a missing count, a zero total, a missing KPI value, or fewer than
3 per-bucket values) gives ``p_value=None`` and ``significant=False``. ``pct_change``
is relative to ``|previous|`` and None when previous is 0 or missing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_SAMPLES = 3  # per side, for compare_samples

_COUNTS = "exact conditional (binomial) test of two Poisson counts over equal exposure"
_PROPORTIONS = "two-proportion test (Agresti-Caffo, statsmodels test_proportions_2indep)"
_SAMPLES = "two-sided Mann-Whitney U test on per-bucket values"


@dataclass(frozen=True)
class Change:
    current: float | None
    previous: float | None
    abs_change: float | None  # current - previous
    pct_change: float | None  # (current - previous) / |previous|; None if previous is 0
    p_value: float | None  # None when the test could not run
    significant: bool  # p_value < alpha
    method: str


def _missing(value: object) -> bool:
    return value is None or bool(np.ndim(value) == 0 and pd.isna(value))


def _as_float(value: object) -> float | None:
    return None if _missing(value) else float(value)  # type: ignore[arg-type]


def _change(
    current: object, previous: object, p_value: float | None, alpha: float, method: str
) -> Change:
    cur, prev = _as_float(current), _as_float(previous)
    if cur is None or prev is None:
        return Change(cur, prev, None, None, None, False, method)
    if p_value is not None and not math.isfinite(p_value):
        p_value = None
    abs_change = cur - prev
    pct_change = abs_change / abs(prev) if prev != 0 else None
    significant = p_value is not None and p_value < alpha
    return Change(cur, prev, abs_change, pct_change, p_value, significant, method)


def compare_counts(current: int | None, previous: int | None, alpha: float = 0.05) -> Change:
    """Event counts of two equally long periods: did the underlying rate change?"""
    cur, prev = _as_float(current), _as_float(previous)
    if cur is None or prev is None:
        return _change(cur, prev, None, alpha, _COUNTS)
    if cur < 0 or prev < 0:
        raise ValueError(f"counts must be non-negative, got {current} and {previous}")
    hits, total = round(cur), round(cur) + round(prev)
    from scipy.stats import binomtest  # slow imports are lazy in this module

    p_value = 1.0 if total == 0 else float(binomtest(hits, total, 0.5).pvalue)
    return _change(cur, prev, p_value, alpha, _COUNTS)


def _rate(hits: int | None, total: int | None) -> float | None:
    h, t = _as_float(hits), _as_float(total)
    if h is None or t is None or t == 0:
        return None
    if not 0 <= h <= t:
        raise ValueError(f"need 0 <= hits <= total, got {hits} of {total}")
    return h / t


def compare_proportions(
    cur_hits: int | None,
    cur_total: int | None,
    prev_hits: int | None,
    prev_total: int | None,
    alpha: float = 0.05,
) -> Change:
    """Rates hits/total of two periods (``current``/``previous`` are the rates)."""
    cur, prev = _rate(cur_hits, cur_total), _rate(prev_hits, prev_total)
    if cur is None or prev is None:
        return _change(cur, prev, None, alpha, _PROPORTIONS)
    from statsmodels.stats.proportion import test_proportions_2indep

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Its ratio and odds ratio (not used here) divide by zero for 0% / 100% rates.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = test_proportions_2indep(
            cur_hits, cur_total, prev_hits, prev_total, compare="diff", method="agresti-caffo"
        )
    return _change(cur, prev, float(result.pvalue), alpha, _PROPORTIONS)


def compare_samples(
    current: Sequence[float],
    previous: Sequence[float],
    current_value: float | None,
    previous_value: float | None,
    alpha: float = 0.05,
) -> Change:
    """Per-bucket values of two periods (e.g. hourly p95 latency) behind a KPI value.

    ``current_value``/``previous_value`` are the KPI figures reported (e.g. the period
    p95); the test asks whether the per-bucket values shifted between the periods.
    """
    cur = _finite(current)
    prev = _finite(previous)
    p_value = None
    if len(cur) >= MIN_SAMPLES and len(prev) >= MIN_SAMPLES:
        from scipy.stats import mannwhitneyu

        p_value = float(mannwhitneyu(cur, prev, alternative="two-sided").pvalue)
        if not math.isfinite(p_value):  # e.g. every value identical
            p_value = 1.0
    return _change(current_value, previous_value, p_value, alpha, _SAMPLES)


def _finite(values: Sequence[float] | None) -> np.ndarray:
    if values is None:
        return np.empty(0)
    series = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")
    arr = series.to_numpy(dtype=float, na_value=np.nan)
    return arr[np.isfinite(arr)]
