"""Exports of a page's data (CSV and JSON), built from the same PageData the UI shows.

JSON: ``{"page", "generated_at", "filters", "kpis", "previous", "series", "insights"}``.
CSV: one table with a leading ``table`` column (``kpis``, each series name,
``insights``); the filters are recorded as ``# key: value`` comment lines on top,
so ``pandas.read_csv(f, comment="#")`` reads it back.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from analytics_core.page_data import PageData

FORMATS = ("json", "csv")


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
        "kpis": {k: _jsonable(v) for k, v in data.kpis.items()},
        "previous": {k: _jsonable(v) for k, v in data.previous.items()},
        "series": {name: _records(frame) for name, frame in data.series.items()},
        "insights": [{k: _jsonable(v) for k, v in i.as_dict().items()} for i in data.insights],
    }


def to_json(data: PageData) -> str:
    return json.dumps(to_dict(data), indent=2, allow_nan=False)


def to_csv(data: PageData) -> str:
    header = [f"# page: {data.page}", f"# generated_at: {data.generated_at.isoformat()}"]
    for key, value in data.filters.as_dict().items():
        shown = ";".join(value) if isinstance(value, list) else value
        header.append(f"# {key}: {shown}")
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
        rows = [i.as_dict() for i in data.insights]
        parts.append(pd.DataFrame(rows).assign(table="insights"))
    table = pd.concat([p.astype(object) for p in parts], ignore_index=True, sort=False)
    table = table[["table", *[c for c in table.columns if c != "table"]]]
    return "\n".join(header) + "\n" + table.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S")


def render(data: PageData, fmt: str) -> str:
    if fmt == "json":
        return to_json(data)
    if fmt == "csv":
        return to_csv(data)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
