"""Entry point: page config, sign-in, the shared sidebar, and routing with st.navigation."""

from pathlib import Path

import streamlit as st

from analytics_app.ui import access, data, sidebar
from analytics_core.access import open_refused

cfg = data.config()
st.set_page_config(page_title=cfg.dashboard.title, page_icon=":material/monitoring:", layout="wide")

refusal = open_refused(cfg.auth, st.get_option("server.address"))
if refusal:
    st.error(refusal, icon=":material/lock_open:")
    st.stop()
who = access.current_access(cfg)  # a request without an identity stops here
if cfg.auth.mode == "none":
    st.caption(
        ":material/lock_open: Sign-in is off (auth.mode: none): a local demo. Every tenant "
        "is visible to whoever reaches this address."
    )
elif cfg.auth.mode == "oidc":
    st.sidebar.button("Sign out", on_click=st.logout, icon=":material/logout:")

specs = [
    ("app_pages/overview.py", "Overview", ":material/dashboard:"),
    ("app_pages/detection.py", "Detection", ":material/radar:"),
    ("app_pages/performance.py", "Performance", ":material/speed:"),
    ("app_pages/business.py", "Business", ":material/payments:"),
]
if cfg.features.insights:
    specs.append(("app_pages/insights.py", "Insights", ":material/lightbulb:"))
specs.append(("app_pages/audit.py", "Audit", ":material/history:"))
specs.append(("app_pages/health.py", "Health", ":material/monitor_heart:"))
# Pages the caller may not see are not in the navigation (and refuse if run anyway).
allowed = [spec for spec in specs if who.may_view(Path(spec[0]).stem)]
if not allowed:
    access.refuse(cfg, who, f"no page is open to {who.identity.user}: no role is mapped to them")

pages = [
    st.Page(script, title=title, icon=icon, default=n == 0)
    for n, (script, title, icon) in enumerate(allowed)
]
page = st.navigation(pages)

# st.navigation shows the default page for an unknown path without a word; say so. A
# page's url path is its file name; the default page lives at the root only.
requested = sidebar.requested_path(st.context.url, st.get_option("server.baseUrlPath"))
hidden = {Path(script).stem for script, _, _ in specs} - {Path(s).stem for s, _, _ in allowed}
if requested in hidden:  # a page this caller may not see, asked for by its URL
    data.allow_page(requested)
url_paths = {
    ("" if n == 0 else Path(script).stem): title for n, (script, title, _) in enumerate(allowed)
}
note = sidebar.page_not_found(requested, url_paths)
if note:
    st.warning(note, icon=":material/link_off:")

if page.title == "Health" and data.catalog_if_reachable() is None:
    # It reports a database that is down: no catalog, so no sidebar either.
    page.run()
    st.stop()
dims = data.catalog()
access.audit_refused_url_tenants(cfg, who, dims.tenants)
data.publish_filters(sidebar.show(cfg, dims))
page.run()
