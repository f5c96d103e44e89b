"""Trend charts, gauges and scatter plots built from PageData series (figure builders
are separate from drawing so tests can check the figures)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics_core.config import AlertRule
from analytics_core.kpis import (
    KPIS,
    column_def,
    column_label,
    format_kpi,
    is_missing,
    judged,
    min_events,
)
from analytics_core.queries.common import value_columns  # noqa: F401 - pages call charts.value_columns

# At the figure's bottom edge (container coordinates), so Plotly makes room for it below
# the x axis; a paper-relative offset overlaps tick labels once they rotate on a narrow
# screen.
LEGEND_BELOW = {
    "orientation": "h",
    "yref": "container",
    "yanchor": "bottom",
    "y": 0,
    "xanchor": "left",
    "x": 0,
}


def complete_buckets(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~frame["partial"].astype(bool)] if "partial" in frame.columns else frame


# Mid-luminance colours, readable on Streamlit's light and dark backgrounds alike
# (contrast about 3:1 or more on both, tested); everything else (fonts, grid, hover) is left to
# the Streamlit theme so it follows light/dark.
SERIES_COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04")
_MINUS = "\u2212"


def unit_format(unit: str | None, currency: str | None, fallback: str = ",.4~g") -> tuple[str, str]:
    """(d3 format, suffix) for values of a KPI unit, as format_kpi writes them; money
    carries the currency only when it is known."""
    return {
        "ratio": (".2%", ""),
        "count": (",.0f", ""),
        "ms": (",.1f", " ms"),
        "money": (",.2f", f" {currency}" if currency else ""),
        "gb": (",.3f", " GB"),
        "bytes": (",.3~s", "B"),  # SI prefixes: 1.5GB
        "minutes": (",.1f", " min"),
        "rps": (",.3f", " req/s"),
    }.get(unit or "", (fallback, ""))


def _value_format(column: str, percent: bool, currency: str) -> tuple[str, str]:
    """(d3 format, unit suffix) for a column's values, as format_kpi writes them."""
    found = column_def(column)
    return unit_format("ratio" if percent else found.unit if found else None, currency)


def _offset(ts: pd.Timestamp) -> str:
    raw = ts.strftime("%z")  # "-0400"
    return f"{raw[0].replace('-', _MINUS)}{raw[1:3]}:{raw[3:5]}" if raw else ""


def time_axis(buckets: pd.Series) -> tuple[pd.Series, list[str], dict]:
    """x positions, hover labels and axis settings for bucket starts.

    Plotly.js drops a timestamp's UTC offset and draws its wall-clock time, so the two
    01:00 buckets of a fall-back night would share one x (a fake double bar). Positions
    are therefore instants, written in the first bucket's offset (ticks read local time
    until the clocks change); the hover names each bucket with its own offset, and when
    the offset changes inside the range the ticks are labelled in local time explicitly.
    """
    stamps = pd.Series(pd.to_datetime(buckets)).reset_index(drop=True)
    if stamps.empty or stamps.dt.tz is None:
        return stamps, [f"{t:%Y-%m-%d %H:%M}" for t in stamps], {}
    # Every time axis names its zone: a screenshot or a shared chart says which it is.
    named = {"title_text": f"Bucket start ({stamps.dt.tz})"}
    shift = stamps.iloc[0].utcoffset()
    x = stamps.dt.tz_convert("UTC").dt.tz_localize(None) + shift
    hover = [f"{t:%Y-%m-%d %H:%M} {_offset(t)}" for t in stamps]
    offsets = {t.utcoffset() for t in stamps}
    if len(offsets) == 1:
        return x, hover, named
    daily = bool((stamps.dt.hour == 0).all() and (stamps.dt.minute == 0).all())
    step = max(1, len(stamps) // 8)
    picks = list(range(0, len(stamps), step))
    ticks = {
        **named,
        "tickmode": "array",
        "tickvals": [x.iloc[i] for i in picks],
        "ticktext": [stamps.iloc[i].strftime("%b %d" if daily else "%b %d %H:%M") for i in picks],
    }
    return x, hover, ticks


# A too-small bucket more than this many times the highest judged value is drawn off scale.
OFF_SCALE = 1.5


def trend_figure(
    frame: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    kind: str = "line",
    percent: bool = False,
    currency: str = "USD",
) -> go.Figure:
    """``columns`` against the bucket: partial buckets (the series' ``partial`` flag)
    faded and dashed, labelled "partial"; rates and percentiles of buckets with too few
    events left as gaps, with the events behind each point on hover. Names, units and
    axis formats come from the KPI definitions, so the chart reads like the cards."""
    fig = go.Figure()
    x, when, ticks = time_axis(frame["bucket"])
    partial = (
        frame["partial"].astype(bool).reset_index(drop=True)
        if "partial" in frame.columns
        else pd.Series(False, index=range(len(frame)))
    )
    note = np.where(partial, " (partial)", "")
    units = set()
    judged_top = 0.0  # the highest value of a bucket with enough events, over the series
    small: list[tuple] = []  # series values of buckets with too few events, drawn last
    for n, column in enumerate(columns):
        label = column_label(column)
        value_format, suffix = _value_format(column, percent, currency)
        units.add((value_format, suffix))
        color = SERIES_COLORS[n % len(SERIES_COLORS)]
        values = judged(frame, column).reset_index(drop=True)
        need = min_events(column) if column in KPIS else None
        if need and need[0] in frame.columns:
            counts = frame[need[0]].to_numpy()
            extra = f"<br>%{{customdata[1]:,}} {need[0]}"
        else:
            counts, extra = np.zeros(len(frame), dtype=int), ""
        custom = np.column_stack([note, counts, when])
        hover = (
            f"<b>{label}</b>%{{customdata[0]}}: %{{y:{value_format}}}{suffix}"
            f"<br>%{{customdata[2]}}{extra}<extra></extra>"
        )
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
        raw = frame[column].astype(float).reset_index(drop=True)
        few = raw.notna() & values.isna()
        judged_top = np.nanmax([judged_top, values.max(skipna=True)])
        if need and few.any():
            small.append((raw.where(few), label, need, color, common, value_format))
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
                    # Labelled on the chart, so not in the legend (six entries squeezed a
                    # phone's plot); one "partial" word per bucket, not one per line.
                    showlegend=False,
                    line={"color": color, "dash": "dash"},
                    marker={"symbol": "circle-open", "size": np.where(partial, 8, 0).tolist()},
                    opacity=0.55,
                    text=np.where(partial & (n == 0), "partial", "").tolist(),
                    textposition="top center",
                    **common,
                )
            )
    # Too few events to draw as a line, too telling to hide (a small tenant's burst):
    # faded open markers, the count beside the value on hover. One such bucket must not
    # set the scale (p99 30 s over 94 requests flattened a real 5 s incident): values
    # far above every judged one sit at the top edge as triangles, hover telling the value.
    cap = judged_top * OFF_SCALE if judged_top > 0 else np.inf
    for few_values, label, need, color, common, value_format in small:
        above = (few_values > cap).to_numpy()
        real = few_values.to_numpy()
        custom = np.column_stack([common["customdata"], real])
        hover = common["hovertemplate"].replace(
            f"%{{y:{value_format}}}", f"%{{customdata[3]:{value_format}}}"
        )
        fig.add_trace(
            go.Scatter(
                y=np.where(above, cap, real),
                mode="markers",
                name=f"{label} (under {need[1]} {need[0]})",
                marker={
                    "color": color,
                    "symbol": np.where(above, "triangle-up-open", "circle-open").tolist(),
                    "size": 7,
                },
                opacity=0.5,
                **{**common, "customdata": custom, "hovertemplate": hover},
            )
        )
    if np.isfinite(cap) and any((v > cap).any() for v, *_ in small):
        fig.update_yaxes(range=[0, cap * 1.05])
    fig.update_layout(
        title=title,
        barmode="group",  # grouped, not stacked: series such as detections and failed overlap
        # Below the plot and horizontal: a legend at the side takes a third of a phone.
        legend=LEGEND_BELOW,
        legend_title_text="",
        xaxis_title="",
        yaxis_title="",
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    fig.update_xaxes(type="date", **ticks)
    # Trends are of non-negative magnitudes: autorange padding must not show −404 ms.
    fig.update_yaxes(rangemode="nonnegative")
    if len(units) == 1:  # one unit on the axis: say it there too
        [(value_format, suffix)] = units
        if value_format == ".2%":
            fig.update_yaxes(tickformat=".1%")
        elif suffix:
            fig.update_yaxes(ticksuffix=suffix)
    return fig


def trend_chart(
    frame: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    kind: str = "line",
    percent: bool = False,
    currency: str = "USD",
    rule: AlertRule | None = None,
) -> None:
    """A time series chart of ``columns`` against the bucket column; the config's alert
    ``rule`` on them drawn as a line."""
    figure = trend_figure(frame, columns, title, kind, percent, currency)
    if rule is not None:
        word = "below" if rule.below is not None else "above"
        figure.add_hline(
            y=rule.threshold,
            line={"color": GAUGE_ALERT, "dash": "dash", "width": 1.5},
            annotation_text=f"alert {word} {format_kpi(rule.kpi, rule.threshold)}",
        )
    st.plotly_chart(figure, width="stretch")


# The dial's bar: green within the alert threshold, the flagged red of the evidence
# charts past it.
GAUGE_OK, GAUGE_ALERT = "#2e7d32", "#dc2626"


def gauge_figure(
    key: str,
    value: float,
    rule: AlertRule | None = None,
    low: float = 0.95,
    label: str | None = None,
) -> go.Figure:
    """A dial for a ratio KPI such as availability, reading like its card: the same
    number, red past the config's alert ``rule``, whose threshold is drawn on the dial
    with the alerting side shaded."""
    # The card's own digits, in percent: d3 rounds halves up where format_kpi does not.
    number = float(format_kpi(key, value).removesuffix("%"))
    # Keep a bad day, and the threshold, on the dial.
    low = max(0.0, min(low, value - 0.01, *([rule.threshold - 0.01] if rule else [])))
    dial: dict = {
        "axis": {"range": [low * 100, 100], "ticksuffix": "%"},
        "bar": {"color": GAUGE_ALERT if rule is not None and rule.breached(value) else GAUGE_OK},
    }
    title = label or KPIS[key].label
    if rule is not None:
        limit = rule.threshold * 100
        side = [low * 100, limit] if rule.below is not None else [limit, 100]
        dial["steps"] = [{"range": side, "color": "rgba(220,38,38,0.15)"}]
        dial["threshold"] = {
            "line": {"color": GAUGE_ALERT, "width": 3},
            "thickness": 0.9,
            "value": limit,
        }
        word = "below" if rule.below is not None else "above"
        title += (
            f"<br><span style='font-size:0.7em'>alert {word} "
            f"{format_kpi(key, rule.threshold)}</span>"
        )
    fig = go.Figure(
        go.Indicator(
            mode="gauge+number",
            value=number,
            number={"suffix": "%", "valueformat": ".2f"},
            title={"text": title},
            gauge=dial,
        )
    )
    fig.update_layout(height=260, margin={"t": 60, "b": 10})
    return fig


def gauge(
    key: str,
    value: float | None,
    rule: AlertRule | None = None,
    label: str | None = None,
    low: float = 0.95,
) -> None:
    """A gauge for a ratio KPI such as availability (shown only with data); ``label``
    instead of the KPI's (one gauge per component); ``low``: where the dial starts at the
    most (availability lives near 100%, CPU and disk use the whole dial)."""
    if is_missing(value):
        st.metric(label or KPIS[key].label, "no data")
        return
    figure = gauge_figure(key, value, rule, low=low, label=label)  # type: ignore[arg-type]
    st.plotly_chart(figure, width="stretch")


def scatter_figure(
    frame: pd.DataFrame, x: str, y: str, size: str, label: str, title: str, currency: str = "USD"
) -> go.Figure:
    """One labelled bubble per row; axes, hover and formats from the KPI definitions."""
    (x_format, x_suffix), (y_format, y_suffix) = (
        _value_format(x, False, currency),
        _value_format(y, False, currency),
    )
    sizes = frame[size].astype(float)
    hover = (
        f"<b>%{{text}}</b><br>{column_label(x)}: %{{x:{x_format}}}{x_suffix}"
        f"<br>{column_label(y)}: %{{y:{y_format}}}{y_suffix}"
        f"<br>{column_label(size)}: %{{customdata:,}}<extra></extra>"
    )
    fig = go.Figure(
        go.Scatter(
            x=frame[x],
            y=frame[y],
            mode="markers+text",
            text=frame[label],
            textposition="top center",
            cliponaxis=False,  # a label over the top bubble stays readable
            customdata=frame[size],
            hovertemplate=hover,
            marker={
                "size": sizes,
                "sizemode": "area",
                "sizeref": 2.0 * (sizes.max() if len(sizes) else 1.0) / 40.0**2,
                "color": SERIES_COLORS[0],
            },
        )
    )
    fig.update_layout(title=title, height=360, margin={"t": 60})
    for axis, value_format, suffix, column in (
        (fig.update_xaxes, x_format, x_suffix, x),
        (fig.update_yaxes, y_format, y_suffix, y),
    ):
        ticks = {"tickformat": ".1%"} if value_format == ".2%" else {"ticksuffix": suffix}
        axis(title=column_label(column), **ticks)
    return fig


def scatter(frame: pd.DataFrame, x: str, y: str, size: str, label: str, title: str) -> None:
    st.plotly_chart(scatter_figure(frame, x, y, size, label, title), width="stretch")
