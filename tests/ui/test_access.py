"""Who sees what in the app: sign-in modes, the role x page x action matrix, the audit
trail of it, export limits and a down audit store, through AppTest.

AppTest cannot send request headers, so the proxy's headers are put where Streamlit
reads them (the session's client context); ``st.user`` is AppTest's own ``at.user``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import streamlit.runtime.context as st_context
from streamlit.testing.v1 import AppTest

from analytics_core.audit import AuditLog
from analytics_core.exports import row_count
from analytics_core.pages import EXPORT_FORMATS
from tests.ui.test_pages import FIRST, LAST, ROOT, core_page

PAGE_FILES = {
    "overview": "app_pages/overview.py",
    "detection": "app_pages/detection.py",
    "performance": "app_pages/performance.py",
    "business": "app_pages/business.py",
    "insights": "app_pages/insights.py",
    "audit": "app_pages/audit.py",
}
TITLES = {
    "overview": "Overview",
    "detection": "Detection",
    "performance": "Performance",
    "business": "Business",
    "insights": "Insights",
    "audit": "Audit log",
}
CONFIG = """
auth:
  mode: {mode}
  roles:
    tenant-a: {{pages: [overview, business], exports: [csv], tenants: [t_a]}}
  users: {{alice: admin, ann: analyst, vic: viewer, tina: tenant-a, {email}: analyst}}
  groups: {{ops: viewer}}
  export_limit: {{count: {limit}, period: 1h}}
"""
OIDC_EMAIL = "olga@example.com"
# user -> (role, pages, export formats)
MATRIX = {
    "alice": ("admin", set(PAGE_FILES), list(EXPORT_FORMATS)),
    "ann": ("analyst", set(PAGE_FILES) - {"audit"}, list(EXPORT_FORMATS)),
    "vic": ("viewer", {"overview", "detection", "performance"}, []),
    "tina": ("tenant-a", {"overview", "business"}, ["csv"]),
    "mallory": (None, set(), []),
}


@pytest.fixture
def audit_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    monkeypatch.setenv("ANALYTICS_AUDIT_URL", url)
    return url


def events(url: str, **match: object) -> list[dict]:
    rows = AuditLog(url).read().to_dict(orient="records")
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def make_app(db_url, tmp_path, monkeypatch, *, mode="proxy", headers=None, limit=20) -> AppTest:
    config = tmp_path / "analytics.yml"
    config.write_text(CONFIG.format(mode=mode, email=OIDC_EMAIL, limit=limit), encoding="utf-8")
    monkeypatch.setenv("ANALYTICS_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", db_url)
    sent = list((headers or {}).items())
    monkeypatch.setattr(st_context, "_get_client_context", lambda: SimpleNamespace(headers=sent))
    at = AppTest.from_file(str(ROOT / "analytics_app" / "Home.py"), default_timeout=60)
    at.query_params.update(range="custom", start=FIRST.isoformat(), end=LAST.isoformat())
    return at


def as_user(db_url, tmp_path, monkeypatch, user: str, **kw) -> AppTest:
    return make_app(db_url, tmp_path, monkeypatch, headers={"X-Forwarded-User": user}, **kw)


def texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in at.get(kind))


def open_page(at: AppTest, page: str) -> AppTest:
    at.run()
    if page != "overview":  # every role here that has pages starts on the Overview
        at.switch_page(PAGE_FILES[page]).run()
    return at


@pytest.mark.parametrize("user", MATRIX)
@pytest.mark.parametrize("page", PAGE_FILES)
def test_role_page_matrix(duckdb_url, tmp_path, monkeypatch, audit_url, user, page):
    role, pages, formats = MATRIX[user]
    at = as_user(duckdb_url, tmp_path, monkeypatch, user)
    if page == "audit":  # the log holds today's events: the default range (last 7 days)
        at.query_params.clear()
    if page in pages:
        open_page(at, page)
        assert not at.exception, at.exception
        assert at.title[0].value == TITLES[page]
        assert "Not allowed" not in texts(at, "error")
        views = events(audit_url, user=user, action="view", page=page)
        assert len(views) == 1 and views[0]["role"] == role
        if page != "audit":
            assert json.loads(views[0]["filters"])["start"].startswith(FIRST.isoformat())
        if page != "audit":
            assert at.metric, "an allowed data page shows its KPIs"
        # Export: the role's formats only, built and audited when asked for.
        if not formats:
            assert f"Export: not open to role {role}" in texts(at, "caption")
            assert not at.get("button") or all("Prepare" not in b.label for b in at.button)
            return
        picker = at.selectbox(key=f"export_format_{page}")
        assert picker.options == [f.upper() for f in formats]
        picker.set_value("csv")  # every exporting role here has CSV
        at.button(key=f"prepare_export_{page}").click().run()
        assert [b.label for b in at.get("download_button")] == ["Download CSV"]
        exports = events(audit_url, user=user, action="export", page=page)
        assert [(e["format"], e["role"]) for e in exports] == [("csv", role)]
        if page != "audit":
            scope = ("t_a",) if user == "tina" else None
            want = core_page(duckdb_url, page, FIRST, LAST, scope=scope)
            assert exports[0]["rows"] == row_count(want)
        return
    # Not the caller's page: not in the navigation, and its URL is refused and audited.
    at.run()
    if not pages:  # no role: no page at all
        assert "no page is open to mallory" in texts(at, "error")
        assert not at.metric and not at.sidebar.multiselect
        assert events(audit_url, user=user, action="denied")
        return
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE_FILES[page])
    at.context = {"url": f"http://localhost:8501/{page}"}
    at.run()
    assert not at.exception
    assert f"the {page} page is not open to {user} (role {role})" in texts(at, "error")
    assert not at.metric
    denied = events(audit_url, user=user, action="denied", page=page)
    assert len(denied) == 1 and f"{page} page is not open" in denied[0]["detail"]


def test_a_request_without_the_proxys_headers_sees_no_data(duckdb_url, tmp_path, monkeypatch):
    at = make_app(duckdb_url, tmp_path, monkeypatch, headers={"X-Other": "x"}).run()
    assert not at.exception
    assert at.title[0].value == "Not signed in"
    assert "did not carry its identity" in texts(at, "error")
    assert not at.metric and not at.sidebar.multiselect and not at.sidebar.selectbox


def test_forged_headers_are_ignored_when_sign_in_is_off(
    duckdb_url, tmp_path, monkeypatch, audit_url
):
    forged = {"X-Forwarded-User": "tina"}  # tina is scoped to t_a under the proxy
    at = make_app(duckdb_url, tmp_path, monkeypatch, mode="none", headers=forged).run()
    assert "Sign-in is off" in texts(at, "caption")
    tenants = at.sidebar.multiselect(key="tenant").options
    assert len(tenants) == 3  # everyone's: the header made nobody tina
    assert not events(audit_url, user="tina")


def test_oidc_signed_out_gets_the_sign_in_button_and_signed_in_is_mapped(
    duckdb_url, tmp_path, monkeypatch, audit_url
):
    at = make_app(duckdb_url, tmp_path, monkeypatch, mode="oidc")
    at.user = {"is_logged_in": False}
    at.run()
    assert at.title[0].value == "Not signed in"
    assert "needs an [auth] section" in texts(at, "error")  # no provider configured yet
    assert not at.button
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback"}
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.metric
    at.user = {"is_logged_in": True, "email": OIDC_EMAIL, "name": "Olga"}
    at.run()
    assert not at.exception
    assert at.title[0].value == "Overview" and at.metric
    assert "Sign out" in [b.label for b in at.sidebar.button]
    assert [e["role"] for e in events(audit_url, user=OIDC_EMAIL, action="sign_in")] == ["analyst"]
    # The analyst has no Audit page.
    with pytest.raises(ValueError):
        at.switch_page(PAGE_FILES["audit"])


def test_sign_in_off_on_every_interface_is_refused(duckdb_url, tmp_path, monkeypatch):
    from streamlit import config as st_config

    at = make_app(duckdb_url, tmp_path, monkeypatch, mode="none")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at.run()
    finally:
        st_config.set_option("server.address", "127.0.0.1")  # as tests/conftest.py set it
    refusal = "Sign-in is off (auth.mode: none) and the server listens on 0.0.0.0"
    assert refusal in texts(at, "error")
    assert not at.metric


def test_tenant_scope_shows_only_the_tenants_figures(duckdb_url, tmp_path, monkeypatch):
    at = as_user(duckdb_url, tmp_path, monkeypatch, "tina").run()
    assert at.sidebar.multiselect(key="tenant").options == ["Alpha (t_a)"]
    scoped = core_page(duckdb_url, "overview", FIRST, LAST, scope=("t_a",))
    everyone = core_page(duckdb_url, "overview", FIRST, LAST)
    shown = {m.label: m.value for m in at.metric}
    from tests.ui.test_pages import expected_cards

    assert shown == expected_cards(scoped)
    assert shown != expected_cards(everyone)


def test_over_the_export_limit_the_button_says_when(duckdb_url, tmp_path, monkeypatch, audit_url):
    at = as_user(duckdb_url, tmp_path, monkeypatch, "ann", limit=2).run()
    for _ in range(2):
        at.button(key="prepare_export_overview").click().run()
        assert at.get("download_button")
    button = at.button(key="prepare_export_overview")
    assert button.disabled
    assert "Export limit reached (2 per 1 hour)" in texts(at, "caption")
    assert len(events(audit_url, user="ann", action="export")) == 2


def test_exports_are_refused_while_the_audit_log_is_down(duckdb_url, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("ANALYTICS_AUDIT_URL", f"sqlite:///{blocker / 'audit.sqlite'}")
    at = as_user(duckdb_url, tmp_path, monkeypatch, "alice").run()
    assert not at.exception and at.metric  # the page itself keeps working
    assert "audit log cannot be written" in texts(at, "warning")
    at.button(key="prepare_export_overview").click().run()
    assert "Exports are paused" in texts(at, "error")
    assert not at.get("download_button")


def test_the_audit_page_lists_and_filters_what_happened(
    duckdb_url, tmp_path, monkeypatch, audit_url
):
    ann = as_user(duckdb_url, tmp_path, monkeypatch, "ann").run()
    ann.button(key="prepare_export_overview").click().run()
    alice = as_user(duckdb_url, tmp_path, monkeypatch, "alice")
    alice.query_params.clear()  # the default range: the last 7 days, today's events in it
    open_page(alice, "audit")
    assert not alice.exception
    shown = alice.dataframe[0].value
    logged = AuditLog(audit_url).read()
    assert len(shown) == len(logged) and set(shown["user"]) == {"ann", "alice"}
    alice.multiselect(key="audit_actions").set_value(["export"]).run()
    exports = alice.dataframe[0].value
    assert list(exports["user"]) == ["ann"] and list(exports["format"]) == ["json"]


def test_a_tenant_scoped_role_with_the_audit_page_is_still_refused_it(
    duckdb_url, tmp_path, monkeypatch, audit_url
):
    config = tmp_path / "scoped-admin.yml"
    config.write_text(
        "auth:\n  mode: proxy\n  roles:\n    acme-admin: {pages: '*', exports: '*', "
        "tenants: [t_a]}\n  users: {sam: acme-admin}\n",
        encoding="utf-8",
    )
    at = as_user(duckdb_url, tmp_path, monkeypatch, "sam")
    monkeypatch.setenv("ANALYTICS_CONFIG", str(config))
    at.query_params.clear()
    open_page(at, "audit")
    assert "the audit page covers every tenant, and role acme-admin does not" in texts(at, "error")
    assert not at.dataframe
    assert events(audit_url, user="sam", action="denied", page="audit")


def test_tables_have_no_download_of_their_own():
    from analytics_core.cli import APP_DIR, streamlit_flags

    assert "--client.disableDataExport=true" in streamlit_flags(
        APP_DIR / ".streamlit" / "config.toml"
    )
