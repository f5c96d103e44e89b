"""Trend stories: watched metrics rising or falling steadily, day by day, over the range."""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import timedelta

import pandas as pd

from analytics_core.config import Config
from analytics_core.context import QueryContext
from analytics_core.insights import trends
from analytics_core.insights.model import Insight, evidence_frame
from analytics_core.insights.stories.common import (
    WATCHED,
    Metric,
    capitalized,
    complete_buckets,
    days_from,
    since_first_activity,
)
from analytics_core.kpis import KPIS, area_of, bucket_values, format_kpi
from analytics_core.runtime import offload
from analytics_core.sources.areas import Sources


@dataclass(frozen=True)
class TrendTest:
    """One watched metric's daily values and its trend test, maybe still running."""

    metric: Metric
    frame: pd.DataFrame
    values: pd.Series
    found: Future[trends.Trend | None]


def start_trend_tests(
    sources: Sources,
    config: Config,
    ctx: QueryContext,
    series: dict[str, pd.DataFrame],
    daily_history: dict[str, pd.DataFrame] | None = None,
) -> list[TrendTest]:
    """The trend test of every watched metric's complete days in the range, handed to the
    worker process where one runs (:func:`analytics_core.runtime.offload`), so that the
    caller can score anomalies meanwhile; :func:`trend_stories` tells what they found.
    ``daily_history``: daily trends over a span ending where the range ends (the anomaly
    history), when the caller has them."""
    filters = ctx.filters
    if filters.length < timedelta(days=8):
        return []
    # Daily values: the page's own series when it is already by day; else the days of the
    # daily history that begin in the range (the days a daily trend of the range holds
    # whole: its partial first day, left out below, is the one day beginning before).
    if filters.granularity == "day":
        frames = series
    elif daily_history is not None:
        frames = {name: days_from(frame, filters.start) for name, frame in daily_history.items()}
    else:
        daily = ctx.with_filters(replace(filters, granularity="day"))
        frames = sources.trends(daily, config.costs)
    tests = []
    for metric in WATCHED:
        # Partial first/last days would bias a daily trend.
        frame = since_first_activity(complete_buckets(frames[metric.series]), metric.series)
        values = bucket_values(frame, metric.kpi)
        alpha = config.insights.trend_alpha
        found = offload(trends.detect_trend, frame["bucket"], values, alpha)
        tests.append(TrendTest(metric, frame, values, found))
    return tests


def trend_stories(tests: list[TrendTest]) -> list[Insight]:
    """A story per significant trend among ``tests``."""
    out = []
    for test in tests:
        metric, frame, values, found = test.metric, test.frame, test.values, test.found.result()
        if found is None or not found.significant:
            continue
        up = found.slope_per_day > 0
        better = KPIS[metric.kpi].higher_is_better
        harmful = better is not None and up != better
        pct = found.pct_change
        change = f" ({pct:+.0%} over the range)" if pct is not None and math.isfinite(pct) else ""
        label = _daily_label(metric)
        message = (
            f"{label} is {'rising' if up else 'falling'} by about "
            f"{format_kpi(metric.kpi, abs(found.slope_per_week))} per week{change}; "
            f"{_p(found.p_value)}"
        )
        out.append(
            Insight(
                kind="trend",
                area=area_of(metric.kpi),
                kpi=metric.kpi,
                status="firing",
                severity="warning" if harmful and pct is not None and abs(pct) >= 0.2 else "info",
                score=float(1 - found.p_value),
                message=message,
                method=found.method,
                baseline=f"{found.n} complete days in the range",
                recommendation=_trend_recommendation(metric, found, harmful, label),
                details={
                    "slope_per_day": found.slope_per_day,
                    "slope_per_week": found.slope_per_week,
                    "pct_change": pct,
                    "p_value": found.p_value,
                    "n": found.n,
                },
                evidence=evidence_frame(
                    frame["bucket"],
                    values,
                    baseline=pd.Series(trends.fitted_line(found, frame["bucket"])),
                ),
            )
        )
    return out


def _p(p_value: float) -> str:
    """p-values below what floats resolve read as a bound, never as 0."""
    return "p < 1e-6" if p_value < 1e-6 else f"p = {p_value:.2g}"


def _daily_label(metric: Metric) -> str:
    """Daily values of a volume are per day; say so."""
    return capitalized(f"{metric.label} per day" if metric.per_bucket else metric.label)


def _trend_recommendation(
    metric: Metric, found: trends.Trend, harmful: bool, label: str
) -> str | None:
    if not harmful:
        return None
    weeks = 4
    ahead = found.fitted_end + found.slope_per_week * weeks
    return (
        f"If the trend holds, {label.lower()} reaches about "
        f"{format_kpi(metric.kpi, max(ahead, 0.0))} in {weeks} weeks; it has been building "
        f"across the whole range, so look for a gradual cause (growth, data size, a slow leak) "
        "rather than one event."
    )
