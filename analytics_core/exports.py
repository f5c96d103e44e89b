"""Exports of a page's data (CSV and JSON), built from the same PageData the UI shows.

JSON: ``{"page", "generated_at", "filters", "sources", "kpis", "previous", "changes",
"series", "insights"}``; each insight carries its evidence rows; ``sources`` is what the
page's caption says about where its figures came from (null when nothing to say).
CSV: one table with a leading ``table`` column (``kpis``, each series name,
``insights``); the filters are recorded as ``# key: value`` comment lines on top,
so ``pandas.read_csv(f, comment="#")`` reads it back. Timestamps are ISO 8601 in the
filters' zone with their UTC offset, so the two 01:00 buckets of a DST fall-back night
stay distinct; file names use the same zone and offset (:func:`file_stem`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime

import pandas as pd

from analytics_core.anonymise import anonymised_frame, anonymised_page
from analytics_core.filters import Filters, zone
from analytics_core.insights import Insight
from analytics_core.page_data import PageData
from analytics_core.pages import EXPORT_FORMATS


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: _jsonable(v) for k, v in row.items()})
    return out


def _jsonable(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()  # numpy scalar
        if isinstance(value, float) and math.isnan(value):
            return None
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return None
    except (TypeError, ValueError):
        pass
    return value


def to_dict(data: PageData) -> dict[str, object]:
    return {
        "page": data.page,
        "generated_at": data.generated_at.isoformat(),
        "filters": data.filters.as_dict(),
        "sources": data.source_note,
        "data_as_of": None if data.data_as_of is None else data.data_as_of.isoformat(),
        "kpis": {k: _jsonable(v) for k, v in data.kpis.items()},
        "previous": {k: _jsonable(v) for k, v in data.previous.items()},
        "changes": {k: _plain(asdict(c)) for k, c in data.changes.items()},
        "series": {name: _records(frame) for name, frame in data.series.items()},
        "insights": [_insight(i) for i in data.insights],
    }


def _plain(mapping: dict[str, object]) -> dict[str, object]:
    return {k: _jsonable(v) for k, v in mapping.items()}


def _insight(insight: Insight) -> dict[str, object]:
    out = _plain(insight.as_dict(with_evidence=False))
    out["details"] = _plain(insight.details)
    out["evidence"] = None if insight.evidence is None else _records(insight.evidence)
    return out


def to_json(data: PageData) -> str:
    return json.dumps(to_dict(data), indent=2, allow_nan=False)


def _local_stamp(value: object, tz: str) -> object:
    """An aware timestamp as ISO text with its offset in ``tz``; anything else unchanged."""
    if isinstance(value, datetime) and value.tzinfo is not None and not pd.isna(value):
        return pd.Timestamp(value).tz_convert(tz).isoformat()
    return value


def _local_times(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Aware datetime columns (typed or in object columns) as offset-carrying ISO text:
    ``to_csv``'s ``date_format`` would drop the offset and merge DST-repeated hours."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if isinstance(series.dtype, pd.DatetimeTZDtype) or series.dtype == object:
            out[col] = series.astype(object).map(lambda v: _local_stamp(v, tz))
    return out


def file_stem(data: PageData) -> str:
    """``page_<start>_<end>`` in the page's zone with offsets, e.g.
    ``performance_20261101T0000-0400_20261108T0000-0500``."""
    return range_stem(data.page, data.filters)


def range_stem(name: str, filters: Filters) -> str:
    """``name_<start>_<end>``, the range in the filters' zone with offsets."""
    z = zone(filters.tz)
    start, end = filters.start.astimezone(z), filters.end.astimezone(z)
    return f"{name}_{start:%Y%m%dT%H%M%z}_{end:%Y%m%dT%H%M%z}"


def to_csv(data: PageData) -> str:
    header = [f"# page: {data.page}", f"# generated_at: {data.generated_at.isoformat()}"]
    for key, value in data.filters.as_dict().items():
        shown = ";".join(value) if isinstance(value, list) else value
        header.append(f"# {key}: {shown}")
    header.append(f"# description: {data.filters.describe()}")
    if data.source_note:
        header.append(f"# sources: {data.source_note}")
    parts = [
        pd.DataFrame(
            {
                "table": "kpis",
                "kpi": list(data.kpis),
                "value": pd.Series(list(data.kpis.values()), dtype=object),
                "previous": pd.Series([data.previous.get(k) for k in data.kpis], dtype=object),
            }
        )
    ]
    for name, frame in data.series.items():
        parts.append(frame.assign(table=name)[["table", *frame.columns]])
    if data.insights:
        rows = []
        for n, insight in enumerate(data.insights):
            row = insight.as_dict(with_evidence=False)
            row["details"] = json.dumps(_plain(insight.details), default=str)
            rows.append({"insight": n, **row})
            if insight.evidence is not None:
                parts.append(insight.evidence.assign(table="insight_evidence", insight=n))
        parts.insert(1, pd.DataFrame(rows).assign(table="insights"))
    tz = data.filters.tz
    table = pd.concat(
        [_local_times(p, tz).astype(object) for p in parts], ignore_index=True, sort=False
    )
    table = table[["table", *[c for c in table.columns if c != "table"]]]
    return "\n".join(header) + "\n" + table.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S")


def table_export(
    name: str,
    frame: pd.DataFrame,
    filters: Filters,
    fmt: str,
    key: bytes | None = None,
    note: str | None = None,
) -> bytes:
    """One table (e.g. the audit log) in ``fmt``, times in the filters' zone with their
    offsets and the filters recorded as in a page's export; ``note`` says what the file
    holds beyond the filters (e.g. that it is the newest rows only)."""
    if key is not None:
        frame = anonymised_frame(frame, key)
    if fmt == "xlsx":
        from analytics_core.export_xlsx import table_workbook

        return table_workbook(name, frame, filters, note)
    if fmt == "pdf":
        from analytics_core.export_pdf import table_report

        return table_report(name, frame, filters, note)
    local = _local_times(frame, filters.tz)
    if fmt == "json":
        payload = {"table": name, "filters": filters.as_dict(), "note": note,
                   "rows": _records(local)}  # fmt: skip
        return json.dumps(payload, indent=2, allow_nan=False).encode("utf-8")
    if fmt == "csv":
        header = [f"# table: {name}", f"# description: {filters.describe()}"]
        header += [f"# note: {note}"] if note else []
        return ("\n".join(header) + "\n" + local.to_csv(index=False)).encode("utf-8")
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")


def row_count(data: PageData) -> int:
    """The data rows an export of ``data`` holds (the CSV's table rows): the audit log's
    measure of how much left with a file."""
    evidence = sum(len(i.evidence) for i in data.insights if i.evidence is not None)
    series = sum(len(frame) for frame in data.series.values())
    return len(data.kpis) + series + len(data.insights) + evidence


def render(data: PageData, fmt: str) -> str:
    """A text export (JSON or CSV) of ``data``."""
    if fmt == "json":
        return to_json(data)
    if fmt == "csv":
        return to_csv(data)
    raise ValueError(f"{fmt!r} is not a text format; one of json, csv")


def export_bytes(
    data: PageData, fmt: str, title: str | None = None, key: bytes | None = None
) -> bytes:
    """The file of ``data`` in ``fmt`` (any of EXPORT_FORMATS), as the download and
    ``analytics export`` hand it over; with ``key``, user-level identifiers pseudonymised."""
    if key is not None:
        data = anonymised_page(data, key)
    if fmt == "xlsx":
        from analytics_core.export_xlsx import page_workbook

        return page_workbook(data)
    if fmt == "pdf":
        from analytics_core.export_pdf import page_report

        return page_report(data, **({"title": title} if title else {}))
    if fmt in ("json", "csv"):
        return render(data, fmt).encode("utf-8")
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")


DASHBOARD_FORMATS = ("xlsx", "pdf")


def dashboard_bytes(
    pages: list[PageData], fmt: str, title: str | None = None, key: bytes | None = None
) -> bytes:
    """Several pages for the same filters in one file: a workbook with a group of sheets
    per page, or a PDF with a section per page."""
    if key is not None:
        pages = [anonymised_page(p, key) for p in pages]
    if fmt == "xlsx":
        from analytics_core.export_xlsx import dashboard_workbook

        return dashboard_workbook(pages)
    if fmt == "pdf":
        from analytics_core.export_pdf import dashboard_report

        return dashboard_report(pages, **({"title": title} if title else {}))
    raise ValueError(f"whole-dashboard format {fmt!r} is not one of xlsx, pdf")
