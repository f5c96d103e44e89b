"""Performance: API throughput, errors and latency percentiles, by bucket and by endpoint."""

import streamlit as st

from analytics_app.ui import cards, charts, data, downloads, tables

filters = data.current_filters()
page = data.page_data("performance", filters)
cards.header("Performance", page, "Source: the API request log. Tenant and endpoint filters apply.")
if cards.empty_state(page):
    st.stop()

cards.kpi_cards(page)
trend = page.series["performance_trend"]
left, right = st.columns([2, 1])
with left:
    charts.trend_chart(trend, ["p50_ms", "p95_ms", "p99_ms"], "Latency percentiles (ms)")
with right:
    charts.gauge("availability", page.kpis["availability"], data.alert_rule("availability"))
left, right = st.columns(2)
with left:
    charts.trend_chart(trend, ["requests"], "Requests", "bar")
with right:
    charts.trend_chart(trend, ["error_rate"], "Error rate (5xx)", percent=True)

st.subheader("By endpoint")
tables.table(page.series["by_endpoint"], currency=page.currency)
downloads.downloads(page)
