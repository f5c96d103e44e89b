"""Threshold alerts: hysteresis, minimum duration, range checks and honest no-data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

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


def test_counts_are_checked_per_day_and_no_data_is_said():
    # Was: counts checked on the range total, so 12 failures were "ok" at any length.
    r = rule(kpi="failed_detections", above=50, severity="info")
    [ok] = check_thresholds((r,), {"failed_detections": 12}, observed_days=1.0)
    assert ok.status == "ok"
    [fires] = check_thresholds((r,), {"failed_detections": 51}, observed_days=1.0)
    assert fires.status == "firing" and "51" in fires.message and "per day" in fires.message
    frame = pd.DataFrame({"bucket": BUCKETS, "error_rate": np.nan})
    [nodata] = check_thresholds((rule(),), {"error_rate": None}, {"performance_trend": frame})
    assert nodata.status == "no_data" and "no data" in nodata.message


@pytest.mark.parametrize("per_day", [20, 49, 51, 80])
def test_count_threshold_gives_the_same_answer_at_every_range_length(per_day):
    """The same daily rate of failures: one answer at 7, 30 and 90 days (was: the
    range total, which fired at 30 and 90 days and not at 7)."""
    r = rule(kpi="failed_detections", above=50, severity="info")
    want = "firing" if per_day > 50 else "ok"
    for days in (7, 30, 90):
        [got] = check_thresholds((r,), {"failed_detections": per_day * days}, observed_days=days)
        assert got.status == want, (days, got.message)
        assert got.details["per_day"] == pytest.approx(per_day)
    # Only the observed part of a range counts: 3.5 days in, 175 failures is 50 a day.
    [half] = check_thresholds((r,), {"failed_detections": 175}, observed_days=3.5)
    assert half.status == "ok" and half.details["per_day"] == pytest.approx(50)


def _hourly(requests: list[int], rates: list[float], partial: list[bool] | None = None):
    frame = pd.DataFrame(
        {"bucket": BUCKETS, "requests": requests, "error_rate": rates,
         "partial": partial or [False] * len(BUCKETS)}
    )  # fmt: skip
    return {"performance_trend": frame}


def test_small_bucket_breach_is_an_info_story_with_the_not_judged_count():
    # Acme's burst: 15% and 25% 5xx at 19:00 and 20:00, on 20 and 12 requests.
    requests = [200] * 7 + [20, 12] + [200] * 3
    rates = [0.01] * 7 + [0.15, 0.25] + [0.01] * 3
    [story] = check_thresholds(
        (rule(above=0.03, for_duration=timedelta(hours=2)),),
        {"error_rate": 0.012},
        _hourly(requests, rates),
    )
    small = sum(n < 50 for n in requests)
    assert small == 2
    assert story.status == "resolved" and story.severity == "info"  # not "ok", not critical
    assert "2 hourly buckets under 50 requests were not judged" in story.message
    assert "25.00%" in story.message and "2026-03-01 08:00" in story.message
    assert "12 requests" in story.message
    assert story.details["unjudged_buckets"] == 2 and story.details["unjudged_breaches"] == 2
    evidence = story.evidence
    # The judged line has gaps where the buckets are too small; their values are kept apart.
    assert evidence["value"].isna().tolist() == [n < 50 for n in requests]
    assert evidence["unjudged"].dropna().tolist() == [0.15, 0.25]
    assert evidence["events"].tolist() == requests


def test_not_judged_buckets_are_counted_in_ok_and_firing_stories():
    requests = [200] * 10 + [30, 200]
    rates = [0.01] * 10 + [0.01, 0.01]
    [ok] = check_thresholds((rule(),), {"error_rate": 0.01}, _hourly(requests, rates))
    assert ok.status == "ok"
    assert "every judged hourly bucket" in ok.message  # the width it judged, named
    assert "1 hourly bucket under 50 requests was not judged" in ok.message
    rates = [0.01] * 4 + [0.2, 0.3] + [0.01] * 6
    [fired] = check_thresholds((rule(),), {"error_rate": 0.05}, _hourly(requests, rates))
    assert fired.status == "resolved" and fired.severity == "critical"
    assert fired.message.endswith("1 hourly bucket under 50 requests was not judged")
    # Daily buckets say so.
    [daily] = check_thresholds(
        (rule(),), {"error_rate": 0.01}, _hourly(requests, [0.01] * 12), step=timedelta(days=1)
    )
    assert "1 daily bucket under 50 requests was not judged" in daily.message


def test_a_partial_bucket_never_alarms():
    # The running hour: 5 requests, 3 of them errors so far; and a busy partial hour.
    requests = [200] * 11 + [5]
    rates = [0.01] * 11 + [0.6]
    partial = [False] * 11 + [True]
    [got] = check_thresholds((rule(),), {"error_rate": 0.02}, _hourly(requests, rates, partial))
    assert got.status == "ok" and got.severity == "critical"
    assert "not judged" not in got.message  # it is left out, not "too small"
    assert got.details["partial_buckets"] == 1
    assert len(got.evidence) == 11 and got.evidence["bucket"].max() == BUCKETS[10]
    [busy] = check_thresholds((rule(),), {"error_rate": 0.02}, _hourly([200] * 12, rates, partial))
    assert busy.status == "ok"


def test_no_judged_bucket_claims_nothing_about_judged_buckets():
    # A small tenant's day: every hour under 50 requests, two of them breaching.
    requests = [12, 15, 8, 20] * 3
    rates = [0.01, 0.27, 0.25, 0.0] + [0.01] * 8
    [story] = check_thresholds((rule(),), {"error_rate": 0.1}, _hourly(requests, rates))
    assert story.severity == "info"
    assert "12 hourly buckets under 50 requests were not judged" in story.message
    assert "2 of them were above" in story.message
    assert "judged bucket stayed within" not in story.message


def test_no_complete_bucket_is_no_data_not_an_error():
    # A one-hour range at 01:39 holds two partial hours and no complete one.
    empty = pd.DataFrame(
        {
            "bucket": pd.Series([], dtype="datetime64[ns, UTC]"),
            "requests": pd.Series([], dtype="int64"),
            "error_rate": pd.Series([], dtype="float64"),
            "partial": pd.Series([], dtype=bool),
        }
    )
    [story] = check_thresholds((rule(),), {"error_rate": None}, {"performance_trend": empty})
    assert story.status == "no_data"
