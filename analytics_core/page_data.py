"""The data behind each page, built in one call: what the UI shows and what
exports write are the same object, so a download is exactly what is on screen."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine

from analytics_core.config import Config
from analytics_core.context import QueryContext, Scope
from analytics_core.filters import Filters
from analytics_core.insights import Insight
from analytics_core.insights.compare import Change
from analytics_core.insights.feed import (
    bottleneck_tables,
    build_insights,
    kpi_changes,
    not_comparable,
)
from analytics_core.kpis import BUSINESS_KPIS, DETECTION_KPIS, OVERVIEW_KPIS, PERFORMANCE_KPIS
from analytics_core.pages import PAGES
from analytics_core.sources.areas import AREAS, Sources, raw_sources

PAGE_KPIS: dict[str, tuple[str, ...]] = {
    "overview": OVERVIEW_KPIS,
    "detection": DETECTION_KPIS,
    "performance": PERFORMANCE_KPIS,
    "business": BUSINESS_KPIS,
    "insights": DETECTION_KPIS + PERFORMANCE_KPIS + BUSINESS_KPIS,
}
# The areas whose figures a page shows. The Overview's cards span all three, and its
# insight feed (like the Insights page's) reads every area.
PAGE_AREAS: dict[str, tuple[str, ...]] = {
    "overview": AREAS,
    "detection": ("detection",),
    "performance": ("performance",),
    "business": ("business",),
    "insights": AREAS,
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


def build_page(
    engine: Engine,
    config: Config,
    page: str,
    filters: Filters,
    now: datetime | None = None,
    *,
    sources: Sources | None = None,
    scope: Scope | None = None,
) -> PageData:
    """KPIs (current and previous period), series and insights for one page, asking each
    source only for the areas the page shows. ``sources`` default to the raw tables of
    ``engine``; ``scope`` (default: every tenant) limits what any figure may include."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}; one of {', '.join(PAGES)}")
    now = now or datetime.now(UTC)
    sources = sources or raw_sources(engine)
    ctx = QueryContext(filters, now, scope or Scope())
    areas = PAGE_AREAS[page]
    costs = config.costs
    current = sources.kpis(ctx, costs, areas)
    # A previous period reaching back before the data began would compare with
    # zeros that only mean "not recorded yet": then there is no previous value.
    began = sources.first_event(areas)
    observed = filters.observed_end(ctx.now) - filters.start
    covered = began is not None and began <= filters.previous().start and observed > timedelta(0)
    # A range reaching past now is compared with as much of the previous period as has
    # happened of this one: its hours still to come are not a drop.
    before = ctx.with_filters(replace(filters.previous(), end=filters.previous().start + observed))
    previous = sources.kpis(before, costs, areas) if covered else dict.fromkeys(current)
    keys = PAGE_KPIS[page]
    trends = sources.trends(ctx, costs, areas)
    if covered:
        previous_trends = sources.trends(before, costs, areas)
        alpha = config.insights.change_alpha
        changes = kpi_changes(current, previous, trends, previous_trends, alpha)
    else:
        changes = {k: not_comparable(v) for k, v in current.items()}

    series: dict[str, pd.DataFrame] = dict(trends)
    if page == "detection":
        series["by_algorithm"] = sources.detection.by_algorithm(ctx)
    if page == "performance":
        series["by_endpoint"] = sources.performance.by_endpoint(ctx)
    if page == "business":
        series["by_tenant"] = sources.business.by_tenant(ctx, costs)
    if page == "insights":
        series.update(bottleneck_tables(sources, ctx, current, previous))

    insights: list[Insight] = []
    if page in ("overview", "insights") and config.features.insights:
        tables = {k: v for k, v in series.items() if k.startswith("bottleneck_")} or None
        insights = build_insights(sources, config, ctx, current, previous, trends, changes, tables)
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
