"""The served app in a real browser: every page, the sidebar's filters, shared links,
downloads, auto-refresh, a phone's width and hostile URLs.

The figures on the page are checked against SQL run by the test on the seeded database
(formatted with ``analytics_core.kpis.format_kpi``, as the cards are), and the
downloads against the page. Waiting is on Streamlit's own state (the app's
``data-test-script-state`` back to ``notRunning``, no skeleton or stale element left,
every chart drawn) and on the expected content, never on a fixed delay.

All in one file: ``make test`` runs ``pytest -n 2 --dist loadfile``, so one worker
starts the session's app server and browser, once.
"""

from __future__ import annotations

import calendar
import csv
import importlib.util
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.servers import IN_CI

if importlib.util.find_spec("playwright") is None:  # a venv made before it joined [test]
    _MISSING = "Playwright is not installed. Install it with: .venv/bin/pip install -e '.[test]'"
    if IN_CI:
        pytest.fail(f"{_MISSING} (CI=true: a missing test dependency is a failure)", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {_MISSING}", allow_module_level=True)

import openpyxl  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from analytics_core.config import load_config  # noqa: E402
from analytics_core.filters import RANGE_PRESETS  # noqa: E402
from analytics_core.kpis import KPIS, format_kpi  # noqa: E402

expect.set_options(timeout=30_000)
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
FIRST_LOAD_MS = 120_000  # the session's first page also imports the app and starts its worker
PRESET_LABELS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days",
                 "90d": "Last 90 days"}  # fmt: skip
PAGES_WITH_KPIS = {"Overview", "Detection", "Performance", "Business", "Insights"}

# ---------------------------------------------------------------------------------------
# Waiting for Streamlit

# Drawn: the script run is over and the session connected; no skeleton (a chart or
# component still loading) and no stale element (left from the previous run) remains;
# every Plotly chart and metric sparkline has drawn; fonts are in; and the page has not
# changed over the last two polls (200 ms).
_DRAWN = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const settled = app && app.dataset.testScriptState === 'notRunning'
    && app.dataset.testConnectionState === 'CONNECTED'
    && !document.querySelector('[data-testid="stSkeleton"], [data-stale="true"]')
    && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
         .every(c => c.querySelector('.main-svg'))
    && [...document.querySelectorAll('[data-testid="stMetricChart"]')]
         .every(c => c.querySelector('svg, canvas'))
    && document.fonts.status === 'loaded';
  const main = document.querySelector('[data-testid="stMain"]');
  const shape = settled
    ? `${document.querySelectorAll('*').length}:${main ? main.scrollHeight : 0}:${location.href}`
    : null;
  window.__e2eQuiet = shape !== null && window.__e2eShape === shape ? window.__e2eQuiet + 1 : 0;
  window.__e2eShape = shape;
  return window.__e2eQuiet >= 2;
}"""


def wait_drawn(page: Page, timeout: float = 30_000) -> None:
    """Until the app's run is over and drawn, and nothing has changed for 200 ms counted
    from now (so a rerun that a click has asked for but not begun is waited for)."""
    page.evaluate("window.__e2eQuiet = 0; window.__e2eShape = null")
    page.wait_for_function(_DRAWN, polling=100, timeout=timeout)


def main(page: Page):
    return page.get_by_test_id("stMain")


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def load(page: Page, url: str) -> Page:
    """Open ``url`` (a new Streamlit session) and wait until its first run is drawn."""
    page.goto(url, wait_until="domcontentloaded", timeout=FIRST_LOAD_MS)
    expect(main(page).locator("h1").first).to_be_visible(timeout=FIRST_LOAD_MS)
    wait_drawn(page, FIRST_LOAD_MS)
    return page


# ---------------------------------------------------------------------------------------
# Reading the page


@dataclass(frozen=True)
class NavPage:
    label: str
    path: str  # "" for the default page

    @property
    def slug(self) -> str:
        return self.label.lower().replace(" ", "-")


def nav_pages(page: Page) -> list[NavPage]:
    """The pages in the sidebar's navigation, in order (a page added later is included)."""
    links = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stSidebarNavLink"]')].map(a => {
            const c = a.cloneNode(true);
            c.querySelectorAll('[data-testid="stIconMaterial"]').forEach(i => i.remove());
            return [c.textContent.trim(), a.getAttribute('href')];
        })"""
    )
    return [NavPage(label, urlsplit(href).path.strip("/")) for label, href in links]


def url_params(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def expect_param(page: Page, key: str, value: str) -> None:
    """Until the URL's query string holds ``key=value`` (the sidebar writes it on each run)."""
    expect(page).to_have_url(re.compile(rf"[?&]{re.escape(key)}={re.escape(value)}(&|$)"))


def cards(page: Page) -> dict[str, str]:
    """Every KPI card of the main area, label -> value as shown (cards in a collapsed
    expander included)."""
    pairs = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stMetric"]')]
            .map(m => [m.querySelector('[data-testid="stMetricLabel"]').textContent.trim(),
                       m.querySelector('[data-testid="stMetricValue"]').textContent.trim()])"""
    )
    return dict(pairs)


def card_value(page: Page, label: str):
    named = re.compile(rf"^{re.escape(label)}$")
    title = page.get_by_test_id("stMetricLabel").filter(has_text=named)
    return main(page).get_by_test_id("stMetric").filter(has=title).get_by_test_id("stMetricValue")


def charts(page: Page) -> list[dict]:
    """Every Plotly chart of the main area as drawn: its title and its traces' points
    (Plotly's own ``_fullData``, so what the browser plotted)."""
    return page.evaluate(
        """() => [...document.querySelectorAll(
              '[data-testid="stMain"] [data-testid="stPlotlyChart"] .js-plotly-plot')].map(g => ({
            title: String((g.layout && g.layout.title && (g.layout.title.text ?? g.layout.title))
                          || '').replace(/<[^>]*>/g, ''),
            traces: (g._fullData || []).map(t => ({
              name: t.name, type: t.type,
              x: Array.from(t.x || [], String),
              y: Array.from(t.y || [], v => (v === null || v === undefined
                                              || Number.isNaN(Number(v))) ? null : Number(v)),
            })),
          }))"""
    )


def bar_chart(page: Page, title: str) -> tuple[int, float]:
    """(buckets, total of the bars) of the bar chart titled ``title``."""
    found = [c for c in charts(page) if c["title"] == title]
    assert len(found) == 1, f"one chart titled {title!r}: {[c['title'] for c in charts(page)]}"
    bars = [t for t in found[0]["traces"] if t["type"] == "bar"]
    assert bars, f"{title!r} has no bars"
    return len(bars[0]["x"]), sum(v for t in bars for v in t["y"] if v is not None)


@dataclass(frozen=True)
class Shown:
    """The range a page says it shows (its caption), as instants, and its filters as the
    caption words them (the rest of the caption, e.g. "Data as of", left out of ==)."""

    start: datetime
    end: datetime
    tz: str
    granularity: str
    filters: str
    caption: str = field(compare=False)


_SPAN = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d) → (\d{4}-\d\d-\d\d \d\d:\d\d) \(([^)]+)\), by (\w+)"
)


def shown_range(page: Page) -> Shown:
    caption = main(page).get_by_test_id("stCaptionContainer").filter(has_text="→").first
    text = caption.inner_text()
    found = _SPAN.search(text)
    assert found, f"no range in the caption {text!r}"
    zone = ZoneInfo(found[3])

    def instant(local: str) -> datetime:
        return datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=zone).astimezone(UTC)

    described = text.split("; compared with")[0]
    return Shown(instant(found[1]), instant(found[2]), found[3], found[4], described, text)


def local_days(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    """Whole local days ``first`` to ``last``, as the half-open UTC range they cover."""
    zone = ZoneInfo(tz)
    start = datetime.combine(first, time.min, tzinfo=zone).astimezone(UTC)
    return start, datetime.combine(last + timedelta(days=1), time.min, zone).astimezone(UTC)


def sidebar_state(page: Page) -> dict[str, object]:
    """What the sidebar's widgets show: selectbox values, multiselect choices, dates and
    the auto-refresh toggle."""
    return page.evaluate(
        """() => {
          const bar = document.querySelector('[data-testid="stSidebar"]');
          const label = w => w.querySelector('[data-testid="stWidgetLabel"]').textContent.trim();
          const out = {};
          for (const w of bar.querySelectorAll('[data-testid="stSelectbox"]'))
            out[label(w)] = w.querySelector('input').value;
          for (const w of bar.querySelectorAll('[data-testid="stMultiSelect"]')) {
            const tags = w.querySelector('[data-testid="stMultiSelectTagsContainer"]');
            out[label(w)] = [...tags.children].filter(c => c.tagName !== 'INPUT')
              .map(c => c.textContent.trim()).filter(Boolean);
          }
          for (const w of bar.querySelectorAll('[data-testid="stDateInput"]'))
            out[label(w)] = [...w.querySelectorAll('input[type="date"]')].map(i => i.value);
          for (const w of bar.querySelectorAll('[data-testid="stCheckbox"] input'))
            out[w.closest('[data-testid="stCheckbox"]').textContent.trim()] = w.checked;
          return out;
        }"""
    )


def alerts(page: Page, kind: str) -> list[str]:
    """The texts of the page's alert boxes of ``kind`` (Error, Warning, Info, Success)."""
    return page.get_by_test_id(f"stAlertContent{kind}").all_inner_texts()


# ---------------------------------------------------------------------------------------
# Using the sidebar


def _open_list(page: Page, label: str):
    """The combobox labelled ``label`` and its open list of options."""
    box = page.get_by_role("combobox", name=label, exact=True)
    # Scrolled to first: a list opened by a click that also scrolls the page closes at
    # once (the popover closes when an ancestor scrolls).
    box.scroll_into_view_if_needed()
    box.click()
    listbox = page.get_by_role("listbox")
    try:
        expect(listbox).to_be_visible(timeout=5_000)
    except AssertionError:  # a click that only took the focus from another list: again
        box.click()
        expect(listbox).to_be_visible()
    return box, listbox


def choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box, listbox = _open_list(page, label)
    listbox.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option)
    box.blur()


def add_choice(page: Page, label: str, option: str) -> None:
    """Add ``option`` to the multiselect labelled ``label``, then close its list (and
    leave it: a list left focused swallows the next click on another one)."""
    box, listbox = _open_list(page, label)
    listbox.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    box.blur()


def _day_button(day: date) -> re.Pattern[str]:
    # "Monday, November 23, 2026", maybe after "Today, " or a range summary and before
    # " selected": anchored on the end so a range summary naming it does not match.
    return re.compile(rf"(?:^|, ){day:%A}, {day:%B} {day.day}, {day.year}(?: selected)?$")


def pick_range(page: Page, first: date, last: date) -> None:
    """Pick ``first`` then ``last`` in the sidebar's date picker: two clicks."""
    sidebar(page).get_by_test_id("stDateInputCalendarButton").click()
    calendar_view = page.get_by_role("application", name=re.compile(r"^Choose date range"))
    expect(calendar_view).to_be_visible()
    for day in (first, last):
        for _ in range(36):  # months to page through, at most
            shown = calendar_view.get_attribute("aria-label") or ""
            month, year = shown.rsplit(" ", 2)[-2:]
            at = (int(year), list(calendar.month_name).index(month))
            if at == (day.year, day.month):
                break
            step = "Previous month" if (day.year, day.month) < at else "Next month"
            page.get_by_role("button", name=step, exact=True).click()
            expect(calendar_view).not_to_have_attribute("aria-label", shown)
        calendar_view.get_by_role("button", name=_day_button(day)).click()
    expect(calendar_view).to_be_hidden()


def open_nav(page: Page, label: str) -> None:
    sidebar(page).get_by_test_id("stSidebarNavLink").filter(
        has_text=re.compile(rf"{re.escape(label)}$")
    ).click()


# ---------------------------------------------------------------------------------------
# Screenshots


def screenshot(page: Page, path: Path) -> None:
    """The whole page, not only the first screen: Streamlit scrolls its main area (and
    its sidebar) inside the window, so the window is made as tall as their content."""
    viewport = page.viewport_size
    assert viewport is not None
    height = page.evaluate(
        """() => Math.max(...['stMain', 'stSidebarContent'].map(id => {
              const e = document.querySelector(`[data-testid="${id}"]`);
              return e && e.getBoundingClientRect().right > 0 ? e.scrollHeight : 0; }))"""
    )
    tall = max(viewport["height"], min(height, 10_000))
    page.set_viewport_size({"width": viewport["width"], "height": tall})
    try:
        wait_drawn(page)
        page.screenshot(path=str(path), animations="disabled", caret="hide")
    finally:
        page.set_viewport_size(viewport)


# ---------------------------------------------------------------------------------------
# The tests


def _errors_shown(page: Page) -> list[str]:
    """Exceptions and error boxes on the page."""
    return page.get_by_test_id("stException").all_inner_texts() + alerts(page, "Error")


def _at(page: Page, app, nav: NavPage, query: str = "") -> None:
    """Show ``nav``'s page with ``query`` (a new session), unless it is open already."""
    shown, params = url_params(page), parse_qs(query)
    if urlsplit(page.url).path.strip("/") != nav.path or any(
        shown.get(k) != v for k, v in params.items()
    ):
        load(page, app.at(nav.path, query))


def test_every_page_loads_without_an_error(app, new_page, artifacts):
    """Each page of the navigation (whatever pages it lists) draws with no exception, no
    error box and no script error in the browser; a screenshot of each is kept (at
    phone width: the phone test)."""
    page = new_page(DESKTOP)
    script_errors: list[str] = []
    page.on("pageerror", lambda exc: script_errors.append(str(exc)))
    benign = re.compile(r"ResizeObserver loop")  # the browser's layout notice, not an error
    load(page, app.at())
    pages = nav_pages(page)
    assert {"Overview", "Detection", "Performance", "Business", "Insights", "Audit"} <= {
        p.label for p in pages
    }, pages
    problems = []
    for nav in pages:
        _at(page, app, nav)
        shown = _errors_shown(page)
        thrown = [e for e in script_errors if not benign.search(e)]
        if shown or thrown:
            problems.append(f"{nav.label}: {shown}, script errors {thrown}")
        script_errors.clear()
        screenshot(page, artifacts / f"{nav.slug}-desktop.png")
    assert not problems, "\n".join(problems)


def test_date_range_tenant_and_granularity_change_the_kpis_and_charts(app, seeded, new_page):
    """On the Overview: each preset, a custom range picked in the date picker, a
    granularity and a tenant give the Detections card and the Detections chart the
    count SQL gives for the range the page states."""
    page = load(new_page(), app.at())

    def figures(tenants: tuple[str, ...] = ()) -> tuple[Shown, int, int]:
        wait_drawn(page)
        shown = shown_range(page)
        expected = seeded.count("detection_results", shown.start, shown.end, tenants=tenants)
        expect(card_value(page, "Detections")).to_have_text(
            format_kpi("total_detections", expected)
        )
        buckets, total = bar_chart(page, "Detections")
        assert total == expected, f"chart total {total} for {expected} runs ({shown.caption})"
        return shown, expected, buckets

    default = load_config(app.config).dashboard.default_range
    shown, count, _ = figures()
    assert shown.end - shown.start == RANGE_PRESETS[default]
    counts = {default: count}
    for preset in ("24h", "30d", "7d"):
        choose(page, "Date range", PRESET_LABELS[preset])
        expect_param(page, "range", preset)
        shown, counts[preset], _ = figures()
        assert shown.end - shown.start == RANGE_PRESETS[preset], shown.caption
    assert counts["24h"] < counts["7d"] < counts["30d"], counts

    choose(page, "Date range", "Custom")
    expect_param(page, "range", "custom")
    wait_drawn(page)
    tz = shown_range(page).tz
    today = datetime.now(ZoneInfo(tz)).date()
    first, last = today - timedelta(days=12), today - timedelta(days=6)
    pick_range(page, first, last)
    expect_param(page, "start", first.isoformat())
    expect_param(page, "end", last.isoformat())
    shown, by_day, buckets = figures()
    assert (shown.start, shown.end) == local_days(first, last, tz), shown.caption
    assert shown.granularity == "day" and buckets == 7, shown.caption

    choose(page, "Granularity", "hour")
    expect_param(page, "granularity", "hour")
    shown, by_hour, buckets = figures()
    assert shown.granularity == "hour" and by_hour == by_day
    assert 7 * 24 - 6 <= buckets <= 7 * 24 + 1, buckets  # a DST change moves an hour

    tenant = "t_acme"
    name = seeded.scalar("SELECT name FROM tenants WHERE tenant_id = :t", t=tenant)
    add_choice(page, "Tenant", f"{name} ({tenant})")
    expect_param(page, "tenant", tenant)
    expect(main(page).get_by_test_id("stCaptionContainer").filter(has_text="→")).to_contain_text(
        f"tenant {name} ({tenant}) only"
    )
    _, one_tenant, _ = figures((tenant,))
    assert 0 < one_tenant < by_hour


# The card each page's test compares, the table it counts and the filters that apply.
_COUNTED = {
    "Overview": ("Detections", "total_detections", "detection_results", ("tenants", "algorithms")),
    "Detection": ("Detections", "total_detections", "detection_results", ("tenants", "algorithms")),
    "Performance": ("Requests", "requests", "api_requests", ("tenants",)),
    "Business": ("API calls", "api_calls", "api_requests", ("tenants",)),
    "Insights": ("Detections", "total_detections", "detection_results", ("tenants", "algorithms")),
}


def _expected_card(seeded, label: str, shown: Shown, filters: dict[str, tuple]) -> str:
    card, kpi, table, applying = _COUNTED[label]
    chosen = {k: v for k, v in filters.items() if k in applying}
    return format_kpi(kpi, seeded.count(table, shown.start, shown.end, **chosen))


def test_filters_survive_switching_pages(app, seeded, new_page):
    """Range, granularity, tenant and algorithm chosen on one page stay in the URL, the
    sidebar and the figures of every page the navigation leads to, and back."""
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=9), today - timedelta(days=3)
    page = load(new_page(), app.at(query=f"range=custom&start={first}&end={last}&tz=UTC"))
    choose(page, "Granularity", "week")
    expect_param(page, "granularity", "week")
    wait_drawn(page)
    tenant = "t_hooli"
    name = seeded.scalar("SELECT name FROM tenants WHERE tenant_id = :t", t=tenant)
    add_choice(page, "Tenant", f"{name} ({tenant})")
    expect_param(page, "tenant", tenant)
    wait_drawn(page)
    algorithm = seeded.scalar(  # the tenant's busiest algorithm, so the pages have data
        "SELECT algorithm FROM detection_results WHERE tenant_id = :t "
        "GROUP BY algorithm ORDER BY count(*) DESC, algorithm LIMIT 1",
        t=tenant,
    )
    add_choice(page, "Algorithm", algorithm)
    expect_param(page, "algorithm", algorithm)
    wait_drawn(page)
    params, widgets, shown = url_params(page), sidebar_state(page), shown_range(page)
    assert params["tenant"] == [tenant] and params["algorithm"] == [algorithm], params
    assert (shown.start, shown.end, shown.granularity) == (*local_days(first, last, "UTC"), "week")
    filters = {"tenants": (tenant,), "algorithms": (algorithm,)}
    card = _COUNTED["Overview"][0]
    expect(card_value(page, card)).to_have_text(_expected_card(seeded, "Overview", shown, filters))

    pages = [p for p in nav_pages(page) if p.label != "Health"]  # no sidebar: test below
    for nav in [*pages[1:], pages[0]]:  # every other page, then back to the first
        open_nav(page, nav.label)
        expect(page).to_have_url(re.compile(rf"^{re.escape(app.url)}/{nav.path}\?"))
        wait_drawn(page)
        label = nav.label
        assert url_params(page) == params, f"{label}: the URL lost or changed a filter"
        assert sidebar_state(page) == widgets, f"{label}: the sidebar lost or changed a filter"
        if label not in _COUNTED:  # e.g. the Audit log: the filters kept, nothing to count
            continue
        now = shown_range(page)
        assert (now.start, now.end, now.granularity) == (shown.start, shown.end, "week")
        assert f"tenant {name} ({tenant}) only" in now.filters, now.caption
        card = _COUNTED[label][0]
        expect(card_value(page, card)).to_have_text(_expected_card(seeded, label, now, filters))


def test_filters_survive_a_visit_to_the_health_page(app, new_page):
    """Filters set on the Overview are still there, in the URL, the sidebar and the
    figures, after a look at the Health page (which shows no filters itself)."""
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=9), today - timedelta(days=3)
    query = f"range=custom&start={first}&end={last}&tz=UTC&granularity=week&tenant=t_acme"
    page = load(new_page(), app.at(query=query))
    before = (url_params(page), sidebar_state(page), shown_range(page))
    open_nav(page, "Health")
    expect(page).to_have_url(re.compile(rf"^{re.escape(app.url)}/health"))
    expect(main(page).locator("h1").first).to_have_text("Health")
    wait_drawn(page)
    open_nav(page, "Overview")
    expect(main(page).locator("h1").first).to_have_text("Overview")
    wait_drawn(page)
    assert url_params(page) == before[0], "back from Health, the URL lost the filters"
    assert sidebar_state(page) == before[1], "back from Health, the sidebar lost the filters"
    assert shown_range(page) == before[2], "back from Health, the page shows another view"


def _view(page: Page) -> dict[str, object]:
    """Everything a view shows that a link should reproduce."""
    wait_drawn(page)
    shown = shown_range(page)
    return {
        "path": urlsplit(page.url).path,
        "query": url_params(page),
        "sidebar": sidebar_state(page),
        "range": (shown.start, shown.end, shown.tz, shown.granularity, shown.caption),
        "cards": cards(page),
        "charts": charts(page),
    }


def test_a_copied_url_opened_in_a_new_browser_context_reproduces_the_view(app, seeded, new_page):
    """A view set up by hand on the Detection page, its URL opened by someone else (a
    new browser context: new cookies, new Streamlit session): the same sidebar, range,
    cards and chart points, and the right figures."""
    page = load(new_page(), app.at("detection"))
    choose(page, "Date range", "Custom")
    expect_param(page, "range", "custom")
    wait_drawn(page)
    today = datetime.now(ZoneInfo(shown_range(page).tz)).date()
    first, last = today - timedelta(days=20), today - timedelta(days=8)
    pick_range(page, first, last)
    expect_param(page, "start", first.isoformat())
    wait_drawn(page)
    choose(page, "Granularity", "day")
    expect_param(page, "granularity", "day")
    wait_drawn(page)
    tenants = ("t_globex", "t_wayne")
    for tenant in tenants:
        name = seeded.scalar("SELECT name FROM tenants WHERE tenant_id = :t", t=tenant)
        add_choice(page, "Tenant", f"{name} ({tenant})")
        expect_param(page, "tenant", tenant)
        wait_drawn(page)
    algorithm = seeded.scalar("SELECT max(algorithm) FROM detectors")
    add_choice(page, "Algorithm", algorithm)
    expect_param(page, "algorithm", algorithm)
    original = _view(page)
    shown = shown_range(page)
    expected = seeded.count(
        "detection_results", shown.start, shown.end, tenants=tenants, algorithms=(algorithm,)
    )
    assert original["cards"]["Detections"] == format_kpi("total_detections", expected)

    copied = load(new_page(), page.url)
    reproduced = _view(copied)
    for part, value in original.items():
        assert reproduced[part] == value, f"the link did not reproduce the {part}"


def _csv_parts(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The ``# key: value`` header lines and the rows of a CSV export."""
    lines = text.splitlines()
    header = dict(line[2:].split(": ", 1) for line in lines if line.startswith("# "))
    return header, list(csv.DictReader(line for line in lines if not line.startswith("#")))


def _number(value: object) -> float | None:
    return None if value in (None, "") else float(value)  # type: ignore[arg-type]


def _as_cards(kpis: dict[str, object], currency: str) -> dict[str, str]:
    """KPI values as the cards write them, by card label."""
    return {KPIS[k].label: format_kpi(k, _number(v), currency) for k, v in kpis.items()}


def _sheet(book, name: str) -> list[dict[str, object]]:
    rows = list(book[name].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:] if any(v is not None for v in r)]


def _pdf_text(content: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)


def _in_pdf(text: str, shown: dict[str, str]) -> dict[str, str]:
    """The cards whose "label value" line the PDF's KPI table holds."""
    flat = " ".join(text.split())
    return {
        label: value
        for label, value in shown.items()
        if re.search(rf"(?<!\S){re.escape(label)} {re.escape(value)}(?!\S)", flat)
    }


def _span(filters: dict[str, object]) -> str:
    """The range as captions, PDFs and workbooks word it: "2026-11-29 00:00 → ... (UTC)"."""
    zone = ZoneInfo(str(filters["tz"]))
    start, end = (
        datetime.fromisoformat(str(filters[k])).astimezone(zone) for k in ("start", "end")
    )
    return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} ({filters['tz']})"


def _described(words: str, filters: dict[str, object]) -> dict[str, object]:
    """``filters`` when a file's own wording of them (a PDF's "Filters:" line, a
    workbook's "range" cell) names their span and every tenant; else what it says."""
    flat = " ".join(words.split())
    tenants = filters["tenants"]
    ok = _span(filters) in flat and all(f"{t}" in flat for t in tenants)  # type: ignore[union-attr]
    return filters if ok else {"described as": flat[:300]}


def _page_export(fmt: str, content: bytes, slug: str, currency: str) -> tuple[dict, dict]:
    """(KPIs as the cards would write them, filters recorded) of a page's export (a
    workbook records them in words, on its Filters sheet)."""
    if fmt == "json":
        doc = json.loads(content)
        assert doc["page"] == slug, doc["page"]
        recorded = {k: doc["filters"][k] for k in ("start", "end", "tz", "tenants")}
        return _as_cards(doc["kpis"], currency), recorded
    if fmt == "csv":
        header, rows = _csv_parts(content.decode("utf-8"))
        assert header["page"] == slug, header
        kpis = {r["kpi"]: r["value"] for r in rows if r["table"] == "kpis"}
        recorded = {k: header[k] for k in ("start", "end", "tz")}
        recorded["tenants"] = [t for t in header["tenants"].split(";") if t]
        return _as_cards(kpis, currency), recorded
    if fmt == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(content))
        kpis = {r["kpi"]: r["value"] for r in _sheet(book, "KPIs")}
        first = list(book["Filters"].iter_rows(values_only=True))
        words = " ".join(str(v) for row in first for v in row if v is not None)
        return _as_cards(kpis, currency), {"words": words}
    raise AssertionError(f"not a machine format: {fmt}")


def _audit_table(page: Page) -> dict[str, object]:
    """The Audit page's table: its row count (the grid's aria-rowcount, less the header)
    and its newest row, by column (the columns drawn)."""
    grid = main(page).get_by_test_id("stDataFrame").locator("table[aria-rowcount]")
    expect(grid.locator("tbody tr").first).to_be_attached()  # drawn after the canvas
    return page.evaluate(
        """() => {
          const t = document.querySelector(
            '[data-testid="stMain"] [data-testid="stDataFrame"] table[aria-rowcount]');
          const head = [...t.querySelectorAll('thead th')].map(th => th.textContent.trim());
          const first = t.querySelector('tbody tr');
          const cells = [...first.querySelectorAll('td')].map(td => td.textContent.trim());
          return {rows: Number(t.getAttribute('aria-rowcount')) - 1,
                  first: Object.fromEntries(head.map((h, i) => [h, cells[i]]))};
        }"""
    )


def _same_event(file_row: dict[str, object], shown: dict[str, str]) -> bool:
    """The file's newest event is the table's: same time (to the second), role, action
    and page (the user is pseudonymised in files, by design)."""
    at = file_row.get("at") or file_row.get("at (UTC)")
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    if moment.tzinfo is None:  # the workbook's wall time in the filters' zone (UTC here)
        moment = moment.replace(tzinfo=UTC)
    drawn = datetime.fromisoformat(shown["at"])
    return abs((moment - drawn).total_seconds()) < 1 and all(
        str(file_row[k]) == shown[k] for k in ("role", "action", "page") if k in shown
    )


def _check_download(
    slug: str, picker: str, fmt: str, content: bytes, shown: dict, currency: str
) -> list[str]:
    """What is wrong with one downloaded file, compared with the page it came from."""
    where = f"{slug} / {picker} / {fmt}"
    page_cards, filters = shown["cards"], shown["filters"]
    if picker.startswith("Whole dashboard"):  # every page, for these filters: the Overview's
        if fmt == "pdf":
            got = _in_pdf(_pdf_text(content), page_cards)
        else:
            book = openpyxl.load_workbook(io.BytesIO(content))
            got = _as_cards({r["kpi"]: r["value"] for r in _sheet(book, "Overview KPIs")}, currency)
        return [] if got == page_cards else [f"{where}: KPIs {got}, the page shows {page_cards}"]
    if "table" in shown:  # a table's export: the Audit log
        table = shown["table"]
        if fmt == "pdf":
            text = " ".join(_pdf_text(content).split())
            found = re.search(r"Audit log \((\d+) rows?\)", text)
            ok = bool(found) and int(found[1]) == table["rows"]
            return [] if ok else [f"{where}: not {table['rows']} rows: {text[:300]}"]
        if fmt == "json":
            doc = json.loads(content)
            rows = doc["rows"] if doc.get("table") == slug else []
        elif fmt == "csv":
            header, rows = _csv_parts(content.decode("utf-8"))
            rows = rows if header.get("table") == slug else []
        else:
            rows = _sheet(openpyxl.load_workbook(io.BytesIO(content)), slug)
        if len(rows) != table["rows"] or not _same_event(rows[0], table["first"]):
            return [f"{where}: {len(rows)} rows, newest {rows[:1]}; the page shows {table}"]
        return []
    if fmt == "pdf":
        text = _pdf_text(content)
        got = _in_pdf(text, page_cards)
        recorded = _described(text.split("Time zone:")[0], filters)
    else:
        got, recorded = _page_export(fmt, content, slug, currency)
        if "words" in recorded:
            recorded = _described(str(recorded["words"]), filters)
    problems = []
    if got != page_cards:
        problems.append(f"{where}: KPIs {got}, the page shows {page_cards}")
    if recorded != filters:
        problems.append(f"{where}: filters {recorded}, the page is for {filters}")
    return problems


def test_each_download_matches_the_page(app, new_page):
    """Every export picker of every page, in every format it offers: prepared, downloaded
    and read back. A page's file has the page's cards (formatted as they are) and its
    link's filters; the Audit log's has the table's rows, newest first; the whole
    dashboard has the Overview's cards."""
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=6), today  # ends today: the audit log's events too
    query = f"range=custom&start={first}&end={last}&tz=UTC&tenant=t_acme"
    start, end = local_days(first, last, "UTC")
    filters = {"start": start.isoformat(), "end": end.isoformat(), "tz": "UTC",
               "tenants": ["t_acme"]}  # fmt: skip
    page = load(new_page(), app.at(query=query))
    problems: list[str] = []
    downloaded = []
    for nav in nav_pages(page):
        _at(page, app, nav, query)
        pickers = main(page).get_by_role("combobox", name=re.compile(r"format$"))
        for label in [pickers.nth(n).get_attribute("aria-label") for n in range(pickers.count())]:
            assert label
            picker = page.get_by_role("combobox", name=label, exact=True)
            row = main(page).get_by_test_id("stHorizontalBlock").filter(has=picker).last
            _, listbox = _open_list(page, label)
            formats = listbox.get_by_role("option").all_inner_texts()
            page.keyboard.press("Escape")
            expect(listbox).to_be_hidden()
            picker.blur()
            for fmt in formats:
                if picker.input_value() != fmt:
                    choose(page, label, fmt)
                    wait_drawn(page)
                shown = {"cards": cards(page), "filters": filters}
                if not shown["cards"]:
                    shown["table"] = _audit_table(page)
                row.get_by_role("button", name="Prepare").click()
                button = row.get_by_test_id("stDownloadButton")
                expect(button).to_have_text(re.compile(rf"Download {fmt}$"), timeout=90_000)
                with page.expect_download() as download:
                    button.click()
                content = Path(download.value.path()).read_bytes()
                downloaded.append(f"{nav.slug}/{label}/{fmt}")
                problems += _check_download(
                    nav.slug, label, fmt.lower(), content, shown, app.currency
                )
    pages = {d.split("/")[0] for d in downloaded}
    assert {"overview", "detection", "performance", "business", "insights", "audit"} <= pages
    assert len(downloaded) >= 6 * 4 + 2, downloaded  # every format of every page, and more
    assert not problems, "\n".join(problems)


_OVERFLOW = """() => {
  const width = window.innerWidth, problems = [];
  const name = e => e.getAttribute('data-testid') || e.tagName;
  const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const root = document.documentElement;
  const area = document.querySelector('[data-testid="stMain"]');
  if (root.scrollWidth > width + 1)
    problems.push(`the page scrolls sideways: ${root.scrollWidth}px`);
  if (area && area.scrollWidth > area.clientWidth + 1)
    problems.push(`the main area scrolls sideways: ${area.scrollWidth}px in ${area.clientWidth}px`);
  const metrics = [...area.querySelectorAll('[data-testid="stMetric"]')].filter(shown);
  for (const m of metrics) {
    const value = m.querySelector('[data-testid="stMetricValue"]');
    const label = m.querySelector('[data-testid="stMetricLabel"]').textContent.trim();
    const r = value.getBoundingClientRect();
    if (!(r.width > 0) || r.left < -1 || r.right > width + 1)
      problems.push(`card ${label}: value box ${Math.round(r.left)}..${Math.round(r.right)}px`);
    for (const e of [value, ...value.querySelectorAll('*')])
      if (e.scrollWidth > e.clientWidth && e.clientWidth > 0)
        problems.push(`card ${label}: value ${JSON.stringify(value.textContent)} cut `
                      + `(${name(e)} ${e.scrollWidth}px in ${e.clientWidth}px)`);
  }
  for (const c of area.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    if (!shown(c)) continue;
    const r = c.getBoundingClientRect(), svg = c.querySelector('.main-svg');
    const title = (c.querySelector('.gtitle') || {}).textContent || 'a chart';
    if (r.left < -1 || r.right > width + 1 || r.width < 200)
      problems.push(`${title}: box ${Math.round(r.left)}..${Math.round(r.right)}px`);
    if (svg && svg.getBoundingClientRect().width > r.width + 1)
      problems.push(`${title}: drawn ${svg.getBoundingClientRect().width}px wide in ${r.width}px`);
  }
  return {problems, metrics: metrics.length};
}"""


def test_a_phone_width_keeps_cards_and_charts_readable(app, new_page, artifacts):
    """At 390 px no page scrolls sideways, every KPI value is inside the window and shown
    whole (not cut with an ellipsis), and every chart fits the window. Screenshots of
    each page at that width are kept: its first screen and all of it."""
    page = load(new_page(PHONE), app.at())
    assert page.evaluate("window.innerWidth") == PHONE["width"]
    problems = []
    for nav in nav_pages(page):
        _at(page, app, nav)
        assert not _errors_shown(page), f"{nav.label}: {_errors_shown(page)}"
        # What a phone shows on opening the page, then the whole page.
        page.screenshot(path=artifacts / f"{nav.slug}-phone-screen.png", animations="disabled")
        screenshot(page, artifacts / f"{nav.slug}-phone.png")
        for summary in main(page).get_by_test_id("stExpander").locator("summary").all():
            summary.click()  # cards and tables inside expanders count too
        wait_drawn(page)
        found = page.evaluate(_OVERFLOW)
        if nav.label in PAGES_WITH_KPIS and found["metrics"] == 0:
            problems.append(f"{nav.label}: no KPI card shown")
        problems += [f"{nav.label}: {p}" for p in found["problems"]]
    assert not problems, "\n".join(problems)


_HOSTILE = [
    pytest.param(
        "", "range=forever&tz=Mars%2FOlympus_Mons",
        ["URL parameter range='forever'", "URL parameter tz"], id="range-and-zone",
    ),
    pytest.param(
        "", "granularity=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&refresh=%00&area=%F0%9F%92%A5",
        ["URL parameter granularity", "URL parameter refresh", "URL parameter area"],
        id="markup-control-and-emoji",
    ),
    pytest.param(
        "", "tenant=t_acme%27%20OR%20%271%27%3D%271&tenant=..%2F..%2Fetc%2Fpasswd"
        "&start=2026-02-30&end=yesterday",
        ["URL parameter tenant: unknown or not open to you", "not an ISO date range"],
        id="injection-and-dates",
    ),
    pytest.param("", "range=" + "9" * 5000, ["URL parameter range="], id="huge"),
    pytest.param("no-such-page", "", ["Page not found: /no-such-page"], id="path"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "query", "warnings"), _HOSTILE)
def test_a_hostile_url_shows_a_warning_and_the_default_view(
    app, seeded, new_page, path, query, warnings
):
    """A bad, hostile or huge URL value is named in a warning and replaced by the
    default: the Overview over the default range, every tenant, figures from SQL;
    nothing executed, nothing broken."""
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    load(page, app.at(path, query))
    shown_warnings = alerts(page, "Warning")
    for text in warnings:
        assert any(text in w for w in shown_warnings), f"no warning {text!r}: {shown_warnings}"
    assert all(len(w) < 1000 for w in shown_warnings), "a warning repeats a huge value"
    assert not page.get_by_test_id("stException").count(), "an exception is shown"
    assert not alerts(page, "Error"), alerts(page, "Error")
    assert not dialogs, f"the URL ran script: {dialogs}"
    expect(main(page).locator("h1").first).to_have_text("Overview")

    default = load_config(app.config).dashboard.default_range
    params = url_params(page)
    assert params.get("range") == [default] and params.get("granularity") == ["auto"], params
    assert "tenant" not in params and "refresh" not in params and "area" not in params, params
    widgets = sidebar_state(page)
    assert widgets["Date range"] == PRESET_LABELS[default], widgets
    assert widgets["Granularity"] == "auto" and widgets["Tenant"] == [], widgets
    assert widgets["Time zone"] == params["tz"][0] == "UTC", widgets  # the browser's, here
    shown = shown_range(page)
    assert shown.end - shown.start == RANGE_PRESETS[default] and " only" not in shown.filters
    expected = seeded.count("detection_results", shown.start, shown.end)
    expect(card_value(page, "Detections")).to_have_text(format_kpi("total_detections", expected))


def test_auto_refresh_picks_up_new_rows_and_keeps_the_filters(app, seeded, new_page):
    """With auto-refresh on, rows inserted after the page loaded show up in its cards
    within a few refresh intervals, without a reload, and the filters (range, tenant,
    granularity) stay as they were: the other tenant's new rows are not counted."""
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=2), today
    tenant, other = "t_acme", "t_globex"
    query = f"range=custom&start={first}&end={last}&tz=UTC&granularity=hour&tenant={tenant}"
    page = load(new_page(), app.at(query=query + "&refresh=1"))
    start, end = local_days(first, last, "UTC")
    before = {
        "url": url_params(page),
        "sidebar": sidebar_state(page),
        "range": shown_range(page),
    }
    assert before["sidebar"][f"Auto-refresh every {app.refresh_seconds} s"] is True, before
    detections = seeded.count("detection_results", start, end, tenants=(tenant,))
    volume = seeded.aggregate("sum(request_bytes)", "api_requests", start, end, tenants=(tenant,))
    expect(card_value(page, "Detections")).to_have_text(format_kpi("total_detections", detections))
    expect(card_value(page, "Data processed")).to_have_text(
        format_kpi("data_processed_gb", int(volume or 0) / 1e9)
    )
    page.evaluate("window.__sameDocument = true")  # gone if the browser reloaded the page

    # New rows a few minutes old (inside the range whatever the hour), for both tenants.
    at = datetime.now(UTC) - timedelta(minutes=5)
    detector, algorithm = seeded.row(
        "SELECT detector_id, algorithm FROM detectors WHERE tenant_id = :t LIMIT 1", t=tenant
    )
    next_id = int(seeded.scalar("SELECT coalesce(max(id), 0) FROM detection_results")) + 1
    seeded.execute(
        "INSERT INTO detection_results (id, created_at, tenant_id, detector_id, algorithm, "
        "dataset_id, n_samples, n_anomalies, mean_score, threshold, execution_time_ms, status) "
        "VALUES (:id, :at, :tenant, :detector, :algorithm, 'ds_browser', 1000, 10, 0.5, 0.9, "
        "120.0, 'success')",
        [{"id": next_id + i, "at": at, "tenant": t, "detector": detector, "algorithm": algorithm}
         for i, t in enumerate([tenant] * 25 + [other] * 10)],
    )  # fmt: skip
    next_id = int(seeded.scalar("SELECT coalesce(max(id), 0) FROM api_requests")) + 1
    seeded.execute(
        "INSERT INTO api_requests (id, ts, tenant_id, user_id, method, endpoint, status_code, "
        "duration_ms, request_bytes, response_bytes) VALUES (:id, :at, :tenant, NULL, 'POST', "
        "'/api/v1/detect', 200, 80.0, 50000000, 1000)",
        [{"id": next_id + i, "at": at, "tenant": t}
         for i, t in enumerate([tenant] * 40 + [other] * 15)],
    )  # fmt: skip
    detections_after = seeded.count("detection_results", start, end, tenants=(tenant,))
    volume_after = seeded.aggregate(
        "sum(request_bytes)", "api_requests", start, end, tenants=(tenant,)
    )
    assert detections_after == detections + 25

    # Refreshed by the app itself: at most a few intervals, plus a page build.
    within = (4 * app.refresh_seconds + 30) * 1000
    expect(card_value(page, "Detections")).to_have_text(
        format_kpi("total_detections", detections_after), timeout=within
    )
    expect(card_value(page, "Data processed")).to_have_text(
        format_kpi("data_processed_gb", int(volume_after) / 1e9), timeout=within
    )
    wait_drawn(page)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    after = {"url": url_params(page), "sidebar": sidebar_state(page), "range": shown_range(page)}
    assert after == before, "auto-refresh changed the filters"
