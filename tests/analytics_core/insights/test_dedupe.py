"""One story per incident: overlapping request-path episodes merge, and a previous-period
change that restates an episode already told is not told again."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from analytics_core.insights.model import Insight
from analytics_core.insights.stories.incidents import drop_restated_changes, merge_incidents

T0 = pd.Timestamp("2026-03-02 15:00", tz="UTC")


def _episode(kpi, start_h, end_h, value, expected, endpoint=None, severity="warning", score=0.9):
    start, end = T0 + pd.Timedelta(hours=start_h), T0 + pd.Timedelta(hours=end_h)
    return Insight(
        kind="anomaly",
        area="performance",
        kpi=kpi,
        status="resolved",
        severity=severity,
        score=score,
        message=f"{kpi} was unusually high",
        details={
            "value": value,
            "expected": expected,
            "episode_start": start.isoformat(),
            "episode_end": end.isoformat(),
            "endpoint": endpoint,
        },
    )


def _change(kpi, current, previous):
    return Insight(
        kind="change",
        area="performance",
        kpi=kpi,
        status="firing",
        severity="warning",
        score=0.99,
        message=f"{kpi} changed",
        details={"value": current, "previous": previous, "abs_change": current - previous},
    )


def test_overlapping_p95_p99_and_error_rate_episodes_are_one_story():
    p95 = _episode("p95_ms", 0, 4, 2710.4, 446.3, endpoint="/api/v1/detect", score=0.95)
    p99 = _episode("p99_ms", 1, 5, 4719.9, 1285.9, endpoint="/api/v1/detect", score=0.8)
    errors = _episode("error_rate", 3, 6, 0.2, 0.01, score=0.7)  # no endpoint singled out
    unrelated = _episode("p99_ms", 30, 31, 3000.0, 1200.0)  # a day later: its own story
    out = merge_incidents([p95, p99, errors, unrelated])
    merged = [i for i in out if len(i.details.get("metrics") or []) > 1]
    assert len(out) == 2 and len(merged) == 1
    [story] = merged
    assert story.kpi == "p95_ms"  # the strongest episode leads
    assert story.details["metrics"] == ["p95_ms", "p99_ms", "error_rate"]
    for label in ("p95 latency", "p99 latency", "error rate"):
        assert label in story.message
    assert "4,719.9 ms" in story.message and "20.00%" in story.message
    # The story spans the union of the episodes: 15:00 to 21:00.
    assert pd.Timestamp(story.details["episode_start"]) == T0
    assert pd.Timestamp(story.details["episode_end"]) == T0 + pd.Timedelta(hours=6)
    assert unrelated in out


def test_episodes_on_different_endpoints_stay_apart():
    a = _episode("p95_ms", 0, 4, 2000.0, 400.0, endpoint="/api/v1/detect")
    b = _episode("p99_ms", 1, 5, 4000.0, 1200.0, endpoint="/api/v1/datasets")
    assert merge_incidents([a, b]) == [a, b]


def test_back_to_back_episodes_do_not_overlap():
    a = _episode("p95_ms", 0, 2, 2000.0, 400.0)
    b = _episode("error_rate", 2, 3, 0.2, 0.01)  # starts when the first one ended
    assert merge_incidents([a, b]) == [a, b]


def test_a_change_restating_a_told_episode_is_not_told():
    burst = _episode("error_rate", 0, 2, 0.365, 0.0066)
    rose = _change("error_rate", 0.0086, 0.0053)
    latency_fell = _change("p95_ms", 300.0, 450.0)  # opposite direction: a different story
    assert drop_restated_changes([burst, rose, latency_fell]) == [burst, latency_fell]


def test_an_availability_threshold_tells_the_error_rate_rise():
    breach = Insight(
        kind="threshold",
        area="performance",
        kpi="availability",
        status="resolved",
        severity="critical",
        score=0.5,
        message="Availability was below its threshold",
        details={"comparison": "<"},
    )
    rose, fell = _change("error_rate", 0.0123, 0.005), _change("error_rate", 0.004, 0.009)
    assert drop_restated_changes([breach, rose, fell]) == [breach, fell]


def test_a_change_without_an_episode_is_still_told():
    rose = _change("error_rate", 0.0086, 0.0053)
    quiet = _episode("error_rate", 0, 2, 0.02, 0.01)
    quiet = replace(quiet, status="ok")  # a quiet check tells nothing
    assert drop_restated_changes([quiet, rose]) == [quiet, rose]


def _threshold(kpi, start_h, end_h, worst, limit, word, severity="critical"):
    start, end = T0 + pd.Timedelta(hours=start_h), T0 + pd.Timedelta(hours=end_h)
    return Insight(
        kind="threshold",
        area="performance",
        kpi=kpi,
        status="resolved",
        severity=severity,
        score=1.0,
        message=f"{kpi} was {word} its threshold {limit} from {start:%H:%M} to {end:%H:%M} "
        f"(worst {worst}); it has cleared since; 2 hourly buckets under 50 requests were "
        "not judged",
        details={
            "comparison": ">" if word == "above" else "<",
            "episodes": [
                {"start": (start - pd.Timedelta(days=2)).isoformat(), "end": None, "peak": 0},
                {"start": start.isoformat(), "end": end.isoformat(), "peak": 0},
            ],
        },
    )


def test_threshold_and_anomaly_stories_of_one_burst_are_one_story():
    # Tenant Acme's 5xx burst: the availability and error-rate thresholds both fire and
    # the error-rate anomaly detector flags it too; one incident, told once.
    availability = _threshold("availability", 0, 4, "73.08%", "97.00%", "below")
    errors = _threshold("error_rate", 0, 4, "26.92%", "3.00%", "above")
    anomaly = _episode("error_rate", 0, 3, 0.2692, 0.0093)
    later = _threshold("error_rate", 20, 22, "9.00%", "3.00%", "above")  # its own story
    out = merge_incidents([availability, errors, anomaly, later])
    assert len(out) == 2 and later in out
    [story] = [i for i in out if i is not later]
    # The anomaly leads (it dates the episode and says what was expected); the story
    # takes the thresholds' gravity and spans the anomaly's episode.
    assert story.kind == "anomaly" and story.severity == "critical"
    assert story.details["metrics"] == ["error_rate", "availability"]
    assert story.message.startswith("One incident in error rate and availability. ")
    # Each member's own facts are still in the one story.
    for fact in ("error_rate was unusually high", "worst 73.08%", "worst 26.92%"):
        assert fact in story.message
    # Only the latest threshold episode counts for the overlap (the one two days
    # earlier does not chain the stories).
    assert pd.Timestamp(story.details["episode_start"]) == T0
    assert pd.Timestamp(story.details["episode_end"]) == T0 + pd.Timedelta(hours=3)
    # A change story in the same direction is not told again after the merge.
    rise = _change("error_rate", 0.0086, 0.0053)
    assert drop_restated_changes([story, rise]) == [story]


def test_info_threshold_story_without_episode_stays_apart():
    info = replace(_threshold("error_rate", 0, 1, "25%", "3.00%", "above"), severity="info")
    info = replace(info, details={**info.details, "episodes": []})
    anomaly = _episode("error_rate", 0, 3, 0.2, 0.01)
    assert merge_incidents([info, anomaly]) == [info, anomaly]


def test_a_kpis_threshold_and_anomaly_stories_merge_beyond_the_request_path():
    # The 90-day feed told the same anomaly-rate day twice: as a threshold alert and as
    # an (info) anomaly. One story, with the alert's gravity; other KPIs stay apart.
    alert = _threshold("anomaly_rate", 0, 24, "6.05%", "5.00%", "above", severity="warning")
    anomaly = _episode("anomaly_rate", 6, 7, 0.0605, 0.0282, severity="info")
    latency = _episode("p95_ms", 6, 7, 2000.0, 400.0)  # same hours, another incident
    out = merge_incidents([alert, anomaly, latency])
    assert len(out) == 2 and latency in out
    [story] = [i for i in out if i is not latency]
    assert story.kind == "anomaly" and story.severity == "warning"
    assert "above its threshold 5.00%" in story.message and "worst 6.05%" in story.message
