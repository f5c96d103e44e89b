"""The query context: one ``where`` applying range, scope and filters on the real
databases, the cache key, and pages asking only the sources of the areas they show."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import event, func, select

from analytics_core.config import Costs, load_config
from analytics_core.context import QueryContext, Scope
from analytics_core.filters import make_filters
from analytics_core.page_data import PAGE_KPIS, build_page
from analytics_core.schema import api_requests as ar
from analytics_core.schema import detection_results as dr
from analytics_core.sources.areas import raw_sources
from analytics_core.sources.database import make_engine, read_row
from tests.analytics_core import expected
from tests.fixtures import DAYS, T0

COSTS = Costs(compute_hour=0.5, gb_processed=0.09, per_1000_api_calls=0.4)
START, END = T0.to_pydatetime(), (T0 + timedelta(days=DAYS)).to_pydatetime()
LATER = END + timedelta(days=30)  # the whole fixture range is in the past


@pytest.fixture
def pg_engine(postgresql_url):
    engine = make_engine(postgresql_url)
    yield engine
    engine.dispose()


def _requests(engine, ctx: QueryContext) -> dict[str, object]:
    stmt = select(func.count().label("n"), func.sum(ar.c.duration_ms).label("ms")).where(
        ctx.where(ar.c.ts, tenant=ar.c.tenant_id, endpoint=ar.c.endpoint)
    )
    return read_row(engine, stmt)


def test_scope_narrows_the_tenants_the_filters_ask_for(pg_engine, dataset):
    filters = make_filters(START, END, tenants=("t_a", "t_b"))
    ctx = QueryContext(filters, LATER, Scope(("t_a",)))
    r = dataset.api_requests
    only_a = r[(r.tenant_id == "t_a") & (r.ts >= T0) & (r.ts < pd.Timestamp(END))]
    assert 0 < len(only_a) < len(r[r.tenant_id.isin(["t_a", "t_b"])])
    row = _requests(pg_engine, ctx)
    assert row["n"] == len(only_a)
    assert row["ms"] == pytest.approx(only_a.duration_ms.sum(), rel=1e-9)
    # Every area's figures see tenant A only, as if A alone had been filtered.
    sources = raw_sources(pg_engine)
    rng = (START, END)
    expected.assert_kpis_equal(
        sources.performance.kpis(ctx), expected.performance(dataset, *rng, tenants=("t_a",))
    )
    expected.assert_kpis_equal(
        sources.business.kpis(ctx, COSTS), expected.business(dataset, *rng, COSTS, ("t_a",))
    )
    assert sources.business.by_tenant(ctx, COSTS)["tenant_id"].tolist() == ["t_a"]


def test_scope_and_the_other_filters_all_apply(pg_engine, dataset):
    filters = make_filters(START, END, tenants=("t_a", "t_c"), algorithms=("lof",))
    ctx = QueryContext(filters, LATER, Scope(("t_a", "t_b")))
    want = expected.detection(dataset, START, END, tenants=("t_a",), algorithms=("lof",))
    unscoped = expected.detection(dataset, START, END, tenants=("t_a", "t_c"), algorithms=("lof",))
    assert 0 < want["total_detections"] < unscoped["total_detections"]
    expected.assert_kpis_equal(raw_sources(pg_engine).detection.kpis(ctx), want)


def test_an_empty_scope_sees_nothing(pg_engine, dataset):
    ctx = QueryContext(make_filters(START, END), LATER, Scope(()))
    assert _requests(pg_engine, ctx)["n"] == 0
    sources = raw_sources(pg_engine)
    assert sources.detection.kpis(ctx)["total_detections"] == 0
    business = sources.business.kpis(ctx, COSTS)
    assert business["active_users"] == business["api_calls"] == business["sessions"] == 0
    assert sources.business.by_tenant(ctx, COSTS).empty
    assert sources.performance.trend(ctx)["requests"].sum() == 0
    # Unscoped, the same range holds rows: the empty scope, not the range, hid them.
    assert _requests(pg_engine, QueryContext(make_filters(START, END), LATER))["n"] == len(
        dataset.api_requests
    )


def test_a_restricted_scope_needs_the_tenant_column():
    ctx = QueryContext(make_filters(START, END), LATER, Scope(("t_a",)))
    with pytest.raises(ValueError, match="tenant column"):
        ctx.where(dr.c.created_at, algorithm=dr.c.algorithm)


def test_a_scoped_page_equals_the_pandas_figures_of_its_tenant(engine, dataset):
    filters = make_filters(START, END)
    for page, figures in (("detection", expected.detection), ("performance", None)):
        data = build_page(engine, load_config(), page, filters, LATER, scope=Scope(("t_c",)))
        if figures is None:
            want = expected.performance(dataset, START, END, tenants=("t_c",))
        else:
            want = figures(dataset, START, END, tenants=("t_c",))
        expected.assert_kpis_equal(data.kpis, want)


# --- the cache key -----------------------------------------------------------------------

NOW = datetime(2026, 4, 2, 12, 30, 5, tzinfo=UTC)


def _key(page="detection", filters=None, scope=None, now=NOW, extra=()):
    filters = filters or make_filters(START, END)
    return QueryContext(filters, now, scope or Scope()).cache_key(page, *extra)


def test_cache_key_is_stable_and_names_everything_that_decides_the_data():
    key = _key()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert _key() == key
    assert _key(now=NOW.replace(second=59, microsecond=999)) == key  # the same minute
    assert _key(now=NOW.replace(second=0)) == key
    # The same instant in another zone is the same clock.
    assert _key(now=NOW.astimezone(ZoneInfo("Asia/Tokyo"))) == key
    different = {
        "page": _key(page="performance"),
        "filters": _key(filters=make_filters(START, END, tenants=("t_a",))),
        "granularity": _key(filters=make_filters(START, END, granularity="hour")),
        "scope": _key(scope=Scope(("t_a",))),
        "empty scope": _key(scope=Scope(())),
        "next minute": _key(now=NOW + timedelta(minutes=1)),
        "extra": _key(extra=("watermark-1",)),
    }
    for name, other in different.items():
        assert other != key, name
    assert len(set(different.values())) == len(different)
    assert _key(scope=Scope(("t_b", "t_a"))) == _key(scope=Scope(("t_a", "t_b")))
    assert _key(extra=(1,)) != _key(extra=(2,))
    assert _key(extra=(1,)) == _key(extra=(1,))


# --- each page asks only its own areas ------------------------------------------------

# The tables each area page must not read (statements naming them, as a word).
FOREIGN_TABLES = {
    "detection": ("api_requests", "user_sessions", "users"),
    "performance": ("detection_results", "detection_feedback", "user_sessions", "users"),
}


@pytest.mark.parametrize("page", FOREIGN_TABLES)
def test_an_area_page_reads_only_its_own_tables(engine, page):
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        # A range whose previous period is recorded: previous-period figures are fetched too.
        filters = make_filters(START + timedelta(days=8), END)
        data = build_page(engine, load_config(), page, filters, LATER)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert data.previous[PAGE_KPIS[page][0]] is not None
    assert statements
    for statement in statements:
        for table in FOREIGN_TABLES[page]:
            assert not re.search(rf"\b{table}\b", statement), (table, statement)


@pytest.mark.parametrize("page", ["detection", "performance", "business"])
def test_an_area_page_equals_the_same_figures_on_the_page_that_reads_every_area(engine, page):
    filters = make_filters(START + timedelta(days=8), END)  # previous period recorded
    config = load_config()
    area = build_page(engine, config, page, filters, LATER)
    every = build_page(engine, config, "insights", filters, LATER)
    for key in PAGE_KPIS[page]:
        assert area.kpis[key] == every.kpis[key], key
        assert area.previous[key] == every.previous[key], key
        assert repr(area.changes[key]) == repr(every.changes[key]), key
    trend = f"{page}_trend"
    pd.testing.assert_frame_equal(area.series[trend], every.series[trend])


@pytest.mark.parametrize("page", ["detection", "performance", "business", "overview"])
def test_data_as_of_is_the_newest_row_the_page_uses(engine, dataset, page):
    """The newest row in range, scope and filters of the page's own tables."""
    start, end = START + timedelta(days=2), START + timedelta(days=5, hours=7)
    filters = make_filters(start, end, "UTC", "day", endpoints=["/api/v1/detect"])
    data = build_page(engine, load_config(), page, filters, LATER, scope=Scope(("t_a",)))

    def newest(frame: pd.DataFrame, ts: str, by_endpoint: bool = False) -> pd.Timestamp:
        rows = frame[(frame[ts] >= start) & (frame[ts] < end) & (frame.tenant_id == "t_a")]
        if by_endpoint:
            rows = rows[rows.endpoint == "/api/v1/detect"]
        return rows[ts].max()

    requests = newest(dataset.api_requests, "ts", by_endpoint=True)
    runs = newest(dataset.detection_results, "created_at")
    sessions = newest(dataset.user_sessions, "started_at")
    want = {
        "detection": runs,
        "performance": requests,
        "business": max(requests, sessions, runs),
        "overview": max(requests, sessions, runs),
    }[page]
    assert pd.Timestamp(data.data_as_of) == want
    everyone = build_page(engine, load_config(), page, filters, LATER)
    assert everyone.data_as_of >= data.data_as_of
