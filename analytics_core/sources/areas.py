"""One source per area behind a small protocol: the pages and the insights feed ask a
source for figures under a :class:`~analytics_core.context.QueryContext` and never
which tables hold them. The raw-table sources here answer from the event tables;
rollup-backed and Prometheus sources implement the same protocols.

Every method returns exactly the frame or dict the raw query returns (same keys, same
columns, same dtypes), so a page cannot tell its sources apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, TypeVar

import pandas as pd
from sqlalchemy import Engine

from analytics_core import catalog
from analytics_core.config import Costs, DataSources
from analytics_core.context import QueryContext, Scope
from analytics_core.queries import bottlenecks, business, detection, performance

T = TypeVar("T")


# Statements of one page at once, each on its own pooled connection: a page being built
# holds at most this many connections. SQLAlchemy's default pool (5 + 10 overflow) serves
# three pages at a time; another page's queries wait for connections rather than fail.
QUERY_WORKERS = 4


Figures = dict[str, float | int | None]

AREAS = ("detection", "performance", "business")


class DetectionSource(Protocol):
    label: str  # where the figures come from, for captions (e.g. "raw tables")

    def first_event(self, scope: Scope) -> datetime | None:
        """When this area's stored history in ``scope`` begins (whatever the range and
        filters): another tenant's older history must not change the caller's figures."""
        ...

    def kpis(self, ctx: QueryContext) -> Figures: ...

    def trend(self, ctx: QueryContext) -> pd.DataFrame: ...

    def by_algorithm(self, ctx: QueryContext) -> pd.DataFrame: ...

    def by_detector(self, ctx: QueryContext) -> pd.DataFrame:
        """Per detector, the trend's figures but the p95 run time."""
        ...

    def algorithm_shares(self, ctx: QueryContext) -> pd.DataFrame:
        """Each algorithm's share of runs, failures and execution time."""
        ...


class PerformanceSource(Protocol):
    label: str

    def first_event(self, scope: Scope) -> datetime | None: ...

    def kpis(self, ctx: QueryContext) -> Figures: ...

    def trend(self, ctx: QueryContext) -> pd.DataFrame: ...

    def by_endpoint(self, ctx: QueryContext) -> pd.DataFrame: ...

    def endpoint_shares(self, ctx: QueryContext, p95_ms: float | None) -> pd.DataFrame:
        """Each endpoint's share of requests, of requests slower than ``p95_ms``, of
        server errors and of time."""
        ...


class BusinessSource(Protocol):
    """Costs are the config's unit prices: an argument, not part of the source, so the
    same source serves any price list."""

    label: str

    def first_event(self, scope: Scope) -> datetime | None: ...

    def kpis(self, ctx: QueryContext, costs: Costs) -> Figures: ...

    def trend(self, ctx: QueryContext, costs: Costs) -> pd.DataFrame: ...

    def by_tenant(self, ctx: QueryContext, costs: Costs) -> pd.DataFrame: ...


@dataclass(frozen=True)
class Sources:
    detection: DetectionSource
    performance: PerformanceSource
    business: BusinessSource
    # Where rolled-up data ends (None: no rollups read); part of every cache key, so a
    # new rollup run is a new version of the data.
    watermark: datetime | None = None
    # Said once on a page, e.g. that rollups are not built yet and figures come raw.
    note: str | None = None
    # CPU, memory and disk (only Prometheus has them): None without one that answers.
    resources: object | None = None
    # A source that should have answered did not (the others answer for it): pages built
    # from these sources say so and are not cached.
    degraded: bool = False
    # Whether the areas' queries may run at once, each on its own pooled connection
    # (PostgreSQL serves each in its own backend; DuckDB runs one statement on all cores).
    concurrent: bool = False

    def areas(self) -> tuple[DetectionSource, PerformanceSource, BusinessSource]:
        return (self.detection, self.performance, self.business)

    def first_event(self, scope: Scope, areas: Sequence[str] = AREAS) -> datetime | None:
        """When the history of the given areas in ``scope`` begins: the earliest of their
        first events."""
        firsts = [getattr(self, area).first_event(scope) for area in areas]
        known = [f for f in firsts if f is not None]
        return min(known) if known else None

    def kpis(self, ctx: QueryContext, costs: Costs, areas: Sequence[str] = AREAS) -> Figures:
        """The KPIs of the given areas, in area order; ``avg_response_ms`` (the Overview's
        name for the mean latency) with the performance ones."""
        return combined_kpis([call() for call in self.kpi_calls(ctx, costs, areas).values()])

    def kpi_calls(
        self, ctx: QueryContext, costs: Costs, areas: Sequence[str] = AREAS
    ) -> dict[str, Callable[[], Figures]]:
        """Each area's KPIs as a call of its own, by area, in area order, for a caller that
        runs them on its own pool; :func:`combined_kpis` joins what they return."""
        calls: dict[str, Callable[[], Figures]] = {}
        if "detection" in areas:
            calls["detection"] = lambda: self.detection.kpis(ctx)
        if "performance" in areas:
            calls["performance"] = lambda: self.performance.kpis(ctx)
        if "business" in areas:
            calls["business"] = lambda: self.business.kpis(ctx, costs)
        return calls

    def trends(
        self, ctx: QueryContext, costs: Costs, areas: Sequence[str] = AREAS
    ) -> dict[str, pd.DataFrame]:
        """The given areas' trends up to ``ctx.now``, with their ``partial`` flag."""
        calls = self.trend_calls(ctx, costs, areas)
        return dict(zip(calls, self.run_all(list(calls.values())), strict=True))

    def trend_calls(
        self, ctx: QueryContext, costs: Costs, areas: Sequence[str] = AREAS
    ) -> dict[str, Callable[[], pd.DataFrame]]:
        """Each area's trend as a call of its own, by series name, for a caller that runs
        them on its own pool (see :meth:`trends`)."""
        calls: dict[str, Callable[[], pd.DataFrame]] = {}
        if "detection" in areas:
            calls["detection_trend"] = lambda: self.detection.trend(ctx)
        if "performance" in areas:
            calls["performance_trend"] = lambda: self.performance.trend(ctx)
        if "business" in areas:
            calls["business_trend"] = lambda: self.business.trend(ctx, costs)
        return calls

    def run_all(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Each call's result, in order: on threads at once where the areas' queries may
        run concurrently, else one after another."""
        if not self.concurrent or len(calls) < 2:
            return [call() for call in calls]
        workers = min(len(calls), QUERY_WORKERS)
        with ThreadPoolExecutor(workers, thread_name_prefix="area-query") as pool:
            futures = [pool.submit(call) for call in calls]
            return [future.result() for future in futures]


def combined_kpis(parts: Sequence[Figures]) -> Figures:
    """Areas' KPIs (in area order) as one mapping, with ``avg_response_ms`` (the
    Overview's name for the mean latency) where the performance KPIs are among them."""
    values: Figures = {}
    for part in parts:
        values.update(part)
    if "avg_ms" in values:
        values["avg_response_ms"] = values["avg_ms"]
    return values


RAW_LABEL = "raw tables"


class RawDetection:
    """Detection figures from ``detection_results`` and ``detection_feedback``."""

    label = RAW_LABEL

    def __init__(self, engine: Engine):
        self.engine = engine

    def first_event(self, scope: Scope) -> datetime | None:
        return catalog.first_detection(self.engine, scope)

    def kpis(self, ctx: QueryContext) -> Figures:
        return detection.kpis(self.engine, ctx)

    def trend(self, ctx: QueryContext) -> pd.DataFrame:
        return detection.trend(self.engine, ctx)

    def by_algorithm(self, ctx: QueryContext) -> pd.DataFrame:
        return detection.by_algorithm(self.engine, ctx)

    def by_detector(self, ctx: QueryContext) -> pd.DataFrame:
        return detection.by_detector(self.engine, ctx)

    def algorithm_shares(self, ctx: QueryContext) -> pd.DataFrame:
        return bottlenecks.algorithms(self.engine, ctx)


class RawPerformance:
    """Performance figures from the request log (``api_requests``)."""

    label = RAW_LABEL

    def __init__(self, engine: Engine):
        self.engine = engine

    def first_event(self, scope: Scope) -> datetime | None:
        return catalog.first_request(self.engine, scope)

    def kpis(self, ctx: QueryContext) -> Figures:
        return performance.kpis(self.engine, ctx)

    def trend(self, ctx: QueryContext) -> pd.DataFrame:
        return performance.trend(self.engine, ctx)

    def by_endpoint(self, ctx: QueryContext) -> pd.DataFrame:
        return performance.by_endpoint(self.engine, ctx)

    def endpoint_shares(self, ctx: QueryContext, p95_ms: float | None) -> pd.DataFrame:
        return bottlenecks.endpoints(self.engine, ctx, p95_ms)


class RawBusiness:
    """Users, sessions, usage and cost from the request log, sessions, users and runs."""

    label = RAW_LABEL

    def __init__(self, engine: Engine):
        self.engine = engine

    def first_event(self, scope: Scope) -> datetime | None:
        # Cost is priced on requests and detection runs alike.
        return catalog.first_event(self.engine, scope)

    def kpis(self, ctx: QueryContext, costs: Costs) -> Figures:
        return business.kpis(self.engine, ctx, costs)

    def trend(self, ctx: QueryContext, costs: Costs) -> pd.DataFrame:
        return business.trend(self.engine, ctx, costs)

    def by_tenant(self, ctx: QueryContext, costs: Costs) -> pd.DataFrame:
        return business.by_tenant(self.engine, ctx, costs)


def raw_sources(engine: Engine) -> Sources:
    """Every area answered from the raw event tables of ``engine``."""
    return Sources(RawDetection(engine), RawPerformance(engine), RawBusiness(engine))


NO_ROLLUP_NOTE = (
    "Rollups are not built yet, so figures are computed from the raw tables (slower on "
    "large databases); run `analytics rollup` to build them."
)


def sources_for(engine: Engine, settings: DataSources | None = None) -> Sources:
    """Rollup-backed sources where a rollup has run on ``engine``, else the raw tables
    with a note saying so; the Performance area from Prometheus where ``settings`` say
    so and it answers (:func:`analytics_core.prometheus.source.choose_performance`). Read
    per page build: the watermark moves with each run, Prometheus comes and goes."""
    database = _database_sources(engine)
    if settings is None:
        return database
    from analytics_core.prometheus.source import choose

    chosen = choose(settings, database.performance)
    notes = " ".join(n for n in (database.note, chosen.note) if n) or None
    return replace(
        database,
        performance=chosen.performance,
        resources=chosen.resources,
        note=notes,
        degraded=chosen.failed,
    )


def _database_sources(engine: Engine) -> Sources:
    from analytics_core.rollup.schema import watermark
    from analytics_core.sources.database import database_errors
    from analytics_core.sources.rollups import RollupBusiness, RollupDetection, RollupPerformance

    with database_errors(engine):
        mark = watermark(engine)
    concurrent = engine.dialect.name == "postgresql"
    if mark is None:
        return Sources(*raw_sources(engine).areas(), note=NO_ROLLUP_NOTE, concurrent=concurrent)
    return Sources(
        RollupDetection(engine, mark),
        RollupPerformance(engine, mark),
        RollupBusiness(engine, mark),
        watermark=mark,
        concurrent=concurrent,
    )
