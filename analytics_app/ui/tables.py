"""Tables of PageData frames, with human headers and the KPI cards' number formats.

Only the display is formatted (``st.column_config``); the frame keeps raw values, and
downloads are built from the series separately, so exports stay machine-readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from analytics_core.kpis import base_column, column_def, table_header

# Headers for key columns whose snake_case name is not a KPI.
# Table-only figures that have no KPI definition, and totals whose unit's format is too
# fine: a period's summed time runs to millions of ms, where a decimal is noise.
_FORMATS = {"compute_hours": "%,.2f h", "total_ms": "%,.0f ms"}


def number_format(unit: str, currency: str = "USD") -> str:
    """The ``NumberColumn`` format that matches ``format_kpi`` for a KPI unit."""
    return {
        "count": "%,d",
        "ratio": "percent",  # 0.0123 -> 1.23%, as on the cards
        "ms": "%,.1f ms",
        "rps": "%,.3f req/s",
        "gb": "%,.3f GB",
        "bytes": "%,.0f B",  # a table's format cannot scale: the byte count, grouped
        "minutes": "%,.1f min",
        "money": f"%,.2f {currency}",
    }[unit]


def column_config(
    frame: pd.DataFrame, currency: str = "USD", percent_columns: Sequence[str] = ()
) -> dict[str, object]:
    """Header and number format per column of ``frame``."""
    config: dict[str, object] = {}
    for column in frame.columns:
        label = table_header(column)
        found = column_def(column)
        base = base_column(column)  # a previous-period column reads like its current one
        if column in percent_columns:
            fmt: str | None = "percent"
        elif base in _FORMATS:
            fmt = _FORMATS[base]
        elif found is not None:
            fmt = number_format(found.unit, currency)
        else:
            fmt = None
        if fmt is not None and pd.api.types.is_numeric_dtype(frame[column]):
            config[column] = st.column_config.NumberColumn(label, format=fmt)
        else:
            config[column] = st.column_config.Column(label)
    if len(frame.columns) > 4:
        # Wide tables scroll sideways on a phone; the row's name stays in view.
        config[frame.columns[0]]["pinned"] = True  # type: ignore[index]
    return config


def table(frame: pd.DataFrame, percent_columns: Sequence[str] = (), currency: str = "USD") -> None:
    config = column_config(frame, currency, percent_columns)
    st.dataframe(frame, hide_index=True, column_config=config, width="stretch")
