"""Insights: the config's threshold checks against this range's KPIs."""

import streamlit as st

from ui import components, data

filters = data.current_filters()
page = data.page_data("insights", filters)
components.header("Insights", page, "Threshold checks from the config's alerts section.")
if components.empty_state(page):
    st.stop()

components.insight_cards(page.insights)
with st.expander("All KPIs in this range"):
    components.kpi_cards(page)
components.downloads(page)
