"""Exports and threshold insights built from real page data on the fixture database."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from analytics_core.config import AlertRule, Config
from analytics_core.exports import file_stem, to_csv, to_json
from analytics_core.filters import date_range, make_filters
from analytics_core.insights import check_thresholds
from analytics_core.kpis import KPIS
from analytics_core.page_data import PAGES, PageData, build_page
from tests.analytics_core import expected

START, END = datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC)
RULES = (
    AlertRule(kpi="error_rate", above=0.01, below=None, severity="critical"),
    AlertRule(kpi="p95_ms", above=1e9, below=None, severity="warning"),
    AlertRule(kpi="avg_session_minutes", above=None, below=1e6, severity="info"),
)


@pytest.mark.parametrize("page", PAGES)
def test_json_and_csv_carry_the_page(engine, dataset, page):
    config = Config(alerts=RULES)
    data = build_page(engine, config, page, make_filters(START, END, "UTC", "day"))
    doc = json.loads(to_json(data))
    assert set(doc) == {
        "page", "generated_at", "filters", "sources", "data_as_of", "kpis", "previous",
        "changes", "series", "insights",
    }  # fmt: skip
    assert doc["sources"] == data.source_note
    assert set(doc["changes"]) == set(doc["kpis"])
    assert all("significant" in c and "p_value" in c for c in doc["changes"].values())
    assert doc["filters"]["start"] == START.isoformat()
    assert doc["kpis"] == pytest.approx(data.kpis)
    if "requests" in doc["kpis"]:
        assert doc["kpis"]["requests"] == len(dataset.api_requests)
    for name, frame in data.series.items():
        assert len(doc["series"][name]) == len(frame)

    csv = to_csv(data)
    assert f"# start: {START.isoformat()}" in csv
    table = pd.read_csv(io.StringIO(csv), comment="#")
    kpis = table[table.table == "kpis"].set_index("kpi")
    for key, value in data.kpis.items():
        got = kpis.loc[key, "value"]
        assert (pd.isna(got) and value is None) or float(got) == pytest.approx(value)
    for name, frame in data.series.items():
        assert (table.table == name).sum() == len(frame)
    # Insights travel with their evidence, in both formats.
    assert len(doc["insights"]) == len(data.insights)
    for n, insight in enumerate(data.insights):
        rows = doc["insights"][n]["evidence"]
        assert (rows is None) == (insight.evidence is None)
        if rows is not None:
            assert len(rows) == len(insight.evidence)
            in_csv = table[(table.table == "insight_evidence") & (table.insight == n)]
            assert len(in_csv) == len(insight.evidence)


def test_threshold_insights_name_kpi_value_and_threshold(engine, dataset):
    data = build_page(engine, Config(alerts=RULES), "insights", make_filters(START, END))
    by_kpi = {i.kpi: i for i in data.insights}
    err = expected.performance(dataset, START, END)["error_rate"]
    assert by_kpi["error_rate"].status == "firing"  # the fixture has ~6% 5xx
    assert by_kpi["error_rate"].value == pytest.approx(err)
    # Sentences name the KPI by its label, not its config key (issue 7, problem 6).
    message = by_kpi["error_rate"].message
    assert KPIS["error_rate"].label in message and "1.00%" in message
    assert by_kpi["p95_ms"].status == "ok"
    assert data.insights[0].status == "firing"


def test_thresholds_report_no_data_honestly():
    rule = AlertRule(kpi="error_rate", above=0.05, below=None, severity="warning")
    [insight] = check_thresholds((rule,), {"error_rate": None})
    assert insight.status == "no_data" and "no data" in insight.message
    [low] = check_thresholds(
        (AlertRule(kpi="availability", below=0.99, severity="critical"),), {"availability": 0.98}
    )
    assert low.status == "firing"


NY = "America/New_York"


def test_csv_timestamps_carry_their_offset_across_the_dst_fall_back(engine):
    # 2026-11-01 in New York has 25 hours: 01:00 happens at -04:00, then again at -05:00.
    start, end = date_range(date(2026, 11, 1), date(2026, 11, 1), NY)
    data = build_page(engine, Config(), "performance", make_filters(start, end, NY, "hour"))
    table = pd.read_csv(io.StringIO(to_csv(data)), comment="#")
    buckets = table[table.table == "performance_trend"].bucket.tolist()
    want = [
        t.isoformat() for t in pd.date_range(start, end, freq="h", inclusive="left").tz_convert(NY)
    ]
    assert len(want) == 25
    assert buckets == want
    assert "2026-11-01T01:00:00-04:00" in buckets and "2026-11-01T01:00:00-05:00" in buckets
    assert len(set(buckets)) == len(buckets)
    # The header says which filters the file covers, in the same words as the caption.
    assert f"# description: {data.filters.describe()}" in to_csv(data)


def test_file_names_use_the_page_zone_with_offsets():
    start, end = date_range(date(2026, 11, 1), date(2026, 11, 7), NY)
    data = PageData(
        page="performance",
        filters=make_filters(start, end, NY, "day"),
        generated_at=datetime(2026, 11, 8, tzinfo=UTC),
        kpis={},
        previous={},
    )
    assert file_stem(data) == "performance_20261101T0000-0400_20261108T0000-0500"
