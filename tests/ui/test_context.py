"""Hidden context (issue 7): the caption names every active filter, the Insights area
lives in the URL on every page, unknown page paths and long bad URL values are reported
readably, and the custom date picker keeps the page between its two clicks."""

from __future__ import annotations

import json
from datetime import date

from streamlit.testing.v1 import AppTest

from analytics_app.ui.sidebar import page_not_found, requested_path
from analytics_core.catalog import dimensions
from analytics_core.sources.database import make_engine
from tests.ui.test_pages import (
    FIRST,
    LAST,
    PAGES,
    app,
    core_page,
    custom,
    expected_cards,
    shown_kpis,
)


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.main.caption)


def test_caption_names_the_tenant_filter(duckdb_url, monkeypatch):
    engine = make_engine(duckdb_url)
    name = dimensions(engine).tenants["t_b"]
    engine.dispose()
    at = custom(duckdb_url, monkeypatch, tenant="t_b", endpoint="/api/x").run()
    assert not at.exception
    caption = _captions(at)
    assert f"tenant {name} (t_b) only" in caption
    assert "2026-03-20 00:00 → 2026-04-03 00:00 (UTC), by day" in caption
    # Without a filter the page's caption says nothing about tenants (the sign-in-off
    # banner above it is not the page's).
    plain = custom(duckdb_url, monkeypatch).run()
    header = [c.value for c in plain.main.caption if "compared with the previous" in c.value]
    assert len(header) == 1 and "tenant" not in header[0]


def test_insights_area_is_read_from_and_written_to_the_url(duckdb_url, monkeypatch):
    at = custom(duckdb_url, monkeypatch, area="performance").run()
    at.switch_page(PAGES["insights"]).run()
    assert not at.exception
    assert at.radio(key="insight_area").value == "performance"
    assert at.query_params.get("area") in ("performance", ["performance"])
    at.radio(key="insight_area").set_value("business").run()
    assert at.query_params.get("area") in ("business", ["business"])
    # "all" is the default and leaves the URL.
    at.radio(key="insight_area").set_value("all").run()
    assert "area" not in at.query_params


def test_insights_area_survives_a_visit_to_another_page(duckdb_url, monkeypatch):
    # Overview -> Insights showed "all" again, and the URL lost `area`: the radio is drawn
    # on the Insights page only, and Streamlit dropped its value on the other pages.
    at = custom(duckdb_url, monkeypatch).run()
    at.switch_page(PAGES["insights"]).run()
    at.radio(key="insight_area").set_value("detection").run()
    at.switch_page(PAGES["overview"]).run()
    assert not at.exception, at.exception
    for _ in range(2):  # and on later reruns there (a filter change, an auto-refresh)
        assert at.query_params.get("area") in ("detection", ["detection"])
        at.run()
    at.switch_page(PAGES["insights"]).run()
    assert at.radio(key="insight_area").value == "detection"
    assert at.query_params.get("area") in ("detection", ["detection"])


def test_bad_area_is_named_like_other_bad_values(duckdb_url, monkeypatch):
    at = custom(duckdb_url, monkeypatch, area="weather").run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert "area='weather'" in warnings


def test_long_bad_url_values_are_cut(duckdb_url, monkeypatch):
    long = "x" * 3000
    at = app(duckdb_url, monkeypatch, range=long, tz=long, granularity=long, tenant=long, area=long)
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 5
    for w in warnings:
        assert len(w) < 200, w
        assert "x" * 60 + "…" in w and "x" * 61 not in w


def test_date_picker_keeps_the_previous_range_between_clicks(duckdb_url, monkeypatch):
    at = custom(duckdb_url, monkeypatch).run()
    before = expected_cards(core_page(duckdb_url, "overview", FIRST, LAST))
    assert shown_kpis(at) == before
    # The first click of the picker: st.date_input holds a single date.
    at.date_input(key="dates").set_value((date(2026, 3, 23),)).run()
    assert not at.exception
    assert shown_kpis(at) == before
    assert "2026-03-20 00:00 → 2026-04-03 00:00" in _captions(at)
    assert any("Pick the end date" in i.value for i in at.sidebar.info)
    assert at.query_params["start"] in ("2026-03-20", ["2026-03-20"])
    # The second click completes the new range.
    narrow = (date(2026, 3, 23), date(2026, 3, 25))
    at.date_input(key="dates").set_value(narrow).run()
    assert shown_kpis(at) == expected_cards(core_page(duckdb_url, "overview", *narrow))


PATHS = {
    "overview": "Overview",
    "detection": "Detection",
    "performance": "Performance",
    "business": "Business",
    "insights": "Insights",
}


def test_requested_path_strips_host_and_base_path():
    assert requested_path(None) == ""
    assert requested_path("http://localhost:8501") == ""
    assert requested_path("http://localhost:8501/performance") == "performance"
    assert requested_path("https://h.example/analytics/nosuch/", "/analytics") == "nosuch"
    assert requested_path("https://h.example/analytics", "analytics") == ""


def test_unknown_page_path_gets_a_note_listing_the_pages():
    for known in ("", *PATHS):
        assert page_not_found(known, PATHS) is None
    note = page_not_found("perfomance", PATHS)
    assert note is not None and "/perfomance" in note
    for path, title in PATHS.items():
        assert f"{title} (/{path})" in note
    long = page_not_found("p" * 3000, PATHS)
    assert long is not None and len(long) < 300 and "p" * 61 not in long


def test_the_zone_is_the_browsers_unless_the_config_names_one(duckdb_url, monkeypatch, tmp_path):
    at = custom(duckdb_url, monkeypatch)
    at.context = {"timezone": "Asia/Tokyo"}
    at.run()
    assert at.sidebar.selectbox(key="tz").value == "Asia/Tokyo"
    assert "(Asia/Tokyo)" in _captions(at)
    # Every chart's time axis names the zone.
    titles = [
        json.loads(c.proto.spec)["layout"]["xaxis"]["title"]["text"] for c in at.get("plotly_chart")
    ]
    assert titles and set(titles) == {"Bucket start (Asia/Tokyo)"}
    config = tmp_path / "analytics.yml"
    config.write_text("dashboard: {default_timezone: Europe/Paris}\n", encoding="utf-8")
    fixed = custom(duckdb_url, monkeypatch)
    monkeypatch.setenv("ANALYTICS_CONFIG", str(config))  # custom() clears it
    fixed.context = {"timezone": "Asia/Tokyo"}
    fixed.run()
    assert fixed.sidebar.selectbox(key="tz").value == "Europe/Paris"
    # A browser zone the app does not know falls back to UTC.
    odd = custom(duckdb_url, monkeypatch)
    odd.context = {"timezone": "Mars/Olympus"}
    odd.run()
    assert odd.sidebar.selectbox(key="tz").value == "UTC"
