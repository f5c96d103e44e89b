"""Insight stories in the UI: evidence charts through their figure objects (label title,
unit axes, non-negative band, theme colour), and the feed's fold through AppTest."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from analytics_app.ui.insights import ABOVE_FOLD, _evidence_chart, fold
from analytics_core.insights import Insight
from analytics_core.kpis import KPIS
from tests.ui.shown import only_table


def _evidence(expected, half_width, values) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame(
        {
            "bucket": pd.date_range("2026-03-02 10:00", periods=n, freq="h", tz="UTC"),
            "value": values,
            "baseline": [expected] * n,
            "lower": [expected - half_width] * n,
            "upper": [expected + half_width] * n,
            "flagged": [False] * (n - 1) + [True],
        }
    )


def _band(fig):
    upper = next(t for t in fig.data if t.hoverinfo == "skip")
    lower = next(t for t in fig.data if t.name == "expected range")
    return pd.Series(lower.y, dtype=float), pd.Series(upper.y, dtype=float)


def test_latency_chart_band_stops_at_zero_and_axis_is_ms():
    # A 400 ms forecast with a 1,400 ms half width: the raw band reaches -1,000 ms.
    ev = _evidence(400.0, 1400.0, [380.0, 420.0, 2700.0])
    fig = _evidence_chart(ev, "p95_ms", "anomaly")
    lower, upper = _band(fig)
    assert (lower == 0.0).all() and (upper == 1800.0).all()
    assert fig.layout.title.text == KPIS["p95_ms"].label == "p95 latency"
    assert fig.layout.yaxis.ticksuffix == " ms"
    # Nor does the axis pad below zero (a review saw −404 ms on a latency axis).
    assert fig.layout.yaxis.rangemode == "nonnegative"


def test_rate_chart_has_a_percent_axis_and_the_label():
    ev = _evidence(0.005, 0.01, [0.004, 0.006, 0.2])
    fig = _evidence_chart(ev, "error_rate", "anomaly")
    assert fig.layout.title.text == "Error rate"
    assert fig.layout.yaxis.tickformat.endswith("%")
    lower, _ = _band(fig)
    assert lower.min() == 0.0  # 0.005 - 0.01 would be -0.5%
    value = next(t for t in fig.data if t.name == "Error rate")
    assert "%" in value.hovertemplate and "Error rate" in value.hovertemplate


def test_value_line_is_the_series_blue_apart_from_the_flagged_red():
    # A fixed dark grey vanished on the dark theme; the theme's own first colour was pale
    # red on light and the flagged points' red on dark.
    from analytics_app.ui.charts import SERIES_COLORS

    fig = _evidence_chart(_evidence(10.0, 5.0, [9.0, 11.0, 30.0]), "requests", "anomaly")
    value = next(t for t in fig.data if t.name == "Requests")
    flagged = [t for t in fig.data if t.mode == "markers"]
    assert value.line.color == SERIES_COLORS[0]  # contrast on both themes is tested
    assert flagged and all(t.marker.color != value.line.color for t in flagged)


def _story(n: int, severity: str) -> Insight:
    return Insight(
        kind="anomaly",
        area="performance",
        kpi=None,
        status="resolved",
        severity=severity,  # type: ignore[arg-type]
        score=1.0 - n / 100,
        message=f"story {n} {severity}",
        method="test",
    )


# Seven warnings then three infos, in feed order.
SEVERITIES = ["critical"] + ["warning"] * 6 + ["info"] * 3


def test_fold_keeps_a_handful_of_non_info_stories_above():
    stories = [_story(n, s) for n, s in enumerate(SEVERITIES)]
    top, more = fold(stories)
    assert [i.message for i in top] == [f"story {n} {SEVERITIES[n]}" for n in range(ABOVE_FOLD)]
    assert [i.message for i in more] == [
        f"story {n} {SEVERITIES[n]}" for n in range(ABOVE_FOLD, len(SEVERITIES))
    ]


def _feed_app() -> None:
    from analytics_app.ui.insights import insight_feed
    from analytics_core.insights import Insight

    severities = ["critical"] + ["warning"] * 6 + ["info"] * 3
    insight_feed(
        [
            Insight(
                kind="anomaly",
                area="performance",
                kpi=None,
                status="resolved",
                severity=s,  # type: ignore[arg-type]
                score=1.0,
                message=f"story {n} {s}",
                method="test",
            )
            for n, s in enumerate(severities)
        ]
    )


def test_info_and_stories_beyond_five_are_under_more():
    at = AppTest.from_function(_feed_app).run()
    assert not at.exception
    [more] = [e for e in at.expander if e.label.startswith("More")]
    inside = {m.value.split("  \n")[-1] for m in more.markdown if "story" in m.value}
    everything = {m.value.split("  \n")[-1] for m in at.markdown if "story" in m.value}
    expected_more = {f"story {n} {SEVERITIES[n]}" for n in range(5, len(SEVERITIES))}
    assert inside == expected_more
    assert everything - inside == {f"story {n} {SEVERITIES[n]}" for n in range(5)}


def test_money_chart_axis_and_hover_carry_the_configured_currency():
    # A total-cost story read "0.15" on the axis and in the hover: no currency.
    ev = _evidence(0.12, 0.02, [0.11, 0.13, 0.15])
    fig = _evidence_chart(ev, "total_cost", "anomaly", currency="EUR")
    assert fig.layout.title.text == "Total cost"
    assert fig.layout.yaxis.ticksuffix == " EUR" and fig.layout.yaxis.tickformat == ",.2f"
    value = next(t for t in fig.data if t.name == "Total cost")
    assert "%{y:,.2f} EUR" in value.hovertemplate


def test_band_baseline_and_markers_hover_with_label_value_unit_and_bucket():
    # The band and the baseline showed Plotly's "expected range(Nov 19, 2026, 15:00,
    # 0.09104944)": every drawn trace now names itself, its value in the unit, and the bucket.
    ev = _evidence(400.0, 100.0, [380.0, 420.0, 2700.0])
    fig = _evidence_chart(ev, "p95_ms", "anomaly")
    band = next(t for t in fig.data if t.name == "expected range")
    assert band.hovertemplate == (
        "<b>Expected range</b>: %{y:,.1f} ms to %{customdata[1]:,.1f} ms"
        "<br>%{customdata[0]}<extra></extra>"
    )
    assert [row[0] for row in band.customdata] == [
        "2026-03-02 10:00 +00:00",
        "2026-03-02 11:00 +00:00",
        "2026-03-02 12:00 +00:00",
    ]
    assert [row[1] for row in band.customdata] == [500.0] * 3  # the band's upper edge
    baseline = next(t for t in fig.data if t.name == "baseline")
    assert baseline.hovertemplate == (
        "<b>Baseline</b>: %{y:,.1f} ms<br>%{customdata[0]}<extra></extra>"
    )
    flagged = next(t for t in fig.data if t.name == "flagged")
    assert list(flagged.y) == [2700.0] and flagged.customdata[0][0] == "2026-03-02 12:00 +00:00"
    for trace in fig.data:
        if trace.hoverinfo == "skip":  # the band's invisible upper edge
            continue
        assert trace.hovertemplate and "%{customdata[0]}" in trace.hovertemplate, trace.name
        assert " ms" in trace.hovertemplate, trace.name


def test_threshold_evidence_hover_names_the_threshold_and_small_buckets_counts():
    ev = pd.DataFrame(
        {
            "bucket": pd.date_range("2026-11-19 13:00", periods=3, freq="h", tz="UTC"),
            "value": [0.01, float("nan"), 0.05],
            "threshold": 0.03,
            "flagged": [False, False, True],
            "unjudged": [float("nan"), 0.2667, float("nan")],
            "events": [400.0, 15.0, 380.0],
        }
    )
    fig = _evidence_chart(ev, "error_rate", "threshold")
    threshold = next(t for t in fig.data if t.name == "threshold")
    assert threshold.hovertemplate.startswith("<b>Threshold</b>: %{y:.2%}")
    small = next(t for t in fig.data if t.name == "too few events to judge")
    assert list(small.y) == [0.2667]
    assert [list(row) for row in small.customdata] == [["2026-11-19 14:00 +00:00", 15.0]]
    assert "%{customdata[1]:,} events" in small.hovertemplate


def _bottleneck_feed_app() -> None:
    import pandas as pd

    from analytics_app.ui.insights import insight_feed
    from analytics_core.insights.stories.bottleneck import bottleneck_insights

    # lof: 72% of execution time on 19% of runs; 25% of it in the previous period.
    algorithms = pd.DataFrame(
        {
            "algorithm": ["lof", "iforest"],
            "runs": [3641, 15705],
            "failed": [0, 0],
            "total_ms": [5813592.803, 2236000.0],
            "run_share": [0.1882, 0.8118],
            "failure_share": [float("nan")] * 2,
            "time_share": [0.7222, 0.2778],
            "runs_before": [3500, 15000],
            "failed_before": [0, 0],
            "time_share_before": [0.25, 0.75],
            "failure_share_before": [float("nan")] * 2,
            "run_share_before": [0.1892, 0.8108],
        }
    )
    endpoints = pd.DataFrame(
        columns=["endpoint", "requests", "slow", "errors", "slow_share", "error_share",
                 "request_share", "slow_before", "errors_before", "slow_share_before",
                 "error_share_before"]
    )  # fmt: skip
    stories = bottleneck_insights(
        {"bottleneck_algorithms": algorithms, "bottleneck_endpoints": endpoints}
    )
    insight_feed(stories, currency="EUR")


def test_bottleneck_evidence_table_reads_like_the_other_tables():
    # Was a bare st.dataframe: "algorithm | run_share | time_share | time_share (previous
    # period)" with 0.2771 for 27.71%.
    evidence, labels, formats = only_table(_bottleneck_feed_app)
    assert list(labels.values()) == [
        "Algorithm",
        "Share of runs",
        "Share of time",
        "Share of time (previous period)",
    ]
    assert formats == dict.fromkeys(["run_share", "time_share", "time_share_before"], "percent")
    # The story's own frame keeps raw values and machine-readable names for the downloads.
    assert evidence.value["time_share"].tolist() == [0.7222, 0.2778]


def _all_info_feed_app() -> None:
    from analytics_app.ui.insights import insight_feed
    from analytics_core.insights import Insight

    insight_feed(
        [
            Insight(
                kind="threshold",
                area="performance",
                kpi=None,
                status="resolved",
                severity="info",
                score=0.5,
                message=f"story {n} info",
                method="test",
            )
            for n in range(6)
        ]
    )


def test_a_feed_of_info_stories_says_so_above_the_fold():
    # Acme, hourly, one day: six INFO stories all went under "More" and left the top blank.
    at = AppTest.from_function(_all_info_feed_app).run()
    assert not at.exception, at.exception
    [summary] = at.info
    assert summary.value == (
        "No warnings or alerts in this view; 6 informational stories below under More."
    )
    [more] = at.expander
    assert more.label == "More: 6 further stories"
    # Above the fold there is the summary, and then only the fold.
    assert [type(e).__name__ for e in at.main.children.values()] == ["Info", "Expander"]
    assert len([m for m in more.markdown if "story" in m.value]) == 6


def test_no_summary_line_when_a_warning_is_above_the_fold():
    at = AppTest.from_function(_feed_app).run()
    assert not at.exception
    assert not [i for i in at.info if "No warnings" in i.value]


def test_a_trend_story_names_its_line_the_trend_not_a_baseline():
    # A review: "Request volume per day is rising" drew its Theil-Sen fit as "baseline".
    ev = _evidence(400.0, 100.0, [380.0, 420.0, 450.0]).assign(baseline=[390.0, 410.0, 430.0])
    names = [t.name for t in _evidence_chart(ev, "requests", "trend").data]
    assert "Trend (Theil-Sen fit)" in names and "baseline" not in names
    assert "baseline" in [t.name for t in _evidence_chart(ev, "requests", "anomaly").data]
