"""Excel workbooks of a page, of the whole dashboard, and of one table (the audit log),
built from the same PageData the UI shows (XlsxWriter).

A page's workbook: a ``Filters`` sheet (the range in the chosen zone, zone, granularity,
filters, data source, generated at, app version), ``KPIs`` (value, previous, relative
change, p-value, significance), a sheet per series or table, ``Insights`` (one row per
insight, its details as JSON, its evidence sheet named) and ``Evidence <n>`` (the
evidence of insight ``n``). The whole dashboard: one ``Filters`` sheet, then per page
the same sheets named ``<Page> KPIs``, ``<Page> <series>``, ... (:func:`sheet_name`
keeps every name valid and unique).

Cells hold real values: numbers with number formats by unit (percent, ms, currency,
counts), booleans, and datetimes. Excel has no time zones, so aware times are written
as the wall time in the filters' zone (the header names it) with a ``utc_offset`` text
column beside each, so the two 01:00 buckets of a DST fall-back night stay distinct.
Every table sheet has a bold, frozen header row, an autofilter and widths from content.
A table longer than a sheet holds says so in its first row (nothing is cut silently):
the CSV export has all of it.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from analytics_core.filters import Filters, zone
from analytics_core.insights import Insight
from analytics_core.kpis import KPIS, base_column, column_def
from analytics_core.page_data import PageData

# Rows in one Excel sheet. Read through _max_rows() so tests can lower it.
EXCEL_MAX_ROWS = 1_048_576
MAX_COLUMN_WIDTH = 60
MIN_COLUMN_WIDTH = 6
# Column widths are measured on the first rows only: a million rows need no more.
WIDTH_SAMPLE_ROWS = 2000
MAX_SHEET_NAME = 31
MAX_CELL_TEXT = 32_767  # Excel's limit on the characters of one cell

DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
SECONDS_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
COUNT_FORMAT = "#,##0"
PERCENT_FORMAT = "0.00%"
SCORE_FORMAT = "0.00"
UNIT_FORMATS: dict[str, str] = {
    "count": COUNT_FORMAT,
    "ratio": PERCENT_FORMAT,
    "ms": '#,##0.0 "ms"',
    "rps": '#,##0.0000 "req/s"',
    "gb": '#,##0.000 "GB"',
    "bytes": '#,##0 "B"',
    "minutes": '#,##0.0 "min"',
    "hours": '#,##0.00 "h"',
    # "money": currency_format(code)
}
# Columns whose unit the KPI catalogue (kpis.column_def) does not know.
NAME_UNITS: dict[str, str] = {
    "events": "count",
    "rows": "count",
    "compute_hours": "hours",
    "cost": "money",
}
# Name endings (after any ``_before``) that say a column's unit.
SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    ("_ms", "ms"),
    ("_rate", "ratio"),
    ("_ratio", "ratio"),
    ("_share", "ratio"),
    ("_gb", "gb"),
    ("_bytes", "bytes"),
    ("_minutes", "minutes"),
    ("_cost", "money"),
)
# Columns of evidence frames (and of tables with a ``kpi`` column) holding the KPI's
# own figures: formatted in that KPI's unit.
KPI_VALUE_COLUMNS = ("value", "baseline", "lower", "upper", "threshold", "forecast", "unjudged")
# Pages whose insight feed is shown: their workbooks have an Insights sheet, even empty.
FEED_PAGES = ("overview", "insights")

_INVALID_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def _max_rows() -> int:
    return EXCEL_MAX_ROWS


# ---------------------------------------------------------------------------- public


def page_workbook(data: PageData) -> bytes:
    """One page as a workbook: Filters, KPIs, each series, Insights and their evidence."""
    book = _Book(data.generated_at, title=f"{_page_title(data.page)} ({data.filters.tz})")
    _filters_sheet(
        book,
        data.filters,
        [("page", data.page)],
        generated_at=data.generated_at,
        source=data.source_note,
        currency=data.currency,
    )
    _page_sheets(book, data, prefix="")
    return book.close()


def dashboard_workbook(pages: Sequence[PageData]) -> bytes:
    """Several pages for the same filters in one workbook: one Filters sheet, then per
    page a group of sheets named ``<Page> KPIs``, ``<Page> <series>``, ..."""
    if not pages:
        raise ValueError("a dashboard workbook needs at least one page")
    filters = pages[0].filters
    differing = [p.page for p in pages if p.filters != filters]
    if differing:
        raise ValueError(
            f"the pages of one workbook share their filters; {', '.join(differing)} differ"
        )
    generated_at = max(p.generated_at for p in pages)
    notes = list(dict.fromkeys(p.source_note for p in pages if p.source_note))
    book = _Book(generated_at, title=f"Dashboard ({filters.tz})")
    _filters_sheet(
        book,
        filters,
        [("pages", ", ".join(p.page for p in pages))],
        generated_at=generated_at,
        source="\n".join(notes) or None,
        currency=pages[0].currency,
    )
    for data in pages:
        _page_sheets(book, data, prefix=_page_title(data.page) + " ")
    return book.close()


def table_workbook(
    name: str,
    frame: pd.DataFrame,
    filters: Filters,
    note: str | None = None,
    *,
    generated_at: datetime | None = None,
) -> bytes:
    """One table (e.g. the audit log) and a Filters sheet; ``note`` (e.g. that only the
    newest entries are listed) goes on the Filters sheet."""
    generated_at = generated_at or datetime.now(UTC)
    book = _Book(generated_at, title=name)
    extra = [("note", note)] if note else []
    _filters_sheet(
        book,
        filters,
        [("table", name)],
        generated_at=generated_at,
        source=None,
        currency=None,
        extra=extra,
    )
    _write_frame(book, book.name(name), frame, filters.tz, "USD")
    return book.close()


def over_limit(data: PageData) -> dict[str, int]:
    """The tables of ``data`` longer than a sheet holds (name: rows): their sheets start
    with a note, and the UI should offer the CSV export, which has every row."""
    tables = dict(data.series)
    for n, insight in enumerate(data.insights, start=1):
        if insight.evidence is not None:
            tables[f"Evidence {n}"] = insight.evidence
    return {name: len(f) for name, f in tables.items() if len(f) > _capacity(len(f))}


def sheet_name(wanted: str, taken: set[str]) -> str:
    """A valid Excel sheet name for ``wanted``, not in ``taken`` (compared ignoring case,
    as Excel does), and added to it: ``[]:*?/\\`` become ``_``, leading and trailing
    apostrophes go, at most 31 characters (UTF-16 units), and a repeat gets `` (2)``,
    `` (3)``, ... within those 31. Deterministic: the same calls give the same names."""
    name = _INVALID_SHEET_CHARS.sub("_", wanted).strip().strip("'").strip()
    if not name:
        name = "Sheet"
    if name.lower() == "history":  # Excel reserves it
        name += "_"
    lowered = {t.lower() for t in taken}
    candidate = _cut_utf16(name, MAX_SHEET_NAME).rstrip().rstrip("'")
    n = 1
    while candidate.lower() in lowered:
        n += 1
        suffix = f" ({n})"
        candidate = _cut_utf16(name, MAX_SHEET_NAME - len(suffix)).rstrip().rstrip("'") + suffix
    taken.add(candidate)
    return candidate


def currency_format(code: str) -> str:
    """The number format of an amount in ``code`` (e.g. ``[$USD] #,##0.00``)."""
    if re.fullmatch(r"[A-Za-z]{1,8}", code):
        return f"[${code}] #,##0.00"
    shown = code.replace('"', "").replace("\\", "")
    return f'#,##0.00 "{shown}"'


def unit_format(unit: str | None, currency: str) -> str | None:
    """The number format of a KPI unit (kpis.Unit, or "hours"); None for plain numbers."""
    if unit == "money":
        return currency_format(currency)
    return UNIT_FORMATS.get(unit) if unit else None


def column_unit(column: str) -> str | None:
    """The unit of a series or table column, by name: the explicit NAME_UNITS, then the
    KPI catalogue (``p95_ms``, ``share``, ``<figure>_before``...), then the endings in
    SUFFIX_UNITS; None for keys, labels and plain numbers."""
    base = base_column(column)
    if base in NAME_UNITS:
        return NAME_UNITS[base]
    found = column_def(column)
    if found is not None:
        return found.unit
    if base == "availability" or base.startswith("share"):
        return "ratio"
    for suffix, unit in SUFFIX_UNITS:
        if base.endswith(suffix):
            return unit
    return None


def utc_offset(moment: datetime) -> str:
    """``+02:00``-style offset of an aware datetime."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def app_version() -> str:
    try:
        return version("anomaly-analytics")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------- workbook


@dataclass(frozen=True)
class _Link:
    """A cell naming another sheet of the workbook, linked to it."""

    sheet: str


@dataclass
class _Column:
    header: str
    values: Sequence[object]  # None, bool, int/float, naive datetime, date, str or _Link
    # One number format for the column, or one per row (None: General; datetimes get
    # DATETIME_FORMAT unless one is given).
    number_format: str | None | Sequence[str | None] = None


@dataclass
class _Book:
    generated_at: datetime
    title: str
    buffer: io.BytesIO = field(default_factory=io.BytesIO)
    taken: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.workbook = xlsxwriter.Workbook(
            self.buffer,
            {
                # Rows go to disk as they are written: a million-row sheet fits in memory.
                "constant_memory": True,
                # Text is text: no formulas or links made out of cells starting "=" / "http".
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "nan_inf_to_errors": True,  # ±inf (NaN is written as an empty cell)
            },
        )
        created = _as_utc(self.generated_at).replace(tzinfo=None)
        self.workbook.set_properties({"title": self.title, "created": created})
        self._formats: dict[tuple[str | None, bool], Format] = {}

    def format(self, number_format: str | None = None, bold: bool = False) -> Format | None:
        if number_format is None and not bold:
            return None
        key = (number_format, bold)
        if key not in self._formats:
            props: dict[str, object] = {"bold": bold} if bold else {}
            if number_format is not None:
                props["num_format"] = number_format
            self._formats[key] = self.workbook.add_format(props)
        return self._formats[key]

    def name(self, wanted: str) -> str:
        return sheet_name(wanted, self.taken)

    def close(self) -> bytes:
        self.workbook.close()
        return self.buffer.getvalue()


def _capacity(rows: int) -> int:
    """Data rows a sheet holds for a table of ``rows``: all below the header when they
    fit, else the rest after the note row and the header."""
    limit = _max_rows()
    return rows if rows <= limit - 1 else limit - 2


def _limit_note(rows: int, fits: int) -> str:
    return (
        f"This table has {rows:,} rows; a sheet holds {fits:,}: rows from {fits + 1:,} on "
        "are not here. Download CSV for all of them."
    )


def _write_sheet(book: _Book, name: str, columns: list[_Column], rows: int) -> Worksheet:
    """A table sheet: [limit note], bold frozen header, the rows that fit, autofilter,
    widths from content."""
    ws = book.workbook.add_worksheet(name)
    fits = _capacity(rows)
    header_row = 0
    if fits < rows:
        ws.write_string(0, 0, _limit_note(rows, fits), book.format(bold=True))
        header_row = 1
    if not columns:
        ws.write_string(header_row, 0, "(no columns)", book.format(bold=True))
        ws.freeze_panes(header_row + 1, 0)
        return ws
    bold = book.format(bold=True)
    for c, column in enumerate(columns):
        ws.write_string(header_row, c, column.header, bold)
        ws.set_column(c, c, _width(column, fits))
    cell_formats = [_cell_formats(book, column, fits) for column in columns]
    for r in range(fits):
        row = header_row + 1 + r
        for c, column in enumerate(columns):
            _write_cell(book, ws, row, c, column.values[r], cell_formats[c](r))
    ws.freeze_panes(header_row + 1, 0)
    ws.autofilter(header_row, 0, header_row + fits, len(columns) - 1)
    return ws


def _write_frame(
    book: _Book,
    name: str,
    frame: pd.DataFrame,
    tz: str,
    currency: str,
    value_unit: str | None = None,
) -> None:
    """A frame's sheet; only the rows that fit are converted."""
    shown = frame.iloc[: _capacity(len(frame))]
    _write_sheet(book, name, _frame_columns(shown, tz, currency, value_unit), len(frame))


def _cell_formats(book: _Book, column: _Column, rows: int):
    spec = column.number_format
    if spec is None or isinstance(spec, str):
        fmt = book.format(spec)
        return lambda r: fmt
    formats = [book.format(f) for f in spec[:rows]]
    return lambda r: formats[r]


def _write_cell(
    book: _Book, ws: Worksheet, row: int, col: int, value: object, fmt: Format | None
) -> None:
    if value is None or (isinstance(value, str) and not value):
        return
    if isinstance(value, bool):
        ws.write_boolean(row, col, value, fmt)
    elif isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return
        ws.write_number(row, col, value, fmt)
    elif isinstance(value, datetime | date):
        ws.write_datetime(row, col, value, fmt or book.format(_date_format(value)))
    elif isinstance(value, _Link):
        ws.write_url(row, col, f"internal:{_quoted(value.sheet)}!A1", fmt, string=value.sheet)
    else:
        ws.write_string(row, col, _cell_text(str(value)), fmt)


def _date_format(value: datetime | date) -> str:
    if not isinstance(value, datetime):
        return DATE_FORMAT
    return SECONDS_FORMAT if value.second or value.microsecond else DATETIME_FORMAT


def _quoted(sheet: str) -> str:
    return "'" + sheet.replace("'", "''") + "'"


def _cell_text(text: str) -> str:
    if len(text) <= MAX_CELL_TEXT:
        return text
    tail = f"… [cut: {len(text):,} characters in all; the JSON export has every one]"
    return text[: MAX_CELL_TEXT - len(tail)] + tail


def _width(column: _Column, rows: int) -> float:
    spec = column.number_format
    longest = 0
    for r in range(min(rows, WIDTH_SAMPLE_ROWS)):
        fmt = spec if spec is None or isinstance(spec, str) else spec[r]
        longest = max(longest, _shown_length(column.values[r], fmt))
    # Room for the autofilter's arrow beside the header.
    return float(min(MAX_COLUMN_WIDTH, max(MIN_COLUMN_WIDTH, len(column.header) + 4, longest + 2)))


def _shown_length(value: object, fmt: str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, datetime):
        return 19 if fmt == SECONDS_FORMAT or value.second else 16
    if isinstance(value, date):
        return 10
    if isinstance(value, _Link):
        return len(value.sheet)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return 7
        if fmt and fmt.endswith("%"):
            return len(f"{value * 100:,.2f}%")
        if fmt:
            decimals = len(fmt.split(".", 1)[1].split(" ")[0]) if "." in fmt else 0
            suffix = re.findall(r'"([^"]*)"|\[\$([^\]]*)\]', fmt)
            extra = sum(len(a or b) + 1 for a, b in suffix)
            return len(f"{value:,.{decimals}f}") + extra
        return len(f"{value:.10g}")
    return max((len(line) for line in str(value).splitlines()), default=0)


# ---------------------------------------------------------------------------- sheets


def _page_title(page: str) -> str:
    return page.replace("_", " ").capitalize()


def _filters_sheet(
    book: _Book,
    filters: Filters,
    what: list[tuple[str, object]],
    *,
    generated_at: datetime,
    source: str | None,
    currency: str | None,
    extra: list[tuple[str, object]] | None = None,
) -> None:
    z = zone(filters.tz)
    rows: list[tuple[str, object, str | None]] = [(k, v, None) for k, v in what]
    rows.append(("range", filters.describe(), None))
    for label, moment in (("start", filters.start), ("end (exclusive)", filters.end)):
        local = _as_utc(moment).astimezone(z)
        rows.append((label, local.replace(tzinfo=None), DATETIME_FORMAT))
        rows.append((f"{label} utc_offset", utc_offset(local), None))
    rows += [
        ("time zone", filters.tz, None),
        ("granularity", filters.granularity, None),
        ("tenants", ", ".join(filters.tenants) or "all", None),
        ("algorithms", ", ".join(filters.algorithms) or "all", None),
        ("endpoints", ", ".join(filters.endpoints) or "all", None),
        ("data source", source, None),
    ]
    if currency is not None:
        rows.append(("currency", currency, None))
    made = _as_utc(generated_at).astimezone(z)
    rows.append(("generated at", made.replace(tzinfo=None, microsecond=0), SECONDS_FORMAT))
    rows.append(("generated at utc_offset", utc_offset(made), None))
    rows.append(("app version", app_version(), None))
    rows += [(k, v, None) for k, v in extra or []]
    columns = [
        _Column("field", [r[0] for r in rows]),
        _Column(f"value (times in {filters.tz})", [r[1] for r in rows], [r[2] for r in rows]),
    ]
    _write_sheet(book, book.name("Filters"), columns, len(rows))


def _page_sheets(book: _Book, data: PageData, prefix: str) -> None:
    tz, currency = data.filters.tz, data.currency
    # Names first, in sheet order: the Insights rows link to their evidence sheets.
    kpi_sheet = book.name(prefix + "KPIs")
    series_sheets = {key: book.name(prefix + key) for key in data.series}
    insights_sheet = (
        book.name(prefix + "Insights") if data.insights or data.page in FEED_PAGES else None
    )
    evidence_sheets = {
        n: book.name(f"{prefix}Evidence {n}")
        for n, insight in enumerate(data.insights, start=1)
        if insight.evidence is not None
    }
    _write_sheet(book, kpi_sheet, _kpi_columns(data), len(data.kpis))
    for key, frame in data.series.items():
        _write_frame(book, series_sheets[key], frame, tz, currency)
    if insights_sheet is not None:
        columns = _insight_columns(data.insights, evidence_sheets, tz, currency)
        _write_sheet(book, insights_sheet, columns, len(data.insights))
    for n, sheet in evidence_sheets.items():
        insight = data.insights[n - 1]
        evidence = insight.evidence
        assert evidence is not None
        unit = KPIS[insight.kpi].unit if insight.kpi in KPIS else None
        _write_frame(book, sheet, evidence, tz, currency, value_unit=unit)


def relative_change(value: object, previous: object) -> float | None:
    """``(value - previous) / |previous|``; None when either is missing or previous is 0."""
    cur, prev = _number(value), _number(previous)
    if cur is None or prev is None or prev == 0:
        return None
    return (cur - prev) / abs(prev)


def _kpi_columns(data: PageData) -> list[_Column]:
    keys = list(data.kpis)
    units = [KPIS[k].unit if k in KPIS else None for k in keys]
    formats = [unit_format(u, data.currency) for u in units]
    changes = [data.changes.get(k) for k in keys]
    return [
        _Column("kpi", keys),
        _Column("label", [KPIS[k].label if k in KPIS else k for k in keys]),
        _Column("value", [_number(data.kpis[k]) for k in keys], formats),
        _Column("previous", [_number(data.previous.get(k)) for k in keys], formats),
        _Column(
            "change",
            [
                relative_change(data.kpis[k], data.previous.get(k))
                if c is None
                else _number(c.pct_change)
                for k, c in zip(keys, changes, strict=True)
            ],
            PERCENT_FORMAT,
        ),
        _Column("p_value", [None if c is None else _number(c.p_value) for c in changes]),
        _Column("significant", [None if c is None else bool(c.significant) for c in changes]),
        _Column("unit", [u or "" for u in units]),
        _Column("test", [None if c is None else c.method for c in changes]),
    ]


def _insight_columns(
    insights: list[Insight], evidence_sheets: dict[int, str], tz: str, currency: str
) -> list[_Column]:
    # Every field of the record in its order, but the details (JSON, after) and evidence.
    names = [f.name for f in fields(Insight) if f.name not in ("details", "evidence")]
    columns = [_Column("#", list(range(1, len(insights) + 1)))]
    for key in names:
        values = [_cell_value(getattr(i, key), tz) for i in insights]
        columns.append(_Column(key, values, SCORE_FORMAT if key == "score" else None))
    units = [KPIS[i.kpi].unit if i.kpi in KPIS else None for i in insights]
    columns.append(
        _Column(
            "value",
            [_number(i.details.get("value")) for i in insights],
            [unit_format(u, currency) for u in units],
        )
    )
    columns.append(_Column("details", [_json(i.details, tz) for i in insights]))
    columns.append(
        _Column(
            "evidence",
            [
                _Link(evidence_sheets[n]) if n in evidence_sheets else None
                for n in range(1, len(insights) + 1)
            ],
        )
    )
    return columns


def _frame_columns(
    frame: pd.DataFrame, tz: str, currency: str, value_unit: str | None = None
) -> list[_Column]:
    """A frame's columns as cells: aware times as wall time in ``tz`` plus their offset,
    numbers with their unit's format, everything else as text."""
    z = zone(tz)
    # By position: a frame may repeat a column name.
    all_series = [frame.iloc[:, i] for i in range(frame.shape[1])]
    times = [_utc_times(series) for series in all_series]
    several = sum(t is not None for t in times) > 1
    row_units = None
    if "kpi" in frame.columns:  # e.g. the resource gauges: each row its own KPI
        row_units = [KPIS[k].unit if isinstance(k, str) and k in KPIS else None
                     for k in frame["kpi"]]  # fmt: skip
    columns: list[_Column] = []
    for name, series, utc in zip(frame.columns, all_series, times, strict=True):
        label = str(name)
        if utc is not None:
            local = utc.dt.tz_convert(z)
            columns.append(_Column(f"{label} ({tz})", _naive_times(local), _times_format(local)))
            offset = f"{label}_utc_offset" if several else "utc_offset"
            columns.append(_Column(offset, [None if pd.isna(t) else utc_offset(t) for t in local]))
            continue
        if pd.api.types.is_bool_dtype(series.dtype):
            columns.append(_Column(label, [_cell_value(v, tz) for v in series.tolist()]))
            continue
        if pd.api.types.is_numeric_dtype(series.dtype):
            values = [_number(v) for v in series.astype(object).tolist()]
            unit = column_unit(label)
            if unit is None and label in KPI_VALUE_COLUMNS:
                unit = value_unit
            fmt: str | None | list[str | None] = unit_format(unit, currency)
            if label in KPI_VALUE_COLUMNS and row_units is not None:
                fmt = [unit_format(u or unit, currency) for u in row_units]
            elif fmt is None and pd.api.types.is_integer_dtype(series.dtype):
                fmt = COUNT_FORMAT
            columns.append(_Column(label, values, fmt))
            continue
        columns.append(_Column(label, [_cell_value(v, tz) for v in series.tolist()]))
    return columns


def _utc_times(series: pd.Series) -> pd.Series | None:
    """``series`` as aware UTC times when it holds times (typed, or datetimes in an object
    column); naive times are taken as UTC, as the app stores them. None otherwise."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert(UTC)
    if pd.api.types.is_datetime64_dtype(dtype):
        return series.dt.tz_localize(UTC)
    if pd.api.types.is_object_dtype(dtype):
        present = series.dropna()
        if len(present) and all(isinstance(v, datetime) for v in present):
            return pd.to_datetime(series, utc=True)
    return None


def _naive_times(local: pd.Series) -> list[datetime | None]:
    return [None if pd.isna(t) else t.tz_localize(None).to_pydatetime() for t in local]


def _times_format(local: pd.Series) -> str:
    present = local.dropna()
    whole = (present.dt.second == 0).all() and (present.dt.microsecond == 0).all()
    return DATETIME_FORMAT if whole else SECONDS_FORMAT


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _number(value: object) -> float | int | None:
    """A number for a cell; None for missing (None, NaN, NA) and non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Decimal | numbers.Real):  # e.g. a database driver's Decimal
        number = float(value)
        return None if math.isnan(number) else number
    return None


def _cell_value(value: object, tz: str) -> object:
    """An object cell: bools, numbers and plain dates as they are; aware times as ISO
    text in ``tz`` (an object column of mixed values has no offset column); containers
    as JSON; anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        return _number(value)
    if isinstance(value, datetime):
        return _as_utc(value).astimezone(ZoneInfo(tz)).isoformat()
    if isinstance(value, date):
        return value
    if isinstance(value, dict | list | tuple | set):
        return _json(value, tz)
    return _missing_or_text(value)


def _json(value: object, tz: str) -> str:
    return json.dumps(_plain(value, tz), ensure_ascii=False, allow_nan=False, default=str)


def _plain(value: object, tz: str) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v, tz) for v in value]
    if isinstance(value, pd.DataFrame):
        return _plain(value.to_dict(orient="records"), tz)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, datetime):
        return _as_utc(value).astimezone(ZoneInfo(tz)).isoformat()
    if value is None or isinstance(value, str | int | bool):
        return value
    return _missing_or_text(value)


def _missing_or_text(value: object) -> str | None:
    """None for what pandas calls missing, else the value as text."""
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _cut_utf16(text: str, units: int) -> str:
    """``text`` cut to at most ``units`` UTF-16 code units (Excel's measure of names)."""
    out, used = [], 0
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > units:
            break
        out.append(ch)
        used += size
    return "".join(out)
