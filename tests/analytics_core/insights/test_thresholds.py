"""Threshold alerts: hysteresis, minimum duration, range checks and honest no-data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from analytics_core.config import AlertRule
from analytics_core.insights.thresholds import check_thresholds, episodes

BUCKETS = pd.Series(pd.date_range("2026-03-01", periods=12, freq="h"))


def rule(**kw) -> AlertRule:
    base = {"kpi": "error_rate", "above": 0.05, "below": None, "severity": "critical"}
    return AlertRule(**{**base, **kw})


def test_hysteresis_holds_until_the_clear_level():
    # Above 5% at 2, hovers between clear (3%) and threshold until 6, clears at 7.
    values = pd.Series([0.01, 0.02, 0.08, 0.045, 0.04, 0.049, 0.035, 0.02, 0.01, 0.06, 0.01, 0.0])
    found = episodes(BUCKETS, values, rule(clear=0.03))
    assert [(e.start, e.end) for e in found] == [
        (BUCKETS[2], BUCKETS[7]),
        (BUCKETS[9], BUCKETS[10]),
    ]
    assert found[0].peak == 0.08
    # Without hysteresis the first episode ends as soon as the value dips below 5%.
    plain = episodes(BUCKETS, values, rule())
    assert plain[0].end == BUCKETS[3]


def test_minimum_duration_ignores_short_blips():
    values = pd.Series([0.0, 0.1, 0.0, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    found = episodes(BUCKETS, values, rule(for_duration=timedelta(hours=3)))
    assert len(found) == 1 and found[0].start == BUCKETS[3] and found[0].end == BUCKETS[6]
    # With daily buckets a single bucket already lasts longer than three hours.
    daily = episodes(BUCKETS, values, rule(for_duration=timedelta(hours=3)), timedelta(days=1))
    assert [e.start for e in daily] == [BUCKETS[1], BUCKETS[3]]


def test_below_rules_and_ongoing_episode():
    values = pd.Series([0.999] * 8 + [0.98, 0.97, 0.99, 0.97])
    r = rule(kpi="availability", above=None, below=0.995, clear=0.997)
    found = episodes(BUCKETS, values, r)
    assert len(found) == 1 and found[0].end is None and found[0].peak == 0.97


def test_insights_carry_evidence_and_status():
    values = pd.Series([0.01] * 4 + [0.2, 0.3] + [0.01] * 6)
    frame = pd.DataFrame({"bucket": BUCKETS, "error_rate": values})
    series = {"performance_trend": frame}
    [resolved] = check_thresholds((rule(),), {"error_rate": 0.043}, series)
    assert resolved.status == "resolved" and "30.00%" in resolved.message
    assert resolved.evidence["flagged"].tolist() == [False] * 4 + [True, True] + [False] * 6
    frame.loc[11, "error_rate"] = 0.5
    [firing] = check_thresholds((rule(),), {"error_rate": 0.08}, series)
    assert firing.status == "firing" and len(firing.details["episodes"]) == 2


def test_counts_are_checked_on_the_range_and_no_data_is_said():
    r = rule(kpi="failed_detections", above=50, severity="info")
    [ok] = check_thresholds((r,), {"failed_detections": 12})
    assert ok.status == "ok"
    [fires] = check_thresholds((r,), {"failed_detections": 51})
    assert fires.status == "firing" and "51" in fires.message
    frame = pd.DataFrame({"bucket": BUCKETS, "error_rate": np.nan})
    [nodata] = check_thresholds((rule(),), {"error_rate": None}, {"performance_trend": frame})
    assert nodata.status == "no_data" and "no data" in nodata.message
