"""PDF reports read back: pdftotext for what they say, pypdf for their images, fonts,
outline and metadata, pdftoppm for what page 1 looks like. Pages are built by
build_page on the fixture DuckDB, in Europe/Paris over a range that holds the DST change
(2026-03-29) and whose previous period has data, so the KPI table has deltas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from analytics_core import export_pdf
from analytics_core.config import load_config
from analytics_core.export_pdf import (
    dashboard_report,
    fonts,
    page_report,
    scatter_png,
    table_report,
)
from analytics_core.filters import date_range, make_filters
from analytics_core.kpis import KPIS, format_kpi
from analytics_core.page_data import PageData, build_page
from analytics_core.pages import PAGES
from analytics_core.sources.database import make_engine

TZ = "Europe/Paris"
FIRST, LAST = date(2026, 3, 28), date(2026, 4, 2)
NOW = datetime(2026, 4, 3, 7, 45, tzinfo=UTC)
TITLE = "Anomaly Detection Analytics"
NAMES = {
    "overview": "Overview",
    "detection": "Detection",
    "performance": "Performance",
    "business": "Business",
    "insights": "Insights",
}
# The charts each app page draws without Prometheus (analytics_app/app_pages), besides
# one evidence chart per insight whose evidence is a time series.
APP_CHARTS = {"overview": 4, "detection": 5, "performance": 4, "business": 4, "insights": 0}
UNICODE_NAME = "Café Zürich 東京"

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None and os.environ.get("CI") != "true",
    reason="poppler-utils (pdftotext, pdftoppm) not installed: scripts/install-test-packages.sh",
)
pytestmark = needs_poppler


@pytest.fixture(scope="module")
def filters():
    return make_filters(*date_range(FIRST, LAST, TZ), TZ)


@pytest.fixture(scope="module")
def pages(duckdb_url, filters) -> dict[str, PageData]:
    engine = make_engine(duckdb_url)
    try:
        return {p: build_page(engine, load_config(), p, filters, now=NOW) for p in PAGES}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def reports(pages, tmp_path_factory) -> dict[str, Path]:
    """Each page's report, written once for the module's tests."""
    folder = tmp_path_factory.mktemp("pdf")
    out = {}
    for name, data in pages.items():
        out[name] = folder / f"{name}.pdf"
        out[name].write_bytes(page_report(data, title=TITLE))
    return out


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def text_pages(path: Path, layout: bool = False) -> list[str]:
    """pdftotext's text, one string per page."""
    args = ["pdftotext", "-enc", "UTF-8", *(["-layout"] if layout else []), str(path), "-"]
    out = subprocess.run(args, capture_output=True, check=True, text=True).stdout
    return out.split("\f")[: len(PdfReader(path).pages)]


def squash(text: str) -> str:
    """Without whitespace: wrapped lines compare with the sentence they came from."""
    return re.sub(r"\s+", "", text)


def image_count(path: Path) -> int:
    """The images each page draws, summed (one chart drawn on two pages, as the Overview's
    and the Detection page's anomaly rate in a dashboard, is stored once)."""
    count = 0
    for page in PdfReader(path).pages:
        xobjects = page["/Resources"].get("/XObject") or {}
        count += sum(1 for ref in xobjects.values() if ref.get_object()["/Subtype"] == "/Image")
    return count


def font_files(path: Path) -> dict[str, bool]:
    """Each font's name and whether its program is embedded."""
    out = {}
    for page in PdfReader(path).pages:
        for ref in (page["/Resources"].get("/Font") or {}).values():
            font = ref.get_object()
            described = (
                font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            )
            descriptor = described.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            out[str(font["/BaseFont"])] = any(
                k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
    return out


def cjk_font_required() -> None:
    if not fonts().cjk:
        if os.environ.get("CI") == "true":
            pytest.fail("no CJK font (fonts-noto-cjk): scripts/install-test-packages.sh")
        pytest.skip("no CJK font (fonts-noto-cjk) on this machine")


def time_evidence(data: PageData) -> int:
    return sum(
        1 for i in data.insights if i.evidence is not None and "bucket" in i.evidence.columns
    )


@pytest.mark.parametrize("page", PAGES)
def test_page_report_says_the_kpis_filters_zone_time_and_insights(pages, reports, page):
    data = pages[page]
    text = "\n".join(text_pages(reports[page]))
    lines = "\n".join(text_pages(reports[page], layout=True)).splitlines()
    flat = squash(text)
    assert f"{NAMES[page]} — {TITLE}" in text
    assert squash(data.filters.describe()) in flat
    assert f"Time zone: {TZ}" in text
    generated = data.generated_at.astimezone(ZoneInfo(TZ))
    assert f"Generated at: {generated:%Y-%m-%d %H:%M:%S} CEST" in text
    for key, value in data.kpis.items():
        shown = format_kpi(key, value, data.currency)
        # The label and its value on one line of the KPI table.
        assert any(KPIS[key].label in line and shown in line for line in lines), (key, shown)
    if page == "performance":  # the previous period has data: deltas are printed
        assert any("Requests" in line and "significant" in line for line in lines)
    assert data.insights or page not in ("overview", "insights")
    for insight in data.insights:
        assert squash(insight.message) in flat, insight.message


@pytest.mark.parametrize("page", PAGES)
def test_every_chart_and_evidence_chart_is_an_embedded_image(pages, reports, page):
    expected = APP_CHARTS[page] + time_evidence(pages[page])
    assert expected > 0 or page == "insights"
    assert image_count(reports[page]) >= expected


def test_fonts_are_embedded_and_metadata_fixed(pages, reports, tmp_path):
    for page in PAGES:
        found = font_files(reports[page])
        assert found and all(found.values()), found
        assert any("DejaVuSans" in name for name in found)
    reader = PdfReader(reports["performance"])
    assert reader.metadata.creation_date == pages["performance"].generated_at
    assert reader.metadata.title == f"Performance — {TITLE}"
    # The same page twice: the same bytes (charts and file identifiers included).
    assert page_report(pages["performance"], title=TITLE) == reports["performance"].read_bytes()


def audit_frame(rows: int) -> pd.DataFrame:
    """An audit-like table whose every row carries a distinct token."""
    frame = pd.DataFrame(
        {
            "at": pd.date_range("2026-03-28", periods=rows, freq="17min", tz="UTC"),
            "request_id": [f"row-{i:04d}" for i in range(rows)],
            "user": [f"user{i % 7}@example.com" for i in range(rows)],
            "tenant": [UNICODE_NAME if i == 3 else f"tenant {i % 5}" for i in range(rows)],
            "rows": np.arange(rows) * 3,
            "detail": [("viewed the page " * (i % 6)).strip() for i in range(rows)],
        }
    )
    # A cell longer than a page: continued below, never cut.
    frame.loc[5, "detail"] = "filters " * 900 + "end-of-long-cell"
    return frame


def test_a_500_row_table_spans_pages_with_every_row_once_and_headers_repeated(filters, tmp_path):
    path = write(tmp_path, "audit500.pdf", table_report("audit", audit_frame(500), filters))
    pages = text_pages(path)
    assert len(pages) > 5
    tokens = re.findall(r"row-\d{4}", "\n".join(pages))
    assert sorted(tokens) == [f"row-{i:04d}" for i in range(500)]  # each exactly once
    for n, page in enumerate(pages, start=1):
        assert "Request id" in page and "Detail" in page, n  # the header on every page
        assert f"Page {n} of {len(pages)}" in page
    joined = "\n".join(pages)
    assert joined.count("end-of-long-cell") == 1
    assert len(re.findall(r"\bfilters\b", joined)) == 900  # every word of the long cell
    # Times in the filters' zone with their offset, on both sides of the DST change.
    assert "2026-03-28 01:00 +01:00" in joined and "+02:00" in joined
    assert f"Audit log — {TITLE}" in pages[0] and squash(filters.describe()) in squash(pages[0])

    small = write(tmp_path, "audit100.pdf", table_report("audit", audit_frame(100), filters))
    assert len(PdfReader(small).pages) < len(pages)


def test_page_tables_print_every_row_and_unicode_names(pages, tmp_path):
    cjk_font_required()
    business = pages["business"]
    tenants = pd.DataFrame(
        {
            "tenant_id": [f"t_{i:04d}" for i in range(500)],
            "name": [UNICODE_NAME if i == 0 else f"Tenant {i}" for i in range(500)],
            "plan": ["pro"] * 500,
            "active_users": np.arange(500),
            "cost": np.linspace(0, 99, 500),
        }
    )
    big = replace(business, series={**business.series, "by_tenant": tenants})
    path = write(tmp_path, "business500.pdf", page_report(big, title=TITLE))
    small = replace(business, series={**business.series, "by_tenant": tenants.head(100)})
    small_path = write(tmp_path, "business100.pdf", page_report(small, title=TITLE))
    pages_text = text_pages(path)
    assert len(pages_text) > len(PdfReader(small_path).pages) > 1
    ids = re.findall(r"t_\d{4}", "\n".join(pages_text))
    assert sorted(ids) == [f"t_{i:04d}" for i in range(500)]
    header_pages = [p for p in pages_text if "Tenant ID" in p]
    assert len(header_pages) >= len(pages_text) - 1  # all but the KPI and chart page
    assert squash(UNICODE_NAME) in squash("\n".join(pages_text))
    found = font_files(path)
    assert any("CJK" in name for name in found) and all(found.values()), found


def test_chart_labels_have_a_font_for_every_glyph():
    """Tenant names in chart labels: no glyph missing from the charts' fonts."""
    cjk_font_required()
    frame = pd.DataFrame(
        {"x": [1.0, 2.0], "y": [0.1, 0.2], "n": [3, 4], "name": [UNICODE_NAME, "Beta"]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = scatter_png(frame, "x", "y", "n", "name", f"Tenants: {UNICODE_NAME}")
    assert png.startswith(b"\x89PNG")


def test_without_a_cjk_font_the_report_is_still_written(monkeypatch, filters, tmp_path):
    """A machine without fonts-noto-cjk: DejaVu alone, CJK characters as empty boxes."""
    monkeypatch.setattr(export_pdf, "fonts", lambda: replace(fonts(), cjk={}, cjk_family=None))
    frame = pd.DataFrame({"tenant": [UNICODE_NAME, "Beta"], "rows": [1, 2]})
    path = write(tmp_path, "latin.pdf", table_report("audit", frame, filters))
    found = font_files(path)
    assert found and all(found.values()) and not any("CJK" in name for name in found)
    assert "Café Zürich" in "\n".join(text_pages(path))
    png = export_pdf.scatter_png(frame.assign(x=[1, 2]), "x", "rows", "rows", "tenant", "t")
    assert png.startswith(b"\x89PNG")


def test_page_one_renders_to_a_picture_that_is_not_blank(reports, tmp_path):
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", "-singlefile",
         str(reports["overview"]), str(tmp_path / "page1")],
        check=True,
    )  # fmt: skip
    pixels = matplotlib.image.imread(tmp_path / "page1.png")[..., :3]
    ink = (pixels < 0.9).any(axis=-1).mean()
    colored = (np.ptp(pixels, axis=-1) > 0.2).mean()  # the charts' blue bars and lines
    assert ink > 0.03 and colored > 0.005, (ink, colored)


def test_resource_charts_when_prometheus_answered(pages, tmp_path):
    data = pages["performance"]
    buckets = data.series["performance_trend"]["bucket"]
    values = np.linspace(0.2, 0.6, len(buckets))
    extra = {
        "cpu_usage": pd.DataFrame({"bucket": buckets, "api": values, "worker": values / 2}),
        "memory_bytes": pd.DataFrame({"bucket": buckets, "api": values * 2e9}),
        "disk_used_ratio": pd.DataFrame({"bucket": buckets, "disk_used_ratio": values}),
        "uptime": pd.DataFrame({"bucket": buckets, "uptime": np.ones(len(buckets))}),
        "resources_gauges": pd.DataFrame(
            {
                "label": ["CPU usage (api)", "Disk used (/)"],
                "kpi": ["cpu_usage", "disk_used_ratio"],
                "value": [0.42, 0.71],
            }
        ),  # fmt: skip
        "resources_now": pd.DataFrame(
            {
                "component": ["api", "disk /"],
                "cpu_usage": [0.42, None],
                "memory_bytes": [1.5e9, None],
                "disk_used_ratio": [None, 0.71],
            }
        ),  # fmt: skip
    }
    path = write(tmp_path, "perf.pdf", page_report(replace(data, series={**data.series, **extra})))
    assert image_count(path) >= APP_CHARTS["performance"] + 5 + time_evidence(data)
    text = "\n".join(text_pages(path))
    assert "Resources (Prometheus)" in text and "disk /" in text


def test_dashboard_has_a_section_per_page_in_order_and_continuous_page_numbers(pages, tmp_path):
    path = write(tmp_path, "dashboard.pdf", dashboard_report(list(pages.values()), title=TITLE))
    texts = text_pages(path)
    total = len(texts)
    for n, text in enumerate(texts, start=1):
        assert f"Page {n} of {total}" in text
    first = texts[0]
    assert f"Dashboard — {TITLE}" in first and f"Time zone: {TZ}" in first
    assert squash(pages["overview"].filters.describe()) in squash(first)
    starts = [
        next(n for n, t in enumerate(texts) if t.lstrip().startswith(f"{NAMES[p]} — {TITLE}"))
        for p in PAGES
    ]
    assert starts == sorted(starts) and len(set(starts)) == len(PAGES) and starts[0] == 1
    reader = PdfReader(path)
    assert [item.title for item in reader.outline] == [NAMES[p] for p in PAGES]
    assert [reader.get_destination_page_number(item) for item in reader.outline] == starts
    # The contents on the first page name each section's first page.
    for p, start in zip(PAGES, starts, strict=True):
        assert re.search(rf"{NAMES[p]}\s+{start + 1}\b", first), (p, start)
    flat = squash("\n".join(texts))
    for data in pages.values():
        for insight in data.insights:
            assert squash(insight.message) in flat
    expected = sum(APP_CHARTS[p] + time_evidence(d) for p, d in pages.items())
    assert image_count(path) >= expected
