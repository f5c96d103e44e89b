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

area = st.radio("Area", insights.AREAS, horizontal=True, key="insight_area")
insights.insight_feed(page.insights, area)

with st.expander("Bottlenecks: who contributes to slow requests, errors and run time"):
    tables.table(page.series["bottleneck_endpoints"])
    tables.table(page.series["bottleneck_algorithms"])
with st.expander("All KPIs in this range"):
    cards.kpi_cards(page)
downloads.downloads(page)
