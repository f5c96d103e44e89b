"""Insight stories: the feed, the Overview's top three, and each story's evidence chart."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics_app.ui.charts import LEGEND_BELOW, SERIES_COLORS, unit_format
from analytics_core.insights import Insight
from analytics_core.kpis import KPIS

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
# Stories shown before the "More" fold: enough for the incidents, short enough to scan.
ABOVE_FOLD = 5
# Plotly axis formats per KPI unit, matching format_kpi's text.
_TICKS = {
    "ratio": {"tickformat": ".1%"},
    "ms": {"tickformat": ",.0f", "ticksuffix": " ms"},
    "minutes": {"tickformat": ",.1f", "ticksuffix": " min"},
    "gb": {"tickformat": ",.2f", "ticksuffix": " GB"},
    "rps": {"tickformat": ",.3f", "ticksuffix": " req/s"},
    "count": {"tickformat": ",.0f"},
}


def _evidence_chart(evidence: pd.DataFrame, kpi: str | None, kind: str = "") -> go.Figure:
    """The story's series against its expected range, in the KPI's label and unit."""
    fig = go.Figure()
    x = evidence["bucket"]
    known = kpi in KPIS
    label = KPIS[kpi].label if known else kind.capitalize()  # type: ignore[index]
    unit = KPIS[kpi].unit if known else None  # type: ignore[index]
    if {"lower", "upper"} <= set(evidence.columns) and evidence["upper"].notna().any():
        # Every KPI is a non-negative magnitude: a band below 0 only draws model noise.
        floor = 0.0 if known else None
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["upper"].clip(lower=floor),
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["lower"].clip(lower=floor),
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
    value_format, suffix = unit_format(unit, currency=None, fallback=",.0f")
    # The series blue: readable on light and dark backgrounds and apart from the red
    # of the flagged points (the theme's first colour is pale red on one, red on the other).
    fig.add_trace(
        go.Scatter(
            x=x,
            y=evidence["value"],
            mode="lines",
            name=label,
            line={"color": SERIES_COLORS[0]},
            hovertemplate=f"{label}: %{{y:{value_format}}}{suffix}<br>%{{x}}<extra></extra>",
        )
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
    fig.update_layout(title=label, height=280, margin={"t": 40, "b": 10}, legend=LEGEND_BELOW)
    fig.update_yaxes(**_TICKS.get(unit or "", {}))
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
                _evidence_chart(evidence, insight.kpi, insight.kind),
                width="stretch",
                key=f"insight_chart_{index}",
            )
        elif evidence is not None and len(evidence):
            st.dataframe(evidence, hide_index=True, width="stretch")
        st.caption(f"Method: {insight.method}. Baseline: {insight.baseline or 'n/a'}.")


def fold(stories: Sequence[Insight], limit: int = ABOVE_FOLD) -> tuple[list, list]:
    """(above the fold, under "More"): the first ``limit`` stories that are not INFO, in
    feed order; INFO stories and the rest wait under "More", so incidents are not buried."""
    top = [i for i in stories if i.severity != "info"][:limit]
    return top, [i for i in stories if not any(i is t for t in top)]


def insight_feed(insights: Sequence[Insight], area: str = "all") -> None:
    """The ranked feed: a handful of stories, the rest under "More"; quiet checks (ok,
    no data) folded away."""
    shown = [i for i in insights if area == "all" or i.area == area]
    stories = [i for i in shown if i.status in ("firing", "resolved", "learning")]
    quiet = [i for i in shown if i.status not in ("firing", "resolved", "learning")]
    if not [i for i in stories if i.status != "learning"]:
        st.success("Nothing unusual found in this range for these filters.")
    top, more = fold(stories)
    for n, insight in enumerate(top):
        insight_story(insight, n)
    if more:
        with st.expander(f"More: {len(more)} further {'story' if len(more) == 1 else 'stories'}"):
            for n, insight in enumerate(more, start=len(top)):
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
