"""Area sources answering from the rollup tables plus the raw tail after the watermark
(see ``analytics_core/rollup``): the same protocols and frames as the raw sources, at a
cost that grows with the buckets shown rather than the events stored."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from analytics_core import catalog
from analytics_core.config import Costs
from analytics_core.context import QueryContext, Scope
from analytics_core.rollup import business, detection, performance
from analytics_core.sources.areas import Figures

ROLLUP_LABEL = "rollups + raw tail"


class _Rollup:
    label = ROLLUP_LABEL

    def __init__(self, engine: Engine, watermark: datetime):
        self.engine = engine
        self.watermark = watermark


class RollupDetection(_Rollup):
    def first_event(self, scope: Scope) -> datetime | None:
        return catalog.first_detection(self.engine, scope)  # an index lookup, exact

    def kpis(self, ctx: QueryContext) -> Figures:
        return detection.kpis(self.engine, ctx, self.watermark)

    def trend(self, ctx: QueryContext) -> pd.DataFrame:
        return detection.trend(self.engine, ctx, self.watermark)

    def by_algorithm(self, ctx: QueryContext) -> pd.DataFrame:
        return detection.by_algorithm(self.engine, ctx, self.watermark)

    def by_detector(self, ctx: QueryContext) -> pd.DataFrame:
        return detection.by_detector(self.engine, ctx, self.watermark)

    def algorithm_shares(self, ctx: QueryContext) -> pd.DataFrame:
        return detection.algorithm_shares(self.engine, ctx, self.watermark)


class RollupPerformance(_Rollup):
    def first_event(self, scope: Scope) -> datetime | None:
        return catalog.first_request(self.engine, scope)

    def kpis(self, ctx: QueryContext) -> Figures:
        return performance.kpis(self.engine, ctx, self.watermark)

    def trend(self, ctx: QueryContext) -> pd.DataFrame:
        return performance.trend(self.engine, ctx, self.watermark)

    def by_endpoint(self, ctx: QueryContext) -> pd.DataFrame:
        return performance.by_endpoint(self.engine, ctx, self.watermark)

    def endpoint_shares(self, ctx: QueryContext, p95_ms: float | None) -> pd.DataFrame:
        return performance.endpoint_shares(self.engine, ctx, self.watermark, p95_ms)


class RollupBusiness(_Rollup):
    def first_event(self, scope: Scope) -> datetime | None:
        return catalog.first_event(self.engine, scope)

    def kpis(self, ctx: QueryContext, costs: Costs) -> Figures:
        return business.kpis(self.engine, ctx, self.watermark, costs)

    def trend(self, ctx: QueryContext, costs: Costs) -> pd.DataFrame:
        return business.trend(self.engine, ctx, self.watermark, costs)

    def by_tenant(self, ctx: QueryContext, costs: Costs) -> pd.DataFrame:
        return business.by_tenant(self.engine, ctx, self.watermark, costs)
