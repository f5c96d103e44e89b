"""Monotonic trend detection: is a KPI series going up or down, and how fast?

The slope is the Theil-Sen estimator (median of pairwise slopes, robust to outliers)
over time measured in days, so irregular spacing and gaps are handled. Significance
comes from the Mann-Kendall test with the Hamed-Rao (1998) variance correction for
autocorrelation: plain Mann-Kendall assumes independent points and calls far too
many trends on autocorrelated series such as hourly traffic.

Sub-daily input (median step under a day, e.g. hourly buckets) that covers at least
``min_points`` distinct calendar days is first averaged per day. Daily means remove the
intra-day cycle and most of the short-range autocorrelation, so the test is both faster
and better calibrated. Shorter sub-daily input is used as given (there is nothing to
average into enough days). Each daily mean is placed at the mean timestamp of the points
it averages, so the fitted line lines up with the raw points when drawn over them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from analytics_core.insights.series import as_series

Direction = Literal["increasing", "decreasing", "no trend"]

_DAY = pd.Timedelta(days=1)
_MK = "Mann-Kendall test with Hamed-Rao autocorrelation correction (lags 1-3)"
# Hamed and Rao's suggestion: correct for the first 3 lags only. Using every lag (the
# library default) lets chance-significant far lags shrink the variance, which pushed the
# false-positive rate on flat white noise to ~8% at alpha 0.05 (n 30-120); lags 1-3 keep
# it at ~5-7%. On strongly autocorrelated short series (AR(1) phi 0.3-0.6, n 30-60) it is
# still ~10-18%, against ~20-45% for the uncorrected test.
_HR_LAGS = 3


@dataclass(frozen=True)
class Trend:
    slope_per_day: float
    slope_per_week: float
    # Fitted change over [start, end] relative to the fitted start value; None if that is ~0.
    pct_change: float | None
    p_value: float
    significant: bool
    direction: Direction  # "no trend" unless significant
    n: int  # points tested (days when aggregated to daily means)
    start: pd.Timestamp  # first usable timestamp of the input
    end: pd.Timestamp  # last usable timestamp of the input
    method: str
    fitted_start: float  # fitted value at ``start``
    fitted_end: float  # fitted value at ``end``
    intercept: float  # fitted value at ``start`` (the line is intercept + slope_per_day * days)


_clean = as_series


def _daily_means(series: pd.Series) -> pd.Series:
    """Mean value per calendar day, indexed by the mean timestamp of that day's points."""
    frame = pd.DataFrame({"t": series.index, "v": series.to_numpy()})
    grouped = frame.groupby(frame["t"].dt.date, sort=True)  # local calendar day; DST-safe
    return pd.Series(grouped["v"].mean().to_numpy(), index=pd.DatetimeIndex(grouped["t"].mean()))


def detect_trend(
    timestamps: Sequence | pd.Series | pd.Index,
    values: Sequence[float],
    alpha: float = 0.05,
    min_points: int = 8,
) -> Trend | None:
    """Theil-Sen slope plus a Hamed-Rao modified Mann-Kendall test; None if too short.

    NaN values (and NaT timestamps) are ignored. Sub-daily data spanning at least
    ``min_points`` days is reduced to daily means first (see the module docstring).
    ``significant`` needs ``p_value < alpha`` and the test's direction to agree with
    the sign of the Theil-Sen slope; ``direction`` is "no trend" otherwise.
    """
    series = _clean(timestamps, values)
    if len(series) < min_points:
        return None
    start, end = series.index[0], series.index[-1]

    aggregated = False
    if pd.Series(series.index).diff().median() < _DAY:
        daily = _daily_means(series)
        if len(daily) >= min_points:
            series, aggregated = daily, True
    n = len(series)
    if n < min_points:
        return None

    x_days = ((series.index - start) / _DAY).to_numpy(dtype=float)
    y = series.to_numpy(dtype=float)
    on = "daily means" if aggregated else "points as given"
    method = f"Theil-Sen slope; {_MK} on {on}"

    if np.ptp(y) == 0 or np.ptp(x_days) == 0:
        # Constant values (or a single instant): nothing to test; the MK ACF would divide by 0.
        slope, intercept_x0, p_value, mk_sign = 0.0, float(np.median(y)), 1.0, 0
    else:
        import pymannkendall as mk  # slow imports: only when a trend is tested
        from scipy.stats import theilslopes

        slope, intercept_x0, _, _ = theilslopes(y, x_days)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            result = mk.hamed_rao_modification_test(y, alpha=alpha, lag=_HR_LAGS)
            p_value, z = float(result.p), float(result.z)
            if not np.isfinite(p_value):
                # The correction can make the variance non-positive (strong negative
                # autocorrelation at short lags); fall back to the uncorrected test then.
                result = mk.original_test(y, alpha=alpha)
                p_value, z = float(result.p), float(result.z)
                method += " (uncorrected: the correction is undefined for this series)"
        mk_sign = int(np.sign(z))

    slope = float(slope)
    slope_sign = int(np.sign(slope))
    significant = bool(p_value < alpha and slope_sign != 0 and mk_sign == slope_sign)
    direction: Direction = (
        ("increasing" if slope_sign > 0 else "decreasing") if significant else "no trend"
    )

    # theilslopes' intercept is at x=0, i.e. at `start` (x measured from the first raw point).
    intercept = float(intercept_x0)
    span_days = (end - start) / _DAY
    fitted_start = intercept
    fitted_end = intercept + slope * span_days
    scale = float(np.max(np.abs(y)))
    pct_change = (
        None
        if scale == 0 or abs(fitted_start) <= 1e-6 * scale
        else (fitted_end - fitted_start) / abs(fitted_start)
    )
    return Trend(
        slope_per_day=slope,
        slope_per_week=slope * 7.0,
        pct_change=pct_change,
        p_value=p_value,
        significant=significant,
        direction=direction,
        n=n,
        start=start,
        end=end,
        method=method,
        fitted_start=fitted_start,
        fitted_end=fitted_end,
        intercept=intercept,
    )


def fitted_line(trend: Trend, timestamps: Sequence | pd.Series | pd.Index) -> np.ndarray:
    """The fitted Theil-Sen line evaluated at ``timestamps`` (for drawing as evidence)."""
    ts = pd.DatetimeIndex(pd.to_datetime(pd.Series(np.asarray(timestamps))))
    days = ((ts - trend.start) / _DAY).to_numpy(dtype=float)
    return trend.intercept + trend.slope_per_day * days
