"""Business: users, sessions, usage and cost, by bucket and by tenant."""

import streamlit as st

from analytics_app.ui import components, data

filters = data.current_filters()
page = data.page_data("business", filters)
components.header(
    "Business", page, "The tenant filter applies; cost covers all of a tenant's usage."
)
if components.empty_state(page):
    st.stop()

components.kpi_cards(page)
trend = page.series["business_trend"]
left, right = st.columns(2)
with left:
    components.trend_chart(trend, ["active_users", "new_users"], "Users")
    components.trend_chart(trend, ["api_calls"], "API calls", "bar")
with right:
    components.trend_chart(trend, ["sessions"], "Sessions", "bar")
    components.trend_chart(trend, ["cost"], f"Cost ({page.currency})", "bar")

st.subheader("By tenant")
components.table(page.series["by_tenant"])
components.downloads(page)
