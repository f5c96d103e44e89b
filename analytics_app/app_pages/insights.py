"""Insights: a ranked feed of what changed, each with its evidence and method."""

import streamlit as st

from analytics_app.ui import components, data

filters = data.current_filters()
page = data.page_data("insights", filters)
components.header(
    "Insights", page, "Ranked by severity; incidents first, then patterns, then structure."
)
if components.empty_state(page):
    st.stop()

area = st.radio("Area", components.AREAS, horizontal=True, key="insight_area")
components.insight_feed(page.insights, area)

with st.expander("Bottlenecks: who contributes to slow requests, errors and run time"):
    components.table(page.series["bottleneck_endpoints"])
    components.table(page.series["bottleneck_algorithms"])
with st.expander("All KPIs in this range"):
    components.kpi_cards(page)
components.downloads(page)
