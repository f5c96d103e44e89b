"""Trend charts through their figure objects: partial buckets drawn apart and labelled,
rates of buckets with too few events drawn as gaps with their counts on hover."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics_app.ui.charts import trend_figure
from analytics_core.kpis import MIN_BUCKET_EVENTS


def _frame() -> pd.DataFrame:
    # Six hours; the 03:00 bucket has 12 requests; 05:00 is the running (partial) hour.
    return pd.DataFrame(
        {
            "bucket": pd.date_range("2026-11-25 00:00", periods=6, freq="h", tz="UTC"),
            "requests": [200, 180, 190, 12, 210, 40],
            "error_rate": [0.01, 0.02, 0.01, 0.25, 0.015, 0.02],
            "partial": [False] * 5 + [True],
        }
    )


def test_partial_bucket_is_a_separate_dashed_trace_labelled_partial():
    frame = _frame()
    fig = trend_figure(frame, ["requests"], "Requests")
    solid, dashed = fig.data
    assert solid.line.dash is None and dashed.line.dash == "dash"
    assert "partial" in dashed.name
    # The solid line stops at the last complete bucket; the dashed one joins it to the
    # partial bucket, which carries the "partial" label.
    assert np.isnan(solid.y[-1]) and list(solid.y[:5]) == [200, 180, 190, 12, 210]
    assert list(np.isnan(np.asarray(dashed.y, dtype=float))) == [True] * 4 + [False, False]
    assert list(dashed.text) == [""] * 5 + ["partial"]


def test_partial_bar_is_faded_and_labelled():
    fig = trend_figure(_frame(), ["requests"], "Requests", "bar")
    [bars] = fig.data
    assert list(bars.marker.opacity) == [1.0] * 5 + [0.35]
    assert list(bars.marker.pattern.shape) == [""] * 5 + ["/"]
    assert list(bars.text) == [""] * 5 + ["partial"]


def test_small_bucket_rates_are_gaps_with_the_count_on_hover():
    frame = _frame()
    fig = trend_figure(frame, ["error_rate"], "Error rate", percent=True)
    solid = fig.data[0]
    small = (frame["requests"] < MIN_BUCKET_EVENTS["error_rate"]).tolist()
    assert small == [False, False, False, True, False, True]
    drawn = np.asarray(solid.y, dtype=float)
    assert np.isnan(drawn[3]) and not np.isnan(drawn[:3]).any()  # a gap, not a 25% spike
    assert [int(c[1]) for c in solid.customdata] == frame["requests"].tolist()
    assert "requests" in solid.hovertemplate and "%" in solid.hovertemplate
    assert fig.layout.yaxis.tickformat == ".1%"


def test_no_partial_trace_without_partial_buckets():
    frame = _frame().assign(partial=False)
    fig = trend_figure(frame, ["requests", "error_rate"], "Both")
    assert [t.name for t in fig.data] == ["requests", "error rate"]
