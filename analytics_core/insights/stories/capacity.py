"""Capacity stories: daily request volume and GB processed forecast against their
configured limits, and the disk's used share (from Prometheus) against a full disk."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd

from analytics_core.config import Config
from analytics_core.context import QueryContext
from analytics_core.insights import forecast
from analytics_core.insights.model import Insight
from analytics_core.insights.stories.common import (
    capitalized,
    complete_buckets,
    days_from,
    since_first_activity,
)
from analytics_core.sources.areas import Sources

# The history, up to the range's end, the forecast is fitted on.
CAPACITY_HISTORY = timedelta(days=90)
CAPACITY_METRICS = {  # name: (series, column, label, kpi)
    "requests_per_day": ("business_trend", "api_calls", "daily request volume", "api_calls"),
    "gb_per_day": (
        "business_trend",
        "data_processed_gb",
        "daily GB processed",
        "data_processed_gb",
    ),
    "disk_used_ratio": ("resources_trend", "disk_used_ratio", "disk use", "disk_used_ratio"),
}
# Without a configured limit: a disk is full at 100%.
DEFAULT_LIMITS = {"disk_used_ratio": 1.0}


def capacity_insights(
    sources: Sources,
    config: Config,
    ctx: QueryContext,
    daily_history: dict[str, pd.DataFrame] | None = None,
) -> list[Insight]:
    """``daily_history``: daily trends over at least the last 90 days up to the range's
    end (the anomaly history), when the caller has them."""
    end = ctx.filters.observed_end(ctx.now)
    span = replace(ctx.filters, start=end - CAPACITY_HISTORY, end=end, granularity="day")
    if daily_history is not None:  # its days that begin in the span (see start_trend_tests)
        daily = {name: days_from(frame, span.start) for name, frame in daily_history.items()}
    else:
        daily = {"business_trend": sources.business.trend(ctx.with_filters(span), config.costs)}
        gauges = sources.resources if ctx.scope.unrestricted else None
        if gauges is not None:
            resources = gauges.over_time(ctx.with_filters(span)).get("resources_trend")
            if resources is not None:
                daily["resources_trend"] = resources
    frames = {
        name: since_first_activity(complete_buckets(frame), name) for name, frame in daily.items()
    }
    out = []
    for name, (series, column, label, kpi) in CAPACITY_METRICS.items():
        if series not in frames:  # the disk: only from Prometheus
            continue
        frame = frames[series]
        limit = config.insights.capacity.get(name, DEFAULT_LIMITS.get(name))
        result = forecast.forecast(
            frame["bucket"],
            frame[column].astype(float),
            horizon=config.insights.forecast_horizon_days,
            level=config.insights.forecast_level,
            limit=limit,
        )
        if result is None:
            continue
        fc = result.frame
        level = f"{result.level:.0%}"
        last = fc.iloc[-1]
        digits = 0 if column == "api_calls" else 2

        def fmt(v: float, digits: int = digits, share: bool = column == "disk_used_ratio") -> str:
            return f"{v:.1%}" if share else f"{v:,.{digits}f}"

        recent = frame.tail(7)
        seen = recent[column].dropna()  # a gauge can have gaps (an exporter that was down)
        peak_at = seen.idxmax() if len(seen) else None
        if limit is not None and peak_at is not None and recent[column].max() >= limit:
            message = (
                f"{capitalized(label)} already reached the limit of {fmt(limit)}: "
                f"{fmt(recent.loc[peak_at, column])} on {recent.loc[peak_at, 'bucket']:%Y-%m-%d}"
            )
            status, severity = "firing", "critical"
            recommendation = f"Raise the {label} limit or add capacity now."
        elif limit is not None and result.crossing is not None:
            days = (result.crossing - frame["bucket"].iloc[-1]).days
            earliest = result.crossing_upper or result.crossing
            message = (
                f"{capitalized(label)} is forecast to reach the limit of {fmt(limit)} around "
                f"{result.crossing:%Y-%m-%d} (in about {days} days; earliest plausible "
                f"{earliest:%Y-%m-%d} at the {level} upper bound)"
            )
            status, severity = "firing", ("critical" if days <= 7 else "warning")
            recommendation = f"Raise the {label} limit or add capacity before {earliest:%Y-%m-%d}."
        else:
            horizon = config.insights.forecast_horizon_days
            bound = (
                f"; the limit of {fmt(limit)} is not expected within {horizon} days"
                if limit is not None
                else ""
            )
            crossing_upper = result.crossing_upper
            if limit is not None and crossing_upper is not None:
                bound = (
                    f"; the limit of {fmt(limit)} is not expected within {horizon} days, "
                    f"though the {level} upper bound reaches it by {crossing_upper:%Y-%m-%d}"
                )
            message = (
                f"{capitalized(label)} forecast for {last['timestamp']:%Y-%m-%d}: "
                f"{fmt(last['forecast'])} ({level} interval {fmt(last['lower'])} to "
                f"{fmt(last['upper'])}){bound}"
            )
            status, severity, recommendation = "ok", "info", None
        history = pd.DataFrame({"bucket": frame["bucket"], "value": frame[column].astype(float)})
        future = pd.DataFrame(
            {
                "bucket": fc["timestamp"],
                "forecast": fc["forecast"],
                "lower": fc["lower"],
                "upper": fc["upper"],
            }
        )
        evidence = pd.concat([history, future], ignore_index=True)
        if limit is not None:
            evidence["threshold"] = limit
        out.append(
            Insight(
                kind="forecast",
                area="business" if column == "data_processed_gb" else "performance",
                kpi=kpi,
                status=status,  # type: ignore[arg-type]
                severity=severity,  # type: ignore[arg-type]
                score=0.9 if status == "firing" else 0.1,
                message=message,
                method=result.method,
                baseline=f"{result.history_points} complete days of history",
                recommendation=recommendation,
                details={
                    "limit": limit,
                    "crossing": None if result.crossing is None else result.crossing.isoformat(),
                    "crossing_upper": None
                    if result.crossing_upper is None
                    else result.crossing_upper.isoformat(),
                    "level": result.level,
                },
                evidence=evidence,
            )
        )
    return out
