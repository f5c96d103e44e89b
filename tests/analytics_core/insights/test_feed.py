"""The insights feed on seeded demo data: the injected incidents are found, with
evidence and recommendations drawn from their own numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analytics_core.config import load_config
from analytics_core.filters import make_filters
from analytics_core.page_data import build_page
from analytics_core.seed import ANOMALY_JUMP_DETECTOR, LATENCY_SPIKE_ENDPOINT, incidents, seed
from analytics_core.sources.database import make_engine

END = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday afternoon


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('feed') / 'demo.duckdb'}"
    writer = make_engine(url, read_only=False)
    seed(writer, days=60, scale=1.0, end=END)
    writer.dispose()
    return url


@pytest.fixture(scope="module")
def feed_7d(demo_url):
    engine = make_engine(demo_url)
    data = build_page(
        engine, load_config(), "insights", make_filters(END - timedelta(days=7), END), now=END
    )
    engine.dispose()
    return data


def _incident(name: str):
    return next(i for i in incidents(END) if i.name == name)


def _overlaps(insight, incident) -> bool:
    start = pd.Timestamp(insight.details["episode_start"])
    end = insight.details["episode_end"]
    end = pd.Timestamp(end) if end else pd.Timestamp(END)
    return start < incident.end and end > incident.start


def test_error_burst_is_an_anomaly_and_a_threshold_alert(feed_7d):
    burst = _incident("error_burst")
    found = [i for i in feed_7d.insights if i.kind == "anomaly" and i.kpi == "error_rate"]
    assert found and _overlaps(found[0], burst), [i.message for i in found]
    assert found[0].severity == "warning" and "unusually high" in found[0].message
    evidence = found[0].evidence
    assert evidence["flagged"].any() and {"baseline", "lower", "upper"} <= set(evidence.columns)
    alert = next(i for i in feed_7d.insights if i.kind == "threshold" and i.kpi == "error_rate")
    assert alert.status == "resolved"
    [episode] = [
        e for e in alert.details["episodes"]
        if pd.Timestamp(e["start"]) < burst.end and pd.Timestamp(e["end"]) > burst.start
    ]  # fmt: skip
    assert episode["peak"] > 0.03  # daily buckets at 7 days: the burst day breaches 3%


def test_latency_spike_points_at_its_endpoint(feed_7d):
    spike = _incident("detect_latency_spike")
    found = [i for i in feed_7d.insights if i.kind == "anomaly" and i.kpi == "p95_ms"]
    assert found and _overlaps(found[0], spike)
    assert LATENCY_SPIKE_ENDPOINT in (found[0].recommendation or "")


def test_anomaly_rate_jump_names_the_detector(demo_url):
    jump = _incident("anomaly_rate_jump")
    engine = make_engine(demo_url)
    data = build_page(
        engine, load_config(), "insights", make_filters(END - timedelta(days=14), END), now=END
    )
    engine.dispose()
    found = [i for i in data.insights if i.kind == "anomaly" and i.kpi == "anomaly_rate"]
    assert found and _overlaps(found[0], jump), [i.message for i in found]
    assert ANOMALY_JUMP_DETECTOR in (found[0].recommendation or "")


def test_feed_is_ranked_and_quiet_checks_come_last(feed_7d):
    quiet = [i.status in ("learning", "no_data", "ok") for i in feed_7d.insights]
    assert quiet == sorted(quiet)  # every story before every quiet check
    severity = {"critical": 0, "warning": 1, "info": 2}
    stories = [severity[i.severity] for i, q in zip(feed_7d.insights, quiet, strict=True) if not q]
    assert stories == sorted(stories)
    # The injected incidents lead their severity, ahead of slower-moving patterns.
    warnings = [i.kind for i in feed_7d.insights if i.severity == "warning" and i.status != "ok"]
    assert warnings[0] in ("anomaly", "threshold")
    for insight in feed_7d.insights:  # every story explains itself
        assert insight.message and insight.method


def test_a_short_history_is_learning_not_guessing(tmp_path):
    url = f"duckdb:///{tmp_path / 'young.duckdb'}"
    writer = make_engine(url, read_only=False)
    seed(writer, days=0.75, scale=1.0, end=END)  # 18 hours: less than one daily season
    writer.dispose()
    engine = make_engine(url)
    data = build_page(
        engine, load_config(), "insights", make_filters(END - timedelta(hours=6), END), now=END
    )
    engine.dispose()
    anomalies = [i for i in data.insights if i.kind == "anomaly"]
    assert anomalies and all(i.status == "learning" for i in anomalies)


@pytest.mark.parametrize(
    ("limit", "status", "words"),
    [(1.0, "firing", "already reached"), (1e12, "ok", "not expected"), (None, "ok", "forecast")],
)
def test_capacity_forecast_against_a_limit(demo_url, limit, status, words):
    from analytics_core.insights.feed import capacity_insights

    config = load_config()
    capacity = {} if limit is None else {"requests_per_day": limit}
    insights = config.insights.model_copy(update={"capacity": capacity})
    config = config.model_copy(update={"insights": insights})
    engine = make_engine(demo_url)
    found = capacity_insights(engine, config, make_filters(END - timedelta(days=7), END), END)
    engine.dispose()
    requests = next(i for i in found if i.kpi == "api_calls")
    assert requests.status == status and words in requests.message
    evidence = requests.evidence
    future = evidence.dropna(subset=["forecast"])
    assert len(future) == config.insights.forecast_horizon_days
    assert (future["lower"] <= future["forecast"]).all()
    assert (future["forecast"] <= future["upper"]).all()
    history = evidence.dropna(subset=["value"])
    assert history["bucket"].max() < future["bucket"].min()


def test_availability_change_is_stated_as_availability():
    from analytics_core.insights.feed import kpi_changes

    def perf(errors, requests):
        return pd.DataFrame({"errors": [errors], "requests": [requests]})

    current = {"error_rate": 0.02, "availability": 0.98}
    previous = {"error_rate": 0.01, "availability": 0.99}
    changes = kpi_changes(
        current, previous, {"performance_trend": perf(200, 10_000)},
        {"performance_trend": perf(100, 10_000)}, 0.05,
    )  # fmt: skip
    assert changes["error_rate"].pct_change == pytest.approx(1.0)
    assert changes["availability"].pct_change == pytest.approx(0.98 / 0.99 - 1)
    assert changes["availability"].abs_change == pytest.approx(-0.01)
    assert changes["availability"].significant == changes["error_rate"].significant is True


def test_an_episode_that_ended_is_resolved_not_active(feed_7d):
    spike = _incident("detect_latency_spike")  # six hours, two days before the end
    [p95] = [i for i in feed_7d.insights if i.kind == "anomaly" and i.kpi == "p95_ms"]
    assert p95.status == "resolved" and p95.details["episode_end"] is not None
    assert pd.Timestamp(p95.details["episode_end"]) <= spike.end + pd.Timedelta(hours=2)
