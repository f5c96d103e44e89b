"""Hostile input through the app's URL query parameters, the request headers and the
command line, against the fixture PostgreSQL database.

Each one must be answered with a message naming what was wrong, never a traceback; the
app must go on showing what it documents (the default for a bad URL value, nothing for a
range it refuses) and never anything outside the caller's scope; and the database must be
left exactly as it was (every table's row count and checksum, compared at the end).
"""

from __future__ import annotations

import getpass
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from streamlit.testing.v1 import AppTest

from analytics_core.audit import AuditLog
from analytics_core.cli import main
from analytics_core.sources.database import make_engine

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "analytics_app" / "Home.py")
FIRST, LAST = "2026-03-20", "2026-04-02"  # the fixture dataset's days
IN_DATA = {"range": "custom", "start": FIRST, "end": LAST}
SCOPED_USER = "tina"  # role tenant-a: every page and format, tenant t_a only
SCOPED_OPTIONS = ["Alpha (t_a)"]
ALL_OPTIONS = ["Alpha (t_a)", "Beta (t_b)", "Gamma (t_c)"]
# A message echoing input is clipped (analytics_core.filters.clip): a pasted value of
# thousands of characters must not push the page, or the terminal, away.
MAX_MESSAGE = 1000


def config_text(mode: str, cli_user: str | None = None) -> str:
    users = {"tina": "tenant-a", "root": "tenant-a", "alice": "admin"}
    if cli_user:
        users[cli_user] = "tenant-a"
    listed = ", ".join(f'"{k}": {v}' for k, v in users.items())
    return (
        "auth:\n"
        f"  mode: {mode}\n"
        "  roles:\n"
        '    tenant-a: {pages: "*", exports: "*", tenants: [t_a]}\n'
        f"  users: {{{listed}}}\n"
    )


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile_config")
    paths = {}
    for mode in ("none", "proxy", "oidc"):
        paths[mode] = folder / f"{mode}.yml"
        paths[mode].write_text(config_text(mode), encoding="utf-8")
    paths["cli-scoped"] = folder / "cli-scoped.yml"
    paths["cli-scoped"].write_text(config_text("proxy", getpass.getuser()), encoding="utf-8")
    return paths


# --- the database, before and after ----------------------------------------------------


def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Every table of every schema: its row count and an order-independent checksum of
    its rows (read in a read-only session: looking must not change anything either)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                    "ORDER BY 1, 2"
                )
            ).all()
            quote = conn.dialect.identifier_preparer.quote
            sums = {}
            for schema, name in tables:
                count, digest = conn.execute(
                    text(
                        "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY "
                        f"t::text), '')) FROM {quote(schema)}.{quote(name)} AS t"
                    )
                ).one()
                sums[f"{schema}.{name}"] = (count, digest)
    finally:
        engine.dispose()
    return sums


@pytest.fixture(scope="module", autouse=True)
def database_before(postgresql_url) -> dict[str, tuple[int, str]]:
    """Taken before this file's first test (a module autouse fixture); compared by the
    file's last test."""
    before = snapshot(postgresql_url)
    assert before.get("public.api_requests", (0, ""))[0] > 0, "the fixture data is missing"
    return before


# --- the app -----------------------------------------------------------------------------


@dataclass
class Run:
    at: AppTest
    audit_url: str

    def texts(self, kind: str) -> list[str]:
        return [e.value for e in getattr(self.at, kind)]

    def kpis(self) -> dict[str, str]:
        return {m.label: m.value for m in self.at.metric}

    def tenant_options(self) -> list[str] | None:
        try:
            return list(self.at.multiselect(key="tenant").options)
        except KeyError:
            return None  # no sidebar: the page stopped before it


def run_app(
    url: str,
    mp: pytest.MonkeyPatch,
    config: Path,
    audit_dir: Path,
    params: dict[str, str | list[str]],
    headers: list[tuple[str, str]] = (),
    user: dict | None = None,
    secrets: dict | None = None,
) -> Run:
    """One first visit of ``Home.py`` with ``params`` in the URL and ``headers`` on the
    request (AppTest cannot send headers: st.context's source is patched)."""
    audit_url = f"sqlite:///{audit_dir / 'audit.sqlite'}"
    mp.setenv("DATABASE_URL", url)
    mp.setenv("ANALYTICS_CONFIG", str(config))
    mp.setenv("ANALYTICS_AUDIT_URL", audit_url)
    client = types.SimpleNamespace(headers=list(headers), cookies=[], remote_ip="10.0.0.9")
    mp.setattr("streamlit.runtime.context._get_client_context", lambda: client)
    at = AppTest.from_file(HOME, default_timeout=60)
    if user is not None:
        at.user = user
    at.secrets.update(secrets or {})
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    return Run(at, audit_url)


def as_tina() -> list[tuple[str, str]]:
    return [("X-Forwarded-User", SCOPED_USER), ("X-Forwarded-For", "10.0.0.9")]


@pytest.fixture(scope="module")
def baselines(postgresql_url, configs, tmp_path_factory) -> dict[str, dict[str, str]]:
    """The figures the same callers see without a hostile parameter: everyone's (sign-in
    off), tenant t_a's alone (sign-in off, tenant=t_a), and the scoped user's."""
    out = {}
    for name, config, params, headers in (
        ("open", configs["none"], IN_DATA, []),
        ("open t_a", configs["none"], {**IN_DATA, "tenant": "t_a"}, []),
        ("scoped", configs["proxy"], IN_DATA, as_tina()),
    ):
        with pytest.MonkeyPatch.context() as mp:
            run = run_app(
                postgresql_url, mp, config, tmp_path_factory.mktemp("audit"), params, headers
            )
        assert not run.at.exception, name
        assert run.kpis(), f"{name}: no KPI cards for the fixture range"
        out[name] = run.kpis()
    # The scoped user's figures are tenant t_a's, and those are not everyone's.
    assert out["scoped"] == out["open t_a"] != out["open"]
    return out


def today() -> datetime:
    return datetime.now(UTC)


def default_dates() -> dict[str, str]:
    """The custom range a bad start/end falls back to: the last 7 days (UTC)."""
    end = today().date()
    return {"start": (end - timedelta(days=6)).isoformat(), "end": end.isoformat()}


@dataclass(frozen=True)
class UrlCase:
    bad: dict[str, str | list[str]]  # the hostile parameters
    message: str  # "warning" (named, replaced by the default) or "error" (refused)
    names: tuple[str, ...]  # every one of these is in the message
    # What is shown after: "same" (the KPI cards of the run without the hostile values),
    # "default" (the documented default range: no data in it), "fallback" (the filters
    # cannot be asked for: an error, and the default view).
    view: str = "same"
    base: dict[str, str] = field(default_factory=lambda: dict(IN_DATA))
    scoped: bool = False  # as the scoped user (sign-in proxy), else with sign-in off


MANY = [f"t_x{i}" for i in range(990)]  # under Streamlit's 1,000 query parameters

URL_CASES = [
    pytest.param(UrlCase({"tenant": "t_a' OR '1'='1"}, "warning", ("tenant", "'1'='1")),
                 id="tenant-sql-or-true"),
    pytest.param(UrlCase({"tenant": "t_a'); DROP TABLE api_requests;--"}, "warning",
                         ("tenant", "DROP TABLE api_requests")), id="tenant-sql-drop-table"),
    pytest.param(UrlCase({"algorithm": "iforest' UNION SELECT tenant_id FROM tenants--"},
                         "warning", ("algorithm", "UNION SELECT")), id="algorithm-sql-union"),
    pytest.param(UrlCase({"endpoint": "/api/v1/detect%00"}, "warning", ("endpoint", "%00")),
                 id="endpoint-literal-percent-00"),
    pytest.param(UrlCase({"endpoint": "/api/v1/detect\x00\x1b[2J\r\n"}, "warning",
                         ("endpoint", "/api/v1/detect")), id="endpoint-nul-and-escapes"),
    pytest.param(UrlCase({"endpoint": "/api/\u202ev1/detect \U0001f525"}, "warning",
                         ("endpoint", "\U0001f525")), id="endpoint-rtl-override-emoji"),
    pytest.param(UrlCase({"range": "7d; DELETE FROM tenants"}, "warning",
                         ("range=", "DELETE FROM tenants"), "default", {}),
                 id="range-sql-delete"),
    pytest.param(UrlCase({"start": LAST, "end": FIRST}, "warning", ("start=", "end=", LAST),
                         "default"), id="start-end-reversed"),
    pytest.param(UrlCase({"start": "2026-02-30"}, "warning", ("start=", "2026-02-30"),
                         "default"), id="start-february-30"),
    pytest.param(UrlCase({"start": "99999-01-01"}, "warning", ("start=", "99999-01-01"),
                         "default"), id="start-year-99999"),
    pytest.param(UrlCase({"start": "-1"}, "warning", ("start=", "'-1'"), "default"),
                 id="start-minus-one"),
    pytest.param(UrlCase({"end": "2026-04-02'; DROP TABLE tenants;--"}, "warning",
                         ("end=", "DROP TABLE"), "default"), id="end-sql-drop-table"),
    pytest.param(UrlCase({"start": "0001-01-01"}, "error", ("start 0001-01-01", "too early"),
                         "fallback"), id="huge-range-from-year-1"),
    # The app's custom range is inclusive: 2024-01-01 to 2026-04-02 is 823 days.
    pytest.param(UrlCase({"start": "2024-01-01"}, "error", ("823 days", "max_range_days"),
                         "fallback"), id="range-over-max-range-days"),
    pytest.param(UrlCase({"start": "2024-06-01", "granularity": "hour"}, "error",
                         ("granularity 'hour'", "5,000"), "fallback"),
                 id="hourly-buckets-over-two-years"),
    pytest.param(UrlCase({"granularity": "minute'--"}, "warning", ("granularity=", "minute")),
                 id="granularity-unknown"),
    pytest.param(UrlCase({"tz": "../../etc/passwd"}, "warning", ("tz", "../../etc/passwd")),
                 id="tz-path-traversal"),
    pytest.param(UrlCase({"tz": "posix/Europe/Paris"}, "warning", ("tz", "posix/Europe")),
                 id="tz-pseudo-zone"),
    pytest.param(UrlCase({"tz": "Z" * 3000}, "warning", ("tz", "ZZZZ")), id="tz-3000-chars"),
    pytest.param(UrlCase({"tenant": "t_zzz"}, "warning", ("tenant", "t_zzz")),
                 id="tenant-unknown"),
    pytest.param(UrlCase({"tenant": "x" * 200_000}, "warning", ("tenant", "xxxx")),
                 id="tenant-200k-chars"),
    pytest.param(UrlCase({"tenant": MANY}, "warning", ("tenant", "t_x0", "985 more")),
                 id="tenant-990-values"),
    pytest.param(UrlCase({"tenant": ""}, "warning", ("tenant", "''")), id="tenant-empty"),
    pytest.param(UrlCase({"area": "<img src=x onerror=alert(1)>"}, "warning",
                         ("area=", "onerror")), id="area-html"),
    pytest.param(UrlCase({"refresh": "<script>alert(1)</script>"}, "warning",
                         ("refresh", "<script>")), id="refresh-script"),
    pytest.param(UrlCase({"tenant": "t_b"}, "warning", ("tenant", "t_b"), scoped=True),
                 id="scoped-tenant-out-of-scope"),
    pytest.param(UrlCase({"tenant": ["t_a", "t_b", "t_c"]}, "warning",
                         ("tenant", "t_b", "t_c"), scoped=True),
                 id="scoped-tenant-in-and-out-of-scope"),
    pytest.param(UrlCase({"tenant": "t_a' OR tenant_id <> '"}, "warning",
                         ("tenant", "OR tenant_id"), scoped=True), id="scoped-tenant-sql"),
    pytest.param(UrlCase({"tenant": "t_zzz"}, "warning", ("tenant", "t_zzz"), scoped=True),
                 id="scoped-tenant-unknown"),
]  # fmt: skip


@pytest.mark.parametrize("case", URL_CASES)
def test_hostile_url_parameter(postgresql_url, configs, baselines, monkeypatch, tmp_path, case):
    params = {**case.base, **case.bad}
    run = run_app(
        postgresql_url,
        monkeypatch,
        configs["proxy" if case.scoped else "none"],
        tmp_path,
        params,
        as_tina() if case.scoped else [],
    )
    at = run.at
    assert not at.exception, at.exception

    messages = run.texts(case.message)
    named = [m for m in messages if all(n in m for n in case.names)]
    assert named, f"no {case.message} names {case.names}: {messages}"
    for shown in messages:
        assert "Traceback" not in shown
        assert len(shown) < MAX_MESSAGE, f"an unclipped message of {len(shown):,} characters"

    kpis = run.kpis()
    if case.view == "same":
        assert kpis == baselines["scoped" if case.scoped else "open"]
        # The hostile values are dropped, not carried on into the rewritten link.
        for key, value in case.bad.items():
            assert at.query_params.get(key) != value
    elif case.view == "default":
        assert not kpis  # the default range (the last 7 days) holds no fixture data
        assert any("No data in this range" in i for i in run.texts("info"))
        want = {"range": "7d"} if "range" in case.bad else {"range": "custom", **default_dates()}
        assert {k: at.query_params.get(k) for k in want} == want
    else:  # filters that cannot be asked for: the reason, then the default view
        assert case.view == "fallback"
        assert any("Showing the default view" in e for e in run.texts("error"))
        assert not kpis  # the default range (the last 7 days) holds no fixture data
        assert any("No data in this range" in i for i in run.texts("info"))

    options = run.tenant_options()
    assert options == (SCOPED_OPTIONS if case.scoped else ALL_OPTIONS)
    if case.scoped:
        # Only the scope's figures: the same cards as the caller's own view, which are
        # tenant t_a's; the tenant they asked for is never a filter and never in the link.
        assert kpis == baselines["scoped"] == baselines["open t_a"]
        assert set(at.multiselect(key="tenant").value) <= {"t_a"}
        assert at.query_params.get("tenant") in (None, "t_a", ["t_a"])
        # A tenant outside the scope is refused in the audit log, by name.
        asked = case.bad["tenant"]
        refused = "t_b" if isinstance(asked, list) else asked
        denied = AuditLog(run.audit_url).read(users=[SCOPED_USER], actions=["denied"])
        assert denied.detail.str.contains(refused, regex=False).any(), denied.detail.tolist()


def test_over_1000_url_parameters_fall_back_to_the_scoped_default(
    postgresql_url, configs, monkeypatch, tmp_path
):
    """5,000 repeated tenant values: Streamlit drops a query string of more than 1,000
    parameters (or 512 Ki characters) before the app sees it, and st.context.url carries
    no query string, so the app cannot name it (see the report). What it must still do:
    no traceback, none of the link's values applied, only the caller's tenants, and the
    link rewritten to the defaults."""
    params = {**IN_DATA, "tenant": [f"t_b{i}" for i in range(4_999)] + ["t_b"]}
    run = run_app(postgresql_url, monkeypatch, configs["proxy"], tmp_path, params, as_tina())
    at = run.at
    assert not at.exception
    assert run.tenant_options() == SCOPED_OPTIONS
    assert at.multiselect(key="tenant").value == []
    assert at.query_params.get("tenant") is None
    assert at.query_params.get("range") == "7d"  # the link's custom range was not applied
    assert not run.kpis()
    assert any("No data in this range" in i for i in run.texts("info"))


# --- identity headers ------------------------------------------------------------------

FORGED_ADMIN = [
    ("X-Forwarded-User", "alice"),
    ("X-Forwarded-Email", "alice@example.com"),
    ("X-Forwarded-Groups", "admin"),
    ("X-Forwarded-For", "10.6.6.6"),
]


def test_forged_identity_headers_are_ignored_with_sign_in_off(
    postgresql_url, configs, baselines, monkeypatch, tmp_path
):
    run = run_app(postgresql_url, monkeypatch, configs["none"], tmp_path, IN_DATA, FORGED_ADMIN)
    at = run.at
    assert not at.exception
    assert at.session_state["_access"].identity.user == "anonymous"
    assert at.session_state["_access"].identity.via == "none"
    assert any("Sign-in is off" in c for c in run.texts("caption"))
    assert run.kpis() == baselines["open"]
    assert run.tenant_options() == ALL_OPTIONS
    assert not run.texts("warning") and not run.texts("error")
    # Views are recorded as the anonymous user; the forged name appears nowhere.
    log = AuditLog(run.audit_url)
    assert log.users() == ["anonymous"]
    assert not log.read().client.fillna("").str.contains("10.6.6.6").any()


@pytest.mark.parametrize(
    "user",
    [
        pytest.param({"is_logged_in": False}, id="logged-out"),
        pytest.param(
            {"is_logged_in": False, "email": "alice@example.com", "groups": ["admin"]},
            id="logged-out-with-forged-claims",
        ),
    ],
)
def test_forged_identity_headers_do_not_sign_in_under_oidc(
    postgresql_url, configs, monkeypatch, tmp_path, user
):
    params = {**IN_DATA, "tenant": "t_b"}
    provider = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback"}}
    run = run_app(
        postgresql_url, monkeypatch, configs["oidc"], tmp_path, params, FORGED_ADMIN, user,
        provider,
    )  # fmt: skip
    at = run.at
    assert not at.exception
    assert run.texts("title") == ["Not signed in"]
    assert any("Sign in to see the dashboard" in i for i in run.texts("info"))
    assert [b.label for b in at.button] == ["Sign in"]
    assert not run.kpis()
    assert run.tenant_options() is None  # no sidebar, no tenant list
    assert "_access" not in at.session_state
    assert AuditLog(run.audit_url).users() == []


@pytest.mark.parametrize(
    "headers, named",
    [
        pytest.param([], "no X-Forwarded-User or X-Forwarded-Email header", id="no-header"),
        pytest.param(
            [("X-Forwarded-User", "tina\x00alice")], "X-Forwarded-User header is malformed",
            id="user-with-nul",
        ),
        pytest.param(
            [("X-Forwarded-User", "tina\r\nX-Forwarded-User: alice")],
            "X-Forwarded-User header is malformed",
            id="user-with-crlf-injection",
        ),
        pytest.param(
            [("X-Forwarded-User", "a" * 5000)], "X-Forwarded-User header is malformed",
            id="user-5000-chars",
        ),
        pytest.param(
            [("X-Forwarded-User", "tina"), ("X-Forwarded-Groups", "ops\x1b[2J")],
            "X-Forwarded-Groups header is malformed",
            id="groups-with-escape",
        ),
        pytest.param(
            [("X-Forwarded-User", "mallory'; DROP TABLE users;--")],
            "no page is open to mallory'; DROP TABLE users;--",
            id="unmapped-user-sql",
        ),
    ],
)  # fmt: skip
def test_malformed_identity_headers_under_proxy_show_no_data(
    postgresql_url, configs, monkeypatch, tmp_path, headers, named
):
    run = run_app(postgresql_url, monkeypatch, configs["proxy"], tmp_path, IN_DATA, headers)
    at = run.at
    assert not at.exception
    errors = run.texts("error")
    assert any(named in e for e in errors), errors
    assert all(len(e) < MAX_MESSAGE for e in errors)
    assert not run.kpis()
    assert run.tenant_options() is None


# --- the command line --------------------------------------------------------------------

DATES = ["--start", FIRST, "--end", LAST]


@dataclass(frozen=True)
class CliCase:
    args: list[str]
    code: int
    names: tuple[str, ...]
    config: str = "none"
    db: str | None = None  # default: the fixture database


def _db_named(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


CLI_CASES = [
    pytest.param(CliCase([*DATES, "--tenant", "t_a' OR '1'='1"], 2,
                         ("unknown tenant", "'1'='1")), id="tenant-sql-or-true"),
    pytest.param(CliCase([*DATES, "--tenant", "t_a'); DROP TABLE api_requests;--"], 2,
                         ("unknown tenant", "DROP TABLE")), id="tenant-sql-drop-table"),
    pytest.param(CliCase(["--start", LAST, "--end", FIRST], 2, ("empty or reversed",)),
                 id="reversed-range"),
    pytest.param(CliCase(["--start", "2026-02-30", "--end", LAST], 2,
                         ("--start '2026-02-30'", "not an ISO date")), id="start-february-30"),
    pytest.param(CliCase(["--start", "2026-03-20'; DROP TABLE tenants;--", "--end", LAST], 2,
                         ("--start", "not an ISO date")), id="start-sql"),
    pytest.param(CliCase(["--start", "99999-01-01", "--end", LAST], 2,
                         ("--start '99999-01-01'",)), id="start-year-99999"),
    pytest.param(CliCase(["--start", FIRST], 2, ("give --start and --end",)),
                 id="start-without-end"),
    pytest.param(CliCase(["--start", "0001-01-01", "--end", LAST], 2,
                         ("start 0001-01-01 is too early",)), id="huge-range-from-year-1"),
    pytest.param(CliCase(["--start", "2024-01-01", "--end", LAST], 2,
                         ("822 days", "max_range_days")), id="range-over-max-range-days"),
    pytest.param(CliCase(["--start", "2024-06-01", "--end", LAST, "--granularity", "hour"], 2,
                         ("granularity 'hour'", "5,000")), id="hourly-buckets-over-two-years"),
    pytest.param(CliCase([*DATES, "--tz", "../../etc/passwd"], 2,
                         ("time zone '../../etc/passwd'",)), id="tz-path-traversal"),
    pytest.param(CliCase([*DATES, "--tz", "Z" * 3000], 2, ("time zone 'ZZZ",)),
                 id="tz-3000-chars"),
    pytest.param(CliCase([*DATES, "--tenant", "t_b"], 2,
                         ("tenant 't_b' is outside what", "tenant-a"), config="cli-scoped"),
                 id="scoped-tenant-out-of-scope"),
    pytest.param(CliCase([*DATES, "--tenant", "t_zzz"], 2,
                         ("tenant 't_zzz' is outside what",), config="cli-scoped"),
                 id="scoped-tenant-unknown-same-answer"),
    pytest.param(CliCase([*DATES, "--endpoint", "/api/\u202ev1\x1b[2J\x00 \U0001f525"], 2,
                         ("unknown endpoint", "\\u202e", "\\x1b")),
                 id="endpoint-unicode-and-control-chars"),
    pytest.param(CliCase([*DATES, "--endpoint", "e" * 10_000], 2, ("unknown endpoint",)),
                 id="endpoint-10000-chars"),
    pytest.param(CliCase(["--start", "9" * 10_000, "--end", LAST], 2, ("--start",)),
                 id="start-10000-chars"),
    pytest.param(CliCase([*DATES, *[a for i in range(5000) for a in ("--tenant", f"t_x{i}")]],
                         2, ("unknown tenant", "t_x0")), id="tenant-5000-values"),
    pytest.param(CliCase(DATES, 2, ("not a database URL",), db="'; DROP TABLE tenants;--"),
                 id="db-sql-string"),
    pytest.param(CliCase(DATES, 2, ("not a database URL",), db="x" * 10_000),
                 id="db-10000-chars"),
    pytest.param(CliCase(DATES, 3, ("primary database", "unavailable"),
                         db="postgresql://postgres@127.0.0.1:9/nowhere"), id="db-unreachable"),
    pytest.param(CliCase(DATES, 3, ("primary database", "unavailable"),
                         db="SAME SERVER, DATABASE x'; DROP TABLE tenants;--"),
                 id="db-name-sql"),
]  # fmt: skip


def _export_argv(db: str, out: Path, *extra: str, fmt: str = "csv") -> list[str]:
    return ["export", "--db", db, "--page", "overview", "--format", fmt, "--out", str(out),
            *extra]  # fmt: skip


def _check_cli_error(err: str, out: str, names: tuple[str, ...]) -> None:
    assert "Traceback" not in err
    assert err.startswith("analytics export: error: ")
    assert err.count("\n") == 1, "one line"
    for name in names:
        assert name in err
    assert len(err) < MAX_MESSAGE, f"an unclipped message of {len(err):,} characters"
    assert out == ""


@pytest.mark.parametrize("case", CLI_CASES)
def test_hostile_cli_export(postgresql_url, configs, monkeypatch, capsys, tmp_path, case):
    monkeypatch.setenv("ANALYTICS_CONFIG", str(configs[case.config]))
    db = case.db or postgresql_url
    if db.startswith("SAME SERVER"):
        db = _db_named(postgresql_url, db.split("DATABASE ", 1)[1])
    target = tmp_path / "export.csv"
    code = main(_export_argv(db, target, *case.args))
    out, err = capsys.readouterr()
    assert code == case.code, err
    _check_cli_error(err, out, case.names)
    assert not target.exists()


@pytest.mark.parametrize(
    "args, named",
    [
        pytest.param(["--format", "xml"], "argument --format: invalid choice: 'xml'", id="format"),
        pytest.param(
            ["--format", "csv", "--range", "7d; DELETE FROM tenants"],
            "argument --range: invalid choice",
            id="range-sql",
        ),
        pytest.param(
            ["--format", "csv", "--granularity", "minute"],
            "argument --granularity: invalid choice",
            id="granularity",
        ),
        pytest.param(
            ["--format", "csv", "--page", "../../etc/passwd"],
            "argument --page: invalid choice",
            id="page-path",
        ),
    ],
)
def test_hostile_cli_choices_exit_2(postgresql_url, monkeypatch, capsys, tmp_path, args, named):
    """argparse refuses these itself: SystemExit with code 2 and the flag named."""
    monkeypatch.delenv("ANALYTICS_CONFIG", raising=False)
    target = tmp_path / "export.csv"
    argv = ["export", "--db", postgresql_url, "--page", "overview", "--out", str(target),
            *DATES, *args]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert named in err
    assert "Traceback" not in err and out == ""
    assert not target.exists()


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("missing-folder", id="out-in-missing-folder"),
        pytest.param("a-folder", id="out-is-a-folder"),
    ],
)
def test_unwritable_cli_out_exits_2(postgresql_url, configs, monkeypatch, capsys, tmp_path, where):
    monkeypatch.setenv("ANALYTICS_CONFIG", str(configs["none"]))
    target = tmp_path / "missing" / "export.csv" if where == "missing-folder" else tmp_path
    before = sorted(tmp_path.rglob("*"))
    code = main(_export_argv(postgresql_url, target, *DATES))
    out, err = capsys.readouterr()
    assert code == 2, err
    _check_cli_error(err, out, (f"cannot write --out {str(target)!r}",))
    assert sorted(tmp_path.rglob("*")) == before  # no file, no folder made


def test_cli_scope_limits_an_export_to_the_callers_tenants(
    postgresql_url, configs, monkeypatch, capsys
):
    """The counterpart of the refusals above: the OS user mapped to tenant-a exports
    tenant t_a's figures, the same as an open export filtered to t_a, not everyone's."""
    import json

    def kpis(config: str, *extra: str) -> dict:
        monkeypatch.setenv("ANALYTICS_CONFIG", str(configs[config]))
        code = main(_export_argv(postgresql_url, Path("-"), *DATES, *extra, fmt="json"))
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out)["kpis"]

    scoped = kpis("cli-scoped")
    assert scoped == kpis("none", "--tenant", "t_a") != kpis("none")


# --- last: the database is as it was ----------------------------------------------------


def test_zz_database_unchanged_by_every_hostile_input(postgresql_url, database_before):
    """Runs last in this file (pytest keeps file order; xdist --dist loadfile keeps a file
    on one worker): the same tables, each with the same rows."""
    after = snapshot(postgresql_url)
    assert sorted(after) == sorted(database_before)
    for table, (count, digest) in database_before.items():
        assert after[table] == (count, digest), f"{table} changed"
