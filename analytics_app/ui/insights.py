"""Insight stories: the feed, the Overview's top three, and each story's evidence chart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics_app.ui.charts import LEGEND_BELOW, SERIES_COLORS, time_axis, unit_format
from analytics_app.ui.tables import table
from analytics_core.insights import Insight
from analytics_core.insights.model import STATUS_TEXT
from analytics_core.kpis import KPIS

_SEVERITY_ICON = {
    "critical": ":material/error:",
    "warning": ":material/warning:",
    "info": ":material/info:",
}


AREAS = ("all", "detection", "performance", "business")
# The Insights page's area radio; the sidebar keeps its choice in the URL as ``area``.
AREA_KEY = "insight_area"
# Stories shown before the "More" fold: enough for the incidents, short enough to scan.
ABOVE_FOLD = 5
# Plotly axis formats per KPI unit, matching format_kpi's text.
_TICKS = {
    "ratio": {"tickformat": ".1%"},
    "ms": {"tickformat": ",.0f", "ticksuffix": " ms"},
    "minutes": {"tickformat": ",.1f", "ticksuffix": " min"},
    "gb": {"tickformat": ",.2f", "ticksuffix": " GB"},
    "bytes": {"tickformat": ",.3~s", "ticksuffix": "B"},  # SI prefixes: 1.5GB
    "rps": {"tickformat": ",.3f", "ticksuffix": " req/s"},
    "count": {"tickformat": ",.0f"},
}


def _ticks(unit: str | None, currency: str | None) -> dict[str, str]:
    if unit == "money":
        return {"tickformat": ",.2f", "ticksuffix": f" {currency}" if currency else ""}
    return _TICKS.get(unit or "", {})


def _hover(name: str, value: str) -> str:
    """Label, value and the bucket (``customdata[0]``), as the trend charts' hover."""
    return f"<b>{name}</b>: {value}<br>%{{customdata[0]}}<extra></extra>"


def _evidence_chart(
    evidence: pd.DataFrame, kpi: str | None, kind: str = "", currency: str | None = None
) -> go.Figure:
    """The story's series against its expected range, in the KPI's label and unit
    (money in ``currency``); every trace's hover names it, its value and the bucket."""
    fig = go.Figure()
    # Positions and bucket names as the trend charts have them (offsets across DST).
    x, when, axis = time_axis(evidence["bucket"])
    x, when = x.to_numpy(), np.asarray(when, dtype=object)
    known = kpi in KPIS
    label = KPIS[kpi].label if known else kind.capitalize()  # type: ignore[index]
    unit = KPIS[kpi].unit if known else None  # type: ignore[index]
    value_format, suffix = unit_format(unit, currency, fallback=",.0f")
    shown = f"%{{y:{value_format}}}{suffix}"

    def data(*columns: object) -> np.ndarray:
        # customdata rows: the bucket's name first, then any figures the hover adds.
        return np.column_stack([when, *columns]).astype(object)

    if {"lower", "upper"} <= set(evidence.columns) and evidence["upper"].notna().any():
        # Every KPI is a non-negative magnitude: a band below 0 only draws model noise.
        floor = 0.0 if known else None
        upper = evidence["upper"].clip(lower=floor).to_numpy(dtype=float)
        fig.add_trace(
            go.Scatter(
                x=x, y=upper, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"
            )
        )
        top = f"%{{customdata[1]:{value_format}}}{suffix}"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["lower"].clip(lower=floor),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(100,149,237,0.18)",
                name="expected range",
                customdata=data(upper),
                hovertemplate=_hover("Expected range", f"{shown} to {top}"),
            )
        )
    if "baseline" in evidence.columns:
        # A trend story's line is the fitted trend, not what the value was expected to be.
        legend, hover = (
            ("Trend (Theil-Sen fit)",) * 2 if kind == "trend" else ("baseline", "Baseline")
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=evidence["baseline"],
                mode="lines",
                name=legend,
                line={"dash": "dot", "color": "#6495ed"},
                customdata=data(),
                hovertemplate=_hover(hover, shown),
            )
        )
    # The series blue: readable on light and dark backgrounds and apart from the red
    # of the flagged points (the theme's first colour is pale red on one, red on the other).
    fig.add_trace(
        go.Scatter(
            x=x,
            y=evidence["value"],
            mode="lines",
            name=label,
            line={"color": SERIES_COLORS[0]},
            customdata=data(),
            hovertemplate=_hover(label, shown),
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
                customdata=data(),
                hovertemplate=_hover("Forecast", shown),
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
                customdata=data(),
                hovertemplate=_hover("Threshold", shown),
            )
        )
    if "unjudged" in evidence.columns and evidence["unjudged"].notna().any():
        small = evidence["unjudged"].notna().to_numpy()
        fig.add_trace(
            go.Scatter(
                x=x[small],
                y=evidence["unjudged"][small],
                mode="markers",
                name="too few events to judge",
                marker={"color": "#9ca3af", "symbol": "circle-open", "size": 8},
                customdata=data(evidence["events"])[small],
                hovertemplate=_hover(
                    f"{label} (too few events to judge)", f"{shown}<br>%{{customdata[1]:,}} events"
                ),
            )
        )
    if "flagged" in evidence.columns and evidence["flagged"].any():
        hits = evidence["flagged"].astype(bool).to_numpy()
        fig.add_trace(
            go.Scatter(
                x=x[hits],
                y=evidence["value"][hits],
                mode="markers",
                name="flagged",
                marker={"color": "#dc2626", "size": 8},
                customdata=data()[hits],
                hovertemplate=_hover(f"{label} (flagged)", shown),
            )
        )
    fig.update_layout(title=label, height=280, margin={"t": 40, "b": 10}, legend=LEGEND_BELOW)
    if known:  # a KPI is a non-negative magnitude: no axis padding below 0 (−3.2% read wrong)
        fig.update_yaxes(rangemode="nonnegative")
    fig.update_xaxes(type="date", **axis)
    fig.update_yaxes(**_ticks(unit, currency))
    return fig


def insight_story(
    insight: Insight, index: int, compact: bool = False, currency: str | None = None
) -> None:
    """One insight: severity, one sentence, evidence, method, baseline, recommendation;
    money in ``currency``."""
    with st.container(border=True):
        badge = (
            f"**{insight.severity.upper()}** · {STATUS_TEXT[insight.status]} · "
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
                _evidence_chart(evidence, insight.kpi, insight.kind, currency),
                width="stretch",
                key=f"insight_chart_{index}",
            )
        elif evidence is not None and len(evidence):
            # A bottleneck's shares: human headers and the tables' number formats.
            table(evidence, currency=currency or "USD")
        st.caption(f"Method: {insight.method}. Baseline: {insight.baseline or 'n/a'}.")


def fold(stories: Sequence[Insight], limit: int = ABOVE_FOLD) -> tuple[list, list]:
    """(above the fold, under "More"): the first ``limit`` stories that are not INFO, in
    feed order; INFO stories and the rest wait under "More", so incidents are not buried."""
    top = [i for i in stories if i.severity != "info"][:limit]
    return top, [i for i in stories if not any(i is t for t in top)]


def area_choice() -> str:
    """The feed's area radio. Its value survives visits to other pages, where the radio
    is not drawn (Streamlit would drop it), so the sidebar keeps ``area`` in the URL."""
    return st.radio("Area", AREAS, horizontal=True, key=AREA_KEY, persist_state="session")


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else word.removesuffix('y') + 'ies'}"


def insight_feed(
    insights: Sequence[Insight], area: str = "all", currency: str | None = None
) -> None:
    """The ranked feed: a handful of stories, the rest under "More"; quiet checks (ok,
    no data) folded away. Money is shown in ``currency``."""
    shown = [i for i in insights if area == "all" or i.area == area]
    stories = [i for i in shown if i.status in ("firing", "resolved", "learning")]
    quiet = [i for i in shown if i.status not in ("firing", "resolved", "learning")]
    calm = not [i for i in stories if i.status != "learning"]
    if calm:
        st.success("Nothing unusual found in this range for these filters.")
    top, more = fold(stories)
    if not top and more and not calm:
        # Every story is INFO, so all wait under "More": say so rather than leave the
        # space above the fold blank.
        st.info(
            f"No warnings or alerts in this view; {_plural(len(more), 'informational story')} "
            "below under More.",
            icon=":material/info:",
        )
    for n, insight in enumerate(top):
        insight_story(insight, n, currency=currency)
    if more:
        with st.expander(f"More: {_plural(len(more), 'further story')}"):
            for n, insight in enumerate(more, start=len(top)):
                insight_story(insight, n, currency=currency)
    if quiet:
        with st.expander(f"{len(quiet)} checks with nothing to report"):
            for i in quiet:
                st.markdown(f"- **{STATUS_TEXT[i.status]}**: {i.message}")


def top_insights(insights: Sequence[Insight]) -> None:
    """The Overview's top three, compact, with a way to the full feed."""
    if not insights:
        return
    st.subheader("Top insights")
    for n, insight in enumerate(insights[:3]):
        insight_story(insight, n, compact=True)
    from analytics_app.ui.access import caller

    if caller().may_view("insights"):  # a link to a page not in the navigation fails
        st.page_link("app_pages/insights.py", label="All insights", icon=":material/lightbulb:")
