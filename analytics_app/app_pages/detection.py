"""Detection: volume, anomaly rate, confidence and run time, by bucket and by algorithm."""

import streamlit as st

from analytics_app.ui import cards, charts, data, downloads, tables

filters = data.current_filters()
page = data.page_data("detection", filters)
cards.header("Detection", page, "Tenant and algorithm filters apply.")
if cards.empty_state(page):
    st.stop()

cards.kpi_cards(page)
trend = page.series["detection_trend"]
left, right = st.columns(2)
with left:
    charts.trend_chart(trend, ["detections", "failed"], "Detections", "bar")
    charts.trend_chart(trend, ["avg_confidence"], "Average confidence (mean score)")
with right:
    charts.trend_chart(trend, ["anomaly_rate"], "Anomaly rate", percent=True)
    charts.trend_chart(trend, ["avg_execution_ms", "p95_execution_ms"], "Execution time (ms)")

st.subheader("By algorithm")
algorithms = page.series["by_algorithm"]
charts.scatter(
    algorithms.dropna(subset=["anomaly_rate", "p95_execution_ms"]),
    x="p95_execution_ms",
    y="anomaly_rate",
    size="detections",
    label="algorithm",
    title="Anomaly rate against p95 run time (size: detections)",
)
tables.table(algorithms, currency=page.currency)
downloads.downloads(page)
