"""Business: users, sessions, usage and cost, by bucket and by tenant."""

import streamlit as st

from analytics_app.ui import cards, charts, data, downloads, tables

filters = data.current_filters()
page = data.page_data("business", filters)
cards.header("Business", page, "The tenant filter applies; cost covers all of a tenant's usage.")
if cards.empty_state(page):
    st.stop()

cards.kpi_cards(page)
trend = page.series["business_trend"]
left, right = st.columns(2)
with left:
    charts.trend_chart(trend, ["active_users", "new_users"], "Users")
    charts.trend_chart(trend, ["api_calls"], "API calls", "bar")
with right:
    charts.trend_chart(trend, ["sessions"], "Sessions", "bar")
    charts.trend_chart(trend, ["cost"], f"Cost ({page.currency})", "bar", currency=page.currency)

st.subheader("By tenant")
tables.table(page.series["by_tenant"], currency=page.currency)
downloads.downloads(page)
