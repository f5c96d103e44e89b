"""KPI cards, the page header and the empty state: figures from analytics_core, laid
out; formatting from ``analytics_core.kpis``."""

from __future__ import annotations

import streamlit as st

from analytics_app.ui.charts import complete_buckets
from analytics_core.filters import zone
from analytics_core.kpis import (
    KPIS,
    delta_color,
    format_delta,
    format_kpi,
    is_missing,
    judged,
)
from analytics_core.page_data import PageData


def header(title: str, data: PageData | None = None, caption: str | None = None) -> None:
    st.title(title)
    if data is not None:
        from analytics_app.ui.data import catalog

        # Every active filter, so a screenshot of one tenant says so.
        note = f" {data.source_note}" if data.source_note else ""
        st.caption(
            f"{data.filters.describe(catalog().tenants)}; compared with the previous "
            f"period of equal length. {data_as_of(data)} {caption or ''}{note}"
        )


def data_as_of(data: PageData) -> str:
    """When the newest row the page uses happened, in the page's zone."""
    if data.data_as_of is None:
        return "No data in range."
    local = data.data_as_of.astimezone(zone(data.filters.tz))
    return f"Data as of {local:%Y-%m-%d %H:%M} ({data.filters.tz})."


def kpi_cards(
    data: PageData, sparklines: dict[str, tuple[str, str]] | None = None, per_row: int = 4
) -> None:
    """One st.metric per KPI with its delta; ``sparklines`` maps a KPI to (series, column).

    The delta is coloured only when the change is significant (grey otherwise: noise
    is neither good nor bad news), and says so when there is no previous period.
    """
    keys = list(data.kpis)
    per_row = max(1, min(per_row, 4))  # more than four cuts labels on a laptop
    st.html(card_layout(per_row))
    cards = st.container(key=CARDS_KEY)
    for row_start in range(0, len(keys), per_row):
        cols = cards.columns(per_row)
        for col, key in zip(cols, keys[row_start : row_start + per_row], strict=False):
            chart = None
            if sparklines and key in sparklines:
                series, column = sparklines[key]
                frame = complete_buckets(data.series[series])  # a half-counted bucket is no dip
                chart = judged(frame, column).dropna().tolist()
            change = data.changes.get(key)
            shown = card_delta(key, data)
            # "±0" or "no previous period" has no direction to point, and nothing to call
            # significant: the test compares per-bucket values, the card the range's.
            moved = shown is not None and shown != NO_PREVIOUS and shown[0] != "±"
            significant = change is not None and change.significant and moved
            arrow = "auto" if moved else "off"
            with col:
                st.metric(
                    KPIS[key].label,
                    format_kpi(key, data.kpis[key], data.currency),
                    shown,
                    delta_color=delta_color(key, significant),  # type: ignore[arg-type]
                    delta_arrow=arrow,  # type: ignore[arg-type]
                    help=_help(key, change),
                    border=True,
                    chart_data=chart,
                    delta_description=_significance(change) if moved else None,
                )


NO_PREVIOUS = "no previous period"

CARDS_KEY = "kpi_cards"
# The narrowest card whose value and delta line fit uncut: the widest seen on the demo
# data ("3.16 req/min" at the metric's 2.25rem, "+368.0 ms" beside "not significant")
# need about 200 px inside the card's padding and border. Four such cards need a 992 px
# container, which a 1200-1440 px laptop with the sidebar open does not give.
CARD_MIN_WIDTH_PX = 236
_GAP_PX = 16  # Streamlit's gap between columns and between rows (1rem)


def reflow_width(per_row: int) -> int:
    """The cards container's width below which ``per_row`` cards no longer fit a row."""
    return per_row * CARD_MIN_WIDTH_PX + (per_row - 1) * _GAP_PX


def card_layout(per_row: int) -> str:
    """The cards' responsive CSS, scoped through the container's documented ``st-key-``
    class. Wide: untouched, ``per_row`` cards a row. A container narrower than
    :func:`reflow_width` (a laptop with the sidebar open): each row wraps into rows of two,
    sparklines and significance word kept. Under 640 px Streamlit stacks columns one per
    row, so six cards would fill three phone screens: the rows dissolve into one flow of
    two cards per row, without sparklines and with a smaller value; the significance
    word stays in the card's help. Anywhere, a delta too long for its card puts the
    significance word on its own line rather than cutting it."""
    scope = f".st-key-{CARDS_KEY}"
    laptop = ""
    if per_row > 2:
        laptop = f"""
@container {CARDS_KEY} (max-width: {reflow_width(per_row) - 1}px) {{
  {scope} [data-testid="stHorizontalBlock"] {{ flex-wrap: wrap !important; }}
  {scope} [data-testid="stColumn"] {{
    flex: 0 0 calc(50% - {_GAP_PX // 2}px) !important;
    min-width: calc(50% - {_GAP_PX // 2}px) !important;
    width: calc(50% - {_GAP_PX // 2}px) !important;
  }}
  {scope} [data-testid="stColumn"]:not(:has([data-testid="stMetric"])) {{ display: none; }}
}}"""
    # The phone rules come last: they win where both apply.
    return f"""<style>
{scope} {{ container: {CARDS_KEY} / inline-size; }}
{scope} div:has(> [data-testid="stMetricDeltaDescription"]) {{ flex-wrap: wrap; }}{laptop}
@media (max-width: 640px) {{
  {scope} {{ flex-flow: row wrap !important; gap: 0.5rem !important; }}
  {scope} [data-testid="stLayoutWrapper"],
  {scope} [data-testid="stHorizontalBlock"] {{ display: contents; }}
  {scope} [data-testid="stColumn"] {{
    flex: 0 0 calc(50% - 0.25rem) !important;
    min-width: calc(50% - 0.25rem) !important;
    width: calc(50% - 0.25rem) !important;
  }}
  {scope} [data-testid="stColumn"]:not(:has([data-testid="stMetric"])) {{
    display: none;
  }}
  {scope} [data-testid="stMetricChart"],
  {scope} [data-testid="stMetricDeltaDescription"] {{ display: none; }}
  {scope} [data-testid="stMetricValue"] {{ font-size: 1.6rem; }}
}}
</style>"""


def card_delta(key: str, data: PageData) -> str | None:
    """The card's delta text; a visible reason instead of a blank when the previous
    period has no data (e.g. a 90-day range reaching back before the data starts)."""
    if is_missing(data.kpis[key]):
        return None
    return format_delta(key, data.kpis[key], data.previous.get(key), data.currency) or NO_PREVIOUS


def _help(key: str, change) -> str:
    """Definition plus the test behind the significance word (too long for the card)."""
    text = KPIS[key].description
    if change is not None and change.p_value is not None:
        text += (
            f"\n\nChange vs previous period: {_significance(change)}, "
            f"p = {change.p_value:.3g} ({change.method})."
        )
    return text


def _significance(change) -> str | None:
    """Whether a delta is more than noise, short enough for a four-card row."""
    if change is None or change.p_value is None:
        return None
    return "significant" if change.significant else "not significant"


def empty_state(data: PageData) -> bool:
    """Say so when the range holds no data; True means the page should stop here."""
    if data.is_empty:
        st.info(
            "No data in this range for these filters. Widen the date range or clear "
            "the tenant, algorithm and endpoint filters."
        )
        return True
    return False
