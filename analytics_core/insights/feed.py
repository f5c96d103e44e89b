"""The insights feed: every detector run over one range, ranked.

Threshold alerts, anomalies on metric series, significant trends, significant
changes against the previous period, bottlenecks and capacity forecasts each
become :class:`Insight` records with their evidence. Nothing is appended when
nothing happened: an empty feed is an honest answer.
"""

from __future__ import annotations

from concurrent.futures import Future

import pandas as pd

from analytics_core.config import Config
from analytics_core.context import QueryContext
from analytics_core.insights import compare
from analytics_core.insights.model import Insight, rank
from analytics_core.insights.stories.anomaly import (
    Scoring,
    history_filters,
    metric_anomalies,
    start_scoring,
)
from analytics_core.insights.stories.bottleneck import bottleneck_insights, bottleneck_tables
from analytics_core.insights.stories.capacity import capacity_insights
from analytics_core.insights.stories.change import significant_changes
from analytics_core.insights.stories.common import BUCKET_WIDTH
from analytics_core.insights.stories.incidents import drop_restated_changes, merge_incidents
from analytics_core.insights.stories.trend import start_trend_tests, trend_stories
from analytics_core.insights.thresholds import check_thresholds
from analytics_core.sources.areas import Sources


def build_insights(
    sources: Sources,
    config: Config,
    ctx: QueryContext,
    current: dict[str, float | int | None],
    previous: dict[str, float | int | None],
    series: dict[str, pd.DataFrame],
    changes: dict[str, compare.Change],
    tables: dict[str, pd.DataFrame] | None = None,
    past: dict[str, pd.DataFrame] | None = None,
    scorings: list[Future[Scoring]] | None = None,
) -> list[Insight]:
    """``series`` are the range's trends at its granularity, up to ``ctx.now``; ``tables``
    the bottleneck tables and ``past`` the trends over :func:`history_filters` when the
    caller already has them (fetched alongside its other queries), and ``scorings`` their
    anomaly scores when the caller started them (:func:`start_scoring`). Every detector
    sees the range only up to ``min(end, now)`` and skips partial buckets. Any further
    figures (anomaly history, daily trends, episodes, capacity) come from ``sources``
    under ``ctx``."""
    currency = config.costs.currency
    filters = ctx.filters
    if tables is None:
        tables = bottleneck_tables(sources, ctx, current, previous)
    found: list[Insight] = []
    observed_days = (filters.observed_end(ctx.now) - filters.start).total_seconds() / 86400
    found += check_thresholds(
        config.alerts,
        current,
        series,
        currency,
        BUCKET_WIDTH[filters.granularity],
        observed_days=observed_days,
    )
    history = history_filters(filters)
    if past is None:
        past = sources.trends(ctx.with_filters(history), config.costs)
    # Daily history up to the range's end: the trend and capacity stories take their days
    # from it rather than fetching them again.
    daily = past if history.granularity == "day" and history.end == filters.end else None
    # The trend tests first: on the worker process, where one runs (queued behind the
    # anomaly scores), while this thread writes the anomaly stories.
    trend_tests = start_trend_tests(sources, config, ctx, series, daily)
    if scorings is None:
        scorings = start_scoring(config, ctx, past)
    found += metric_anomalies(sources, ctx, current, tables["bottleneck_endpoints"], scorings)
    found += trend_stories(trend_tests)
    found += significant_changes(current, previous, changes, currency)
    found += bottleneck_insights(tables)
    found += capacity_insights(sources, config, ctx, daily)
    return rank(drop_restated_changes(merge_incidents(found)))
