"""Reusable page pieces: KPI cards, trend charts, tables, insight cards, downloads.

Each takes PageData (or one of its frames) and only lays it out: the numbers
come from analytics_core, formatting from ``analytics_core.kpis``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics_core.exports import to_csv, to_json
from analytics_core.insights import Insight
from analytics_core.kpis import KPIS, delta_color, format_delta, format_kpi
from analytics_core.page_data import PageData

_SEVERITY_ICON = {
    "critical": ":material/error:",
    "warning": ":material/warning:",
    "info": ":material/info:",
}


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
                chart = data.series[series][column].dropna().tolist()
            with col:
                st.metric(
                    KPIS[key].label,
                    format_kpi(key, data.kpis[key], data.currency),
                    format_delta(key, data.kpis[key], data.previous.get(key)),
                    delta_color=delta_color(key),  # type: ignore[arg-type]
                    help=KPIS[key].description,
                    border=True,
                    chart_data=chart,
                )


def empty_state(data: PageData) -> bool:
    """Say so when the range holds no data; True means the page should stop here."""
    if data.is_empty:
        st.info(
            "No data in this range for these filters. Widen the date range or clear "
            "the tenant, algorithm and endpoint filters."
        )
        return True
    return False


def trend_chart(
    frame: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    kind: str = "line",
    percent: bool = False,
) -> None:
    """A time series chart of ``columns`` against the bucket column."""
    labels = {c: c.replace("_", " ") for c in columns}
    if kind == "bar":
        # Grouped, not stacked: series such as detections and failed overlap.
        fig = px.bar(
            frame, x="bucket", y=list(columns), title=title, labels=labels, barmode="group"
        )
    else:
        fig = px.line(frame, x="bucket", y=list(columns), title=title, labels=labels, markers=False)
    fig.update_layout(legend_title_text="", xaxis_title="", yaxis_title="", height=320)
    if percent:
        fig.update_yaxes(tickformat=".1%")
    st.plotly_chart(fig, width="stretch")


def gauge(value: float | None, title: str, low: float = 0.95) -> None:
    """A gauge for a ratio such as availability (shown only with data)."""
    if value is None:
        st.metric(title, "no data")
        return
    low = min(low, max(0.0, value - 0.01))  # keep a bad day on the dial
    fig = go.Figure(
        go.Indicator(
            mode="gauge+number",
            value=value * 100,
            number={"suffix": "%", "valueformat": ".3f"},
            title={"text": title},
            gauge={"axis": {"range": [low * 100, 100]}, "bar": {"color": "#2e7d32"}},
        )
    )
    fig.update_layout(height=260, margin={"t": 60, "b": 10})
    st.plotly_chart(fig, width="stretch")


def scatter(frame: pd.DataFrame, x: str, y: str, size: str, label: str, title: str) -> None:
    fig = px.scatter(frame, x=x, y=y, size=size, hover_name=label, title=title, text=label)
    fig.update_traces(textposition="top center")
    fig.update_layout(height=360)
    st.plotly_chart(fig, width="stretch")


def table(frame: pd.DataFrame, percent_columns: Sequence[str] = ()) -> None:
    config = {
        c: st.column_config.NumberColumn(format="percent")
        for c in percent_columns
        if c in frame.columns
    }
    st.dataframe(frame, hide_index=True, column_config=config, width="stretch")


def insight_cards(insights: Sequence[Insight], show_passing: bool = True) -> None:
    firing = [i for i in insights if i.status == "firing"]
    if not firing:
        st.success("No threshold is breached in this range.")
    for i in firing:
        show = st.error if i.severity == "critical" else st.warning
        show(f"**{i.severity.upper()}**: {i.message}", icon=_SEVERITY_ICON.get(i.severity))
    rest = [i for i in insights if i.status != "firing"]
    if show_passing and rest:
        with st.expander(f"{len(rest)} other checks"):
            for i in rest:
                mark = "no data" if i.status == "no_data" else "ok"
                st.markdown(f"- **{mark}**: {i.message}")


def downloads(data: PageData) -> None:
    """CSV and JSON of exactly what the page shows, with the filters recorded."""
    from ui.data import config

    if not config().feature("exports"):
        return
    stem = f"{data.page}_{data.filters.start:%Y%m%dT%H%M}_{data.filters.end:%Y%m%dT%H%M}"
    left, right, _ = st.columns([1, 1, 4])
    with left:
        st.download_button(
            "Download CSV",
            to_csv(data),
            file_name=f"{stem}.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/download:",
        )
    with right:
        st.download_button(
            "Download JSON",
            to_json(data),
            file_name=f"{stem}.json",
            mime="application/json",
            on_click="ignore",
            icon=":material/download:",
        )
