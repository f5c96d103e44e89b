"""Excel exports opened with openpyxl: sheet names, header rows, cell types, number formats
and values against the PageData analytics_core builds for the same filters (fixture
DuckDB), plus hand-built pages for what the fixture lacks (odd values, long tables)."""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version
from zoneinfo import ZoneInfo

import numpy as np
import openpyxl
import pandas as pd
import pytest
from openpyxl.utils import get_column_letter

from analytics_core import export_xlsx
from analytics_core.config import load_config
from analytics_core.export_xlsx import (
    EXCEL_MAX_ROWS,
    dashboard_workbook,
    over_limit,
    page_workbook,
    sheet_name,
    table_workbook,
)
from analytics_core.filters import date_range, make_filters
from analytics_core.insights import Insight
from analytics_core.insights.compare import Change
from analytics_core.kpis import KPIS
from analytics_core.page_data import PageData, build_page
from analytics_core.pages import PAGES
from analytics_core.sources.database import make_engine

TZ = "Europe/Paris"
# The previous period (2026-03-22..27) lies inside the fixture's data: changes are tested.
FIRST, LAST = date(2026, 3, 28), date(2026, 4, 2)
NOW = datetime(2026, 4, 10, 6, 30, tzinfo=UTC)
PAGE_TITLES = {"overview": "Overview", "detection": "Detection", "performance": "Performance",
               "business": "Business", "insights": "Insights"}  # fmt: skip

# Number formats, written out here rather than taken from the module under test.
COUNT, PERCENT, MS, GB, HOURS = "#,##0", "0.00%", '#,##0.0 "ms"', '#,##0.000 "GB"', '#,##0.00 "h"'
USD = "[$USD] #,##0.00"
UNIT_FORMATS = {
    "count": COUNT,
    "ratio": PERCENT,
    "ms": MS,
    "gb": GB,
    "minutes": '#,##0.0 "min"',
    "rps": '#,##0.0000 "req/s"',
    "bytes": '#,##0 "B"',
    "money": USD,
}
# Each series column of the fixture's pages and its format (a `_before` column: as its base).
COLUMN_FORMATS = {
    **dict.fromkeys(["detections", "failed", "anomalies", "requests", "errors", "active_users",
                     "new_users", "sessions", "api_calls", "slow", "runs", "events"], COUNT),
    **dict.fromkeys(["anomaly_rate", "avg_confidence", "error_rate", "availability",
                     "false_positive_rate", "share", "request_share", "slow_share",
                     "error_share", "time_share", "run_share", "failure_share"], PERCENT),
    **dict.fromkeys(["avg_execution_ms", "p95_execution_ms", "avg_ms", "p50_ms", "p95_ms",
                     "p99_ms", "total_ms"], MS),
    "data_processed_gb": GB,
    "compute_hours": HOURS,
    "cost": USD,
}  # fmt: skip
DATETIME = "yyyy-mm-dd hh:mm"
# Evidence columns holding the insight's KPI's own figures.
KPI_VALUE_COLUMNS = ("value", "baseline", "lower", "upper", "threshold", "forecast", "unjudged")


def build(url: str, page: str, first: date, last: date, tz=TZ, granularity=None, now=NOW, **kw):
    engine = make_engine(url)
    try:
        start, end = date_range(first, last, tz)
        filters = make_filters(start, end, tz, granularity, **kw)
        return build_page(engine, load_config(), page, filters, now=now)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pages(duckdb_url) -> dict[str, PageData]:
    return {page: build(duckdb_url, page, FIRST, LAST) for page in PAGES}


def read(blob: bytes) -> openpyxl.Workbook:
    assert blob[:2] == b"PK"
    return openpyxl.load_workbook(io.BytesIO(blob))


def header(ws, row: int = 1) -> list[str]:
    return [c.value for c in ws[row]]


def rows_of(ws, first: int = 2) -> list[tuple]:
    return [tuple(c for c in row) for row in ws.iter_rows(min_row=first)]


def missing(value) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def same_number(cell, value) -> bool:
    if missing(value):
        return cell.value is None
    if cell.data_type != "n" or isinstance(cell.value, bool):
        return False
    value = float(value)
    if math.isinf(value):
        return False
    return cell.value == pytest.approx(value, rel=1e-9, abs=1e-12)


def column_width(ws, n: int) -> float:
    """The width of column ``n`` (1-based): openpyxl keys a run of equal widths by its first."""
    found = [d.width for d in ws.column_dimensions.values() if d.min <= n <= d.max]
    assert len(found) == 1, (ws.title, n)
    return found[0]


def local_naive(moment, tz: str = TZ) -> datetime:
    return pd.Timestamp(moment).tz_convert(tz).tz_localize(None).to_pydatetime()


def offset_text(moment, tz: str = TZ) -> str:
    seconds = int(pd.Timestamp(moment).tz_convert(tz).utcoffset().total_seconds())
    sign = "-" if seconds < 0 else "+"
    return f"{sign}{abs(seconds) // 3600:02d}:{abs(seconds) % 3600 // 60:02d}"


def expected_format(column: str, unit: str | None = None) -> str | None:
    """The number format a numeric series column should carry (None: not pinned here)."""
    if column in KPI_VALUE_COLUMNS and unit is not None:
        return UNIT_FORMATS[unit]
    return COLUMN_FORMATS.get(column.removesuffix("_before"))


def check_table_sheet(ws, frame: pd.DataFrame, tz: str = TZ, unit: str | None = None, top=1):
    """The sheet holds ``frame``: header (times with their zone, an offset beside), cell
    types and values, number formats, bold frozen header, autofilter, widths."""
    times = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    want_header: list[str] = []
    for col in frame.columns:
        if col in times:
            offset = "utc_offset" if len(times) == 1 else f"{col}_utc_offset"
            want_header += [f"{col} ({tz})", offset]
        else:
            want_header.append(col)
    assert header(ws, top) == want_header
    assert all(c.font.b for c in ws[top])
    assert ws.freeze_panes == f"A{top + 1}"
    last = get_column_letter(len(want_header))
    assert ws.auto_filter.ref == f"A{top}:{last}{top + len(frame)}"
    for n in range(1, len(want_header) + 1):
        width = column_width(ws, n)
        assert min(len(want_header[n - 1]), 60) <= width <= 60
    body = rows_of(ws, top + 1)
    assert len(body) == len(frame)
    for i, cells in enumerate(body):
        by_header = dict(zip(want_header, cells, strict=True))
        for col in frame.columns:
            value = frame[col].iloc[i]
            if col in times:
                cell = by_header[f"{col} ({tz})"]
                offset = by_header["utc_offset" if len(times) == 1 else f"{col}_utc_offset"]
                if missing(value):
                    assert cell.value is None and offset.value is None
                    continue
                assert cell.data_type == "d" and cell.number_format == DATETIME
                assert cell.value == local_naive(value, tz)
                assert offset.value == offset_text(value, tz)
                continue
            cell = by_header[col]
            if pd.api.types.is_bool_dtype(frame[col].dtype):
                assert cell.data_type == "b" and cell.value is bool(value)
            elif pd.api.types.is_numeric_dtype(frame[col].dtype):
                assert same_number(cell, value), (col, cell.value, value)
                fmt = expected_format(col, unit)
                if fmt is not None and not missing(value):
                    assert cell.number_format == fmt, (ws.title, col)
            elif missing(value):
                assert cell.value is None
            else:
                assert cell.data_type == "s" and cell.value == str(value)


def check_kpis(ws, data: PageData) -> None:
    assert header(ws) == [
        "kpi", "label", "value", "previous", "change", "p_value", "significant", "unit", "test",
    ]  # fmt: skip
    body = rows_of(ws)
    assert [r[0].value for r in body] == list(data.kpis)
    for kpi, label, value, previous, change, p_value, significant, unit, _ in body:
        key = kpi.value
        assert label.value == KPIS[key].label
        assert unit.value == KPIS[key].unit
        fmt = UNIT_FORMATS[KPIS[key].unit]
        assert same_number(value, data.kpis[key]), key
        assert same_number(previous, data.previous[key]), key
        for cell, raw in ((value, data.kpis[key]), (previous, data.previous[key])):
            if not missing(raw):
                assert cell.number_format == fmt
        cur, prev = data.kpis[key], data.previous[key]
        want = None if missing(cur) or missing(prev) or prev == 0 else (cur - prev) / abs(prev)
        assert same_number(change, want), key
        if want is not None:
            assert change.number_format == PERCENT
        assert same_number(p_value, data.changes[key].p_value)
        assert significant.data_type == "b"
        assert significant.value is data.changes[key].significant


def plain(value):
    """Details as JSON gives them back: NaN as null, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def check_insights(book, data: PageData, prefix: str = "") -> None:
    ws = book[prefix + "Insights"]
    head = header(ws)
    assert head == [
        "#", "kind", "area", "kpi", "status", "severity", "score", "message", "method",
        "baseline", "recommendation", "value", "details", "evidence",
    ]  # fmt: skip
    body = rows_of(ws)
    assert len(body) == len(data.insights)
    for n, (cells, insight) in enumerate(zip(body, data.insights, strict=True), start=1):
        row = dict(zip(head, cells, strict=True))
        assert row["#"].value == n
        for key in ("kind", "area", "kpi", "status", "severity", "message", "method",
                    "baseline", "recommendation"):  # fmt: skip
            want = getattr(insight, key)
            assert row[key].value == (want if want not in ("", None) else None), key
        assert same_number(row["score"], insight.score)
        assert same_number(row["value"], insight.details.get("value"))
        if insight.kpi in KPIS and not missing(insight.details.get("value")):
            assert row["value"].number_format == UNIT_FORMATS[KPIS[insight.kpi].unit]
        assert row["details"].data_type == "s"
        assert json.loads(row["details"].value) == plain(insight.details)
        if insight.evidence is None:
            assert row["evidence"].value is None
            assert prefix + f"Evidence {n}" not in book.sheetnames
        else:
            name = prefix + f"Evidence {n}"
            assert row["evidence"].value == name
            assert row["evidence"].hyperlink.location == f"'{name}'!A1"
            unit = KPIS[insight.kpi].unit if insight.kpi in KPIS else None
            check_table_sheet(book[name], insight.evidence, data.filters.tz, unit)


def check_filters(ws, data: PageData, what: tuple[str, str]) -> dict[str, object]:
    f = data.filters
    assert header(ws) == ["field", f"value (times in {f.tz})"]
    assert ws.freeze_panes == "A2" and all(c.font.b for c in ws[1])
    cells = {r[0].value: r[1] for r in rows_of(ws)}
    values = {k: c.value for k, c in cells.items()}
    z = ZoneInfo(f.tz)
    assert values[what[0]] == what[1]
    assert values["range"] == f.describe()
    assert values["start"] == f.start.astimezone(z).replace(tzinfo=None)
    assert values["end (exclusive)"] == f.end.astimezone(z).replace(tzinfo=None)
    assert cells["start"].data_type == "d" and cells["start"].number_format == DATETIME
    assert values["start utc_offset"] == offset_text(f.start, f.tz)
    assert values["end (exclusive) utc_offset"] == offset_text(f.end, f.tz)
    assert values["time zone"] == f.tz
    assert values["granularity"] == f.granularity
    assert values["tenants"] == (", ".join(f.tenants) or "all")
    assert values["algorithms"] == (", ".join(f.algorithms) or "all")
    assert values["endpoints"] == (", ".join(f.endpoints) or "all")
    assert values["data source"] == data.source_note
    assert values["currency"] == data.currency
    generated = data.generated_at.astimezone(z).replace(tzinfo=None, microsecond=0)
    assert values["generated at"] == generated
    assert values["generated at utc_offset"] == offset_text(data.generated_at, f.tz)
    assert values["app version"] == version("anomaly-analytics")
    return values


def expected_sheets(data: PageData, prefix: str = "") -> list[str]:
    names = [prefix + "KPIs", *(prefix + name for name in data.series)]
    if data.insights or data.page in ("overview", "insights"):
        names.append(prefix + "Insights")
    names += [prefix + f"Evidence {n}" for n, i in enumerate(data.insights, start=1)
              if i.evidence is not None]  # fmt: skip
    return names


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("page", PAGES)
def test_page_workbook_holds_the_page_data(pages, page):
    data = pages[page]
    blob = page_workbook(data)
    book = read(blob)
    assert book.sheetnames == ["Filters", *expected_sheets(data)]
    check_filters(book["Filters"], data, ("page", page))
    check_kpis(book["KPIs"], data)
    for name, frame in data.series.items():
        check_table_sheet(book[name], frame)
    if data.insights or page in ("overview", "insights"):
        check_insights(book, data)
    # The same page gives the same bytes (the workbook's dates are the page's).
    assert page_workbook(data) == blob
    assert book.properties.created == data.generated_at.astimezone(UTC).replace(tzinfo=None)


def test_fixture_pages_exercise_changes_insights_and_evidence(pages):
    """The checks above ran on something: comparable KPIs with p-values, insights with
    and without evidence, every kind of format."""
    business = pages["business"]
    assert any(c.p_value is not None for c in business.changes.values())
    assert any(v not in (None, 0) for v in business.previous.values())
    feed = pages["insights"].insights
    assert any(i.evidence is not None for i in feed) and any(i.evidence is None for i in feed)
    columns = {c for data in pages.values() for f in data.series.values() for c in f.columns}
    assert {"cost", "p95_ms", "error_rate", "requests", "bucket", "partial"} <= columns


def test_dashboard_workbook_groups_the_pages(pages):
    datas = [pages[p] for p in PAGES]
    book = read(dashboard_workbook(datas))
    want = ["Filters"]
    for data in datas:
        want += expected_sheets(data, PAGE_TITLES[data.page] + " ")
    assert book.sheetnames == want
    assert len({n.lower() for n in book.sheetnames}) == len(book.sheetnames)
    for name in book.sheetnames:
        assert len(name) <= 31 and not re.search(r"[\[\]:*?/\\]", name)
    values = check_filters(book["Filters"], datas[0], ("pages", ", ".join(PAGES)))
    assert values["generated at"] == NOW.astimezone(ZoneInfo(TZ)).replace(tzinfo=None)
    for data in datas:
        prefix = PAGE_TITLES[data.page] + " "
        check_kpis(book[prefix + "KPIs"], data)
        for name, frame in data.series.items():
            check_table_sheet(book[prefix + name], frame)
        if data.page in ("overview", "insights"):
            check_insights(book, data, prefix)


def test_dashboard_refuses_pages_of_different_filters(pages, duckdb_url):
    other = build(duckdb_url, "business", FIRST, LAST, tz="UTC")
    with pytest.raises(ValueError, match="business"):
        dashboard_workbook([pages["overview"], other])
    with pytest.raises(ValueError):
        dashboard_workbook([])


def test_tenant_filter_is_on_the_filters_sheet(duckdb_url):
    data = build(duckdb_url, "business", FIRST, LAST, tenants=("t_a",))
    book = read(page_workbook(data))
    values = check_filters(book["Filters"], data, ("page", "business"))
    assert values["tenants"] == "t_a" and "tenant t_a only" in values["range"]
    check_kpis(book["KPIs"], data)
    for name, frame in data.series.items():
        check_table_sheet(book[name], frame)


def test_dst_fall_back_hours_stay_distinct(duckdb_url):
    """2026-10-25 in Paris: 02:00 happens twice. Both rows are there, same wall time,
    told apart by their offsets; an empty table is a header with its autofilter."""
    data = build(duckdb_url, "performance", date(2026, 10, 24), date(2026, 10, 26),
                 granularity="hour", now=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    book = read(page_workbook(data))
    trend = data.series["performance_trend"]
    assert len(trend) == 73  # 24 + 25 + 24 hours
    check_table_sheet(book["performance_trend"], trend)
    ws = book["performance_trend"]
    twice = [r for r in rows_of(ws) if r[0].value == datetime(2026, 10, 25, 2, 0)]
    assert [r[1].value for r in twice] == ["+02:00", "+01:00"]
    assert data.series["by_endpoint"].empty
    empty = book["by_endpoint"]
    assert header(empty) == list(data.series["by_endpoint"].columns)
    assert empty.max_row == 1 and empty.auto_filter.ref == "A1:K1"
    assert empty.freeze_panes == "A2"


def hand_page(tz: str = "America/New_York", **series: pd.DataFrame) -> PageData:
    """A page the fixture cannot give: a DST fall-back night in New York, odd values, an
    insight whose evidence has no KPI, and tables of mixed kinds."""
    start, end = datetime(2026, 10, 31, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC)
    filters = make_filters(start, end, tz, "hour")
    buckets = pd.date_range("2026-11-01T04:00Z", periods=4, freq="h").tz_convert(tz)
    trend = pd.DataFrame(
        {
            "bucket": buckets,
            "requests": [10, 0, 5, 7],
            "error_rate": [0.1, np.nan, 0.2, 0.0],
            "p95_ms": [120.5, np.nan, 99.0, 1e6],
            "cost": [0.5, 1.25, np.nan, 3.0],
            "partial": [False, False, False, True],
        }
    )
    mixed = pd.DataFrame(
        {
            "name": ["=1+1", "http://example.com", None],
            "amount": pd.Series([Decimal("1.5"), 2, None], dtype=object),
            "rows": pd.Series([3, None, 5], dtype="Int64"),
            "extra": [{"a": 1}, [1, 2], "text"],
        }
    )
    gauges = pd.DataFrame(
        {"label": ["CPU usage (api)", "Memory"], "kpi": ["cpu_usage", "memory_bytes"],
         "value": [0.42, 3.5e9]}
    )  # fmt: skip
    evidence = pd.DataFrame({"bucket": buckets, "value": [1.0, 2.0, np.nan, 4.0]})
    insights = [
        Insight("anomaly", "performance", None, "firing", "warning", 0.7, "Odd hour.",
                details={"value": 3.5, "when": ["2026-11-01T01:00:00-04:00"], "ratio": np.nan},
                evidence=evidence),
        Insight("threshold", "performance", "p95_ms", "ok", "info", 0.1, "Fine.",
                details={"value": 99.0}),
    ]  # fmt: skip
    return PageData(
        page="performance",
        filters=filters,
        generated_at=datetime(2026, 11, 2, 6, 0, 30, tzinfo=UTC),
        kpis={"requests": 22, "p95_ms": 120.5, "error_rate": None},
        previous={"requests": 0, "p95_ms": 100.0, "error_rate": 0.1},
        series={
            "performance_trend": trend,
            "mixed": mixed,
            "resources_gauges": gauges,
            **series,
        },  # fmt: skip
        insights=insights,
        currency="EUR",
        changes={
            "requests": Change(22.0, 0.0, 22.0, None, 1e-6, True, "exact"),
            "p95_ms": Change(120.5, 100.0, 20.5, 0.205, 0.3, False, "mwu"),
            "error_rate": Change(None, 0.1, None, None, None, False, "two-proportion"),
        },
        source_note=None,
    )


def test_hand_built_page_types_and_formats():
    data = hand_page()
    book = read(page_workbook(data))
    assert book.sheetnames == ["Filters", "KPIs", "performance_trend", "mixed",
                               "resources_gauges", "Insights", "Evidence 1"]  # fmt: skip
    kpis = {r[0].value: r for r in rows_of(book["KPIs"])}
    # Previous 0: no relative change; a missing value: empty cells, not 0.
    assert kpis["requests"][4].value is None and kpis["requests"][6].value is True
    assert kpis["p95_ms"][4].value == pytest.approx(0.205) and kpis["p95_ms"][2].number_format == MS
    assert kpis["error_rate"][2].value is None and kpis["error_rate"][3].value == 0.1
    assert kpis["error_rate"][5].value is None and kpis["error_rate"][6].value is False

    ws = book["performance_trend"]
    assert header(ws)[:2] == ["bucket (America/New_York)", "utc_offset"]
    body = rows_of(ws)
    # 01:00 twice (EDT, then EST), each bucket's own offset.
    assert [r[0].value for r in body] == [datetime(2026, 11, 1, h) for h in (0, 1, 1, 2)]
    assert [r[1].value for r in body] == ["-04:00", "-04:00", "-05:00", "-05:00"]
    trend = data.series["performance_trend"]
    assert [r[3].value for r in body] == [0.1, None, 0.2, 0.0]
    assert body[0][3].number_format == PERCENT and body[0][4].number_format == MS
    assert body[0][5].number_format == "[$EUR] #,##0.00" and body[0][5].value == 0.5
    assert [r[6].value for r in body] == trend["partial"].tolist()

    mixed = rows_of(book["mixed"])
    # Text that looks like a formula or a link stays text.
    assert mixed[0][0].value == "=1+1" and mixed[0][0].data_type == "s"
    assert mixed[1][0].value == "http://example.com" and mixed[1][0].hyperlink is None
    assert [r[1].value for r in mixed] == [1.5, 2, None]
    assert [r[2].value for r in mixed] == [3, None, 5]
    assert mixed[0][2].number_format == COUNT
    assert json.loads(mixed[0][3].value) == {"a": 1} and json.loads(mixed[1][3].value) == [1, 2]

    gauges = rows_of(book["resources_gauges"])  # each row in its own KPI's unit
    assert [r[2].number_format for r in gauges] == [PERCENT, '#,##0 "B"']

    insights = rows_of(book["Insights"])
    head = header(book["Insights"])
    first = dict(zip(head, insights[0], strict=True))
    assert json.loads(first["details"].value) == {
        "value": 3.5, "when": ["2026-11-01T01:00:00-04:00"], "ratio": None,
    }  # fmt: skip
    assert first["value"].number_format == "General"  # no KPI, no unit
    assert first["evidence"].value == "Evidence 1"
    second = dict(zip(head, insights[1], strict=True))
    assert second["value"].number_format == MS and second["evidence"].value is None
    check_table_sheet(book["Evidence 1"], data.insights[0].evidence, "America/New_York")

    values = {r[0].value: r[1].value for r in rows_of(book["Filters"])}
    assert values["start"] == datetime(2026, 10, 31, 0, 0)
    assert values["end (exclusive)"] == datetime(2026, 11, 2, 0, 0)
    assert values["start utc_offset"] == "-04:00"
    assert values["end (exclusive) utc_offset"] == "-05:00"
    assert values["generated at"] == datetime(2026, 11, 2, 1, 0, 30)
    assert values["data source"] is None and values["currency"] == "EUR"


def test_a_table_past_the_row_limit_says_so(monkeypatch):
    monkeypatch.setattr(export_xlsx, "EXCEL_MAX_ROWS", 12)
    buckets = pd.date_range("2026-01-01", periods=25, freq="h", tz="UTC")
    long = pd.DataFrame({"bucket": buckets, "requests": range(25)})
    exact = long.iloc[:11]  # header + 11 rows: just fits
    data = hand_page(long_one=long, exact_one=exact)
    assert over_limit(data) == {"long_one": 25}
    book = read(page_workbook(data))

    ws = book["long_one"]
    note = ws["A1"].value
    assert note == (
        "This table has 25 rows; a sheet holds 10: rows from 11 on are not here. "
        "Download CSV for all of them."
    )
    assert ws.max_row == 12  # note, header, 10 rows: nothing past the limit
    check_table_sheet(ws, long.iloc[:10], "America/New_York", top=2)

    fits = book["exact_one"]
    check_table_sheet(fits, exact, "America/New_York")
    assert fits.max_row == 12 and fits["A1"].value == "bucket (America/New_York)"


def test_row_limit_is_excels():
    assert EXCEL_MAX_ROWS == 1_048_576 == export_xlsx._max_rows()


def test_table_workbook_writes_the_audit_log(monkeypatch):
    at = pd.Series(
        [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
         None], dtype="datetime64[us, UTC]",
    )  # fmt: skip
    frame = pd.DataFrame(
        {
            "at": at,
            "user": pd.Series(["ann", "bob", "=cmd|' /C calc'!A0"], dtype="str"),
            "rows": pd.Series([120, None, 3], dtype="Int64"),
        }
    )
    start, end = date_range(date(2026, 10, 24), date(2026, 10, 25), TZ)
    filters = make_filters(start, end, TZ, "hour")
    when = datetime(2026, 10, 26, 9, tzinfo=UTC)
    blob = table_workbook("audit", frame, filters, note="newest 3 entries", generated_at=when)
    assert blob == table_workbook("audit", frame, filters, "newest 3 entries", generated_at=when)
    book = read(blob)
    assert book.sheetnames == ["Filters", "audit"]
    ws = book["audit"]
    assert header(ws) == [f"at ({TZ})", "utc_offset", "user", "rows"]
    body = rows_of(ws)
    # 02:30 CEST, then 02:30 CET: the same wall time, one hour apart.
    assert [r[0].value for r in body] == [datetime(2026, 10, 25, 2, 30)] * 2 + [None]
    assert [r[1].value for r in body] == ["+02:00", "+01:00", None]
    assert [r[2].value for r in body] == ["ann", "bob", "=cmd|' /C calc'!A0"]
    assert body[2][2].data_type == "s"
    assert [r[3].value for r in body] == [120, None, 3] and body[0][3].number_format == COUNT
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == "A1:D4"
    values = {r[0].value: r[1].value for r in rows_of(book["Filters"])}
    assert values["table"] == "audit" and values["note"] == "newest 3 entries"
    assert values["generated at"] == datetime(2026, 10, 26, 10, 0)
    assert values["range"] == filters.describe()

    monkeypatch.setattr(export_xlsx, "EXCEL_MAX_ROWS", 3)
    cut = read(table_workbook("audit", frame, filters))["audit"]
    assert cut["A1"].value.startswith("This table has 3 rows; a sheet holds 1:")
    assert cut.max_row == 3


def test_sheet_names_are_valid_unique_and_deterministic():
    taken: set[str] = set()
    long = "Performance bottleneck_endpoints_by_hour"
    names = [sheet_name(n, taken) for n in
             (long, long, long + "x", "a/b:c*d?e[f]g\\h", "'quoted'", "", "history", "kpis",
              "KPIs", "x" * 29 + "😀")]  # fmt: skip
    assert names[0] == long[:31]
    assert names[1] == long[:27] + " (2)" and names[2] == long[:27] + " (3)"
    assert names[3] == "a_b_c_d_e_f_g_h"
    assert names[4] == "quoted" and names[5] == "Sheet" and names[6] == "history_"
    assert names[7] == "kpis" and names[8] == "KPIs (2)"  # Excel ignores case
    assert names[9] == "x" * 29 + "😀"  # 31 UTF-16 units
    assert len({n.lower() for n in names}) == len(names)
    for name in names:
        assert len(name.encode("utf-16-le")) // 2 <= 31
    again: set[str] = set()
    assert [sheet_name(n, again) for n in (long, long, long + "x")] == names[:3]
    # openpyxl takes every one of them.
    book = openpyxl.Workbook()
    for name in names:
        book.create_sheet(name)


def test_page_workbook_values_are_not_strings(pages):
    """No number or date of a series is written as text."""
    data = pages["performance"]
    ws = read(page_workbook(data))["performance_trend"]
    kinds = {c.data_type for r in rows_of(ws) for c in r if c.value is not None}
    frame = data.series["performance_trend"]
    assert kinds == {"d", "s", "n", "b"}
    strings = {c.value for r in rows_of(ws) for c in r if c.data_type == "s"}
    assert strings == {offset_text(t) for t in frame["bucket"]}


def test_generated_at_days_later_keeps_its_offset():
    data = hand_page(tz="Europe/Paris")
    later = replace(data, generated_at=data.generated_at + timedelta(days=1))
    values = {r[0].value: r[1].value for r in rows_of(read(page_workbook(later))["Filters"])}
    assert values["generated at"] == datetime(2026, 11, 3, 7, 0, 30)
    assert values["generated at utc_offset"] == "+01:00"


def test_every_time_column_gets_its_zone_and_offset():
    """Typed aware times, naive ones (stored as UTC) and aware datetimes in an object
    column: each written in the filters' zone with its own offset column."""
    paris = ZoneInfo(TZ)
    frame = pd.DataFrame(
        {
            "opened": pd.Series(pd.to_datetime(["2026-10-25T00:30Z", "2026-10-25T01:30Z"])),
            "naive": pd.Series(pd.to_datetime(["2026-10-25T00:30", "2026-10-25T01:30"])),
            "seen": pd.Series(
                [
                    datetime(2026, 10, 25, 2, 30, tzinfo=paris).replace(fold=1),
                    datetime(2026, 10, 24, 20, 30, tzinfo=ZoneInfo("America/New_York")),
                ],
                dtype=object,
            ),  # fmt: skip
        }
    )
    start, end = date_range(date(2026, 10, 24), date(2026, 10, 25), TZ)
    ws = read(table_workbook("t", frame, make_filters(start, end, TZ, "hour")))["t"]
    assert header(ws) == [
        f"opened ({TZ})", "opened_utc_offset", f"naive ({TZ})", "naive_utc_offset",
        f"seen ({TZ})", "seen_utc_offset",
    ]  # fmt: skip
    body = [[c.value for c in r] for r in rows_of(ws)]
    wall = datetime(2026, 10, 25, 2, 30)
    assert body == [
        [wall, "+02:00", wall, "+02:00", wall, "+01:00"],
        [wall, "+01:00", wall, "+01:00", wall, "+02:00"],  # 20:30 in New York: 00:30 UTC
    ]
