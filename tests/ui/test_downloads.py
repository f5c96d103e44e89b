"""Every download of every page, prepared through the app (AppTest), is a file that opens
and holds the page's figures; the Overview's whole-dashboard files hold every page."""

from __future__ import annotations

import io
import json

import openpyxl
import pandas as pd
import pytest
from pypdf import PdfReader

from analytics_core.kpis import KPIS, format_kpi
from analytics_core.pages import EXPORT_FORMATS, PAGES
from tests.ui.test_pages import FIRST, LAST, core_page, custom
from tests.ui.test_pages import PAGES as PAGE_FILES

_PREPARED = "_prepared_export"


def prepare(at, what: str, fmt: str) -> bytes:
    at.selectbox(key=f"export_format_{what}").set_value(fmt)
    at.button(key=f"prepare_export_{what}").click().run()
    assert not at.exception, at.exception
    assert [b.label for b in at.get("download_button")] == [f"Download {fmt.upper()}"]
    prepared = at.session_state[_PREPARED]
    assert prepared.file_name.endswith(f".{fmt}")
    return prepared.content


def opened(content: bytes, fmt: str):
    """The file read back the way its reader would: JSON, CSV, a workbook, PDF text."""
    if fmt == "json":
        return json.loads(content)
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(content), comment="#")
    if fmt == "xlsx":
        return openpyxl.load_workbook(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("page", PAGES)
def test_every_download_of_every_page_opens_and_holds_its_figures(
    duckdb_url, monkeypatch, page, fmt
):
    at = custom(duckdb_url, monkeypatch).run()
    if page != "overview":
        at.switch_page(PAGE_FILES[page]).run()
    want = core_page(duckdb_url, page, FIRST, LAST)
    content = opened(prepare(at, page, fmt), fmt)
    some = next(k for k, v in want.kpis.items() if v is not None)
    if fmt == "json":
        assert content["page"] == page and content["kpis"] == pytest.approx(
            {k: v for k, v in want.kpis.items()}, nan_ok=True
        )
    elif fmt == "csv":
        kpis = content[content.table == "kpis"].set_index("kpi")["value"].astype(float)
        assert kpis[some] == pytest.approx(float(want.kpis[some]))
    elif fmt == "xlsx":
        sheet = next(ws for ws in content.worksheets if ws.title.endswith("KPIs"))
        values = {row[0]: row[2] for row in sheet.iter_rows(min_row=2, values_only=True)}
        assert values[some] == pytest.approx(want.kpis[some])
    else:
        assert format_kpi(some, want.kpis[some], want.currency) in content
        assert KPIS[some].label in content


@pytest.mark.parametrize("fmt", ["xlsx", "pdf"])
def test_the_overview_offers_the_whole_dashboard(duckdb_url, monkeypatch, fmt):
    at = custom(duckdb_url, monkeypatch).run()
    content = opened(prepare(at, "dashboard", fmt), fmt)
    if fmt == "xlsx":
        titles = " ".join(ws.title for ws in content.worksheets)
        for page in PAGES:
            assert f"{page.capitalize()} KPIs" in titles
    else:
        for page in PAGES:
            want = core_page(duckdb_url, page, FIRST, LAST)
            key = next(k for k, v in want.kpis.items() if v is not None)
            assert page.capitalize() in content
            assert format_kpi(key, want.kpis[key], want.currency) in content


def test_a_prepared_file_outlives_the_minute_a_preset_range_moves_on(duckdb_url, monkeypatch):
    """A preset range ends at the current minute: a rerun a minute later is the same view
    of the link, and the file prepared for it (counted and audited) is still offered."""
    from datetime import UTC, datetime, timedelta

    import analytics_app.ui.sidebar as sidebar
    from tests.ui.test_pages import app

    clock = {"now": datetime(2026, 4, 2, 10, 0, 50, tzinfo=UTC)}  # within the fixture's data

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return clock["now"].astimezone(tz or UTC)

    monkeypatch.setattr(sidebar, "datetime", Clock)
    at = app(duckdb_url, monkeypatch, range="7d").run()
    prepare(at, "overview", "csv")
    clock["now"] += timedelta(minutes=2)  # the range's end moves on
    at.run()
    assert not at.exception
    assert [b.label for b in at.get("download_button")] == ["Download CSV"]
