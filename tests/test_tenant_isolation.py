"""Tenant isolation, end to end, on PostgreSQL (and Redis where a cache is involved).

A user scoped to tenant A must get byte-identical page data and exports whether tenant
B's rows exist or not: on every page and export format, from raw tables and from
rollups, through the Redis page cache and the app's per-process cache, and from
``analytics export``. Two databases hold the fixture dataset: FULL (every tenant) and
ONLY_A (the same rows without any row of another tenant, in every table). What tenant A
sees on FULL must be exactly what it sees on ONLY_A, and differ from what an
unrestricted caller sees on FULL (so that every comparison here can fail).

And the whole app and the command line work when connected as a role that may only
read the contract tables (README: "The data contract", "Least privilege").
"""

from __future__ import annotations

import difflib
import getpass
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import redis
import yaml
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import ProgrammingError
from streamlit.testing.v1 import AppTest

from analytics_core.audit import AuditLog
from analytics_core.cache import page_cache
from analytics_core.catalog import dimensions
from analytics_core.cli import main
from analytics_core.config import DEFAULT_CONFIG_PATH, Config, load_config
from analytics_core.context import Scope
from analytics_core.exports import render
from analytics_core.filters import Filters, make_filters
from analytics_core.kpis import KPIS, format_kpi
from analytics_core.page_data import PageData, build_page, load_page
from analytics_core.pages import EXPORT_FORMATS, PAGES
from analytics_core.rollup.refresh import floor_hour, refresh
from analytics_core.sources.areas import NO_ROLLUP_NOTE, sources_for
from analytics_core.sources.database import make_engine
from tests.fixtures import Dataset, load_dataset

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "analytics_app" / "Home.py")
APP_PAGES = {page: f"app_pages/{page}.py" for page in PAGES}
# The formats `render` writes, compared byte for byte (files of other formats, e.g. a
# workbook or a PDF, carry their own creation times).
TEXT_FORMATS = ("json", "csv")
assert set(TEXT_FORMATS) <= set(EXPORT_FORMATS)

A = Scope(("t_a",))
EVERYONE = Scope()
NOW = datetime(2026, 4, 10, tzinfo=UTC)  # after every event: each range is in the past
# The rollup's watermark falls mid-data: pages read rollups up to it and raw rows after.
ROLLUP_AT = datetime(2026, 3, 28, 12, 34, tzinfo=UTC)


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


RANGES = {
    # Every event of the fixture (2026-03-20 .. 04-02); no previous period on record.
    "whole": (_utc(2026, 3, 20), _utc(2026, 4, 3)),
    # A previous period on record for every tenant: previous figures and changes.
    "with-previous": (_utc(2026, 3, 28), _utc(2026, 4, 3)),
    # The previous period starts at 00:10 on the first day: after t_c's first request
    # (00:03:50) but before t_a's first event (00:21:53). So only under an unscoped
    # first-event lookup would tenant A's page count it as covered.
    "previous-edge": (_utc(2026, 3, 27, 0, 10), _utc(2026, 4, 3, 0, 10)),
}
# Whole days, for the app's date picker and the CLI's --start/--end (UTC).
APP_DAYS = ("2026-03-20", "2026-04-02")  # inclusive: 03-20 .. 04-03 exclusive
APP_DAYS_2 = ("2026-03-28", "2026-04-02")


# --- data ------------------------------------------------------------------------------


def only_tenant(data: Dataset, tenant: str) -> Dataset:
    """``data`` without a row of any other tenant: feedback goes with its detection."""

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame.tenant_id == tenant].reset_index(drop=True)

    results = keep(data.detection_results)
    feedback = data.detection_feedback
    feedback = feedback[feedback.detection_id.isin(results.id)].reset_index(drop=True)
    return Dataset(
        tenants=keep(data.tenants),
        users=keep(data.users),
        detectors=keep(data.detectors),
        detection_results=results,
        detection_feedback=feedback,
        api_requests=keep(data.api_requests),
        user_sessions=keep(data.user_sessions),
    )


def expected(data: Dataset, start: datetime, end: datetime, scope: Scope) -> dict[str, object]:
    """Figures computed with pandas from the frames, independently of the SQL."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)

    def pick(frame: pd.DataFrame, col: str) -> pd.DataFrame:
        inside = frame[(frame[col] >= lo) & (frame[col] < hi)]
        return inside if scope.tenants is None else inside[inside.tenant_id.isin(scope.tenants)]

    requests = pick(data.api_requests, "ts")
    detections = pick(data.detection_results, "created_at")
    return {
        "requests": len(requests),
        "api_calls": len(requests),
        "total_detections": len(detections),
        "failed_detections": int((detections.status == "failed").sum()),
        "sessions": len(pick(data.user_sessions, "started_at")),
        "data_processed_gb": requests.request_bytes.sum() / 1e9,
        "tenants": sorted(set(requests.tenant_id)),
    }


KPI_PAGES = {  # page -> the KPI keys `expected` checks on it
    "overview": ("total_detections", "data_processed_gb"),
    "detection": ("total_detections", "failed_detections"),
    "performance": ("requests",),
    "business": ("api_calls", "sessions", "data_processed_gb"),
    "insights": ("total_detections", "requests", "api_calls", "sessions"),
}


def assert_kpis_match(data: PageData, want: dict[str, object]) -> None:
    for key in KPI_PAGES[data.page]:
        assert data.kpis[key] == pytest.approx(want[key], rel=1e-12), (data.page, key)


def assert_same_text(got: str, want: str, what: str) -> None:
    """Byte-identical, else a readable diff of the first differences."""
    if got.encode() == want.encode():
        return
    diff = difflib.unified_diff(
        want.splitlines(), got.splitlines(), "ONLY_A", "FULL", lineterm="", n=1
    )
    pytest.fail(f"{what} differs:\n" + "\n".join(itertools.islice(diff, 80)), pytrace=False)


def _loaded(new_pg_database, data: Dataset, rolled: bool) -> str:
    url = new_pg_database()
    writer = make_engine(url, read_only=False)
    try:
        load_dataset(writer, data)
        if rolled:
            assert refresh(writer, now=ROLLUP_AT).new_watermark == floor_hour(ROLLUP_AT)
    finally:
        writer.dispose()
    return url


@dataclass(frozen=True)
class Databases:
    full: str
    only_a: str
    full_rolled: str
    only_a_rolled: str

    def pair(self, rolled: bool) -> tuple[str, str]:
        return (self.full_rolled, self.only_a_rolled) if rolled else (self.full, self.only_a)


@pytest.fixture(scope="module")
def only_a_data(dataset) -> Dataset:
    data = only_tenant(dataset, "t_a")
    # The split is real: other tenants' rows exist in every table of FULL.
    for name, frame in dataset.frames().items():
        assert len(data.frames()[name]) < len(frame), name
    return data


@pytest.fixture(scope="module")
def dbs(new_pg_database, dataset, only_a_data) -> Databases:
    return Databases(
        full=_loaded(new_pg_database, dataset, rolled=False),
        only_a=_loaded(new_pg_database, only_a_data, rolled=False),
        full_rolled=_loaded(new_pg_database, dataset, rolled=True),
        only_a_rolled=_loaded(new_pg_database, only_a_data, rolled=True),
    )


@pytest.fixture(scope="module")
def engines(dbs) -> Iterator[Callable[[str], Engine]]:
    """Read-only engines (as the app's), one per URL, disposed at the end."""
    made: dict[str, Engine] = {}

    def get(url: str) -> Engine:
        if url not in made:
            made[url] = make_engine(url)
        return made[url]

    yield get
    for engine in made.values():
        engine.dispose()


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEFAULT_CONFIG_PATH)


def filters_for(span: str) -> Filters:
    return make_filters(*RANGES[span], "UTC")


def config_file(path: Path, **sections: dict) -> Path:
    """The packaged config (its alert rules, prices, ...) with ``sections``' keys replaced,
    written to ``path``: every page is then built as with the default config."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")  # rule order
    return path


TENANT_A_ROLE = {"tenant-a": {"pages": "*", "exports": "*", "tenants": ["t_a"]}}


# --- 1. build_page and render: raw tables and rollups --------------------------------

_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def assert_same_but_rounding(got: str, want: str, what: str) -> None:
    """The same text but for the last bits of floating-point numbers (relative 1e-12):
    every word, key, row and count as it is, every number within float rounding."""
    mine, theirs = _NUMBER.split(got), _NUMBER.split(want)
    assert len(mine) == len(theirs), f"{what}: a different shape"
    for n, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if n % 2 == 0 or a == b:  # text between numbers, or the very same number
            assert a == b, f"{what}: {a[:200]!r} != {b[:200]!r}"
        else:
            assert float(a) == pytest.approx(float(b), rel=1e-12, abs=0), f"{what}: {a} != {b}"


@dataclass(frozen=True)
class Built:
    on_full: PageData  # FULL under tenant A's scope
    on_only: PageData  # ONLY_A under tenant A's scope
    unscoped: PageData  # FULL, every tenant


@pytest.fixture(scope="module")
def built(dbs, engines, config) -> Callable[[bool, str, str], Built]:
    """The three pages of one (rolled, span, page), built once for the module."""
    made: dict[tuple[bool, str, str], Built] = {}

    def get(rolled: bool, span: str, page: str) -> Built:
        if (rolled, span, page) not in made:
            full, only = (engines(url) for url in dbs.pair(rolled))
            filters = filters_for(span)
            made[rolled, span, page] = Built(
                build_page(full, config, page, filters, NOW, scope=A),
                build_page(only, config, page, filters, NOW, scope=A),
                build_page(full, config, page, filters, NOW),
            )
        return made[rolled, span, page]

    return get


# Strict: once the rollups add tenant A's floats in an order of tenant A's own, the
# rollup cases pass and this marker must go.
ROLLUP_FLOAT_ORDER = pytest.mark.xfail(
    strict=True,
    raises=pytest.fail.Exception,  # the byte comparison only, not any other failure
    reason="app bug: rollup SUMs of double precision measures (duration_ms_sum, "
    "exec_ms_sum, score_sum, ...) add tenant A's rows in an order that depends on the "
    "other tenants' rows (unstable sort in the hour GROUP BY / ORDER BY bucket insert, "
    "then day sums and reads over rows in physical order), so tenant A's trends, "
    "breakdowns and previous-period figures differ in the last bits between FULL and "
    "ONLY_A; equal within 1e-12 (test_scoped_pages_match_without_other_tenants)",
)


def cases(*rollup_marks: pytest.MarkDecorator) -> list:
    """(rolled, span): every range on raw tables; on rollups, the ranges their reads
    differ in (the previous-edge case asks the same first-event lookups as raw)."""
    raw = [pytest.param(False, span, id=f"raw-{span}") for span in RANGES]
    rolled = [
        pytest.param(True, span, id=f"rollups-{span}", marks=rollup_marks)
        for span in ("whole", "with-previous")
    ]
    return raw + rolled


@pytest.mark.parametrize(("rolled", "span"), cases(ROLLUP_FLOAT_ORDER))
def test_scoped_pages_are_byte_identical_without_other_tenants(built, rolled, span):
    """Every page and format, under tenant A's scope: FULL's bytes are ONLY_A's."""
    differ = []
    for page in PAGES:
        pages = built(rolled, span, page)
        for fmt in TEXT_FORMATS:
            mine = render(pages.on_full, fmt)
            assert mine != render(pages.unscoped, fmt), f"{page} {fmt}: the scope changed nothing"
            if mine.encode() != render(pages.on_only, fmt).encode():
                differ.append((page, fmt, mine, render(pages.on_only, fmt)))
    if differ:
        page, fmt, mine, theirs = differ[0]
        listed = ", ".join(f"{p} {f}" for p, f, _, _ in differ)
        assert_same_text(mine, theirs, f"{len(differ)} exports ({listed}); first: {page} {fmt}")


@pytest.mark.parametrize(("rolled", "span"), cases())
def test_scoped_pages_match_without_other_tenants(built, dataset, rolled, span):
    """Every page under tenant A's scope: the figures pandas computes for t_a alone, the
    same text and numbers (to float rounding) on FULL and ONLY_A, and not the figures of
    everyone."""
    scoped_want = expected(dataset, *RANGES[span], A)
    open_want = expected(dataset, *RANGES[span], EVERYONE)
    assert scoped_want["tenants"] == ["t_a"] and len(open_want["tenants"]) == 3
    for page in PAGES:
        pages = built(rolled, span, page)
        for fmt in TEXT_FORMATS:
            mine = render(pages.on_full, fmt)
            assert_same_but_rounding(mine, render(pages.on_only, fmt), f"{page} {fmt} ({span})")
        assert_kpis_match(pages.on_full, scoped_want)
        assert_kpis_match(pages.unscoped, open_want)
        assert pages.on_full.kpis != pages.unscoped.kpis
        assert (pages.on_full.source_note is None) == rolled  # rollups read when built
    business = built(rolled, span, "business")
    assert sorted(set(business.on_full.series["by_tenant"]["tenant_id"])) == ["t_a"]
    assert sorted(set(business.unscoped.series["by_tenant"]["tenant_id"])) == open_want["tenants"]
    if span == "previous-edge":  # t_a's history begins after the previous period starts
        assert all(v is None for v in business.on_full.previous.values())
        assert business.unscoped.previous["api_calls"] is not None
    elif span == "with-previous":
        lo, hi = RANGES[span]
        before = expected(dataset, lo - (hi - lo), lo, A)
        assert business.on_full.previous["api_calls"] == before["api_calls"]
        assert business.on_full.previous["sessions"] == before["sessions"]


def test_catalog_is_the_scopes_own(dbs, engines):
    on_full, on_only = dimensions(engines(dbs.full), A), dimensions(engines(dbs.only_a), A)
    assert on_full == on_only
    assert on_full.tenants == {"t_a": "Alpha"}
    assert on_full.algorithms == ("iforest", "lof")  # t_b's zscore is not t_a's to know
    everyone = dimensions(engines(dbs.full))
    assert list(everyone.tenants) == ["t_a", "t_b", "t_c"]
    assert everyone.algorithms == ("iforest", "lof", "zscore")
    assert everyone.first_event < on_full.first_event


# --- 2. the Redis page cache -----------------------------------------------------------


def _redis_config(tmp_path: Path, redis_url: str) -> Config:
    redis_on = {"redis": {"enabled": True, "url": redis_url, "ttl_seconds": 120}}
    return load_config(config_file(tmp_path / "redis.yml", data_sources=redis_on))


def test_redis_cache_keys_hold_the_scope(dbs, engines, built, dataset, redis_url, tmp_path):
    config = _redis_config(tmp_path, redis_url)
    prefix = f"analytics:test-isolation:{uuid.uuid4().hex}:"
    cache = page_cache(config, prefix=prefix)
    assert cache.enabled
    client = redis.Redis.from_url(redis_url)
    full = engines(dbs.full)
    try:
        # One range per order: scoped first, then unscoped; and the reverse.
        for n, (span, order) in enumerate(
            (("whole", (A, EVERYONE)), ("with-previous", (EVERYONE, A)))
        ):
            filters = filters_for(span)
            for page in PAGES:
                before = cache.stats()
                first = load_page(full, config, page, filters, cache, scope=order[0], now=NOW)
                second = load_page(full, config, page, filters, cache, scope=order[1], now=NOW)
                after = cache.stats()
                # Both were misses: the second call did not get the first one's entry.
                assert (after.hits - before.hits, after.misses - before.misses) == (0, 2)
                got = {order[0]: first, order[1]: second}
                for fmt in TEXT_FORMATS:
                    assert render(got[A], fmt) != render(got[EVERYONE], fmt), (page, fmt)
                # Asked again, each scope gets its own entry back, from Redis.
                again = {s: load_page(full, config, page, filters, cache, scope=s, now=NOW)
                         for s in (A, EVERYONE)}  # fmt: skip
                assert cache.stats().hits - after.hits == 2
                uncached = built(False, span, page)  # build_page, on ONLY_A and FULL
                for fmt in TEXT_FORMATS:
                    want = render(uncached.on_only, fmt)
                    unscoped = render(uncached.unscoped, fmt)
                    assert_same_text(render(again[A], fmt), want, f"cached {page} {fmt}")
                    assert_same_text(render(got[A], fmt), want, f"built {page} {fmt}")
                    assert render(again[EVERYONE], fmt) == unscoped
                    assert render(got[EVERYONE], fmt) == unscoped
                assert_kpis_match(again[A], expected(dataset, *RANGES[span], A))
                assert_kpis_match(again[EVERYONE], expected(dataset, *RANGES[span], EVERYONE))
            # Two entries per page (one per scope) under this test's prefix.
            assert len(client.keys(prefix + "*")) == 2 * len(PAGES) * (n + 1)
    finally:
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)
        client.close()
        cache.close()


def test_redis_cache_keys_hold_the_database(dbs, engines, redis_url, tmp_path):
    """One Redis in front of two databases (two deployments, or `analytics export --db`
    against another one): each database's callers get their own database's page."""
    config = _redis_config(tmp_path, redis_url)
    prefix = f"analytics:test-isolation:{uuid.uuid4().hex}:"
    cache = page_cache(config, prefix=prefix)
    filters = filters_for("whole")
    try:
        on_full = load_page(engines(dbs.full), config, "business", filters, cache, now=NOW)
        on_only = load_page(engines(dbs.only_a), config, "business", filters, cache, now=NOW)
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)
        client.close()
        cache.close()
    assert on_full.kpis["api_calls"] == 3000
    # ONLY_A holds t_a's 1,541 requests; served FULL's entry, its caller sees 3,000.
    assert on_only.kpis["api_calls"] == 1541


# --- 3. the app's per-process cache (AppTest, proxy sign-in) -------------------------


@pytest.fixture
def proxy_app(monkeypatch, tmp_path):
    """``run(url, user, page, days)``: Home.py as ``user`` behind the signing-in proxy
    (its header patched in), on ``page``, over whole UTC ``days``; returns the AppTest."""
    users = {"tina": "tenant-a", "ada": "admin"}
    path = config_file(
        tmp_path / "proxy.yml", auth={"mode": "proxy", "roles": TENANT_A_ROLE, "users": users}
    )
    monkeypatch.setenv("ANALYTICS_CONFIG", str(path))
    audit_url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    monkeypatch.setenv("ANALYTICS_AUDIT_URL", audit_url)
    signed_in = {"user": ""}

    def client_context():
        headers = [("X-Forwarded-User", signed_in["user"])]
        return SimpleNamespace(headers=headers, cookies={}, remote_ip=None)

    monkeypatch.setattr("streamlit.runtime.context._get_client_context", client_context)

    def run(url: str, user: str, page: str = "overview", days=APP_DAYS, **params) -> AppTest:
        signed_in["user"] = user
        monkeypatch.setenv("DATABASE_URL", url)
        at = AppTest.from_file(HOME, default_timeout=60)
        for key, value in {"range": "custom", "start": days[0], "end": days[1], **params}.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, at.exception
        if page != "overview":
            at.switch_page(APP_PAGES[page]).run()
            assert not at.exception, at.exception
        return at

    run.audit_url = audit_url  # type: ignore[attr-defined]
    return run


def shown_kpis(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def cards(data: PageData) -> dict[str, str]:
    return {KPIS[k].label: format_kpi(k, v, data.currency) for k, v in data.kpis.items()}


@pytest.fixture
def page_loads(monkeypatch) -> list[tuple[str, str, Scope]]:
    """Every load_page call the app makes (a miss of its per-process cache)."""
    from analytics_app.ui import data as ui_data

    calls: list[tuple[str, str, Scope]] = []
    real = ui_data.load_page

    def counted(engine, config, page, filters, cache=None, *, scope=None, now=None):
        calls.append((engine.url.database, page, scope))
        return real(engine, config, page, filters, cache, scope=scope, now=now)

    monkeypatch.setattr(ui_data, "load_page", counted)
    return calls


def test_app_shows_tenant_a_the_same_figures_with_or_without_other_tenants(
    dbs, built, dataset, proxy_app
):
    assert filters_for("whole") == make_filters(*RANGES["whole"])  # APP_DAYS, in UTC
    shown: dict[str, dict[str, str]] = {}
    for page in PAGES:
        on_full = proxy_app(dbs.full, "tina", page)
        on_only = proxy_app(dbs.only_a, "tina", page)
        shown[page] = shown_kpis(on_full)
        assert shown[page] == shown_kpis(on_only), page
        assert shown[page] == cards(built(False, "whole", page).on_full), page
        assert shown[page] != cards(built(False, "whole", page).unscoped), page
        assert "no data" not in shown[page].values()
        # The sidebar offers tina her tenant only, and only what her tenant has.
        assert list(on_full.sidebar.multiselect(key="tenant").options) == ["Alpha (t_a)"]
        assert list(on_full.sidebar.multiselect(key="algorithm").options) == ["iforest", "lof"]
    want = expected(dataset, _utc(2026, 3, 20), _utc(2026, 4, 3), A)
    calls = shown["business"][KPIS["api_calls"].label]
    assert calls == format_kpi("api_calls", want["api_calls"], "USD")
    # A link naming another tenant: refused by name, nothing else shown, and recorded.
    linked = proxy_app(dbs.full, "tina", "overview", tenant="t_b")
    warnings = " ".join(w.value for w in linked.sidebar.warning)
    assert "'t_b'" in warnings and "not open to you" in warnings, warnings
    assert list(linked.sidebar.multiselect(key="tenant").value) == []
    assert shown_kpis(linked) == shown["overview"]
    log = AuditLog(proxy_app.audit_url)
    try:
        denied = log.read(users=["tina"], actions=["denied"])
    finally:
        log.close()
    assert len(denied) == 1 and "'t_b'" in denied.iloc[0]["detail"]


def test_app_per_process_cache_keeps_scopes_apart(dbs, built, dataset, proxy_app, page_loads):
    name = make_url(dbs.full).database
    spans = {APP_DAYS: "whole", APP_DAYS_2: "with-previous"}  # the same UTC ranges
    scoped = {d: cards(built(False, span, "business").on_full) for d, span in spans.items()}
    open_ = {d: cards(built(False, span, "business").unscoped) for d, span in spans.items()}
    label = KPIS["api_calls"].label
    for days, span in spans.items():
        assert scoped[days] != open_[days]
        for scope, figures in ((A, scoped[days]), (EVERYONE, open_[days])):
            calls = expected(dataset, *RANGES[span], scope)["api_calls"]
            assert figures[label] == format_kpi("api_calls", calls, "USD")

    # tina first, then the admin, over the same filters in the same process.
    tina = shown_kpis(proxy_app(dbs.full, "tina", "business", APP_DAYS))
    assert tina == scoped[APP_DAYS]
    assert (name, "business", A) in page_loads
    loads = len(page_loads)
    assert shown_kpis(proxy_app(dbs.full, "tina", "business", APP_DAYS)) == tina
    assert len(page_loads) == loads  # the per-process cache is in use: no new load
    ada = proxy_app(dbs.full, "ada", "business", APP_DAYS)
    assert shown_kpis(ada) == open_[APP_DAYS]  # not tina's entry
    assert (name, "business", EVERYONE) in page_loads[loads:]
    tenants = ada.sidebar.multiselect(key="tenant").options
    assert list(tenants) == ["Alpha (t_a)", "Beta (t_b)", "Gamma (t_c)"]

    # The reverse: the admin first, then tina, over other dates.
    assert shown_kpis(proxy_app(dbs.full, "ada", "business", APP_DAYS_2)) == open_[APP_DAYS_2]
    loads = len(page_loads)
    tina_2 = proxy_app(dbs.full, "tina", "business", APP_DAYS_2)
    assert shown_kpis(tina_2) == scoped[APP_DAYS_2]  # not the admin's entry
    assert (name, "business", A) in page_loads[loads:]
    assert list(tina_2.sidebar.multiselect(key="tenant").options) == ["Alpha (t_a)"]
    # And each still gets their own entry back once both are cached.
    loads = len(page_loads)
    assert shown_kpis(proxy_app(dbs.full, "tina", "business", APP_DAYS)) == scoped[APP_DAYS]
    assert shown_kpis(proxy_app(dbs.full, "ada", "business", APP_DAYS)) == open_[APP_DAYS]
    assert len(page_loads) == loads


# --- 4. the command line ---------------------------------------------------------------

# The export's generated_at is the moment of the run (to the minute): two runs can fall in
# different minutes, so files are compared with that one line removed (JSON's
# "generated_at" field and the CSV's "# generated_at:" comment are each one line).
_GENERATED = re.compile(r'^(  "generated_at": .*|# generated_at: .*)\n', re.MULTILINE)


def without_generated_at(text_: str) -> str:
    stripped, n = _GENERATED.subn("", text_)
    assert n == 1, "expected exactly one generated_at line"
    return stripped


@pytest.fixture
def cli_config(tmp_path, monkeypatch) -> tuple[Path, str]:
    """A config mapping the OS user to a role scoped to t_a, and the audit log's URL."""
    users = {getpass.getuser(): "tenant-a"}
    auth = {"mode": "proxy", "roles": TENANT_A_ROLE, "users": users}
    path = config_file(tmp_path / "cli.yml", auth=auth)
    audit = f"sqlite:///{tmp_path / 'cli-audit.sqlite'}"
    monkeypatch.setenv("ANALYTICS_AUDIT_URL", audit)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path, audit


def export(db: str, page: str, fmt: str, out: Path, config: Path, *extra: str) -> int:
    return main(
        ["export", "--db", db, "--page", page, "--start", APP_DAYS[0], "--end", "2026-04-03",
         "--format", fmt, "--out", str(out), "--config", str(config), *extra]
    )  # fmt: skip


def test_cli_export_scoped_to_tenant_a(dbs, dataset, cli_config, tmp_path, capsys):
    config, audit_url = cli_config
    me = getpass.getuser()
    want = expected(dataset, _utc(2026, 3, 20), _utc(2026, 4, 3), A)
    everyone = expected(dataset, _utc(2026, 3, 20), _utc(2026, 4, 3), EVERYONE)
    rows: dict[tuple[str, str], int] = {}
    for page in PAGES:
        for fmt in TEXT_FORMATS:
            files = {}
            for label, db in (("full", dbs.full), ("only_a", dbs.only_a)):
                out = tmp_path / f"{label}-{page}.{fmt}"
                assert export(db, page, fmt, out, config) == 0, capsys.readouterr().err
                files[label] = out.read_text(encoding="utf-8")
            assert_same_text(
                without_generated_at(files["full"]),
                without_generated_at(files["only_a"]),
                f"CLI {page} {fmt}",
            )
            if fmt == "csv":
                table = pd.read_csv(tmp_path / f"full-{page}.csv", comment="#")
                rows[page, fmt] = len(table)
                kpis = table[table.table == "kpis"].set_index("kpi")["value"].astype(float)
            else:
                document = json.loads(files["full"])
                kpis = pd.Series(document["kpis"], dtype=float)
                assert document["filters"]["tenants"] == []
            for key in KPI_PAGES[page]:
                assert kpis[key] == pytest.approx(want[key], rel=1e-9), (page, fmt, key)
                assert kpis[key] != pytest.approx(everyone[key], rel=1e-9), (page, fmt, key)

    # Another tenant, asked for by name: refused, named, no file, and recorded.
    out = tmp_path / "t_b.json"
    capsys.readouterr()
    assert export(dbs.full, "business", "json", out, config, "--tenant", "t_b") == 2
    err = capsys.readouterr().err
    assert "'t_b'" in err and "outside" in err, err
    assert not out.exists()

    log = AuditLog(audit_url)
    try:
        events = log.read(users=[me])
    finally:
        log.close()
    exports = events[events.action == "export"]
    assert len(exports) == 2 * len(PAGES) * len(TEXT_FORMATS)
    assert set(exports.role) == {"tenant-a"}
    for page in PAGES:
        logged = exports[(exports.page == page) & (exports.format == "csv")]["rows"]
        assert sorted(logged) == [rows[page, "csv"]] * 2, page  # FULL and ONLY_A alike
    denied = events[events.action == "denied"]
    assert len(denied) == 1
    assert denied.iloc[0]["page"] == "business" and "t_b" in denied.iloc[0]["detail"]
    assert json.loads(denied.iloc[0]["filters"])["tenants"] == ["t_b"]


# --- 5. the read-only role -------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    role: str
    raw: str  # the FULL database as the read-only role
    rolled: str  # the rolled-up FULL database as the read-only role


@pytest.fixture(scope="module")
def reader(dbs, pg_server, pg_admin) -> Iterator[Reader]:
    """A role with CONNECT, USAGE on schema public and SELECT on its tables, and nothing
    else (like the README's analytics_reader), on both FULL databases; dropped after."""
    role = f"analytics_ro_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    names = [make_url(dbs.full).database, make_url(dbs.full_rolled).database]
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    try:
        for name in names:
            conn_url = pg_server.url_for(name)
            admin = create_engine(conn_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    # Nothing through PUBLIC either: only what is granted below.
                    conn.execute(text(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC'))
                    conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
                    conn.execute(text(f'GRANT CONNECT ON DATABASE "{name}" TO {role}'))
                    conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
                    conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
            finally:
                admin.dispose()

        def as_reader(name: str) -> str:
            url = make_url(pg_server.url_for(name)).set(username=role, password=password)
            return url.render_as_string(hide_password=False)

        yield Reader(role, as_reader(names[0]), as_reader(names[1]))
    finally:
        with pg_admin.connect() as conn:
            # The app's cached engines may still hold connections as the role.
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": role},
            )
        for name in names:
            admin = create_engine(pg_server.url_for(name), isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f"DROP OWNED BY {role}"))
            finally:
                admin.dispose()
        with pg_admin.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))


def test_reader_role_can_only_read(reader):
    writer = make_engine(reader.raw, read_only=False)  # not even a writable session helps
    try:
        with writer.connect() as conn:
            assert conn.execute(text("select count(*) from api_requests")).scalar() == 3000
            for statement in (
                "INSERT INTO tenants (tenant_id, name, plan) VALUES ('t_x', 'X', 'free')",
                "DELETE FROM api_requests",
                "CREATE TABLE sneaky (id int)",
            ):
                with pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text(statement))
                conn.rollback()
    finally:
        writer.dispose()


@pytest.mark.parametrize("rolled", [False, True], ids=["raw", "rollups"])
def test_every_page_builds_as_the_reader(reader, built, config, dataset, rolled):
    mine = make_engine(reader.rolled if rolled else reader.raw)
    try:
        # The reader sees the rollups the admin built (not a silent fall-back to raw).
        assert sources_for(mine).watermark == (floor_hour(ROLLUP_AT) if rolled else None)
        filters = filters_for("with-previous")
        for scope in (EVERYONE, A):
            want = expected(dataset, *RANGES["with-previous"], scope)
            for page in PAGES:
                got = build_page(mine, config, page, filters, NOW, scope=scope)
                assert (got.source_note is None) == rolled
                assert_kpis_match(got, want)
                # What the superuser's connection built from the same database.
                as_admin = built(rolled, "with-previous", page)
                same = as_admin.unscoped if scope.unrestricted else as_admin.on_full
                for fmt in TEXT_FORMATS:
                    assert_same_text(render(got, fmt), render(same, fmt), f"{page} {fmt}")
    finally:
        mine.dispose()


def test_cli_exports_every_page_as_the_reader(reader, dataset, tmp_path, monkeypatch, capsys):
    config = config_file(tmp_path / "open.yml", auth={"mode": "none"})
    monkeypatch.setenv("ANALYTICS_AUDIT_URL", f"sqlite:///{tmp_path / 'audit.sqlite'}")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    want = expected(dataset, _utc(2026, 3, 20), _utc(2026, 4, 3), EVERYONE)
    for db in (reader.raw, reader.rolled):
        for page in PAGES:
            for fmt in TEXT_FORMATS:
                out = tmp_path / f"{page}.{fmt}"
                out.unlink(missing_ok=True)
                assert export(db, page, fmt, out, config) == 0, capsys.readouterr().err
                if fmt == "json":
                    kpis = pd.Series(json.loads(out.read_text())["kpis"], dtype=float)
                else:
                    table = pd.read_csv(out, comment="#")
                    kpis = table[table.table == "kpis"].set_index("kpi")["value"].astype(float)
                for key in KPI_PAGES[page]:
                    assert kpis[key] == pytest.approx(want[key], rel=1e-9), (db, page, key)
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    try:
        assert len(log.read(actions=["export"])) == 2 * len(PAGES) * len(TEXT_FORMATS)
    finally:
        log.close()


@pytest.mark.parametrize("rolled", [False, True], ids=["raw", "rollups"])
def test_app_runs_every_page_as_the_reader(reader, built, dataset, tmp_path, monkeypatch, rolled):
    # Its own export budget: the in-process limiter is shared by every AppTest of a run.
    budget = {"count": 1000, "period": "1h"}
    config = config_file(tmp_path / "open.yml", auth={"mode": "none", "export_limit": budget})
    monkeypatch.setenv("ANALYTICS_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", reader.rolled if rolled else reader.raw)
    want = expected(dataset, _utc(2026, 3, 20), _utc(2026, 4, 3), EVERYONE)
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params.update(range="custom", start=APP_DAYS[0], end=APP_DAYS[1])
    at.run()
    for page in PAGES:
        if page != "overview":
            at.switch_page(APP_PAGES[page]).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
        shown = shown_kpis(at)
        assert shown == cards(built(rolled, "whole", page).unscoped), page  # as the admin
        assert "no data" not in shown.values()
        if page == "business":
            label = KPIS["api_calls"].label
            assert shown[label] == format_kpi("api_calls", want["api_calls"], "USD")
        # Its downloads too: each format is built and recorded in the audit log.
        for fmt in TEXT_FORMATS:
            at.selectbox(key=f"export_format_{page}").set_value(fmt)
            at.button(key=f"prepare_export_{page}").click().run()
            assert not at.exception, (page, fmt, at.exception)
            assert [b.label for b in at.get("download_button")] == [f"Download {fmt.upper()}"]
        # The reader read the rollups where they are built; on raw tables the page says so.
        assert any(NO_ROLLUP_NOTE in c.value for c in at.caption) == (not rolled), page
