"""The UI's access to analytics_core: cached, and turning failures into messages.

Engines live in ``st.cache_resource`` (one per URL per process); page data in
``st.cache_data`` with the config's TTL, keyed on plain values so that every
session with the same filters shares one result.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st
from sqlalchemy import Engine

from analytics_app.ui import access
from analytics_core.access import AccessDenied
from analytics_core.cache import PageCache, page_cache
from analytics_core.catalog import Dimensions, check_filters, dimensions
from analytics_core.config import (
    AlertRule,
    Config,
    ConfigError,
    config_path,
    database_url,
    load_config,
)
from analytics_core.context import Scope
from analytics_core.filters import Filters, InputError
from analytics_core.guard import admit
from analytics_core.health import Health, check
from analytics_core.page_data import PageData, load_page
from analytics_core.pages import PAGES
from analytics_core.runtime import freeze_startup_objects, start_worker
from analytics_core.sources.database import SourceUnavailable, make_engine

# Once per app process, with the app's imports done (see the functions).
freeze_startup_objects()
start_worker()


def config() -> Config:
    """The app's config; a bad one stops the page with the message naming the key."""
    try:
        return _config(str(config_path()))
    except ConfigError as exc:
        st.error(f"**Configuration error.** {exc}")
        st.stop()
        raise  # unreachable: st.stop raises


def alert_rule(kpi: str) -> AlertRule | None:
    """The config's threshold alert on ``kpi`` (the first, in file order), if any."""
    return next((rule for rule in config().alerts if rule.kpi == kpi), None)


@st.cache_resource(show_spinner=False)
def _config(path: str) -> Config:
    return load_config(path)


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return make_engine(url)


def db_url() -> str:
    return database_url(config())


def _configured_ttl() -> timedelta:
    # cache_data takes its TTL when decorating, so read it once at import.
    try:
        return timedelta(seconds=load_config().dashboard.refresh_interval_seconds)
    except ConfigError:
        return timedelta(seconds=300)  # config() reports the error on the page


_TTL = _configured_ttl()


@st.cache_data(show_spinner=False, ttl=_TTL, max_entries=64)
def _dimensions(url: str, scope: Scope) -> Dimensions:
    # The scope is an argument, so part of the cache key: one caller's lists are never
    # served to another whose scope differs.
    return dimensions(_engine(url), scope)


@st.cache_resource(show_spinner=False)
def _shared_cache(cfg_path: str) -> PageCache:
    # One Redis client per process, shared by every session (a no-op without Redis).
    return page_cache(_config(cfg_path))


class _NotKept(Exception):
    """Carries a page out of the cached function uncached: st.cache_data keeps no
    result of a call that raises."""

    def __init__(self, page: PageData):
        self.page = page


@st.cache_data(show_spinner="Querying…", ttl=_TTL, max_entries=256)
def _page_data(url: str, cfg_path: str, page: str, filters: Filters, scope: Scope) -> PageData:
    # Per-process cache in front of the shared one (Redis), in front of the database;
    # the scope is in both keys.
    cfg = _config(cfg_path)
    data = load_page(_engine(url), cfg, page, filters, _shared_cache(cfg_path), scope=scope)
    if data.degraded:  # a source failed while it was built: the next view asks again
        raise _NotKept(data)
    return data


def _stop_on_source_error(exc: SourceUnavailable) -> None:
    st.error(f"**{exc.source} is unavailable.** {exc.detail}")
    st.info(f"How to fix: {exc.hint}")
    st.stop()


def catalog() -> Dimensions:
    """Tenants, algorithms and endpoints for the sidebar, or a stop with the fix."""
    try:
        return _dimensions(db_url(), access.caller().scope)
    except SourceUnavailable as exc:
        _stop_on_source_error(exc)
        raise
    except InputError as exc:  # e.g. an unsupported DATABASE_URL
        st.error(f"**Primary database:** {exc}")
        st.stop()
        raise


def catalog_if_reachable() -> Dimensions | None:
    """The catalog, or None when the database cannot give it (the Health page, which
    reports exactly that, runs anyway)."""
    try:
        return _dimensions(db_url(), access.caller().scope)
    except (SourceUnavailable, InputError):
        return None


@st.cache_data(show_spinner="Checking the sources…", ttl=timedelta(seconds=5), max_entries=8)
def health(url: str, cfg_path: str) -> Health:
    """Every source's state (:func:`analytics_core.health.check`) and this process's page
    cache counts; shared by every session for a few seconds, so that viewers and
    auto-refreshes do not multiply the probes (``health.clear()`` asks again)."""
    return check(_config(cfg_path), url, cache_stats=_shared_cache(cfg_path).stats())


def allow_page(page: str, filters: Filters | None = None) -> None:
    """Stop a page its caller may not see (reached by URL or switch_page) or a tenant
    outside their scope, saying why; the denial is recorded."""
    cfg, who = config(), access.caller()
    try:
        admit(who, page, filters, access.audit_log(cfg))
    except AccessDenied as exc:
        access.not_allowed(exc)


def page_data(page: str, filters: Filters) -> PageData:
    """The one call a page makes into analytics_core: under the caller's scope, refused
    for a page or tenant outside it, and recorded in the audit log."""
    allow_page(page, filters)
    data = _fetch(page, filters)
    cfg, who = config(), access.caller()
    access.record_view(cfg, who, page, filters)
    access.warn_if_audit_down()
    return data


def dashboard_pages(filters: Filters) -> list[PageData]:
    """Every data page the caller may see, for ``filters`` (the whole-dashboard export;
    the export is what is audited, not a view of each page)."""
    who, cfg = access.caller(), config()
    shown = [p for p in PAGES if who.may_view(p) and (p != "insights" or cfg.features.insights)]
    return [_fetch(page, filters) for page in shown]


def _fetch(page: str, filters: Filters) -> PageData:
    try:
        check_filters(filters, catalog())
        return _page_data(db_url(), str(config_path()), page, filters, access.caller().scope)
    except _NotKept as shown_once:
        return shown_once.page
    except InputError as exc:
        st.error(str(exc))
        st.stop()
        raise
    except SourceUnavailable as exc:
        _stop_on_source_error(exc)
        raise


_FILTERS_KEY = "_active_filters"


def publish_filters(filters: Filters | None) -> None:
    """Home.py hands the sidebar's filters to whichever page runs next."""
    st.session_state[_FILTERS_KEY] = filters


def current_filters() -> Filters:
    """The sidebar's filters; stops the page quietly when the sidebar said why there are none."""
    filters = st.session_state.get(_FILTERS_KEY)
    if filters is None:
        st.stop()
    return filters
