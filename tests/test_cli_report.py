"""``analytics report`` on the fixture database: the periods (DST included), every bad
input refused with exit 2 before anything is written, and delivery against a real SMTP
server (aiosmtpd) and a real HTTP server on loopback, including failing and slow ones."""

from __future__ import annotations

import email
import getpass
import json
import os
import re
import socket
import threading
from datetime import UTC, date, datetime
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import port_for
import pytest
import yaml
from aiosmtpd.controller import Controller

from analytics_core import report
from analytics_core.audit import AuditLog
from analytics_core.cli import main
from analytics_core.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from analytics_core.context import Scope
from analytics_core.exports import row_count
from analytics_core.filters import InputError, make_filters, parse_instant
from analytics_core.kpis import KPIS, format_delta, format_kpi
from analytics_core.page_data import build_page
from analytics_core.pages import MEDIA_TYPES
from analytics_core.sources.database import make_engine

# The fixture's data (tests/ui/test_pages.py FIRST..LAST); END is exclusive.
PERIOD = "2026-03-20..2026-04-03"
PARIS = "Europe/Paris"
SENDER = "analytics@example.com"


# Servers on loopback.


class Mailbox:
    """An aiosmtpd handler keeping what it is sent."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(e.original_content or e.content, policy=policy.default)
            for e in self.envelopes
        ]


@pytest.fixture(scope="module")
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port_for.select_random())
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server) -> Mailbox:
    _, box = smtp_server
    box.envelopes.clear()
    return box


class Hook:
    """A webhook receiver: answers ``status``, after ``delay`` seconds (cut short when
    the test ends), and keeps every request's path and JSON body."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.received: list[tuple[str, dict]] = []
        self.done = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append((self.path, json.loads(body)))
                if hook.delay:
                    hook.done.wait(hook.delay)
                try:
                    self.send_response(hook.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"

    def close(self) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks():
    made: list[Hook] = []

    def make(status: int = 200, delay: float = 0.0) -> Hook:
        made.append(Hook(status, delay))
        return made[-1]

    yield make
    for hook in made:
        hook.close()


# Config, audit log and the command.


@pytest.fixture
def audit_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    monkeypatch.setenv("ANALYTICS_AUDIT_URL", url)
    return url


@pytest.fixture
def configure(tmp_path, monkeypatch, smtp_server, audit_url):
    """Write the packaged config with ``report`` (and optionally ``auth``) settings
    changed, and point ANALYTICS_CONFIG at it."""
    controller, _ = smtp_server

    def write(smtp: dict | None = None, auth: dict | None = None, **settings) -> Path:
        data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
        data["report"] = {
            "smtp": {
                "host": "127.0.0.1",
                "port": controller.port,
                "starttls": False,
                "sender": SENDER,
                "timeout_seconds": 2,
                **(smtp or {}),
            },
            "webhook_timeout_seconds": 2,
            "attempts": 3,
            "retry_backoff_seconds": 0.01,
            "app_url": "https://analytics.example.com/",
            **settings,
        }
        if auth is not None:
            data["auth"] = auth
        path = tmp_path / "analytics.yml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        monkeypatch.setenv("ANALYTICS_CONFIG", str(path))
        return path

    return write


def run(
    db: str, out: Path | str, *extra: str, capsys, pages="performance", fmt="json", period=PERIOD
):
    argv = ["report", "--db", db, "--pages", pages, "--period", period, "--tz", PARIS,
            "--format", fmt, "--out", str(out), *extra]  # fmt: skip
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_pages(db: str, names: list[str], tenants=(), period=PERIOD) -> list:
    first, last = period.split("..")
    start, end = parse_instant(first, PARIS, "s"), parse_instant(last, PARIS, "e")
    filters = make_filters(start, end, PARIS, None, list(tenants))
    engine = make_engine(db)
    try:
        return [build_page(engine, load_config(), p, filters, scope=Scope()) for p in names]
    finally:
        engine.dispose()


def exports_logged(url: str):
    frame = AuditLog(url).read()
    return frame[frame.action == "export"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".part")


# The periods.


def _hours(period: report.Period) -> float:
    return (period.end - period.start).total_seconds() / 3600


def _local(text: str, tz: str = PARIS) -> datetime:
    return parse_instant(text, tz, "t")


def test_previous_week_and_month_are_calendar_periods_in_the_zone():
    now = datetime(2026, 11, 4, 10, tzinfo=UTC)  # a Wednesday
    week = report.period_range("previous-week", PARIS, now)
    assert (week.start, week.end) == (_local("2026-10-26"), _local("2026-11-02"))
    assert week.days == (date(2026, 10, 26), date(2026, 11, 1))
    assert week.start == datetime(2026, 10, 25, 23, tzinfo=UTC) and _hours(week) == 168
    month = report.period_range("previous-month", PARIS, now)
    assert (month.start, month.end) == (_local("2026-10-01"), _local("2026-11-01"))
    assert month.days == (date(2026, 10, 1), date(2026, 10, 31))
    assert _hours(month) == 31 * 24 + 1  # 745: October gives back the hour on the 25th


@pytest.mark.parametrize(
    ("now", "spec", "first", "last", "hours"),
    [
        # The week of the autumn change (Sunday 25 October) has 169 hours, spring's 167.
        (datetime(2026, 10, 28, 12, tzinfo=UTC), "previous-week", "2026-10-19", "2026-10-25", 169),
        (datetime(2026, 4, 1, 12, tzinfo=UTC), "previous-week", "2026-03-23", "2026-03-29", 167),
        (datetime(2026, 4, 1, 12, tzinfo=UTC), "previous-month", "2026-03-01", "2026-03-31", 743),
        (datetime(2026, 1, 15, tzinfo=UTC), "previous-month", "2025-12-01", "2025-12-31", 744),
        # 00:30 on Monday in Paris is still Sunday in UTC: the week is Paris's.
        (datetime(2026, 11, 1, 23, 30, tzinfo=UTC), "previous-week",
         "2026-10-26", "2026-11-01", 168),
    ],
)  # fmt: skip
def test_calendar_periods_across_dst(now, spec, first, last, hours):
    period = report.period_range(spec, PARIS, now)
    assert period.days == (date.fromisoformat(first), date.fromisoformat(last))
    assert period.start == _local(first)
    assert _hours(period) == hours


def test_last_periods_end_now_and_custom_ranges_are_half_open():
    now = datetime(2026, 11, 4, 10, 0, 37, 5, tzinfo=UTC)
    day = report.period_range("last-24h", PARIS, now)
    assert (day.start, day.end) == (
        datetime(2026, 11, 3, 10, tzinfo=UTC),
        now.replace(second=0, microsecond=0),
    )
    assert day.days is None  # not whole days: no link to the app
    month = report.period_range("last-30d", "UTC", datetime(2026, 11, 4, 0, 0, 30, tzinfo=UTC))
    assert month.days == (date(2026, 10, 5), date(2026, 11, 3))
    custom = report.period_range(PERIOD, PARIS, now)
    assert (custom.start, custom.end) == (_local("2026-03-20"), _local("2026-04-03"))
    assert custom.days == (date(2026, 3, 20), date(2026, 4, 2))
    assert report.period_range("2026-03-20T06:00..2026-03-21", PARIS, now).days is None
    assert report.period_range("2026-03-20T00:00:00+01:00..2026-03-21", PARIS, now).days == (
        date(2026, 3, 20), date(2026, 3, 20),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("yesterday", "'yesterday'"),
        ("last-2d", "'last-2d'"),
        ("2026-13-01..2026-12-01", "START '2026-13-01'"),
        ("2026-03-05..2026-03-01", "END is not after START"),
    ],
)
def test_a_bad_period_is_named(spec, named):
    with pytest.raises(InputError, match=named.replace("(", r"\(")):
        report.period_range(spec, PARIS, datetime(2026, 11, 4, tzinfo=UTC))


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("ops@example.com", True),
        ("first.last+report@mail.example.co.uk", True),
        ("ops@localhost", True),
        ("ops", False),
        ("ops@", False),
        ("@example.com", False),
        ("a@b@example.com", False),
        ("Ops <ops@example.com>", False),
        ("ops@example.com, boss@example.com", False),
        ("ops@example.com\r\nBcc: spy@example.com", False),
        ("ops@-example.com", False),
        ("ops..x@example.com", False),
    ],
)
def test_email_addresses(address, ok):
    assert report.valid_address(address) is ok


def test_webhook_urls_are_shown_without_their_secret_path():
    assert (
        report.shown_url("https://hooks.slack.com/services/T/B/XYZ") == "https://hooks.slack.com/…"
    )
    assert report.shown_url("http://user:pw@127.0.0.1:8080") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("report_settings", "key"),
    [
        ({"smtp": {"sender": "Analytics <a@example.com>"}}, "report.smtp.sender"),
        ({"smtp": {"port": 70000}}, "report.smtp.port"),
        ({"attempts": 0}, "report.attempts"),
        ({"attempts": 11}, "report.attempts"),
        ({"retry_backoff_seconds": 600}, "report.retry_backoff_seconds"),
        ({"app_url": "analytics.example.com"}, "report.app_url"),
        ({"webhook_timeout_seconds": 0}, "report.webhook_timeout_seconds"),
        ({"smtp": {"hostname": "mail"}}, "report.smtp.hostname"),
    ],
)
def test_bad_report_settings_are_named(tmp_path, report_settings, key):
    path = tmp_path / "analytics.yml"
    path.write_text(yaml.safe_dump({"report": report_settings}), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(path)


# Bad input: exit 2, nothing written.


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--pages", "overview,costs"], "unknown page 'costs'"),
        (["--period", "last-week"], "--period 'last-week' is not one of"),
        (["--tz", "Mars/Olympus"], "time zone 'Mars/Olympus'"),
        (["--email", "ops@example"], None),  # a valid address: the run goes on
        (["--email", "not an address"], "--email 'not an address' is not an e-mail address"),
        (["--webhook", "ftp://example.com/hook"], "--webhook 'ftp://example.com/…'"),
        (["--webhook", "http://[::1/hook"], "is not an http(s) URL"),
        (["--tenant", "t_nobody"], "unknown tenant 't_nobody'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    duckdb_url, configure, mailbox, tmp_path, capsys, extra, named
):
    configure()
    out = tmp_path / "out" / "report.json"
    out.parent.mkdir()
    argv = ["report", "--db", duckdb_url, "--pages", "performance", "--period", PERIOD,
            "--format", "json", "--out", str(out)]  # fmt: skip
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    code = main(argv)
    err = capsys.readouterr().err
    if named is None:
        assert code == 0 and out.exists()
        return
    assert code == 2, err
    assert named in err
    assert list(out.parent.iterdir()) == []
    assert mailbox.envelopes == []


def test_email_needs_the_smtp_settings(duckdb_url, configure, tmp_path, capsys, monkeypatch):
    out = tmp_path / "report.json"
    configure(smtp={"host": None})
    assert run(duckdb_url, out, "--email", "ops@example.com", capsys=capsys)[0] == 2
    configure(smtp={"username_env": "REPORT_SMTP_USER", "password_env": "REPORT_SMTP_PASS"})
    monkeypatch.delenv("REPORT_SMTP_USER", raising=False)
    code, _, err = run(duckdb_url, out, "--email", "ops@example.com", capsys=capsys)
    assert code == 2 and "REPORT_SMTP_USER, which is not set" in err
    assert not out.exists()


@pytest.mark.parametrize("where", ["missing folder", "a file as folder", "a folder as file"])
def test_an_unusable_out_path_exits_2_before_anything_is_built(
    duckdb_url, configure, tmp_path, capsys, where
):
    configure()
    (tmp_path / "plain").write_text("x")
    (tmp_path / "taken.json").mkdir()
    out = {
        "missing folder": tmp_path / "nowhere" / "report.json",
        "a file as folder": tmp_path / "plain" / "report.json",
        "a folder as file": tmp_path / "taken.json",
    }[where]
    code, _, err = run(duckdb_url, out, capsys=capsys)
    assert code == 2 and "--out" in err
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_read_only_folder_exits_2(duckdb_url, configure, tmp_path, capsys):
    configure()
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    code, _, err = run(duckdb_url, folder / "report.json", capsys=capsys)
    assert code == 2 and "is not writable" in err
    assert list(folder.iterdir()) == []


def test_a_write_failing_part_way_leaves_no_file(
    duckdb_url, configure, audit_url, tmp_path, capsys, monkeypatch
):
    configure()
    out = tmp_path / "report.json"

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    code, _, err = run(duckdb_url, out, capsys=capsys)
    monkeypatch.undo()
    assert code == 2 and "No space left on device" in err
    assert list(tmp_path.glob("report.json*")) == [] and leftovers(tmp_path) == []
    assert exports_logged(audit_url).empty  # nothing left, so nothing recorded


def test_role_limits_pages_and_formats(duckdb_url, configure, audit_url, tmp_path, capsys):
    """``--pages all`` is the pages the OS user's role may see; a page or a format
    outside it is refused (exit 2) and the refusal recorded."""
    viewer = {"pages": ["overview", "detection", "performance"], "exports": ["csv"],
              "tenants": "*"}  # fmt: skip
    configure(auth={"mode": "proxy", "roles": {"viewer": viewer},
                    "users": {getpass.getuser(): "viewer"}})  # fmt: skip
    out = tmp_path / "report.csv"
    code, _, err = run(duckdb_url, out, capsys=capsys, pages="business", fmt="csv")
    assert code == 2 and "the business page is not open to" in err
    code, _, err = run(duckdb_url, out, capsys=capsys, pages="all", fmt="json")
    assert code == 2 and "json exports are not open to" in err
    assert not out.exists()
    denied = AuditLog(audit_url).read()
    assert list(denied.action) == ["denied", "denied"]

    code, stdout, err = run(duckdb_url, out, capsys=capsys, pages="all", fmt="csv")
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    marks = [line for line in text.splitlines() if line.startswith("# page: ")]
    assert marks == ["# page: overview", "# page: detection", "# page: performance"]
    [logged] = exports_logged(audit_url).itertuples()
    assert (logged.page, logged.format) == ("dashboard", "csv")
    pages = expected_pages(duckdb_url, ["overview", "detection", "performance"])
    assert logged.rows == sum(row_count(p) for p in pages)


# Delivery.


def test_report_is_emailed_and_posted(
    duckdb_url, configure, smtp_server, mailbox, hooks, audit_url, tmp_path, capsys
):
    configure()
    hook = hooks()
    out = tmp_path / "weekly.json"
    week = "2026-03-28..2026-04-03"  # the days before it are in the data: changes to show
    code, stdout, err = run(
        duckdb_url, out, "--tenant", "t_a", "--tenant", "t_b",
        "--email", "ops@example.com", "--email", "boss@example.com", "--webhook", hook.url,
        capsys=capsys, pages="overview,performance", period=week,
    )  # fmt: skip
    assert code == 0, err
    written = out.read_bytes()
    assert [p["page"] for p in json.loads(written)["pages"]] == ["overview", "performance"]
    lines = stdout.splitlines()
    assert lines[0].startswith(f"wrote {out}: {len(written):,} bytes")
    port = smtp_server[0].port
    assert lines[1] == (
        f"emailed weekly.json to ops@example.com, boss@example.com via 127.0.0.1:{port} (1 attempt)"
    )
    assert lines[2] == f"posted to webhook {report.shown_url(hook.url)}: HTTP 200 (1 attempt)"
    assert "secret" not in stdout

    pages = expected_pages(duckdb_url, ["overview", "performance"], ("t_a", "t_b"), week)
    headlines = [
        f"{KPIS[k].label}: {format_kpi(k, v, p.currency)}" for p in pages for k, v in p.kpis.items()
    ]
    changes = [
        f"{KPIS[k].label}: {format_kpi(k, v, p.currency)} "
        f"({format_delta(k, v, p.previous[k], p.currency)} vs previous period)"
        for p in pages
        for k, v in p.kpis.items()
    ]
    assert all("None" not in c for c in changes)
    top = report.top_insights(pages)
    assert top, "the fixture's overview has insights to report"

    # The e-mail: to both, the file attached byte for byte, the KPIs in the body.
    [envelope] = mailbox.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == ["ops@example.com", "boss@example.com"]
    [message] = mailbox.messages()
    assert "Overview, Performance report" in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == MEDIA_TYPES["json"]
    assert attachment.get_filename() == "weekly.json"
    assert attachment.get_payload(decode=True) == written
    body = message.get_body(("plain",)).get_content()
    for line in changes:
        assert line in body
    for insight in top:
        assert insight.message in body

    # The webhook: Slack's text and blocks, with the KPIs, insights and links.
    [(path, payload)] = hook.received
    assert path == "/services/T0/B0/secret"
    assert set(payload) == {"text", "blocks"}
    blocks_text = json.dumps(payload["blocks"], ensure_ascii=False)
    for line in headlines:
        assert line in payload["text"]
        label, value = line.split(": ", 1)
        assert f"{label}: *{value}*" in blocks_text
    for insight in top:
        assert report._mrkdwn(insight.message) in blocks_text
    [actions] = [b for b in payload["blocks"] if b["type"] == "actions"]
    urls = [button["url"] for button in actions["elements"]]
    assert [urlsplit(u).path for u in urls] == ["/", "/performance"]
    for url in urls:
        assert parse_qs(urlsplit(url).query) == {
            "range": ["custom"],
            "start": ["2026-03-28"],
            "end": ["2026-04-02"],  # inclusive, as the sidebar reads it
            "tz": [PARIS],
            "granularity": ["day"],
            "tenant": ["t_a", "t_b"],
        }
        assert url in body

    # One export recorded, for the one file of two pages.
    [logged] = exports_logged(audit_url).itertuples()
    assert (logged.page, logged.format) == ("dashboard", "json")
    assert logged.rows == sum(row_count(p) for p in pages)
    assert leftovers(tmp_path) == []


def test_no_link_without_whole_days_or_app_url(duckdb_url, configure, hooks, tmp_path, capsys):
    configure()
    hook = hooks()
    argv = ["report", "--db", duckdb_url, "--pages", "performance", "--period",
            "2026-03-20T06:00..2026-03-27T06:00", "--tz", PARIS, "--format", "csv",
            "--out", str(tmp_path / "r.csv"), "--webhook", hook.url]  # fmt: skip
    assert main(argv) == 0
    configure(app_url=None)
    assert run(duckdb_url, tmp_path / "r.json", "--webhook", hook.url, capsys=capsys)[0] == 0
    for _, payload in hook.received:
        assert all(b["type"] != "actions" for b in payload["blocks"])
        assert "Open in the app" not in payload["text"]


def test_a_failing_webhook_is_retried_then_exits_3(
    duckdb_url, configure, hooks, audit_url, tmp_path, capsys
):
    configure(attempts=3)
    hook = hooks(status=500)
    out = tmp_path / "report.json"
    code, stdout, err = run(duckdb_url, out, "--webhook", hook.url, capsys=capsys)
    assert code == 3
    assert len(hook.received) == 3
    assert f"webhook {report.shown_url(hook.url)} failed after 3 attempts: HTTP 500" in err
    assert f"the file {out} is kept" in err and "secret" not in err
    assert out.exists() and stdout.startswith(f"wrote {out}")
    assert len(exports_logged(audit_url)) == 1


def test_a_webhook_refusing_the_message_is_not_retried(
    duckdb_url, configure, hooks, tmp_path, capsys
):
    configure(attempts=3)
    hook = hooks(status=404)
    code, _, err = run(duckdb_url, tmp_path / "report.json", "--webhook", hook.url, capsys=capsys)
    assert code == 3 and len(hook.received) == 1
    assert "failed: HTTP 404" in err


def test_a_slow_webhook_times_out_each_attempt(duckdb_url, configure, hooks, tmp_path, capsys):
    configure(attempts=2, webhook_timeout_seconds=0.3)
    hook = hooks(delay=30)  # answers only when the test ends
    out = tmp_path / "report.json"
    code, _, err = run(duckdb_url, out, "--webhook", hook.url, capsys=capsys)
    assert code == 3
    assert len(hook.received) == 2  # each attempt timed out; no third
    assert "failed after 2 attempts: no answer within 0.3s" in err
    assert out.exists()


def test_an_unreachable_smtp_server_exits_3_with_the_file_written(
    duckdb_url, configure, mailbox, tmp_path, capsys
):
    closed = port_for.select_random()  # nothing listens there
    configure(smtp={"port": closed}, attempts=2)
    out = tmp_path / "report.json"
    code, _, err = run(duckdb_url, out, "--email", "ops@example.com", capsys=capsys)
    assert code == 3
    assert f"e-mail to ops@example.com via 127.0.0.1:{closed} failed after 2 attempts" in err
    assert "cannot reach" in err
    assert out.exists() and mailbox.envelopes == []


@pytest.fixture
def silent_smtp():
    """A server that accepts connections and never says a word (a hung mail server):
    (its port, the connections it accepted)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_silent_smtp_server_times_out_each_attempt(
    duckdb_url, configure, silent_smtp, tmp_path, capsys
):
    port, accepted = silent_smtp
    configure(smtp={"port": port, "timeout_seconds": 0.3}, attempts=2)
    out = tmp_path / "report.json"
    code, _, err = run(duckdb_url, out, "--email", "ops@example.com", capsys=capsys)
    assert code == 3
    assert "failed after 2 attempts: no answer within 0.3s" in err
    assert len(accepted) == 2 and out.exists()


def test_starttls_not_offered_sends_nothing_and_the_webhook_still_goes(
    duckdb_url, configure, mailbox, hooks, tmp_path, capsys
):
    configure(smtp={"starttls": True})
    hook = hooks()
    out = tmp_path / "report.json"
    code, stdout, err = run(
        duckdb_url, out, "--email", "ops@example.com", "--webhook", hook.url, capsys=capsys
    )
    assert code == 3
    assert "does not offer STARTTLS" in err and "report.smtp.starttls" in err
    assert "attempts" not in err  # not worth retrying
    assert mailbox.envelopes == []
    assert len(hook.received) == 1 and "posted to webhook" in stdout
    assert out.exists()


@pytest.mark.parametrize("fmt", ["xlsx", "pdf"])
def test_a_dashboard_file_is_attached_with_its_media_type(
    duckdb_url, configure, mailbox, tmp_path, capsys, fmt
):
    pytest.importorskip(f"analytics_core.export_{fmt}")
    configure()
    out = tmp_path / f"report.{fmt}"
    code, _, err = run(
        duckdb_url, out, "--email", "ops@example.com", capsys=capsys,
        pages="overview,performance", fmt=fmt,
    )  # fmt: skip
    assert code == 0, err
    [message] = mailbox.messages()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == MEDIA_TYPES[fmt]
    assert attachment.get_payload(decode=True) == out.read_bytes()


def test_a_password_without_starttls_is_refused(
    duckdb_url, configure, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("SMTP_USER", "reports")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    configure(
        smtp={"starttls": False, "username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD"}
    )
    out = tmp_path / "report.json"
    code, _, err = run(duckdb_url, out, "--email", "ops@example.com", capsys=capsys)
    assert code == 2 and "would cross the network in clear" in err and "s3cret" not in err
    assert not out.exists()


def test_the_written_file_is_readable_as_any_file_the_user_writes(
    duckdb_url, configure, tmp_path, capsys
):
    import os
    import stat

    configure()
    out = tmp_path / "report.json"
    umask = os.umask(0o022)
    try:
        code, _, err = run(duckdb_url, out, capsys=capsys)
    finally:
        os.umask(umask)
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
