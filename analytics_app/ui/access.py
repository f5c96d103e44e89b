"""Sign-in, the caller's rights, and the audit trail of what they saw and exported.

The sign-in mode decides where the identity comes from: nobody (``none``, the local
demo), the authenticating proxy's headers (``proxy``) or Streamlit's OIDC sign-in
(``oidc``). :func:`current_access` is asked by Home.py before anything else, so a
request without an identity sees the "not signed in" page and no data.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from analytics_core.access import (
    Access,
    NotSignedIn,
    from_headers,
    from_oidc,
    open_identity,
    resolve,
)
from analytics_core.audit import AuditEvent, AuditLog, AuditUnavailable, check_audit_url
from analytics_core.config import Config, audit_url, database_url
from analytics_core.export_limits import ExportLimiter
from analytics_core.filters import Filters, InputError, clip

logger = logging.getLogger(__name__)
_ACCESS_KEY = "_access"
_SIGNED_IN_AS = "_audited_sign_in"
_VIEWS_SEEN = "_audited_views"
_AUDIT_DOWN = "_audit_down"


@st.cache_resource(show_spinner=False)
def _audit_log(url: str) -> AuditLog:
    return AuditLog(url)


def audit_log(cfg: Config) -> AuditLog:
    url = audit_url(cfg)
    try:
        check_audit_url(url, database_url(cfg))
    except InputError as exc:
        st.error(f"**Configuration error:** data_sources.audit.url: {exc}")
        st.stop()
    return _audit_log(url)


@st.cache_resource(show_spinner=False)
def _limiter(count: int, seconds: int, redis_url: str | None) -> ExportLimiter:
    return ExportLimiter(count, timedelta(seconds=seconds), redis_url)


def export_limiter(cfg: Config) -> ExportLimiter:
    """One per process, shared by every session; through Redis when it is enabled."""
    limit, redis = cfg.auth.export_limit, cfg.data_sources.redis
    url = redis.url if redis.enabled else None
    return _limiter(limit.count, int(limit.period.total_seconds()), url)


def record(cfg: Config, event: AuditEvent) -> bool:
    """Write ``event`` to the audit log; False (and a warning on the page) when the log
    cannot be written. The page goes on: only exports need the log (see downloads)."""
    try:
        audit_log(cfg).record(event)
    except AuditUnavailable as exc:
        note_audit_down(exc)
        return False
    st.session_state.pop(_AUDIT_DOWN, None)
    return True


def note_audit_down(exc: AuditUnavailable) -> None:
    logger.warning("audit log: %s", exc)
    st.session_state[_AUDIT_DOWN] = str(exc)


def warn_if_audit_down() -> None:
    if down := st.session_state.get(_AUDIT_DOWN):
        st.warning(
            f"**The audit log cannot be written** ({clip(down, 200)}). Views are not being "
            "recorded, and exports are paused until it is back.",
            icon=":material/history:",
        )


def _identity(cfg: Config):
    mode = cfg.auth.mode
    if mode == "none":
        return open_identity()
    if mode == "proxy":
        return from_headers(st.context.headers, cfg.auth)
    return from_oidc(st.user.to_dict())


def _not_signed_in(cfg: Config, reason: str) -> None:
    st.title("Not signed in")
    if cfg.auth.mode == "oidc":
        if not _oidc_configured():  # st.login would fail with Streamlit's own error
            st.error(
                "Sign-in (auth.mode: oidc) is not configured: .streamlit/secrets.toml needs "
                "an [auth] section with the identity provider (README: Sign-in and access)."
            )
            st.stop()
        st.info("Sign in to see the dashboard.")
        st.button("Sign in", on_click=st.login, icon=":material/login:")
    else:
        st.error(
            f"This dashboard is served behind a signing-in proxy, and this request did not "
            f"carry its identity: {reason}."
        )
    st.stop()


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no or unreadable secrets file: not configured
        return False


def current_access(cfg: Config) -> Access:
    """The caller's rights; a caller without an identity gets the "not signed in" page
    and nothing else. Signing in is audited once per session and identity."""
    try:
        identity = _identity(cfg)
    except NotSignedIn as exc:
        _not_signed_in(cfg, str(exc))
        raise
    access = resolve(identity, cfg.auth)
    st.session_state[_ACCESS_KEY] = access
    signing_in = cfg.auth.mode != "none" and st.session_state.get(_SIGNED_IN_AS) != identity
    if signing_in and record(cfg, access.event("sign_in")):
        st.session_state[_SIGNED_IN_AS] = identity
    return access


def caller() -> Access:
    """The rights Home.py resolved for this run (pages run after it)."""
    found = st.session_state.get(_ACCESS_KEY)
    if found is None:  # a page run without Home.py: nothing is known, nothing is shown
        st.stop()
    return found


def refuse(cfg: Config, who: Access, reason: str, page: str | None = None) -> None:
    """Record the denial, say why the caller sees nothing, and stop."""
    record(cfg, who.event("denied", page=page, detail=reason))
    not_allowed(reason)


def not_allowed(reason: object) -> None:
    """Say why (the denial is recorded already) and stop the page."""
    st.error(f"**Not allowed:** {reason}.", icon=":material/block:")
    st.stop()


def audit_refused_url_tenants(cfg: Config, who: Access, visible: dict[str, str]) -> None:
    """Record, once per session, the tenants a link asked for that the caller may not see
    (the sidebar names and ignores them)."""
    if who.scope.unrestricted or st.session_state.get("_audited_url_tenants"):
        return
    st.session_state["_audited_url_tenants"] = True
    refused = [t for t in st.query_params.get_all("tenant") if t not in visible]
    if refused:
        shown = ", ".join(repr(clip(t)) for t in refused[:5])
        detail = f"URL asked for tenant {shown}, outside the caller's scope"
        record(cfg, who.event("denied", detail=detail))


AUDIT_PAGE_ROWS = 10_000


def audit_users(cfg: Config) -> list[str]:
    """The users the audit log knows (the Audit page's filter allow-list)."""
    try:
        return audit_log(cfg).users()
    except AuditUnavailable as exc:
        _audit_down_stop(exc)
        raise


def audit_events(cfg: Config, filters: Filters, users, actions) -> tuple[pd.DataFrame, bool]:
    """The log's events in the filters' range, newest first, at most AUDIT_PAGE_ROWS; and
    whether that is all of them."""
    # A preset range ends at the start of the current minute: the events since then (this
    # very view, say) belong in it too.
    recent = filters.end >= datetime.now(UTC) - timedelta(minutes=1)
    end = None if recent else filters.end
    try:
        events = audit_log(cfg).read(filters.start, end, users, actions, limit=AUDIT_PAGE_ROWS + 1)
    except AuditUnavailable as exc:
        _audit_down_stop(exc)
        raise
    return events.head(AUDIT_PAGE_ROWS), len(events) <= AUDIT_PAGE_ROWS


def audit_note(complete: bool, shown: int, chosen: dict[str, list[str]]) -> str:
    """What an audit view (and its export) holds beyond the range: the users and actions
    chosen, and whether it is the newest events only."""
    parts = [f"{k}: {', '.join(v)}" for k, v in chosen.items() if v] or ["every user and action"]
    held = "" if complete else f"; the newest {shown:,} events only: narrow the range for the rest"
    return f"Audit events of {'; '.join(parts)}{held}."


def _audit_down_stop(exc: AuditUnavailable) -> None:
    st.error(f"**The audit log cannot be read.** {clip(exc, 300)}")
    st.stop()


def require_every_tenant(cfg: Config, page: str) -> None:
    """Stop a page that shows every tenant's activity for a caller scoped to some."""
    who = caller()
    if not who.scope.unrestricted:
        reason = f"the {page} page covers every tenant, and role {who.role} does not"
        refuse(cfg, who, reason, page)


def warn_if_audit_is_local(cfg: Config) -> None:
    if cfg.auth.mode != "none" and audit_url(cfg).startswith("sqlite:"):
        st.warning(
            "The audit log is a local SQLite file: each app host keeps its own. Set "
            "data_sources.audit.url to a shared PostgreSQL database.",
            icon=":material/warning:",
        )


def record_view(cfg: Config, who: Access, page: str, filters: Filters | None) -> None:
    """A page view, once per session, page and link (reruns and refreshes of the same
    view are one view); ``filters`` None for a page without (Health)."""
    seen: set = st.session_state.setdefault(_VIEWS_SEEN, set())
    # Keyed on the link's state, not the filters: a preset range's end moves every
    # minute, and a rerun of the same "last 7 days" is the same view.
    view = (page, json.dumps(st.query_params.to_dict(), sort_keys=True))
    if view in seen:
        return
    shown = None if filters is None else filters.as_dict()
    if record(cfg, who.event("view", page=page, filters=shown)):
        seen.add(view)
