"""Exports and threshold insights built from real page data on the fixture database."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from analytics_core.config import AlertRule, Config
from analytics_core.exports import to_csv, to_json
from analytics_core.filters import make_filters
from analytics_core.insights import check_thresholds
from analytics_core.page_data import PAGES, build_page
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
        "page", "generated_at", "filters", "kpis", "previous", "changes", "series", "insights"
    }  # fmt: skip
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
    assert "error_rate" in by_kpi["error_rate"].message and "1.00%" in by_kpi["error_rate"].message
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
