"""Pages built from rollups + the raw tail equal pages built from the raw tables (issue
8): the same KPIs, previous-period figures and series, exact but for percentiles (within
the sketch's 1%), on PostgreSQL and DuckDB; a database never rolled up says so."""

from __future__ import annotations

import pytest

from analytics_core.config import load_config
from analytics_core.page_data import build_page
from analytics_core.pages import PAGES
from analytics_core.sources.areas import NO_ROLLUP_NOTE, raw_sources, sources_for
from analytics_core.sources.rollups import ROLLUP_LABEL
from tests.analytics_core.test_rollup_read import (  # noqa: F401 - fixtures
    NOW,
    WATERMARK,
    _filters,
    assert_figures,
    assert_frames,
    big,
    never_rolled,
    rolled,
)

PERCENTILES = ("p50_ms", "p95_ms", "p99_ms", "p95_execution_ms")
CASES = {
    # Whole days, the watermark inside the range: day and hour rollups, then the tail.
    "30 days by day": _filters("2026-10-15T00:00Z", "2026-11-14T00:00Z"),
    # Mid-hour edges in a DST zone, hourly.
    "Paris hours": _filters("2026-11-05T10:30Z", "2026-11-07T09:15Z", "Europe/Paris", "hour"),
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("case", CASES)
def test_page_from_rollups_equals_page_from_raw(rolled, page, case):  # noqa: F811
    config = load_config()
    filters = CASES[case]
    sources = sources_for(rolled.engine)
    assert sources.watermark == WATERMARK and sources.performance.label == ROLLUP_LABEL
    got = build_page(rolled.engine, config, page, filters, NOW)
    want = build_page(rolled.engine, config, page, filters, NOW, sources=raw_sources(rolled.engine))
    assert got.source_note is None
    assert_figures(got.kpis, want.kpis, PERCENTILES)
    assert_figures(got.previous, want.previous, PERCENTILES)
    assert list(got.series) == list(want.series)
    for name, frame in want.series.items():
        # Bottleneck "slow" counts come from sketch bins: exact but within p95's own bin.
        skip = tuple(c for c in frame.columns if "slow" in c)
        mine = got.series[name]
        if skip:  # and so may the order of a table ranked by slow share: compare by key
            key = frame.columns[0]
            mine = mine.sort_values(key, ignore_index=True)
            frame = frame.sort_values(key, ignore_index=True)
        assert_frames(mine, frame, PERCENTILES, skip)
    exact = [k for k in want.changes if k not in PERCENTILES]
    assert {k: got.changes[k].significant for k in exact} == {
        k: want.changes[k].significant for k in exact
    }
    if page in ("overview", "insights"):
        assert want.insights, "the case should tell something"
        told = [(i.kind, i.kpi, i.status) for i in got.insights]
        assert told == [(i.kind, i.kpi, i.status) for i in want.insights]


def test_never_rolled_up_reads_raw_and_says_so(never_rolled):  # noqa: F811
    data = build_page(never_rolled.engine, load_config(), "overview", CASES["30 days by day"], NOW)
    assert data.source_note == NO_ROLLUP_NOTE
    want = build_page(
        never_rolled.engine,
        load_config(),
        "overview",
        CASES["30 days by day"],
        NOW,
        sources=raw_sources(never_rolled.engine),
    )
    assert data.kpis == want.kpis
