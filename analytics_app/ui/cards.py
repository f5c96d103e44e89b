"""KPI cards, the page header and the empty state: figures from analytics_core, laid
out; formatting from ``analytics_core.kpis``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics_app.ui.charts import complete_buckets
from analytics_core.kpis import KPIS, delta_color, format_delta, format_kpi, judged
from analytics_core.page_data import PageData


def header(title: str, data: PageData | None = None, caption: str | None = None) -> None:
    st.title(title)
    if data is not None:
        f = data.filters
        start = pd.Timestamp(f.start).tz_convert(f.tz).strftime("%Y-%m-%d %H:%M")
        end = pd.Timestamp(f.end).tz_convert(f.tz).strftime("%Y-%m-%d %H:%M")
        st.caption(
            f"{start} → {end} ({f.tz}), by {f.granularity}; compared with the previous "
            f"period of equal length. {caption or ''}"
        )


def kpi_cards(
    data: PageData, sparklines: dict[str, tuple[str, str]] | None = None, per_row: int = 4
) -> None:
    """One st.metric per KPI with its delta; ``sparklines`` maps a KPI to (series, column)."""
    keys = list(data.kpis)
    for row_start in range(0, len(keys), per_row):
        cols = st.columns(per_row)
        for col, key in zip(cols, keys[row_start : row_start + per_row], strict=False):
            chart = None
            if sparklines and key in sparklines:
                series, column = sparklines[key]
                frame = complete_buckets(data.series[series])  # a half-counted bucket is no dip
                chart = judged(frame, column).dropna().tolist()
            with col:
                st.metric(
                    KPIS[key].label,
                    format_kpi(key, data.kpis[key], data.currency),
                    format_delta(key, data.kpis[key], data.previous.get(key)),
                    delta_color=delta_color(key),  # type: ignore[arg-type]
                    help=KPIS[key].description,
                    border=True,
                    chart_data=chart,
                    delta_description=_significance(data.changes.get(key)),
                )


def _significance(change) -> str | None:
    """Whether a delta is more than noise, as the card's small print."""
    if change is None or change.p_value is None:
        return None
    if change.significant:
        return f"significant (p = {change.p_value:.2g})"
    return "within normal variation"


def empty_state(data: PageData) -> bool:
    """Say so when the range holds no data; True means the page should stop here."""
    if data.is_empty:
        st.info(
            "No data in this range for these filters. Widen the date range or clear "
            "the tenant, algorithm and endpoint filters."
        )
        return True
    return False
