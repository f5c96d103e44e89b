"""The shared sidebar: range, granularity, time zone, filters and auto-refresh.

Its state lives in the URL's query parameters, so a copied link reproduces the
view. On a session's first run the parameters seed the widgets (a bad value is
named in a warning and replaced by the default); after that the widgets own the
state and the URL is rewritten from them on every run.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import streamlit as st

from analytics_app.ui.insights import AREA_KEY, AREAS
from analytics_core.catalog import Dimensions
from analytics_core.config import Config
from analytics_core.filters import (
    GRANULARITIES,
    RANGE_PRESETS,
    Filters,
    InputError,
    clip,
    date_range,
    make_filters,
    preset_range,
    zone,
)

_PRESET_LABELS = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "custom": "Custom",
}
_GRANULARITY_OPTIONS = ("auto", *GRANULARITIES)
_SEEDED = "_sidebar_seeded_from_url"
# The last complete custom range: kept while the date picker holds only its first click.
_LAST_DATES = "_sidebar_last_dates"


def _is_zone(name: str) -> bool:
    try:
        zone(name)
    except InputError:
        return False
    return True


_ZONES = tuple(sorted(z for z in available_timezones() if _is_zone(z)))


def default_zone(config: Config) -> str:
    """The config's zone, else the browser's, else UTC: a person reads times in their
    own zone unless the deployment says otherwise."""
    if config.dashboard.default_timezone:
        return config.dashboard.default_timezone
    browser = st.context.timezone
    return browser if browser and _is_zone(browser) else "UTC"


def _seed_from_url(config: Config, dims: Dimensions) -> list[str]:
    """Put valid query parameters into the widgets' state; return warnings for the rest."""
    qp = st.query_params
    warnings: list[str] = []
    state = st.session_state

    preset = qp.get("range", config.dashboard.default_range)
    if preset not in RANGE_PRESETS:
        warnings.append(
            f"URL parameter range={clip(preset)!r} is not one of {', '.join(RANGE_PRESETS)}"
        )
        preset = config.dashboard.default_range
    state["range"] = preset

    tz = qp.get("tz", default_zone(config))
    try:
        zone(tz)
    except InputError as exc:
        warnings.append(f"URL parameter tz: {clip(exc, 200)}")
        tz = default_zone(config)
    state["tz"] = tz

    granularity = qp.get("granularity", "auto")
    if granularity not in _GRANULARITY_OPTIONS:
        warnings.append(
            f"URL parameter granularity={clip(granularity)!r} is not one of "
            f"{', '.join(_GRANULARITY_OPTIONS)}"
        )
        granularity = "auto"
    state["granularity"] = granularity

    today = datetime.now(UTC).astimezone(zone(tz)).date()
    start_d, end_d = today - timedelta(days=6), today
    if "start" in qp or "end" in qp:
        try:
            start_d = date.fromisoformat(qp.get("start", ""))
            end_d = date.fromisoformat(qp.get("end", ""))
            if end_d < start_d:
                raise ValueError
        except ValueError:
            warnings.append(
                f"URL parameters start={clip(qp.get('start'))!r}, "
                f"end={clip(qp.get('end'))!r} are not an "
                "ISO date range (YYYY-MM-DD, end not before start)"
            )
            start_d, end_d = today - timedelta(days=6), today
    state["dates"] = state[_LAST_DATES] = (start_d, end_d)

    for key, known in (
        ("tenant", tuple(dims.tenants)),
        ("algorithm", dims.algorithms),
        ("endpoint", dims.endpoints),
    ):
        chosen = qp.get_all(key)
        unknown = [v for v in chosen if v not in known]
        if unknown:
            shown = ", ".join(repr(clip(v)) for v in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            # The tenant list is the caller's: one they may not see is as unknown to them
            # as one that does not exist (the message must not tell which).
            what = "unknown or not open to you:" if key == "tenant" else "unknown"
            warnings.append(f"URL parameter {key}: {what} {clip(shown, 200)}{more} ignored")
        state[key] = [v for v in chosen if v in known]

    refresh = qp.get("refresh", "0")
    if refresh not in ("0", "1"):
        warnings.append(f"URL parameter refresh={clip(refresh)!r} is not 0 or 1")
    state["refresh"] = refresh == "1"

    if "area" in qp:
        area = qp.get("area", "")
        if area in AREAS:
            state[AREA_KEY] = area
        else:
            warnings.append(f"URL parameter area={clip(area)!r} is not one of {', '.join(AREAS)}")
    return warnings


def _write_url(filters_state: dict[str, object]) -> None:
    params: dict[str, str | list[str]] = {}
    for key, value in filters_state.items():
        if value in (None, [], ""):
            continue
        params[key] = value  # type: ignore[assignment]
    st.query_params.from_dict(params)


def show(config: Config, dims: Dimensions) -> Filters | None:
    """Render the sidebar; return the chosen filters, or None with the reason shown."""
    state = st.session_state
    warnings = []
    if not state.get(_SEEDED):
        warnings = _seed_from_url(config, dims)
        state[_SEEDED] = True

    with st.sidebar:
        for w in warnings:
            st.warning(w)
        preset = st.selectbox(
            "Date range",
            list(RANGE_PRESETS),
            format_func=_PRESET_LABELS.__getitem__,
            key="range",
        )
        if preset == "custom":
            if "dates" not in state and _LAST_DATES in state:
                # The widget's state is dropped while another preset is shown; without
                # a range it would start as a single date.
                state["dates"] = state[_LAST_DATES]
            st.date_input("Dates (inclusive)", key="dates")
        st.selectbox("Granularity", _GRANULARITY_OPTIONS, key="granularity")
        st.selectbox("Time zone", _ZONES, key="tz")
        st.multiselect(
            "Tenant",
            list(dims.tenants),
            format_func=lambda t: f"{dims.tenants[t]} ({t})",
            key="tenant",
            placeholder="All tenants",
        )
        st.multiselect(
            "Algorithm", list(dims.algorithms), key="algorithm", placeholder="All algorithms"
        )
        st.multiselect(
            "Endpoint", list(dims.endpoints), key="endpoint", placeholder="All endpoints"
        )
        refresh = st.toggle(
            f"Auto-refresh every {config.dashboard.refresh_interval_seconds} s",
            key="refresh",
            disabled=not config.features.auto_refresh,
        )
        st.caption("Times are bucketed in the chosen time zone; ranges are half-open.")

    url_state: dict[str, object] = {
        "range": preset,
        "granularity": state["granularity"],
        "tz": state["tz"],
        "tenant": list(state["tenant"]),
        "algorithm": list(state["algorithm"]),
        "endpoint": list(state["endpoint"]),
        "refresh": "1" if refresh else None,
        # The Insights page's area (AREA_KEY), kept on every page like the filters above;
        # "all" is the default, so a plain link stays short.
        "area": None if state.get(AREA_KEY) in (None, "all") else state[AREA_KEY],
    }
    try:
        if preset == "custom":
            dates = state.get("dates")
            if isinstance(dates, tuple | list) and len(dates) == 2:
                state[_LAST_DATES] = tuple(dates)
            else:
                # Between the picker's two clicks: keep showing the previous range.
                st.sidebar.info("Pick the end date of the custom range.")
                dates = state.get(_LAST_DATES)
                if dates is None:  # no earlier range to keep showing
                    _write_url(url_state)
                    return None
            url_state["start"], url_state["end"] = dates[0].isoformat(), dates[1].isoformat()
            start, end = date_range(dates[0], dates[1], state["tz"])
        else:
            start, end = preset_range(preset, datetime.now(UTC))
        filters = make_filters(
            start,
            end,
            state["tz"],
            state["granularity"],
            state["tenant"],
            state["algorithm"],
            state["endpoint"],
            **config.dashboard.range_limits(),
        )
    except InputError as exc:
        # The chosen filters cannot be asked for (a range too long, too many points):
        # say why and show the default view rather than nothing.
        st.error(f"Filters: {exc}. Showing the default view instead.")
        _write_url(url_state)
        start, end = preset_range(config.dashboard.default_range, datetime.now(UTC))
        return make_filters(start, end, default_zone(config))
    _write_url(url_state)
    if refresh and config.features.auto_refresh:
        _auto_refresh(config.dashboard.refresh_interval_seconds)
    return filters


def _auto_refresh(interval: int) -> None:
    """Rerun the whole app every ``interval`` seconds; cached data expires on the same clock."""
    st.session_state["_last_full_run"] = time.monotonic()

    @st.fragment(run_every=interval)
    def tick() -> None:
        if time.monotonic() - st.session_state.get("_last_full_run", 0) >= interval * 0.9:
            st.rerun()

    tick()


def requested_path(url: str | None, base_path: str = "") -> str:
    """The page path the browser asked for (``st.context.url`` without the app's base
    path), e.g. ``"performance"``; ``""`` for the app root or when unknown."""
    if not url:
        return ""
    path = urlsplit(url).path.strip("/")
    base = base_path.strip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :].strip("/")
    return path


def page_not_found(requested: str, pages: dict[str, str]) -> str | None:
    """A note when ``requested`` is none of ``pages`` (url path → title): st.navigation
    falls back to the default page without saying so."""
    if not requested or requested in pages:
        return None
    listed = ", ".join(f"{title} (/{path})" for path, title in pages.items())
    return f"Page not found: /{clip(requested)}. Showing the default page. Pages: {listed}."
