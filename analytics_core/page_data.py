"""The data behind each page, built in one call: what the UI shows and what
exports write are the same object, so a download is exactly what is on screen."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine

from analytics_core.catalog import first_event
from analytics_core.config import Config
from analytics_core.filters import Filters
from analytics_core.insights import Insight
from analytics_core.insights.compare import Change
from analytics_core.insights.feed import (
    bottleneck_tables,
    build_insights,
    kpi_changes,
    not_comparable,
    trend_series,
)
from analytics_core.kpis import BUSINESS_KPIS, DETECTION_KPIS, OVERVIEW_KPIS, PERFORMANCE_KPIS
from analytics_core.pages import PAGES
from analytics_core.queries import business, detection, performance

PAGE_KPIS: dict[str, tuple[str, ...]] = {
    "overview": OVERVIEW_KPIS,
    "detection": DETECTION_KPIS,
    "performance": PERFORMANCE_KPIS,
    "business": BUSINESS_KPIS,
    "insights": DETECTION_KPIS + PERFORMANCE_KPIS + BUSINESS_KPIS,
}


@dataclass(frozen=True)
class PageData:
    page: str
    filters: Filters
    generated_at: datetime
    kpis: dict[str, float | int | None]
    previous: dict[str, float | int | None]
    series: dict[str, pd.DataFrame] = field(default_factory=dict)
    insights: list[Insight] = field(default_factory=list)
    currency: str = "USD"
    # Each KPI against the previous period, with a significance test fitting its kind.
    changes: dict[str, Change] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when the range holds no events at all for these filters."""
        volume = [self.kpis.get(k) for k in ("total_detections", "requests", "api_calls")]
        activity = [self.kpis.get(k) for k in ("active_users", "sessions", "new_users")]
        return not any(v for v in volume + activity if v)


def _all_kpis(
    engine: Engine, config: Config, filters: Filters, now: datetime
) -> dict[str, float | int | None]:
    values: dict[str, float | int | None] = {}
    values.update(detection.kpis(engine, filters))
    values.update(performance.kpis(engine, filters, now))
    values.update(business.kpis(engine, filters, config.costs))
    values["avg_response_ms"] = values["avg_ms"]
    return values


def build_page(
    engine: Engine, config: Config, page: str, filters: Filters, now: datetime | None = None
) -> PageData:
    """KPIs (current and previous period), series and insights for one page."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}; one of {', '.join(PAGES)}")
    now = now or datetime.now(UTC)
    current = _all_kpis(engine, config, filters, now)
    # A previous period reaching back before the data began would compare with
    # zeros that only mean "not recorded yet": then there is no previous value.
    began = first_event(engine)
    observed = filters.observed_end(now) - filters.start
    covered = began is not None and began <= filters.previous().start and observed > timedelta(0)
    # A range reaching past now is compared with as much of the previous period as has
    # happened of this one: its hours still to come are not a drop.
    before = replace(filters.previous(), end=filters.previous().start + observed)
    previous = _all_kpis(engine, config, before, now) if covered else dict.fromkeys(current)
    keys = PAGE_KPIS[page]
    trends = trend_series(engine, config, filters, now)
    if covered:
        previous_trends = trend_series(engine, config, before, now)
        alpha = config.insights.change_alpha
        changes = kpi_changes(current, previous, trends, previous_trends, alpha)
    else:
        changes = {k: not_comparable(v) for k, v in current.items()}

    series: dict[str, pd.DataFrame] = {}
    if page in ("overview", "detection", "insights"):
        series["detection_trend"] = trends["detection_trend"]
    if page == "detection":
        series["by_algorithm"] = detection.by_algorithm(engine, filters)
    if page in ("overview", "performance", "insights"):
        series["performance_trend"] = trends["performance_trend"]
    if page == "performance":
        series["by_endpoint"] = performance.by_endpoint(engine, filters)
    if page in ("overview", "business", "insights"):
        series["business_trend"] = trends["business_trend"]
    if page == "business":
        series["by_tenant"] = business.by_tenant(engine, filters, config.costs)
    if page == "insights":
        series.update(bottleneck_tables(engine, filters, current, previous))

    insights: list[Insight] = []
    if page in ("overview", "insights") and config.features.insights:
        tables = {k: v for k, v in series.items() if k.startswith("bottleneck_")} or None
        insights = build_insights(
            engine, config, filters, current, previous, trends, changes, now, tables
        )
        if page == "overview":
            insights = [i for i in insights if i.status in ("firing", "resolved")][:3]

    return PageData(
        page=page,
        filters=filters,
        generated_at=now,
        kpis={k: current[k] for k in keys},
        previous={k: previous[k] for k in keys},
        series=series,
        insights=insights,
        currency=config.costs.currency,
        changes={k: changes[k] for k in keys},
    )
