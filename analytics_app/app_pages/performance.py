"""Performance: API throughput, errors and latency percentiles, by bucket and by endpoint;
CPU, memory and disk when Prometheus answers."""

import streamlit as st

from analytics_app.ui import cards, charts, data, downloads, tables

filters = data.current_filters()
page = data.page_data("performance", filters)
# The caption's note says when the figures come from Prometheus, or why not.
cards.header("Performance", page, "Source: the API request log unless said otherwise.")
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

if "cpu_usage" in page.series:
    st.subheader("Resources (Prometheus)")
    dials = page.series["resources_gauges"]
    for column, dial in zip(st.columns(max(len(dials), 1)), dials.itertuples(), strict=False):
        with column:
            rule = data.alert_rule(dial.kpi)
            charts.gauge(dial.kpi, dial.value, rule, label=dial.label, low=0.0)
    cpu, memory = page.series["cpu_usage"], page.series["memory_bytes"]
    left, right = st.columns(2)
    with left:
        charts.trend_chart(
            cpu,
            charts.value_columns(cpu),
            "CPU usage by component",
            percent=True,
            rule=data.alert_rule("cpu_usage"),
        )
    with right:
        charts.trend_chart(memory, charts.value_columns(memory), "Peak memory by component (bytes)")
    left, right = st.columns(2)
    with left:
        charts.trend_chart(
            page.series["disk_used_ratio"],
            ["disk_used_ratio"],
            "Disk used",
            percent=True,
            rule=data.alert_rule("disk_used_ratio"),
        )
    with right:
        charts.trend_chart(page.series["uptime"], ["uptime"], "Targets up (up)", percent=True)
    tables.table(page.series["resources_now"])
downloads.downloads(page)
