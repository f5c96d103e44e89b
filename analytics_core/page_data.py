"""The data behind each page, built in one call: what the UI shows and what
exports write are the same object, so a download is exactly what is on screen."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
from sqlalchemy import Engine

from analytics_core.catalog import newest_row
from analytics_core.config import Config
from analytics_core.context import QueryContext, Scope
from analytics_core.filters import Filters
from analytics_core.insights import Insight
from analytics_core.insights.compare import Change
from analytics_core.insights.feed import build_insights
from analytics_core.insights.stories.anomaly import history_filters, start_scoring
from analytics_core.insights.stories.bottleneck import combine_shares, share_queries
from analytics_core.insights.stories.change import kpi_changes, not_comparable
from analytics_core.kpis import BUSINESS_KPIS, DETECTION_KPIS, OVERVIEW_KPIS, PERFORMANCE_KPIS
from analytics_core.pages import PAGES
from analytics_core.prometheus.resources import figures as resource_figures
from analytics_core.prometheus.resources import gauges as resource_gauges
from analytics_core.runtime import run_now
from analytics_core.sources.areas import (
    AREAS,
    QUERY_WORKERS,
    Sources,
    combined_kpis,
    sources_for,
)

if TYPE_CHECKING:  # redis is imported only where a cache is made
    from analytics_core.cache import PageCache

T = TypeVar("T")

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
    # Where the figures came from when the page should say so (e.g. no rollups yet).
    source_note: str | None = None
    # A source failed while the page was built (Prometheus went away): the page says so
    # and no cache keeps it, so the next view asks again.
    degraded: bool = False
    # The newest row the figures use (in range, scope and filters): "data as of".
    data_as_of: datetime | None = None

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
    source only for the areas the page shows. ``sources`` default to the rollups of
    ``engine`` where they are built, else its raw tables (:func:`sources_for`); ``scope``
    (default: every tenant) limits what any figure may include."""
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r}; one of {', '.join(PAGES)}")
    now = now or datetime.now(UTC)
    sources = sources or sources_for(engine, config.data_sources)
    ctx = QueryContext(filters, now, scope or Scope())
    areas = PAGE_AREAS[page]
    costs = config.costs
    # A previous period reaching back before the data began would compare with
    # zeros that only mean "not recorded yet": then there is no previous value.
    began = sources.first_event(ctx.scope, areas)
    observed = filters.observed_end(ctx.now) - filters.start
    covered = began is not None and began <= filters.previous().start and observed > timedelta(0)
    # A range reaching past now is compared with as much of the previous period as has
    # happened of this one: its hours still to come are not a drop.
    before = ctx.with_filters(replace(filters.previous(), end=filters.previous().start + observed))
    breakdown = {
        "detection": ("by_algorithm", lambda: sources.detection.by_algorithm(ctx)),
        "performance": ("by_endpoint", lambda: sources.performance.by_endpoint(ctx)),
        "business": ("by_tenant", lambda: sources.business.by_tenant(ctx, costs)),
    }.get(page)
    feed = page in ("overview", "insights") and config.features.insights
    shares = page == "insights" or feed
    # The page's queries at once, on the engine's pool where it has one: the insight
    # feed's too (its anomaly history and contribution shares), so that its detectors
    # start with everything at hand rather than waiting on one query after another.
    with _runner(engine) as run:

        def each(calls: dict[str, Callable[[], T]]) -> dict[str, Future[T]]:
            return {name: run(call) for name, call in calls.items()}

        # Every task one statement on one connection, so a page holds at most
        # QUERY_WORKERS connections. The feed's anomaly history first: its detectors
        # wait for it, and nothing waits for them.
        history = ctx.with_filters(history_filters(filters))
        past_fs = each(sources.trend_calls(history, costs) if feed else {})
        if feed and sources.resources is not None and ctx.scope.unrestricted:
            # CPU, memory and disk from Prometheus: watched by the anomaly detector too.
            gauges = sources.resources
            past_fs["resources_trend"] = run(
                lambda: gauges.over_time(history).get("resources_trend")
            )
        current_fs = each(sources.kpi_calls(ctx, costs, areas))
        previous_fs = each(sources.kpi_calls(before, costs, areas) if covered else {})
        trends_fs = each(sources.trend_calls(ctx, costs, areas))
        previous_trends_fs = each(sources.trend_calls(before, costs, areas) if covered else {})
        breakdown_f = run(breakdown[1]) if breakdown else None
        newest_f = run(lambda: newest_row(engine, ctx, areas))
        # CPU, memory and disk are the platform's, not a tenant's: not under a scope. The
        # Performance page shows them; the feed checks their alert rules.
        machines = sources.resources if ctx.scope.unrestricted else None
        over_time_f = (
            run(lambda: machines.over_time(ctx))
            if machines is not None and (page == "performance" or feed)
            else None
        )
        latest_f = (
            run(lambda: machines.latest(ctx))
            if machines is not None and page == "performance"
            else None
        )
        # The endpoint shares wait for their period's p95, from the performance KPIs
        # (queued before them: a FIFO pool cannot deadlock).
        share_fs = (
            share_queries(
                run, sources, ctx, current_fs["performance"], previous_fs.get("performance")
            )
            if shares
            else None
        )
        past = {name: future.result() for name, future in past_fs.items()}
        past = {name: frame for name, frame in past.items() if frame is not None}
        # Scored on the worker process, where one runs, while the other queries finish.
        scorings = start_scoring(config, ctx, past) if feed else None
        current = combined_kpis([f.result() for f in current_fs.values()])
        trends = {name: future.result() for name, future in trends_fs.items()}
        previous = (
            combined_kpis([f.result() for f in previous_fs.values()])
            if previous_fs
            else dict.fromkeys(current)
        )
    keys = PAGE_KPIS[page]
    if previous_trends_fs:
        alpha = config.insights.change_alpha
        previous_trends = {name: future.result() for name, future in previous_trends_fs.items()}
        changes = kpi_changes(current, previous, trends, previous_trends, alpha)
    else:
        changes = {k: not_comparable(v) for k, v in current.items()}

    series: dict[str, pd.DataFrame] = dict(trends)
    if breakdown and breakdown_f is not None:
        series[breakdown[0]] = breakdown_f.result()
    over_time = over_time_f.result() if over_time_f is not None else {}
    latest = latest_f.result() if latest_f is not None else None
    if over_time and latest is not None:  # cpu_usage, memory_bytes, disk_used_ratio, uptime
        series.update(over_time)
        series["resources_now"] = latest
        series["resources_gauges"] = resource_gauges(latest)
    tables = combine_shares(*(f.result() for f in share_fs)) if share_fs else None
    if page == "insights" and tables is not None:
        series.update(tables)

    insights: list[Insight] = []
    if feed:
        resource_trend = over_time.get("resources_trend")
        if resource_trend is not None:  # their alert rules are checked with the others'
            watched_now = {**current, **resource_figures(resource_trend)}
            watched_trends = {**trends, "resources_trend": resource_trend}
        else:
            watched_now, watched_trends = current, trends
        insights = build_insights(
            sources, config, ctx, watched_now, previous, watched_trends, changes, tables, past,
            scorings,
        )  # fmt: skip
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
        source_note=_note(sources),
        degraded=sources.degraded or bool(_failures(sources)),
        data_as_of=newest_f.result(),
    )


def _failures(sources: Sources) -> list[str]:
    return [f for source in (sources.performance, sources.resources)
            for f in getattr(source, "failures", ())]  # fmt: skip


def _note(sources: Sources) -> str | None:
    """The sources' note, and what failed while the page was built."""
    failed = _failures(sources)
    if not failed:
        return sources.note
    return (
        f"Prometheus stopped answering while this page was built ({failed[0]}): figures "
        "from then on come from the request log, and CPU, memory and disk are not shown."
    )


def load_page(
    engine: Engine,
    config: Config,
    page: str,
    filters: Filters,
    cache: PageCache | None = None,
    *,
    scope: Scope | None = None,
    now: datetime | None = None,
) -> PageData:
    """:func:`build_page` behind the shared cache: what the app and ``analytics export``
    call. The clock is the current minute, so every view opened in the same minute shares
    one entry; the key holds the page, filters, scope, minute, the rollup watermark (a new
    rollup run is new data), the Performance source, the config (prices and thresholds
    shape the page) and the database."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    sources = sources_for(engine, config.data_sources)
    ctx = QueryContext(filters, now, scope or Scope())
    if cache is None:
        return build_page(engine, config, page, filters, now, sources=sources, scope=ctx.scope)
    watermark = sources.watermark.isoformat() if sources.watermark else "raw"
    # Where the Performance figures came from (Prometheus, or the log when it is down).
    version = f"{watermark}|{sources.performance.label}"
    # The database too: two deployments (or `export --db`) may share one Redis.
    database = engine.url.render_as_string(hide_password=True)
    key = ctx.cache_key(page, version, config_digest(config), database)
    return cache.get_or_build(
        key,
        lambda: build_page(engine, config, page, filters, now, sources=sources, scope=ctx.scope),
    )


def config_digest(config: Config) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


class _Inline:
    """Runs each call at once: for backends whose connections do not share well
    across threads (DuckDB files), and for tests."""

    def __enter__(self):
        return self._run

    def __exit__(self, *exc) -> None:
        return None

    _run = staticmethod(run_now)


class _Pooled:
    """Runs calls on threads, each on its own pooled connection; waits for all on exit."""

    def __init__(self, workers: int):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="page-query")

    def __enter__(self):
        return self._pool.submit

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)


def _runner(engine: Engine) -> _Inline | _Pooled:
    # PostgreSQL serves each pooled connection in its own backend process, so the
    # page's statements overlap; DuckDB runs one statement on all cores already.
    if engine.dialect.name == "postgresql":
        return _Pooled(workers=QUERY_WORKERS)
    return _Inline()
