"""Identities, roles and scopes (analytics_core.access) and the auth config."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics_core.access import (
    MAX_IDENTITY_LENGTH,
    AccessDenied,
    Identity,
    NotSignedIn,
    cli_identity,
    from_headers,
    from_oidc,
    open_identity,
    open_refused,
    resolve,
)
from analytics_core.config import Auth, ConfigError, load_config
from analytics_core.context import Scope
from analytics_core.filters import make_filters
from analytics_core.pages import APP_PAGES, EXPORT_FORMATS

AUTH = Auth.model_validate(
    {
        "mode": "proxy",
        "roles": {
            "tenant-a": {"pages": ["overview", "business"], "exports": ["csv"], "tenants": ["t_a"]},
            "tenant-b": {"pages": ["business"], "exports": [], "tenants": "t_b"},
        },
        "users": {"alice": "admin", "bob@example.com": "analyst", "tina": "tenant-a"},
        "groups": {"ops": "viewer", "acme": "tenant-a", "beta": "tenant-b"},
    }
)


def proxy(user: str | None, **headers: str) -> Identity:
    sent = {"X-Forwarded-User": user} if user is not None else {}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return from_headers(sent, AUTH)


def test_builtin_roles_give_their_pages_formats_and_every_tenant():
    admin = resolve(proxy("alice"), AUTH)
    assert (admin.role, admin.pages, admin.exports) == ("admin", APP_PAGES, EXPORT_FORMATS)
    assert admin.scope == Scope()
    analyst = resolve(proxy("x", X_Forwarded_Email="bob@example.com"), AUTH)
    assert analyst.role == "analyst" and "audit" not in analyst.pages
    assert analyst.pages == tuple(p for p in APP_PAGES if p not in ("audit", "health"))
    viewer = resolve(proxy("carol", X_Forwarded_Groups="ops"), AUTH)
    assert viewer.pages == ("overview", "detection", "performance") and viewer.exports == ()


def test_a_user_mapping_wins_over_groups_and_groups_combine():
    # tina is tenant-a by name, whatever her groups say.
    assert resolve(proxy("tina", X_Forwarded_Groups="beta,ops"), AUTH).role == "tenant-a"
    both = resolve(proxy("dan", X_Forwarded_Groups="acme, beta"), AUTH)
    assert both.role == "tenant-a+tenant-b"
    assert both.scope == Scope(("t_a", "t_b"))
    assert both.pages == ("overview", "business") and both.exports == ("csv",)
    # A group with every tenant makes the union every tenant.
    assert resolve(proxy("eve", X_Forwarded_Groups="acme,ops"), AUTH).scope.unrestricted


def test_an_unknown_user_has_no_role_and_sees_nothing_unless_a_default_is_set():
    nobody = resolve(proxy("mallory"), AUTH)
    assert (nobody.role, nobody.pages, nobody.exports) == (None, (), ())
    assert nobody.scope == Scope(())
    with pytest.raises(AccessDenied, match="overview page is not open to mallory"):
        nobody.check_page("overview")
    defaulted = resolve(proxy("mallory"), AUTH.model_copy(update={"default_role": "viewer"}))
    assert defaulted.role == "viewer"


def test_sign_in_off_is_admin_but_a_cli_user_under_sign_in_is_mapped_like_anyone():
    open_auth = Auth()
    assert resolve(open_identity(), open_auth).role == "admin"
    assert resolve(cli_identity(open_auth), open_auth).role == "admin"
    cli = cli_identity(AUTH)
    assert cli.via == "cli"
    assert resolve(cli, AUTH).role is None  # the OS user is in no mapping here


def test_tenant_filters_outside_the_scope_are_refused_by_name():
    tina = resolve(proxy("tina"), AUTH)
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)
    tina.check_filters(make_filters(start, end, tenants=["t_a"]))
    tina.check_filters(make_filters(start, end))  # no tenant filter: the scope applies
    with pytest.raises(AccessDenied, match="tenant 't_b' is outside what tina"):
        tina.check_filters(make_filters(start, end, tenants=["t_a", "t_b"]))
    with pytest.raises(AccessDenied, match="json exports are not open to tina"):
        tina.check_export("json")
    tina.check_export("csv")


def test_proxy_headers_give_user_email_groups_and_the_proxys_client_address():
    who = proxy(
        "alice",
        X_Forwarded_Email="alice@example.com",
        X_Forwarded_Groups=" ops , ,acme",
        X_Forwarded_For="203.0.113.9, 10.0.0.7",
    )
    assert who == Identity("alice", "alice@example.com", ("ops", "acme"), "10.0.0.7", "proxy")
    assert proxy(None, X_Forwarded_Email="bob@example.com").user == "bob@example.com"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Forwarded-User": "   "},
        {"X-Forwarded-User": "alice\r\nX-Forwarded-Groups: admins"},
        {"X-Forwarded-User": "a\x00b"},
        {"X-Forwarded-User": "a" * (MAX_IDENTITY_LENGTH + 1)},
        {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "ops\x1b[31m"},
    ],
)
def test_missing_or_malformed_identity_headers_are_not_a_sign_in(headers):
    with pytest.raises(NotSignedIn):
        from_headers(headers, AUTH)


def test_oidc_claims_give_the_email_and_groups():
    who = from_oidc({"is_logged_in": True, "email": "bob@example.com", "groups": ["ops", 3]})
    assert who == Identity("bob@example.com", "bob@example.com", ("ops",), None, "oidc")
    assert from_oidc({"is_logged_in": True, "sub": "u-17"}).user == "u-17"
    signed_out = ({"is_logged_in": False, "email": "x@y"}, {"email": "x@y"}, {"is_logged_in": True})
    for claims in signed_out:
        with pytest.raises(NotSignedIn):
            from_oidc(claims)


@pytest.mark.parametrize(
    ("mode", "allow_open", "address", "refused"),
    [
        ("none", False, "127.0.0.1", False),
        ("none", False, "::1", False),
        ("none", False, "localhost", False),
        ("none", False, "0.0.0.0", True),
        ("none", False, None, True),  # unset: Streamlit binds every interface
        ("none", False, "10.1.2.3", True),
        ("none", True, "0.0.0.0", False),
        ("proxy", False, "0.0.0.0", False),
    ],
)
def test_sign_in_off_is_refused_off_loopback_unless_allowed(mode, allow_open, address, refused):
    auth = Auth(mode=mode, allow_open=allow_open)
    assert (open_refused(auth, address) is not None) == refused


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("auth: {mode: ldap}", "auth.mode"),
        ("auth: {users: {alice: boss}}", "auth"),
        ("auth: {roles: {x: {pages: [overview, secrets]}}}", "auth.roles.x.pages"),
        ("auth: {roles: {x: {exports: [docx]}}}", "auth.roles.x.exports"),
        ("auth: {roles: {x: {tenants: [1, 2]}}}", "auth.roles.x.tenants"),
        ("auth: {export_limit: {period: 1500ms}}", "auth.export_limit.period"),
        ("auth: {export_limit: {count: 0}}", "auth.export_limit.count"),
        ("dashboard: {max_range_days: -3}", "dashboard.max_range_days"),
    ],
)
def test_bad_auth_config_is_named(tmp_path, text, key):
    path = tmp_path / "analytics.yml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert key in str(caught.value)


def test_a_header_sent_twice_is_not_an_identity():
    from streamlit.runtime.context import StreamlitHeaders  # what st.context.headers is

    twice = StreamlitHeaders([("X-Forwarded-User", "alice"), ("X-Forwarded-User", "mallory")])
    with pytest.raises(NotSignedIn, match="came 2 times"):
        from_headers(twice, AUTH)
    once = StreamlitHeaders([("x-forwarded-user", "alice"), ("X-Forwarded-For", "1.2.3.4"),
                             ("X-Forwarded-For", "10.0.0.7")])  # fmt: skip
    assert from_headers(once, AUTH) == Identity("alice", None, (), "10.0.0.7", "proxy")


@pytest.mark.parametrize("forwarded", ['=HYPERLINK("x")', "10.0.0.7, not-an-ip", "unknown"])
def test_a_client_address_that_is_no_ip_address_is_not_recorded(forwarded):
    assert proxy("alice", X_Forwarded_For=forwarded).client is None


def test_oidc_ignores_an_unverified_email_and_matches_emails_without_case():
    unverified = {"is_logged_in": True, "email": "bob@example.com", "email_verified": False,
                  "sub": "google-17"}  # fmt: skip
    who = from_oidc(unverified)
    assert (who.user, who.email) == ("google-17", None)
    assert resolve(who, AUTH).role is None  # not the analyst bob@example.com is mapped to
    shouting = from_oidc({"is_logged_in": True, "email": "Bob@Example.COM"})
    assert resolve(shouting, AUTH).role == "analyst"


def test_a_configured_role_must_say_which_tenants(tmp_path):
    path = tmp_path / "analytics.yml"
    path.write_text("auth: {roles: {acme: {pages: [overview]}}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="auth.roles.acme.tenants"):
        load_config(path)


def test_the_cli_user_is_the_os_account_not_an_environment_variable(monkeypatch):
    import os
    import pwd

    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("USER", "alice")
    assert cli_identity(AUTH).user == pwd.getpwuid(os.geteuid()).pw_name != "alice"
