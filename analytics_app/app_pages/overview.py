"""Overview: the six headline KPIs with deltas and sparklines, and headline trends."""

import streamlit as st

from analytics_app.ui import cards, charts, data, downloads, insights

filters = data.current_filters()
page = data.page_data("overview", filters)
cards.header("Overview", page)
if cards.empty_state(page):
    st.stop()

cards.kpi_cards(
    page,
    sparklines={
        "total_detections": ("detection_trend", "detections"),
        "anomaly_rate": ("detection_trend", "anomaly_rate"),
        "avg_response_ms": ("performance_trend", "avg_ms"),
        "availability": ("performance_trend", "availability"),
        "data_processed_gb": ("business_trend", "data_processed_gb"),
        "active_users": ("business_trend", "active_users"),
    },
    per_row=3,
)
insights.top_insights(page.insights)

left, right = st.columns(2)
with left:
    charts.trend_chart(page.series["detection_trend"], ["detections"], "Detections", "bar")
    charts.trend_chart(
        page.series["performance_trend"], ["p50_ms", "p95_ms", "p99_ms"], "Latency (ms)"
    )
with right:
    charts.trend_chart(
        page.series["detection_trend"], ["anomaly_rate"], "Anomaly rate", percent=True
    )
    charts.trend_chart(page.series["business_trend"], ["active_users"], "Active users")
downloads.downloads(page)
downloads.dashboard(filters, lambda: data.dashboard_pages(filters))
