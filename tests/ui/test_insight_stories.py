"""Insight stories in the UI: evidence charts through their figure objects (label title,
unit axes, non-negative band, theme colour), and the feed's fold through AppTest."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from analytics_app.ui.insights import ABOVE_FOLD, _evidence_chart, fold
from analytics_core.insights import Insight
from analytics_core.kpis import KPIS


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
