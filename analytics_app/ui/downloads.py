"""The downloads of a page: exactly what it shows, with the filters recorded, prepared
on request so that each export is allowed, counted and audited before it is handed over."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from analytics_app.ui import access
from analytics_core.access import AccessDenied
from analytics_core.audit import AuditUnavailable
from analytics_core.exports import file_stem, render, row_count
from analytics_core.filters import Filters
from analytics_core.guard import ExportLimited, release
from analytics_core.page_data import PageData
from analytics_core.pages import EXPORT_FORMATS

MIME = {"csv": "text/csv", "json": "application/json"}
_PREPARED = "_prepared_export"


@dataclass(frozen=True)
class _Refused:
    view: tuple[str, Filters, str]
    message: str
    paused: bool  # the audit log is down, rather than this caller over a limit


@dataclass(frozen=True)
class _Prepared:
    view: tuple[str, Filters, str]  # page, filters, format: shown only for that view
    content: str
    file_name: str


def downloads(data: PageData) -> None:
    """CSV and JSON of exactly what the page shows, with the filters recorded."""
    rows = row_count(data)
    offer(data.page, data.filters, file_stem(data), lambda fmt: (render(data, fmt), rows))


def offer(page: str, filters: Filters, stem: str, build: Callable[[str], tuple[str, int]]) -> None:
    """A format picker and a "Prepare" button for the formats the caller's role may
    export; the file is built when asked, once the export limit and the audit log allow
    it, and then offered for download."""
    from analytics_app.ui.data import config

    cfg = config()
    if not cfg.features.exports:
        return
    who = access.caller()
    formats = [f for f in EXPORT_FORMATS if who.may_export(f)]
    if not formats:
        st.caption(f"Exports are not open to role {who.role or 'none'}.")
        return
    limiter = access.export_limiter(cfg)
    picker = f"export_format_{page}"
    fmt = st.session_state.get(picker)
    fmt = fmt if fmt in formats else formats[0]
    view = (page, filters, fmt)
    # Prepared in the button's callback, before this run reads the allowance: the button
    # is disabled on the very run that spent the last export.
    allowance = limiter.peek(who.identity.user)
    left, middle, right = st.columns([1, 1, 3], vertical_alignment="bottom")
    with left:
        st.selectbox("Export format", formats, key=picker, format_func=str.upper)
    with middle:
        st.button(
            "Prepare export",
            key=f"prepare_export_{page}",
            icon=":material/description:",
            disabled=not allowance.allowed,
            help=allowance.message(filters.tz) or None,
            on_click=_prepare,
            args=(cfg, who, limiter, page, filters, stem, build),
        )
    if not allowance.allowed:
        st.caption(allowance.message(filters.tz))
    outcome = st.session_state.get(_PREPARED)
    if isinstance(outcome, _Refused) and outcome.view == view:
        st.session_state.pop(_PREPARED)  # said once
        (st.error if outcome.paused else st.warning)(outcome.message)
    elif isinstance(outcome, _Prepared) and outcome.view == view:
        with right:
            st.download_button(
                f"Download {fmt.upper()}",
                outcome.content,
                file_name=outcome.file_name,
                mime=MIME[fmt],
                on_click="ignore",
                icon=":material/download:",
            )


def _prepare(cfg, who, limiter, page, filters, stem, build) -> None:
    # The picker's value now: the callback's arguments were bound on the previous run.
    fmt = st.session_state[f"export_format_{page}"]
    view = (page, filters, fmt)
    content, rows = build(fmt)
    try:
        release(who, page, filters, fmt, rows, limiter, access.audit_log(cfg))
    except (AccessDenied, ExportLimited) as exc:
        st.session_state[_PREPARED] = _Refused(view, str(exc), paused=False)
        return
    except AuditUnavailable as exc:
        access.note_audit_down(exc)
        paused = (
            "**Exports are paused:** the audit log cannot record them. Try again when it is "
            "back; the page itself keeps working."
        )
        st.session_state[_PREPARED] = _Refused(view, paused, paused=True)
        return
    st.session_state[_PREPARED] = _Prepared(view, content, f"{stem}.{fmt}")
