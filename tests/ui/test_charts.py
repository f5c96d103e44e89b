"""Trend charts through their figure objects: partial buckets drawn apart and labelled,
rates of buckets with too few events drawn as gaps with their counts on hover."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics_app.ui.charts import SERIES_COLORS, trend_figure
from analytics_core.kpis import KPIS, MIN_BUCKET_EVENTS


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
    # Legend names are the KPI labels (they were the raw column names, issue 7 #6).
    rate = KPIS["error_rate"].label
    assert [t.name for t in fig.data] == [
        KPIS["requests"].label,
        rate,
        f"{rate} (under {MIN_BUCKET_EVENTS['error_rate']} requests)",  # the 12-request hour
    ]


def _fall_back_night() -> pd.DataFrame:
    # America/New_York, 2026-11-01: clocks go back at 02:00 EDT, so 01:00 happens twice.
    instants = pd.date_range("2026-11-01 03:00", periods=6, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "bucket": instants.tz_convert("America/New_York"),
            "requests": [60, 58, 55, 57, 50, 49],
            "partial": False,
        }
    )


def test_dst_repeated_hour_gets_its_own_position_and_offset():
    frame = _fall_back_night()
    fig = trend_figure(frame, ["requests"], "Requests", "bar")
    [bars] = fig.data
    x = pd.to_datetime(pd.Series(bars.x))
    # Six instants an hour apart: six positions an hour apart, none shared.
    assert x.is_unique and (x.diff().dropna() == pd.Timedelta(hours=1)).all()
    when = [row[2] for row in bars.customdata]
    assert when == [
        "2026-10-31 23:00 \u221204:00",
        "2026-11-01 00:00 \u221204:00",
        "2026-11-01 01:00 \u221204:00",
        "2026-11-01 01:00 \u221205:00",
        "2026-11-01 02:00 \u221205:00",
        "2026-11-01 03:00 \u221205:00",
    ]
    assert list(bars.y) == [60, 58, 55, 57, 50, 49]  # 55 and 57, not one bar of 112
    # The offset changes inside the range, so tick labels are local times.
    assert fig.layout.xaxis.ticktext[:3] == ("Oct 31 23:00", "Nov 01 00:00", "Nov 01 01:00")


def test_rate_axis_is_percent_without_being_told():
    fig = trend_figure(_frame(), ["error_rate"], "Error rate")
    assert fig.layout.yaxis.tickformat == ".1%"
    # A rate is never negative, so neither is its axis (a review saw −3.2%).
    assert fig.layout.yaxis.rangemode == "nonnegative"


def test_latency_legend_hover_and_axis_use_labels_and_units():
    frame = _frame().assign(
        p50_ms=[100.0] * 6, p95_ms=[300.0] * 6, requests=[500] * 6, partial=False
    )
    fig = trend_figure(frame, ["p50_ms", "p95_ms"], "Latency")
    assert [t.name for t in fig.data] == ["p50 latency", "p95 latency"]
    for trace in fig.data:
        assert "variable=" not in trace.hovertemplate and "p50_ms" not in trace.hovertemplate
        assert trace.name in trace.hovertemplate and " ms" in trace.hovertemplate
        assert "%{customdata[2]}" in trace.hovertemplate  # the bucket, with its offset
    assert fig.layout.yaxis.ticksuffix == " ms"
    # Legend under the plot, in a row: it does not eat a phone's width.
    legend = fig.layout.legend  # below the plot, at the figure's bottom edge
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0


def test_money_hover_names_the_configured_currency():
    frame = _frame().assign(cost=[1.5] * 6)
    [trace, *_] = trend_figure(frame, ["cost"], "Cost", "bar", currency="EUR").data
    assert trace.name == "Total cost" and " EUR" in trace.hovertemplate


def _luminance(hex_colour: str) -> float:
    # WCAG relative luminance.
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.mark.parametrize("background", ["#ffffff", "#0e1117"])  # Streamlit light, dark
def test_series_colours_are_visible_on_both_themes(background):
    for colour in SERIES_COLORS:
        a, b = sorted((_luminance(colour), _luminance(background)))
        assert (b + 0.05) / (a + 0.05) >= 2.9, colour


def test_small_bucket_values_stay_visible_as_faded_markers():
    # A small tenant's hourly burst (every bucket under the minimum): the line has
    # nothing to draw, the burst still shows, each point with its request count.
    frame = pd.DataFrame(
        {
            "bucket": pd.date_range("2026-11-21 00:00", periods=4, freq="h", tz="UTC"),
            "requests": [8, 15, 12, 20],
            "error_rate": [0.0, 0.2667, 0.1667, 0.05],
            "partial": [False] * 4,
        }
    )
    fig = trend_figure(frame, ["error_rate"], "Error rate", percent=True)
    line, few = fig.data
    assert np.isnan(np.asarray(line.y, dtype=float)).all()
    assert few.mode == "markers" and f"under {MIN_BUCKET_EVENTS['error_rate']}" in few.name
    assert list(few.y) == frame["error_rate"].tolist()
    assert [int(c[1]) for c in few.customdata] == [8, 15, 12, 20]


def test_one_small_bucket_does_not_set_the_scale():
    # A review: p99 30,040 ms over 94 requests stretched the axis to 32.5k ms and
    # flattened the real incident (5.5 s). It now sits at the top edge as a triangle.
    frame = pd.DataFrame(
        {
            "bucket": pd.date_range("2026-12-01 00:00", periods=4, freq="h", tz="UTC"),
            "requests": [500, 94, 600, 550],
            "p99_ms": [900.0, 30040.0, 5500.0, 1000.0],
            "partial": [False] * 4,
        }
    )
    fig = trend_figure(frame, ["p99_ms"], "Latency")
    line, few = fig.data
    assert list(np.asarray(line.y, dtype=float)[[0, 2, 3]]) == [900.0, 5500.0, 1000.0]
    cap = 5500.0 * 1.5
    assert float(few.y[1]) == cap and few.marker.symbol[1] == "triangle-up-open"
    assert float(few.customdata[1][3]) == 30040.0 and "customdata[3]" in few.hovertemplate
    assert tuple(fig.layout.yaxis.range) == (0, cap * 1.05)
    # Small buckets within the judged scale stay where they are, and set no range.
    within = trend_figure(frame.assign(p99_ms=[900.0, 6000.0, 5500.0, 1000.0]), ["p99_ms"], "L")
    assert float(within.data[1].y[1]) == 6000.0 and within.layout.yaxis.range is None


def test_scatter_reads_in_labels_and_units():
    from analytics_app.ui.charts import scatter_figure

    frame = pd.DataFrame(
        {"algorithm": ["lof", "iforest"], "p95_execution_ms": [812.5, 95.0],
         "anomaly_rate": [0.051, 0.022], "detections": [120, 480]}
    )  # fmt: skip
    fig = scatter_figure(frame, "p95_execution_ms", "anomaly_rate", "detections", "algorithm", "t")
    [points] = fig.data
    assert fig.layout.xaxis.title.text == KPIS["p95_execution_ms"].label
    assert fig.layout.yaxis.title.text == KPIS["anomaly_rate"].label
    assert fig.layout.yaxis.tickformat == ".1%" and fig.layout.xaxis.ticksuffix == " ms"
    assert "_" not in points.hovertemplate.replace("<extra></extra>", "")
    assert "%{y:.2%}" in points.hovertemplate and points.cliponaxis is False


def test_partial_lines_are_labelled_once_and_kept_out_of_the_legend():
    frame = _frame().assign(p50_ms=1.0, p95_ms=2.0, p99_ms=3.0)
    fig = trend_figure(frame, ["p50_ms", "p95_ms", "p99_ms"], "Latency")
    dashed = [t for t in fig.data if t.line.dash == "dash"]
    assert len(dashed) == 3 and not any(t.showlegend for t in dashed)
    assert [list(t.text).count("partial") for t in dashed] == [1, 0, 0]


def _availability_rule():
    from analytics_core.config import DEFAULT_CONFIG_PATH, load_config

    # The packaged config: availability alerts below 97%.
    [rule] = [r for r in load_config(DEFAULT_CONFIG_PATH).alerts if r.kpi == "availability"]
    assert rule.below == 0.97
    return rule


def test_gauge_turns_red_below_the_alert_threshold_and_draws_it():
    # 95.05% against a 97% threshold was drawn green, with no threshold on the dial.
    from analytics_app.ui.charts import GAUGE_ALERT, GAUGE_OK, gauge_figure

    rule = _availability_rule()
    [low] = gauge_figure("availability", 0.9505, rule).data
    assert low.gauge.bar.color == GAUGE_ALERT
    assert low.gauge.threshold.value == 97.0
    # The alerting side of the dial is shaded, from its bottom up to the threshold.
    [zone] = low.gauge.steps
    assert zone.range == (low.gauge.axis.range[0], 97.0) and low.gauge.axis.range[0] < 95.05
    assert "alert below 97.00%" in low.title.text
    [fine] = gauge_figure("availability", 0.9912, rule).data
    assert fine.gauge.bar.color == GAUGE_OK
    assert fine.gauge.axis.range[0] < 97.0  # the threshold stays on the dial
    # Without a rule: no threshold, no zone, never red.
    [plain] = gauge_figure("availability", 0.5, None).data
    assert plain.gauge.bar.color == GAUGE_OK and plain.gauge.threshold.value is None


@pytest.mark.parametrize("value", [0.950549, 0.95125, 0.9912, 1.0])
def test_gauge_number_reads_like_the_card(value):
    # The gauge showed "95.055%" where the card showed "95.05%"; 0.95125 is a half that
    # d3 rounds up and the card down.
    from analytics_app.ui.charts import gauge_figure
    from analytics_core.kpis import format_kpi

    [dial] = gauge_figure("availability", value, _availability_rule()).data
    assert dial.number.valueformat == ".2f" and dial.number.suffix == "%"
    assert f"{dial.value:.2f}{dial.number.suffix}" == format_kpi("availability", value)


def test_performance_gauge_takes_its_threshold_from_the_config(duckdb_url, monkeypatch):
    import json

    from tests.ui.test_pages import PAGES, custom, shown_kpis

    at = custom(duckdb_url, monkeypatch).run()
    at.switch_page(PAGES["performance"]).run()
    assert not at.exception, at.exception
    [dial] = [
        json.loads(c.proto.spec)["data"][0]
        for c in at.get("plotly_chart")
        if '"indicator"' in c.proto.spec
    ]
    assert dial["gauge"]["threshold"]["value"] == _availability_rule().threshold * 100
    assert f"{dial['value']:.2f}%" == shown_kpis(at)["Availability"]
