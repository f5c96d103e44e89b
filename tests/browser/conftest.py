"""The browser tests' servers: the app as ``analytics serve`` runs it, on a free loopback
port, against a PostgreSQL database seeded with the demo data; and one headless Debian
``chromium`` driven by Playwright (``executable_path``: nothing downloads a browser).

Both are started once per session. Each test opens its own browser context (its own
Streamlit session, cookies and downloads), closed at its end. The database is served
from the PostgreSQL test server (``tests/servers.py``) rather than a DuckDB file so that
the auto-refresh test can insert rows while the app holds it open. A missing chromium
skips with the install command, and fails under ``CI=true``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import port_for
import pytest
from sqlalchemy import bindparam, text

from analytics_core.config import load_config
from analytics_core.sources.database import make_engine
from tests.servers import LOOPBACK, chromium_binary, server_missing

ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots, gitignored
DESKTOP = {"width": 1366, "height": 900}
SEED_DAYS = 35
SEED_SCALE = 0.3  # ~38k requests and ~2.5k detection runs: pages build in about a second
REFRESH_SECONDS = 5  # the auto-refresh interval, and so the page cache's lifetime
START_TIMEOUT_S = 120  # `analytics serve` until /_stcore/health answers

# Short refresh (the auto-refresh test waits for it) and an export limit the downloads
# test stays under (every format of every page); the rest is the packaged default.
APP_CONFIG = f"""\
dashboard:
  refresh_interval_seconds: {REFRESH_SECONDS}
auth:
  mode: none
  export_limit: {{count: 500, period: 1h}}
"""

# The event tables' time columns, as the queries read them.
TIME_COLUMN = {"api_requests": "ts", "detection_results": "created_at"}


@dataclass(frozen=True)
class App:
    url: str  # e.g. http://127.0.0.1:40123, no trailing slash
    pid: int  # Streamlit's own: `analytics serve` exec'd into it
    config: Path
    currency: str
    refresh_seconds: int

    def at(self, path: str = "", query: str = "") -> str:
        return f"{self.url}/{path.lstrip('/')}" + (f"?{query}" if query else "")


class SeededDatabase:
    """The served database, read (and, for the auto-refresh test, written) by the tests
    as the PostgreSQL superuser, independently of the app's queries."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url, read_only=False)

    def aggregate(
        self,
        expression: str,
        table: str,
        start: datetime,
        end: datetime,
        tenants: Sequence[str] = (),
        algorithms: Sequence[str] = (),
        endpoints: Sequence[str] = (),
    ) -> float | int | None:
        """``expression`` (e.g. ``count(*)``) over ``table``'s rows in ``[start, end)``."""
        column = TIME_COLUMN[table]
        where = [f"{column} >= :start", f"{column} < :end"]
        params: dict[str, object] = {"start": start, "end": end}
        binds = []
        for name, values in (
            ("tenant_id", tenants),
            ("algorithm", algorithms),
            ("endpoint", endpoints),
        ):
            if values:
                where.append(f"{name} IN :{name}")
                params[name] = list(values)
                binds.append(bindparam(name, expanding=True))
        sql = text(f"SELECT {expression} FROM {table} WHERE {' AND '.join(where)}")
        with self.engine.connect() as conn:
            return conn.execute(sql.bindparams(*binds), params).scalar()

    def count(self, table: str, start: datetime, end: datetime, **filters) -> int:
        return int(self.aggregate("count(*)", table, start, end, **filters) or 0)

    def execute(self, sql: str, rows: Sequence[dict[str, object]] | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), rows or {})

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def row(self, sql: str, **params: object) -> tuple:
        with self.engine.connect() as conn:
            return tuple(conn.execute(text(sql), params).one())


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_binary()


@pytest.fixture(scope="session")
def seeded(new_pg_database) -> Iterator[SeededDatabase]:
    url = new_pg_database()
    done = subprocess.run(
        [sys.executable, "-m", "analytics_core.cli", "seed", "--db", url,
         "--days", str(SEED_DAYS), "--scale", str(SEED_SCALE)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"analytics seed failed ({done.returncode}): {done.stderr[-2000:]}")
    database = SeededDatabase(url)
    yield database
    database.engine.dispose()


@pytest.fixture(scope="session")
def app(chromium, seeded, tmp_path_factory) -> Iterator[App]:
    """``analytics serve`` on a free loopback port, ready once ``/_stcore/health``
    answers, stopped at the end by its own pid (its process group: the page worker
    it forks goes with it)."""
    from mirakuru import HTTPExecutor

    workdir = tmp_path_factory.mktemp("browser-app")
    config = workdir / "analytics.yml"
    config.write_text(APP_CONFIG, encoding="utf-8")
    port = port_for.select_random()
    url = f"http://{LOOPBACK}:{port}"
    log_path = workdir / "app.log"
    with log_path.open("w") as log:
        executor = HTTPExecutor(
            [sys.executable, "-m", "analytics_core.cli", "serve", "--port", str(port),
             "--address", LOOPBACK, "--db", seeded.url, "--config", str(config)],
            url=f"{url}/_stcore/health",
            timeout=START_TIMEOUT_S,
            cwd=str(workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
            envvars={
                "ANALYTICS_CONFIG": str(config),
                "ANALYTICS_AUTH_MODE": "none",
                # Its own audit log and pseudonym key, never the user's.
                "ANALYTICS_AUDIT_URL": f"sqlite:///{workdir / 'audit.sqlite'}",
                "ANALYTICS_ANONYMISE_KEY": "browser-tests",
                "ANALYTICS_DEMO_DB": str(workdir / "demo.duckdb"),  # never made: --db wins
            },
        )  # fmt: skip
        try:
            executor.start()
        except Exception as exc:  # noqa: BLE001 - the app not starting is a failure, with its log
            executor.stop()
            pytest.fail(f"analytics serve did not answer on {url} ({exc}); log:\n"
                        f"{log_path.read_text(errors='replace')[-3000:]}")  # fmt: skip
        try:
            settings = load_config(config)
            yield App(
                url,
                executor.process.pid,
                config,
                settings.costs.currency,
                settings.dashboard.refresh_interval_seconds,
            )
        finally:
            executor.stop()


@pytest.fixture(scope="session")
def browser(chromium) -> Iterator:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
        except Error as exc:
            server_missing("Chromium", f"{chromium} did not start ({exc.message.splitlines()[0]})")
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser, app) -> Iterator[Callable[..., object]]:
    """A factory of pages, each in a new browser context (a new Streamlit session): the
    desktop or the phone viewport, English, in UTC (the app may take its default zone
    from the browser), downloads accepted. Closed at the end of the test."""
    contexts = []

    def make(viewport: dict[str, int] = DESKTOP):
        phone = viewport["width"] < 600
        context = browser.new_context(
            viewport=viewport,
            device_scale_factor=1,
            is_mobile=phone,
            has_touch=phone,
            locale="en-US",
            timezone_id="UTC",
            accept_downloads=True,
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
