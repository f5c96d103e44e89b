"""Insight stories: the feed, the Overview's top three, and each story's evidence chart."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics_core.insights import Insight

_SEVERITY_ICON = {
    "critical": ":material/error:",
    "warning": ":material/warning:",
    "info": ":material/info:",
}


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
