"""Every page through Streamlit's AppTest on the fixture database: it renders without
exception, its KPI cards equal analytics_core's figures, and the sidebar drives them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analytics_core.config import load_config
from analytics_core.context import Scope
from analytics_core.filters import date_range, make_filters
from analytics_core.kpis import KPIS, format_kpi
from analytics_core.page_data import build_page
from analytics_core.sources.database import make_engine

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    "overview": "app_pages/overview.py",
    "detection": "app_pages/detection.py",
    "performance": "app_pages/performance.py",
    "business": "app_pages/business.py",
    "insights": "app_pages/insights.py",
}
FIRST, LAST = date(2026, 3, 20), date(2026, 4, 2)


def core_page(url: str, page: str, first: date, last: date, tz: str = "UTC", scope=None):
    start, end = date_range(first, last, tz)
    engine = make_engine(url)
    try:
        filters = make_filters(start, end, tz)
        return build_page(engine, load_config(), page, filters, scope=Scope(scope))
    finally:
        engine.dispose()


def app(url: str, monkeypatch, **params: str) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("ANALYTICS_CONFIG", raising=False)
    at = AppTest.from_file(str(ROOT / "analytics_app" / "Home.py"), default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def custom(url, monkeypatch, first=FIRST, last=LAST, **extra) -> AppTest:
    return app(
        url, monkeypatch, range="custom", start=first.isoformat(), end=last.isoformat(), **extra
    )


def shown_kpis(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def expected_cards(data) -> dict[str, str]:
    return {KPIS[k].label: format_kpi(k, v, data.currency) for k, v in data.kpis.items()}


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_core_kpis(db_url, monkeypatch, page):
    at = custom(db_url, monkeypatch)
    at.run()
    if page != "overview":
        at.switch_page(PAGES[page]).run()
    assert not at.exception, at.exception
    want = expected_cards(core_page(db_url, page, FIRST, LAST))
    assert shown_kpis(at) == want
    assert "no data" not in want.values()
    assert at.selectbox(key=f"export_format_{page}").options == ["JSON", "CSV", "XLSX", "PDF"]
    assert not at.get("download_button")  # built only when asked for
    at.selectbox(key=f"export_format_{page}").set_value("csv")
    at.button(key=f"prepare_export_{page}").click().run()
    assert [b.label for b in at.get("download_button")] == ["Download CSV"]


@pytest.mark.parametrize("page", PAGES)
def test_changing_the_date_range_changes_the_kpis(duckdb_url, monkeypatch, page):
    at = custom(duckdb_url, monkeypatch).run()
    if page != "overview":
        at.switch_page(PAGES[page]).run()
    before = shown_kpis(at)
    assert before == expected_cards(core_page(duckdb_url, page, FIRST, LAST))
    narrow = (date(2026, 3, 23), date(2026, 3, 25))
    at.date_input(key="dates").set_value(narrow).run()
    assert not at.exception
    after = shown_kpis(at)
    assert after != before
    assert after == expected_cards(core_page(duckdb_url, page, *narrow))
    # The URL follows the sidebar, so a copied link reproduces the view.
    assert at.query_params["start"] in ("2026-03-23", ["2026-03-23"])


def test_tenant_filter_and_time_zone_from_url(duckdb_url, monkeypatch):
    at = custom(duckdb_url, monkeypatch, tenant="t_b", tz="Asia/Tokyo")
    at.run().switch_page(PAGES["business"]).run()
    assert not at.exception
    start, end = date_range(FIRST, LAST, "Asia/Tokyo")
    engine = make_engine(duckdb_url)
    data = build_page(
        engine, load_config(), "business", make_filters(start, end, "Asia/Tokyo", tenants=["t_b"])
    )
    engine.dispose()
    assert shown_kpis(at) == expected_cards(data)


def test_bad_url_parameters_are_named_not_raised(duckdb_url, monkeypatch):
    at = app(duckdb_url, monkeypatch, range="fortnight", tz="Mars/Olympus", tenant="t_zzz")
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert "range='fortnight'" in warnings
    assert "Mars/Olympus" in warnings
    assert "t_zzz" in warnings


def test_empty_range_says_no_data(duckdb_url, monkeypatch):
    at = custom(duckdb_url, monkeypatch, first=date(2025, 1, 1), last=date(2025, 1, 7))
    at.run()
    assert not at.exception
    assert any("No data in this range" in i.value for i in at.info)


def test_unreachable_database_names_the_source_and_the_fix(monkeypatch):
    at = app("postgresql://postgres@127.0.0.1:9/nowhere", monkeypatch)
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "primary database" in errors and "127.0.0.1:9" in errors
    assert any("How to fix" in i.value for i in at.info)


def test_bad_config_names_file_and_key(duckdb_url, monkeypatch, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("dashboard:\n  refresh_interval_seconds: soon\n")
    at = app(duckdb_url, monkeypatch)
    monkeypatch.setenv("ANALYTICS_CONFIG", str(bad))
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert str(bad) in errors and "dashboard.refresh_interval_seconds" in errors


def _stories(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**") and " · " in m.value]


@pytest.mark.parametrize("area", ["detection", "performance", "business"])
def test_insights_feed_and_area_filter(duckdb_url, monkeypatch, area):
    at = custom(duckdb_url, monkeypatch).run()
    at.switch_page(PAGES["insights"]).run()
    assert not at.exception
    data = core_page(duckdb_url, "insights", FIRST, LAST)
    stories = [i for i in data.insights if i.status in ("firing", "resolved", "learning")]
    assert len(_stories(at)) == len(stories) > 0
    at.radio(key="insight_area").set_value(area).run()
    shown = _stories(at)
    assert len(shown) == len([i for i in stories if i.area == area])
    assert all(s.split("\n")[0].rstrip().endswith(area) for s in shown)


def test_overview_shows_top_three_insights(duckdb_url, monkeypatch):
    at = custom(duckdb_url, monkeypatch).run()
    data = core_page(duckdb_url, "overview", FIRST, LAST)
    assert 0 < len(data.insights) <= 3
    shown = _stories(at)
    assert len(shown) == len(data.insights)
    for story, insight in zip(shown, data.insights, strict=True):
        assert insight.message in story


def test_auto_refresh_toggle_is_kept_in_the_url(duckdb_url, monkeypatch):
    at = custom(duckdb_url, monkeypatch).run()
    at.toggle(key="refresh").set_value(True).run()
    assert not at.exception
    assert at.query_params.get("refresh") in ("1", ["1"])
    # A link with refresh=1 opens with auto-refresh on.
    again = custom(duckdb_url, monkeypatch, refresh="1").run()
    assert again.toggle(key="refresh").value is True
