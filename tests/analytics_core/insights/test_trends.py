"""Trend detection: Theil-Sen slope, Hamed-Rao modified Mann-Kendall significance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymannkendall as mk
import pytest

from analytics_core.insights.trends import Trend, detect_trend, fitted_line


def days(n: int, start: str = "2024-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="D")


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float = 1.0) -> np.ndarray:
    out = np.zeros(n)
    shocks = rng.normal(0, sd, n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


@pytest.mark.parametrize("slope", [0.5, -0.8])
def test_clear_slope_is_significant_and_estimated(slope: float) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(60)
    values = 100 + slope * t + rng.normal(0, 2, 60)
    trend = detect_trend(days(60), values)
    assert isinstance(trend, Trend)
    assert trend.significant
    assert trend.direction == ("increasing" if slope > 0 else "decreasing")
    assert trend.slope_per_day == pytest.approx(slope, abs=0.05)
    assert trend.slope_per_week == pytest.approx(7 * trend.slope_per_day)
    assert trend.p_value < 1e-6
    assert trend.n == 60
    assert trend.start == pd.Timestamp("2024-01-01")
    assert trend.end == pd.Timestamp("2024-02-29")
    assert trend.intercept == trend.fitted_start == pytest.approx(100, abs=1.5)
    assert trend.fitted_end == pytest.approx(trend.intercept + 59 * trend.slope_per_day)
    assert trend.pct_change == pytest.approx(
        (trend.fitted_end - trend.fitted_start) / trend.fitted_start
    )
    assert "Theil-Sen" in trend.method and "Hamed-Rao" in trend.method


def test_flat_noisy_series_is_not_significant() -> None:
    trend = detect_trend(days(60), 50 + np.random.default_rng(3).normal(0, 5, 60))
    assert trend is not None
    assert not trend.significant
    assert trend.direction == "no trend"
    assert abs(trend.slope_per_day) < 0.1


def test_false_positive_rate_on_white_noise_is_near_alpha() -> None:
    hits = [
        detect_trend(days(60), 50 + np.random.default_rng(seed).normal(0, 5, 60)).significant
        for seed in range(200)
    ]
    assert np.mean(hits) <= 0.09


def test_autocorrelation_correction_cuts_false_positives() -> None:
    """On flat AR(1) noise the corrected test calls far fewer trends than plain MK."""
    ours = plain = 0
    for seed in range(150):
        values = 50 + ar1(np.random.default_rng(seed), 60, phi=0.6)
        ours += detect_trend(days(60), values).significant
        plain += mk.original_test(values).p < 0.05
    assert ours / 150 <= 0.2
    assert ours < 0.6 * plain


def test_hourly_data_is_tested_on_daily_means() -> None:
    rng = np.random.default_rng(5)
    stamps = pd.date_range("2024-03-01", periods=30 * 24, freq="h")
    t_days = np.arange(len(stamps)) / 24
    daily_cycle = 20 * np.sin(2 * np.pi * t_days)
    values = 200 + 1.5 * t_days + daily_cycle + rng.normal(0, 5, len(stamps))
    trend = detect_trend(stamps, values)
    assert trend is not None
    assert trend.n == 30
    assert "daily means" in trend.method
    assert trend.significant and trend.direction == "increasing"
    assert trend.slope_per_day == pytest.approx(1.5, abs=0.1)
    # the fitted line is drawn over the raw hourly points without a half-day offset
    line = fitted_line(trend, stamps)
    assert line.shape == (len(stamps),)
    assert np.mean(values - line) == pytest.approx(0, abs=1.0)
    assert line[0] == pytest.approx(trend.fitted_start)
    assert line[-1] == pytest.approx(trend.fitted_end)


def test_short_sub_daily_data_is_used_as_given() -> None:
    stamps = pd.date_range("2024-03-01", periods=5 * 24, freq="h")
    values = np.arange(len(stamps)) * 0.1 + np.random.default_rng(2).normal(0, 0.5, len(stamps))
    trend = detect_trend(stamps, values)
    assert trend is not None
    assert trend.n == 5 * 24
    assert "points as given" in trend.method
    assert trend.slope_per_day == pytest.approx(2.4, abs=0.2)


def test_too_short_returns_none_and_nan_is_ignored() -> None:
    assert detect_trend(days(7), np.arange(7.0)) is None
    values = np.arange(10.0)
    values[[2, 5, 7]] = np.nan
    assert detect_trend(days(10), values) is None  # 7 usable points
    assert detect_trend(days(10), values, min_points=5) is not None
    assert detect_trend([], []) is None


def test_nan_values_do_not_disturb_the_fit() -> None:
    values = 10 + 2.0 * np.arange(20)
    values[[3, 11]] = np.nan
    trend = detect_trend(days(20), values)
    assert trend is not None
    assert trend.n == 18
    assert trend.slope_per_day == pytest.approx(2.0)
    assert trend.significant


def test_irregular_spacing_is_measured_in_days() -> None:
    rng = np.random.default_rng(4)
    offsets = np.sort(rng.choice(90, size=30, replace=False))
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(offsets, unit="D")
    trend = detect_trend(stamps, 3.0 * offsets + rng.normal(0, 1, 30))
    assert trend is not None
    assert trend.slope_per_day == pytest.approx(3.0, abs=0.1)


def test_constant_series_has_no_trend() -> None:
    trend = detect_trend(days(20), np.full(20, 7.0))
    assert trend is not None
    assert trend.slope_per_day == 0 and trend.p_value == 1.0
    assert not trend.significant and trend.direction == "no trend"
    assert trend.pct_change == 0


def test_pct_change_is_none_when_the_fitted_start_is_zero() -> None:
    trend = detect_trend(days(20), 0.5 * np.arange(20))
    assert trend is not None
    assert trend.fitted_start == pytest.approx(0)
    assert trend.pct_change is None


def test_accepts_strings_lists_and_time_zones() -> None:
    stamps = days(15).tz_localize("Europe/Berlin")
    values = list(1.0 + np.arange(15))
    trend = detect_trend([str(s) for s in stamps], values)
    assert trend is not None and trend.start == stamps[0]
    assert fitted_line(trend, stamps[-1:])[0] == pytest.approx(15.0)


def test_unsorted_input_is_sorted() -> None:
    stamps, values = days(12), np.arange(12.0)
    order = np.random.default_rng(0).permutation(12)
    trend = detect_trend(stamps[order], values[order])
    assert trend is not None
    assert trend.slope_per_day == pytest.approx(1.0)
    assert trend.start == stamps[0]
