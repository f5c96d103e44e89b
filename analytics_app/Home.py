"""Entry point: page config, the shared sidebar, and routing with st.navigation."""

import streamlit as st

from analytics_app.ui import data, sidebar

cfg = data.config()
st.set_page_config(page_title=cfg.dashboard.title, page_icon=":material/monitoring:", layout="wide")

pages = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/detection.py", title="Detection", icon=":material/radar:"),
    st.Page("app_pages/performance.py", title="Performance", icon=":material/speed:"),
    st.Page("app_pages/business.py", title="Business", icon=":material/payments:"),
]
if cfg.features.insights:
    pages.append(st.Page("app_pages/insights.py", title="Insights", icon=":material/lightbulb:"))
page = st.navigation(pages)

data.publish_filters(sidebar.show(cfg, data.catalog()))
page.run()
