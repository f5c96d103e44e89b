"""Forecasts: ETS with prediction intervals, seasonal where the history allows it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics_core.insights.forecast import Forecast, forecast

WEEK = np.array([1.0, 1.05, 1.1, 1.05, 1.0, 0.6, 0.5])  # weekday traffic, weekend dip


def days(n: int, start: str = "2024-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="D")


def weekly_traffic(seed: int, n: int, multiplicative: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    level = 500 + 2.0 * t
    season = level * WEEK[t % 7] if multiplicative else level + 80 * (WEEK[t % 7] - 0.9)
    return season + rng.normal(0, 15, n)


def test_interval_covers_held_out_points_near_its_level() -> None:
    """Across seeds, history lengths and seasonal shapes, ~90% of held-out days fall inside."""
    covered: list[bool] = []
    for seed in range(8):
        history = (42, 70, 98, 126)[seed % 4]
        values = weekly_traffic(seed, history + 14, multiplicative=seed % 2 == 0)
        result = forecast(days(history), values[:history], horizon=14, level=0.9)
        assert result is not None
        assert result.seasonal_period == 7
        assert result.history_points == history
        actual = values[history:]
        covered.extend((actual >= result.frame["lower"]) & (actual <= result.frame["upper"]))
    coverage = float(np.mean(covered))
    assert 0.75 <= coverage <= 0.98, coverage


def test_frame_shape_and_future_timestamps() -> None:
    values = weekly_traffic(0, 56, multiplicative=True)
    result = forecast(days(56), values, horizon=10, level=0.8)
    assert isinstance(result, Forecast)
    frame = result.frame
    assert list(frame.columns) == ["timestamp", "forecast", "lower", "upper"]
    assert len(frame) == 10
    expected = pd.date_range(days(56)[-1] + pd.Timedelta(days=1), periods=10, freq="D")
    assert pd.DatetimeIndex(frame["timestamp"]).equals(expected)
    assert (frame["lower"] <= frame["forecast"]).all()
    assert (frame["forecast"] <= frame["upper"]).all()
    assert result.level == 0.8
    assert "season 7" in result.method and "80% prediction interval" in result.method
    # the weekend dip is carried into the future
    weekday = frame["timestamp"].dt.day_of_week
    assert frame["forecast"][weekday >= 5].mean() < 0.8 * frame["forecast"][weekday < 5].mean()


def test_linear_growth_crossing_is_close_to_analytic() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(60)
    values = 100 + 5 * t + rng.normal(0, 5, 60)  # reaches 500 at t = 80
    result = forecast(days(60), values, horizon=40, limit=500)
    assert result is not None and result.limit == 500
    analytic = pd.Timestamp("2024-01-01") + pd.Timedelta(days=80)
    assert isinstance(result.crossing, pd.Timestamp)
    assert abs(result.crossing - analytic) <= pd.Timedelta(days=2)
    assert result.crossing_upper is not None and result.crossing_upper <= result.crossing
    assert result.crossing_upper >= analytic - pd.Timedelta(days=5)


def test_crossing_is_none_when_the_limit_is_out_of_reach() -> None:
    values = weekly_traffic(1, 70, multiplicative=False)
    result = forecast(days(70), values, horizon=14, limit=10_000)
    assert result is not None
    assert result.crossing is None and result.crossing_upper is None


def test_already_above_the_limit_crosses_at_the_first_future_point() -> None:
    values = 100 + np.arange(30.0)
    result = forecast(days(30), values, horizon=5, limit=120)
    assert result is not None
    first = result.frame["timestamp"].iloc[0]
    assert result.crossing == first and result.crossing_upper == first


def test_too_short_returns_none() -> None:
    assert forecast(days(9), np.arange(9.0), horizon=5) is None
    values = np.arange(12.0)
    values[[1, 4, 8]] = np.nan
    assert forecast(days(12), values, horizon=5) is None  # 9 usable points
    assert forecast([], [], horizon=3) is None


def test_short_history_falls_back_to_a_damped_non_seasonal_trend() -> None:
    rng = np.random.default_rng(3)
    values = 50 + 2 * np.arange(12) + rng.normal(0, 1, 12)
    result = forecast(days(12), values, horizon=7)
    assert result is not None
    assert result.seasonal_period is None
    assert result.method.startswith("ETS(A,Ad,N)")
    assert result.history_points == 12
    frame = result.frame
    assert len(frame) == 7 and np.isfinite(frame[["forecast", "lower", "upper"]]).all().all()
    assert frame["forecast"].iloc[0] == pytest.approx(74, abs=4)
    assert frame["forecast"].is_monotonic_increasing
    assert (frame["upper"] - frame["lower"]).is_monotonic_increasing


def test_season_override_and_no_season() -> None:
    values = weekly_traffic(2, 56, multiplicative=False)
    assert forecast(days(56), values, horizon=7, season=0).seasonal_period is None


def test_hourly_data_gets_a_daily_season() -> None:
    rng = np.random.default_rng(4)
    stamps = pd.date_range("2024-03-01", periods=6 * 24, freq="h", tz="UTC")
    t = np.arange(len(stamps))
    values = 1000 + 300 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 30, len(t))
    result = forecast(stamps, values, horizon=24)
    assert result is not None
    assert result.seasonal_period == 24
    assert result.frame["timestamp"].iloc[0] == stamps[-1] + pd.Timedelta(hours=1)
    truth = 1000 + 300 * np.sin(2 * np.pi * (t[-1] + 1 + np.arange(24)) / 24)
    assert np.abs(result.frame["forecast"].to_numpy() - truth).max() < 120


def test_lower_bounds_are_clipped_at_zero_for_volumes() -> None:
    values = np.maximum(0, 100 - 6 * np.arange(16.0)) + np.random.default_rng(5).uniform(0, 3, 16)
    result = forecast(days(16), values, horizon=10)
    assert result is not None
    assert (result.frame[["forecast", "lower", "upper"]] >= 0).all().all()


def test_negative_series_are_not_clipped() -> None:
    values = -50 - 2 * np.arange(20.0) + np.random.default_rng(6).normal(0, 1, 20)
    result = forecast(days(20), values, horizon=5)
    assert result is not None
    assert (result.frame["upper"] < 0).all()


def test_gaps_and_duplicates_are_put_on_a_regular_grid() -> None:
    stamps = days(30).delete([5, 6, 17])
    values = 10 + np.arange(30.0)
    values = np.delete(values, [5, 6, 17])
    stamps = stamps.append(pd.DatetimeIndex([stamps[0]]))  # a duplicate of the first day
    values = np.append(values, 10.0)
    result = forecast(stamps, values, horizon=3)
    assert result is not None
    assert result.history_points == 30
    assert result.frame["forecast"].iloc[0] == pytest.approx(40, abs=1)


def test_constant_series_forecasts_the_constant() -> None:
    result = forecast(days(30), np.zeros(30), horizon=5, limit=1)
    assert result is not None
    assert np.allclose(result.frame[["forecast", "lower", "upper"]], 0)
    assert result.crossing is None


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        forecast(days(20), np.arange(20.0), horizon=0)
    with pytest.raises(ValueError):
        forecast(days(20), np.arange(20.0), horizon=3, level=1.5)


def test_a_repeated_forecast_reuses_the_fit():
    # Every page view of a day asks for the same daily history: fitted once.
    from analytics_core.insights.forecast import _best_fit

    days = pd.date_range("2026-01-01", periods=60, freq="D", tz="UTC")
    values = 100 + np.arange(60) * 2.0 + 10 * np.sin(np.arange(60) * 2 * np.pi / 7)
    first = forecast(days, values, horizon=14, limit=300.0)
    hits = _best_fit.cache_info().hits
    second = forecast(days, values, horizon=14, limit=300.0)
    assert _best_fit.cache_info().hits == hits + 1
    assert first is not None and second is not None
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert (first.method, first.crossing) == (second.method, second.crossing)
