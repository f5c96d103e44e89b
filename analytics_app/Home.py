"""Entry point: page config, the shared sidebar, and routing with st.navigation."""

from pathlib import Path

import streamlit as st

from analytics_app.ui import data, sidebar

cfg = data.config()
st.set_page_config(page_title=cfg.dashboard.title, page_icon=":material/monitoring:", layout="wide")

specs = [
    ("app_pages/overview.py", "Overview", ":material/dashboard:"),
    ("app_pages/detection.py", "Detection", ":material/radar:"),
    ("app_pages/performance.py", "Performance", ":material/speed:"),
    ("app_pages/business.py", "Business", ":material/payments:"),
]
if cfg.features.insights:
    specs.append(("app_pages/insights.py", "Insights", ":material/lightbulb:"))
pages = [
    st.Page(script, title=title, icon=icon, default=n == 0)
    for n, (script, title, icon) in enumerate(specs)
]
page = st.navigation(pages)

# st.navigation shows the default page for an unknown path without a word; say so.
# A page's url path is its file name; the default page lives at the root only.
url_paths = {
    ("" if n == 0 else Path(script).stem): title for n, (script, title, _) in enumerate(specs)
}
requested = sidebar.requested_path(st.context.url, st.get_option("server.baseUrlPath"))
note = sidebar.page_not_found(requested, url_paths)
if note:
    st.warning(note, icon=":material/link_off:")

data.publish_filters(sidebar.show(cfg, data.catalog()))
page.run()
