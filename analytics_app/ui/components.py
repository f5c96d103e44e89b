"""Reusable page pieces: KPI cards, trend charts, tables, insight cards, downloads.

Each takes PageData (or one of its frames) and only lays it out: the numbers
come from analytics_core, formatting from ``analytics_core.kpis``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics_core.exports import to_csv, to_json
from analytics_core.insights import Insight
from analytics_core.kpis import KPIS, delta_color, format_delta, format_kpi, judged, min_events
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
                frame = _complete(data.series[series])  # a half-counted bucket is no dip
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


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
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


def table(frame: pd.DataFrame, percent_columns: Sequence[str] = ()) -> None:
    config = {
        c: st.column_config.NumberColumn(format="percent")
        for c in percent_columns
        if c in frame.columns
    }
    st.dataframe(frame, hide_index=True, column_config=config, width="stretch")


_STATUS_TEXT = {
    "firing": "active",
    "resolved": "resolved",
    "learning": "learning",
    "no_data": "no data",
    "ok": "ok",
}
AREAS = ("all", "detection", "performance", "business")


def _evidence_chart(evidence: pd.DataFrame, title: str) -> go.Figure:
    fig = go.Figure()
    x = evidence["bucket"]
    if {"lower", "upper"} <= set(evidence.columns) and evidence["upper"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["upper"],
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["lower"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(100,149,237,0.18)",
                name="expected range",
            )
        )
    if "baseline" in evidence.columns:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["baseline"],
                mode="lines",
                name="baseline",
                line={"dash": "dot", "color": "#6495ed"},
            )
        )
    fig.add_trace(
        go.Scatter(x=x, y=evidence["value"], mode="lines", name="value", line={"color": "#1f2937"})
    )
    if "forecast" in evidence.columns:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["forecast"],
                mode="lines",
                name="forecast",
                line={"dash": "dash", "color": "#6495ed"},
            )
        )
    if "threshold" in evidence.columns:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["threshold"],
                mode="lines",
                name="threshold",
                line={"dash": "dash", "color": "#dc2626", "width": 1},
            )
        )
    if "unjudged" in evidence.columns and evidence["unjudged"].notna().any():
        small = evidence[evidence["unjudged"].notna()]
        fig.add_trace(
            go.Scatter(
                x=small["bucket"],
                y=small["unjudged"],
                mode="markers",
                name="too few events to judge",
                marker={"color": "#9ca3af", "symbol": "circle-open", "size": 8},
                customdata=small["events"],
                hovertemplate="%{y}<br>%{x}<br>%{customdata:,} events<extra></extra>",
            )
        )
    if "flagged" in evidence.columns and evidence["flagged"].any():
        hits = evidence[evidence["flagged"].astype(bool)]
        fig.add_trace(
            go.Scatter(
                x=hits["bucket"],
                y=hits["value"],
                mode="markers",
                name="flagged",
                marker={"color": "#dc2626", "size": 8},
            )
        )
    fig.update_layout(
        title=title, height=280, margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.2}
    )
    return fig


def insight_story(insight: Insight, index: int, compact: bool = False) -> None:
    """One insight: severity, one sentence, evidence, method, baseline, recommendation."""
    with st.container(border=True):
        badge = (
            f"**{insight.severity.upper()}** · {_STATUS_TEXT[insight.status]} · "
            f"{insight.kind} · {insight.area}"
        )
        st.markdown(f"{badge}  \n{insight.message}")
        if insight.recommendation:
            st.markdown(f"*Recommendation:* {insight.recommendation}")
        if compact:
            return
        evidence = insight.evidence
        if evidence is not None and "bucket" in evidence.columns and len(evidence):
            st.plotly_chart(
                _evidence_chart(evidence, insight.kpi or insight.kind),
                width="stretch",
                key=f"insight_chart_{index}",
            )
        elif evidence is not None and len(evidence):
            st.dataframe(evidence, hide_index=True, width="stretch")
        st.caption(f"Method: {insight.method}. Baseline: {insight.baseline or 'n/a'}.")


def insight_feed(insights: Sequence[Insight], area: str = "all") -> None:
    """The ranked feed; quiet checks (ok, no data) are folded away."""
    shown = [i for i in insights if area == "all" or i.area == area]
    stories = [i for i in shown if i.status in ("firing", "resolved", "learning")]
    quiet = [i for i in shown if i.status not in ("firing", "resolved", "learning")]
    if not [i for i in stories if i.status != "learning"]:
        st.success("Nothing unusual found in this range for these filters.")
    for n, insight in enumerate(stories):
        insight_story(insight, n)
    if quiet:
        with st.expander(f"{len(quiet)} checks with nothing to report"):
            for i in quiet:
                st.markdown(f"- **{_STATUS_TEXT[i.status]}**: {i.message}")


def top_insights(insights: Sequence[Insight]) -> None:
    """The Overview's top three, compact, with a way to the full feed."""
    if not insights:
        return
    st.subheader("Top insights")
    for n, insight in enumerate(insights[:3]):
        insight_story(insight, n, compact=True)
    st.page_link("app_pages/insights.py", label="All insights", icon=":material/lightbulb:")


def downloads(data: PageData) -> None:
    """CSV and JSON of exactly what the page shows, with the filters recorded."""
    from analytics_app.ui.data import config

    if not config().features.exports:
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
