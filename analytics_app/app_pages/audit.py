"""Audit: who signed in, viewed, exported or was refused what, when and from where."""

import streamlit as st

from analytics_app.ui import access, data, downloads
from analytics_core.audit import ACTIONS
from analytics_core.exports import range_stem, table_export

filters = data.current_filters()
data.allow_page("audit")
cfg = data.config()
access.require_every_tenant(cfg, "audit")  # the log records every tenant's users
st.title("Audit log")
access.warn_if_audit_is_local(cfg)
st.caption(
    f"{filters.describe()}; newest first. Every sign-in, page view (once per session and "
    "filters), export and refusal, in the audit store; nothing here can be changed."
)
left, right = st.columns(2)
with left:
    users = st.multiselect(
        "User", access.audit_users(cfg), placeholder="All users", key="audit_users"
    )
with right:
    actions = st.multiselect("Action", ACTIONS, placeholder="All actions", key="audit_actions")
access.record_view(cfg, access.caller(), "audit", filters)  # this view is in the list too
events, complete = access.audit_events(cfg, filters, users, actions)
if events.empty:
    st.info("No audit events in this range for these filters.", icon=":material/history:")
    st.stop()
chosen = {"users": users, "actions": actions}
note = access.audit_note(complete, len(events), chosen)
if not complete:
    st.warning(note)
st.dataframe(events, hide_index=True, width="stretch")
downloads.offer(
    "audit",
    filters,
    range_stem("audit", filters),
    lambda fmt: (
        table_export("audit", events, filters, fmt, cfg.exports.key(), note),
        len(events),
    ),
    selection=chosen,
)
