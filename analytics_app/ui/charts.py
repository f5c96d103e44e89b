"""Trend charts, gauges and scatter plots built from PageData series (figure builders
are separate from drawing so tests can check the figures)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics_core.kpis import KPIS, judged, min_events


def complete_buckets(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~frame["partial"].astype(bool)] if "partial" in frame.columns else frame


_COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04")


def trend_figure(
    frame: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    kind: str = "line",
    percent: bool = False,
) -> go.Figure:
    """``columns`` against the bucket: partial buckets (the series' ``partial`` flag)
    faded and dashed, labelled "partial"; rates and percentiles of buckets with too few
    events left as gaps, with the events behind each point on hover."""
    fig = go.Figure()
    x = frame["bucket"]
    partial = (
        frame["partial"].astype(bool).reset_index(drop=True)
        if "partial" in frame.columns
        else pd.Series(False, index=range(len(frame)))
    )
    note = np.where(partial, " (partial)", "")
    value_format = ":.2%" if percent else ":,.4~g"
    for n, column in enumerate(columns):
        label = column.replace("_", " ")
        color = _COLORS[n % len(_COLORS)]
        values = judged(frame, column).reset_index(drop=True)
        need = min_events(column) if column in KPIS else None
        if need and need[0] in frame.columns:
            counts = frame[need[0]].to_numpy()
            extra = f"<br>%{{customdata[1]:,}} {need[0]}"
        else:
            counts, extra = np.zeros(len(frame), dtype=int), ""
        custom = np.column_stack([note, counts])
        hover = f"{label}%{{customdata[0]}}: %{{y{value_format}}}<br>%{{x}}{extra}<extra></extra>"
        common = {"x": x, "customdata": custom, "hovertemplate": hover, "legendgroup": label}
        if kind == "bar":
            fig.add_trace(
                go.Bar(
                    y=values,
                    name=label,
                    marker={
                        "color": color,
                        "opacity": np.where(partial, 0.35, 1.0).tolist(),
                        "pattern": {"shape": np.where(partial, "/", "").tolist()},
                    },
                    text=np.where(partial, "partial", "").tolist(),
                    textposition="outside",
                    **common,
                )
            )
            continue
        fig.add_trace(
            go.Scatter(y=values.where(~partial), mode="lines", name=label,
                       line={"color": color}, **common)
        )  # fmt: skip
        if partial.any():
            # Dashed from the last complete point into each partial one, so the line
            # does not break but the unfinished bucket does not read as a real drop.
            near = (
                partial | partial.shift(1, fill_value=False) | partial.shift(-1, fill_value=False)
            )
            fig.add_trace(
                go.Scatter(
                    y=values.where(near),
                    mode="lines+markers+text",
                    name=f"{label} (partial)",
                    line={"color": color, "dash": "dash"},
                    marker={"symbol": "circle-open", "size": np.where(partial, 8, 0).tolist()},
                    opacity=0.55,
                    text=np.where(partial, "partial", "").tolist(),
                    textposition="top center",
                    **common,
                )
            )
    fig.update_layout(
        title=title,
        barmode="group",  # grouped, not stacked: series such as detections and failed overlap
        legend_title_text="",
        xaxis_title="",
        yaxis_title="",
        height=320,
    )
    if percent:
        fig.update_yaxes(tickformat=".1%")
    return fig


def trend_chart(
    frame: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    kind: str = "line",
    percent: bool = False,
) -> None:
    """A time series chart of ``columns`` against the bucket column."""
    st.plotly_chart(trend_figure(frame, columns, title, kind, percent), width="stretch")


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
