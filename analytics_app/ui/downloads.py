"""The downloads of a page: exactly what it shows, with the filters recorded, built only
when asked so that each export is allowed, counted and audited before it is handed over
(and a long PDF never holds up the page: it is drawn first, the file after)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import streamlit as st

from analytics_app.ui import access
from analytics_core.access import AccessDenied
from analytics_core.audit import AuditUnavailable
from analytics_core.config import ConfigError
from analytics_core.export_xlsx import over_limit
from analytics_core.exports import (
    DASHBOARD_FORMATS,
    dashboard_bytes,
    export_bytes,
    file_stem,
    range_stem,
    row_count,
)
from analytics_core.filters import Filters
from analytics_core.guard import ExportLimited, release
from analytics_core.page_data import PageData
from analytics_core.pages import EXPORT_FORMATS, MEDIA_TYPES

_PREPARED = "_prepared_export"
Build = Callable[[str], tuple[bytes, int]]  # format -> (file, data rows)


@dataclass(frozen=True)
class _Refused:
    view: tuple[str, str, str, str]
    message: str
    paused: bool  # the audit log is down, rather than this caller over a limit


@dataclass(frozen=True)
class _Prepared:
    view: tuple[str, str, str, str]  # what, link, format, selection: shown for it only
    content: bytes
    file_name: str


def downloads(data: PageData) -> None:
    """The page in every format the caller's role may export."""
    from analytics_app.ui.data import config

    cfg, rows = config(), row_count(data)
    title = cfg.dashboard.title
    offer(data.page, data.filters, file_stem(data),
          lambda fmt: (export_bytes(data, fmt, title, cfg.exports.key()), rows))  # fmt: skip
    too_long = over_limit(data)
    if too_long and st.session_state.get(f"export_format_{data.page}") == "xlsx":
        listed = ", ".join(f"{name} ({n:,} rows)" for name, n in too_long.items())
        st.info(f"Longer than an Excel sheet holds: {listed}. Their sheets say so in their "
                "first row; the CSV export has every row.")  # fmt: skip


def dashboard(filters: Filters, pages: Callable[[], Sequence[PageData]]) -> None:
    """Every page the caller may see, for these filters, in one workbook or one PDF."""
    from analytics_app.ui.data import config

    cfg = config()

    def build(fmt: str) -> tuple[bytes, int]:
        shown = list(pages())
        content = dashboard_bytes(shown, fmt, cfg.dashboard.title, cfg.exports.key())
        return content, sum(row_count(p) for p in shown)

    offer("dashboard", filters, range_stem("dashboard", filters), build, DASHBOARD_FORMATS,
          "Whole dashboard")  # fmt: skip


def offer(
    what: str,
    filters: Filters,
    stem: str,
    build: Build,
    formats: Sequence[str] = EXPORT_FORMATS,
    label: str = "Export",
    selection: dict[str, object] | None = None,
) -> None:
    """A format picker and a "Prepare" button for the formats the caller's role may
    export; the file is built when asked, once the export limit and the audit log allow
    it, and then offered for download. ``selection`` (choices beyond the filters that
    decide the file) is part of what the prepared file is for, and recorded with it."""
    from analytics_app.ui.data import config

    cfg = config()
    if not cfg.features.exports:
        return
    who = access.caller()
    allowed = [f for f in formats if who.may_export(f)]
    if not allowed:
        st.caption(f"{label}: not open to role {who.role or 'none'}.")
        return
    limiter = access.export_limiter(cfg)
    allowance = limiter.peek(who.identity.user)
    left, middle, right = st.columns([1, 1, 3], vertical_alignment="bottom")
    with left:
        fmt = st.selectbox(f"{label} format", allowed, key=f"export_format_{what}",
                           format_func=str.upper)  # fmt: skip
    with middle:
        clicked = st.button(
            "Prepare",
            key=f"prepare_export_{what}",
            icon=":material/description:",
            disabled=not allowance.allowed,
            help=allowance.message(filters.tz) or f"Build the {label.lower()} file",
        )
    if not allowance.allowed:
        st.caption(allowance.message(filters.tz))
    chosen = selection or {}
    # What the file is for: the link's state (a preset's end moves every minute, and a
    # file prepared at 10:00:50 is still the one asked for at 10:01:05), the format and
    # choices beyond the filters.
    link = json.dumps(st.query_params.to_dict(), sort_keys=True)
    view = (what, link, fmt, json.dumps(chosen, sort_keys=True, default=str))
    if clicked:
        with st.spinner(f"Preparing {fmt.upper()}…", show_time=True):
            st.session_state[_PREPARED] = _prepare(
                cfg, who, limiter, view, filters, stem, build, chosen
            )
        st.rerun()  # the export limit as it is now, and the file's button
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
                mime=MEDIA_TYPES[fmt],
                on_click="ignore",
                icon=":material/download:",
                key=f"download_{what}",
            )


def _prepare(
    cfg, who, limiter, view, filters: Filters, stem: str, build: Build, selection
) -> _Prepared | _Refused:
    what, _, fmt, _ = view
    ahead = limiter.peek(who.identity.user)
    if not ahead.allowed:  # said before a long PDF is drawn for nothing
        return _Refused(view, ahead.message(filters.tz), paused=False)
    try:
        content, rows = build(fmt)
    except ConfigError as exc:  # e.g. no pseudonym key can be kept
        return _Refused(view, f"**Configuration error:** {exc}", paused=True)
    try:
        release(who, what, filters, fmt, rows, limiter, access.audit_log(cfg), selection)
    except (AccessDenied, ExportLimited) as exc:
        return _Refused(view, str(exc), paused=False)
    except AuditUnavailable as exc:
        access.note_audit_down(exc)
        paused = (
            "**Exports are paused:** the audit log cannot record them. Try again when it is "
            "back; the page itself keeps working."
        )
        return _Refused(view, paused, paused=True)
    return _Prepared(view, content, f"{stem}.{fmt}")
