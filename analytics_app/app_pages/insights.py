"""Insights: a ranked feed of what changed, each with its evidence and method."""

import streamlit as st

from analytics_app.ui import cards, data, downloads, insights, tables

filters = data.current_filters()
page = data.page_data("insights", filters)
cards.header(
    "Insights", page, "Ranked by severity; incidents first, then patterns, then structure."
)
if cards.empty_state(page):
    st.stop()

area = insights.area_choice()
insights.insight_feed(page.insights, area, page.currency)

with st.expander("Bottlenecks: who contributes to slow requests, errors and run time"):
    tables.table(page.series["bottleneck_endpoints"], currency=page.currency)
    tables.table(page.series["bottleneck_algorithms"], currency=page.currency)
with st.expander("All KPIs in this range"):
    cards.kpi_cards(page)
downloads.downloads(page)
