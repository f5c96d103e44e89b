"""``analytics report``: one file of one or more pages for a named period, for cron, and
its delivery by e-mail (SMTP with STARTTLS, the file attached) and by webhook (a
Slack-compatible JSON message).

The periods: ``last-24h``, ``last-7d``, ``last-30d`` end now (floored to the minute);
``previous-week`` (the last complete Monday to Sunday) and ``previous-month`` (the last
complete calendar month) are whole days in the report's zone, so they are 167 or 169
hours long across a DST change; ``START..END`` takes ISO dates or datetimes, END
exclusive (a date means midnight in the zone).

Each delivery makes up to ``report.attempts`` attempts, waiting ``retry_backoff_seconds``
before the second and twice as long before each next one; only transient failures are
retried (no connection, a timeout, an SMTP 4xx reply, HTTP 408, 429 or 5xx). A
delivery that still fails raises :class:`DeliveryFailed`, whose message says what was
tried and why it failed. Only light modules are imported here: the command line's
start-up and the config's address check must not pay for the query stack.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlencode, urlsplit

from analytics_core.filters import Filters, InputError, clip, date_range, parse_instant, zone
from analytics_core.kpis import KPIS, format_delta, format_kpi, is_missing
from analytics_core.pages import MEDIA_TYPES, PAGES

if TYPE_CHECKING:
    from email.message import EmailMessage

    from analytics_core.config import Report, Smtp
    from analytics_core.insights import Insight
    from analytics_core.page_data import PageData

T = TypeVar("T")

_LAST = {"last-24h": timedelta(hours=24), "last-7d": timedelta(days=7),
         "last-30d": timedelta(days=30)}  # fmt: skip
PERIODS = (*_LAST, "previous-week", "previous-month")
PERIOD_HELP = f"{', '.join(PERIODS)} or START..END (ISO dates or datetimes, END exclusive)"
TOP_INSIGHTS = 5
PAGE_TITLES = {page: page.capitalize() for page in PAGES}


@dataclass(frozen=True)
class Period:
    """A half-open UTC range; ``days`` (first, last local date, inclusive) when it is
    whole days in its zone, the only ranges the app's URL can carry."""

    start: datetime
    end: datetime
    days: tuple[date, date] | None


def whole_days(start: datetime, end: datetime, tz: str) -> tuple[date, date] | None:
    """(first, last) local dates when ``[start, end)`` is exactly those whole days in
    ``tz``, else None."""
    z = zone(tz)
    local_start, local_end = start.astimezone(z), end.astimezone(z)
    first, last = local_start.date(), local_end.date() - timedelta(days=1)
    if last < first:
        return None
    if date_range(first, last, tz) != (start.astimezone(UTC), end.astimezone(UTC)):
        return None
    return first, last


def period_range(spec: str, tz: str, now: datetime) -> Period:
    """The range ``--period`` names, at ``now``, in zone ``tz`` (see the module docstring)."""
    text = spec.strip()
    z = zone(tz)
    if text in _LAST:
        end = now.astimezone(UTC).replace(second=0, microsecond=0)
        start = end - _LAST[text]
        return Period(start, end, whole_days(start, end, tz))
    today = now.astimezone(z).date()
    if text == "previous-week":
        monday = today - timedelta(days=today.weekday()) - timedelta(days=7)
        first, last = monday, monday + timedelta(days=6)
    elif text == "previous-month":
        last = today.replace(day=1) - timedelta(days=1)
        first = last.replace(day=1)
    elif ".." in text:
        start_text, _, end_text = text.partition("..")
        start = parse_instant(start_text, tz, "--period START")
        end = parse_instant(end_text, tz, "--period END")
        if end <= start:
            raise InputError(f"--period {clip(spec)!r}: END is not after START")
        return Period(start, end, whole_days(start, end, tz))
    else:
        raise InputError(f"--period {clip(spec)!r} is not one of {PERIOD_HELP}")
    start, end = date_range(first, last, tz)
    return Period(start, end, (first, last))


def parse_pages(text: str, visible: Sequence[str], insights_enabled: bool = True) -> list[str]:
    """``all`` (every data page in ``visible``; the Insights page only while the feature
    is on, as in the app) or a comma-separated list of page names, in the order given."""
    if text.strip() == "all":
        pages = [p for p in PAGES if p in visible and (insights_enabled or p != "insights")]
        if not pages:
            raise InputError("--pages all: no page is open to this user (no role mapped)")
        return pages
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PAGES]
    if unknown or not names:
        shown = ", ".join(repr(clip(p)) for p in unknown[:5]) or repr(clip(text))
        raise InputError(f"--pages: unknown page {shown}; use all or some of {', '.join(PAGES)}")
    return list(dict.fromkeys(names))


# A plain address: no display name, no comments, no quoting; what a cron line needs.
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def valid_address(text: str) -> bool:
    """Whether ``text`` is one plain e-mail address (``user@example.com``)."""
    from email.utils import parseaddr

    if len(text) > 254 or _ADDRESS.fullmatch(text) is None:
        return False
    name, address = parseaddr(text)
    return not name and address == text


def check_address(text: str, flag: str = "--email") -> str:
    if not valid_address(text):
        raise InputError(f"{flag} {clip(text)!r} is not an e-mail address (e.g. ops@example.com)")
    return text


def check_webhook_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise InputError(f"--webhook {clip(url, 20)!r} is not an http(s) URL") from None
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise InputError(f"--webhook {clip(shown_url(url))!r} is not an http(s) URL")
    return url


def shown_url(url: str) -> str:
    """A webhook URL as messages show it: scheme and host only, since a webhook's path
    is often its secret (Slack's are)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{rest}" if parts.scheme and host else clip(url, 20)


def check_out(out: str) -> Path:
    """``--out`` as a path whose folder exists and is writable (the file itself is written
    beside it first, then renamed)."""
    import os

    if out in ("", "-"):
        raise InputError("--out must be a file (the report is attached and kept)")
    target = Path(out)
    if target.is_dir():
        raise InputError(f"--out {clip(out, 300)!r} is a folder, not a file")
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"--out {clip(out, 300)!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"--out {clip(out, 300)!r}: the folder {str(folder)!r} is not writable")
    return target


@dataclass(frozen=True)
class SmtpLogin:
    host: str
    port: int
    starttls: bool
    sender: str
    username: str | None
    password: str | None = field(repr=False)
    timeout: float

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


MAX_WAIT_SECONDS = 60.0  # the longest wait between two attempts of a delivery


def smtp_login(smtp: Smtp, environ: dict[str, str] | None = None) -> SmtpLogin:
    """The SMTP settings ``--email`` needs, or an InputError naming the missing one."""
    import os

    env = os.environ if environ is None else environ
    if not smtp.host:
        raise InputError("--email needs report.smtp.host in the config (the mail server)")
    if not smtp.sender:
        raise InputError("--email needs report.smtp.sender in the config (the From address)")
    secrets: dict[str, str | None] = {}
    for key in ("username_env", "password_env"):
        name = getattr(smtp, key)
        if name is not None and not env.get(name):
            raise InputError(f"report.smtp.{key} names {name}, which is not set")
        secrets[key] = env.get(name) if name else None
    if (secrets["username_env"] is None) != (secrets["password_env"] is None):
        raise InputError("report.smtp.username_env and password_env go together")
    if secrets["password_env"] is not None and not smtp.starttls:
        raise InputError(
            "report.smtp.starttls is false but a password is set: it would cross the "
            "network in clear; turn STARTTLS on"
        )
    return SmtpLogin(
        smtp.host, smtp.port, smtp.starttls, smtp.sender,
        secrets["username_env"], secrets["password_env"], smtp.timeout_seconds,
    )  # fmt: skip


# The file.


def report_bytes(pages: list[PageData], fmt: str, title: str | None = None) -> bytes:
    """One file of ``pages``: a page's own export when there is one; else the dashboard
    workbook or PDF, ``{"pages": [...]}`` in JSON, or the pages' CSVs one after another
    (each opens with its ``# page: NAME`` line)."""
    from analytics_core.exports import dashboard_bytes, export_bytes, to_csv, to_dict

    if len(pages) == 1:
        return export_bytes(pages[0], fmt, title)
    if fmt == "json":
        payload = {"pages": [to_dict(p) for p in pages]}
        return json.dumps(payload, indent=2, allow_nan=False).encode("utf-8")
    if fmt == "csv":
        parts = [to_csv(p) for p in pages]
        return "".join(p if p.endswith("\n") else p + "\n" for p in parts).encode("utf-8")
    return dashboard_bytes(pages, fmt, title)


# What a message says.


@dataclass(frozen=True)
class Headline:
    page: str
    key: str
    label: str
    value: str
    delta: str | None  # vs the previous period; None when there is none


def headlines(data: PageData) -> list[Headline]:
    """The page's KPI cards as text: label, value and change from the previous period."""
    out = []
    for key, value in data.kpis.items():
        shown = format_kpi(key, value, data.currency)
        change = None
        if not is_missing(value):
            change = format_delta(key, value, data.previous.get(key), data.currency)
        out.append(Headline(data.page, key, KPIS[key].label, shown, change))
    return out


def top_insights(pages: list[PageData], limit: int = TOP_INSIGHTS) -> list[Insight]:
    """The strongest stories across the pages (each once), quiet checks left out."""
    from analytics_core.insights.model import rank

    seen: dict[tuple[object, ...], Insight] = {}
    for data in pages:
        for insight in data.insights:
            if insight.status in ("firing", "resolved"):
                seen.setdefault((insight.kind, insight.kpi, insight.message), insight)
    return rank(list(seen.values()))[:limit]


def app_link(app_url: str | None, page: str, filters: Filters, days: tuple[date, date] | None):
    """The app's view of ``page`` with these filters (the sidebar's URL parameters), or
    None without ``app_url`` or when the range is not whole days (a custom range in the
    app is whole local days, start to end inclusive)."""
    if not app_url or days is None:
        return None
    params: list[tuple[str, str]] = [
        ("range", "custom"),
        ("start", days[0].isoformat()),
        ("end", days[1].isoformat()),
        ("tz", filters.tz),
        ("granularity", filters.granularity),
    ]
    for key, values in (
        ("tenant", filters.tenants),
        ("algorithm", filters.algorithms),
        ("endpoint", filters.endpoints),
    ):
        params += [(key, v) for v in values]
    path = "" if page == PAGES[0] else page  # the default page lives at the app's root
    return f"{app_url.rstrip('/')}/{path}?{urlencode(params)}"


@dataclass(frozen=True)
class Summary:
    """What the e-mail and the webhook say, built once from the pages."""

    title: str
    subject: str
    period: str
    headlines: dict[str, list[Headline]]
    insights: list[Insight]
    links: dict[str, str]  # page -> the app's view of it
    file_name: str
    size: int


def summarize(
    pages: list[PageData],
    filters: Filters,
    period: Period,
    title: str,
    app_url: str | None,
    out: Path,
    size: int,
) -> Summary:
    names = ", ".join(PAGE_TITLES[p.page] for p in pages)
    described = filters.describe()
    links = {p.page: app_link(app_url, p.page, filters, period.days) for p in pages}
    return Summary(
        title=title,
        subject=f"{title}: {names} report, {described.split(',')[0]}",
        period=described,
        headlines={p.page: headlines(p) for p in pages},
        insights=top_insights(pages),
        links={k: v for k, v in links.items() if v},
        file_name=out.name,
        size=size,
    )


def _kpi_line(h: Headline) -> str:
    return f"{h.label}: {h.value}" + (f" ({h.delta} vs previous period)" if h.delta else "")


def _insight_line(insight: Insight) -> str:
    resolved = " (resolved)" if insight.status == "resolved" else ""
    return f"[{insight.severity}] {insight.message}{resolved}"


def plain_text(summary: Summary) -> str:
    """The report as plain text: the e-mail body, and the webhook's fallback text."""
    lines = [f"{summary.title}: report", f"Period: {summary.period}", ""]
    for page, rows in summary.headlines.items():
        lines.append(PAGE_TITLES[page])
        lines += [f"  {_kpi_line(h)}" for h in rows]
        if page in summary.links:
            lines.append(f"  Open in the app: {summary.links[page]}")
        lines.append("")
    lines.append("Top insights")
    lines += [f"  {_insight_line(i)}" for i in summary.insights] or ["  none: nothing stood out"]
    return "\n".join(lines) + "\n"


def email_message(summary: Summary, content: bytes, fmt: str, sender: str, to: list[str]):
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    message = EmailMessage()
    message["Subject"] = summary.subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    body = plain_text(summary)
    body += f"\nAttached: {summary.file_name} ({summary.size:,} bytes).\n"
    message.set_content(body)
    maintype, subtype = MEDIA_TYPES[fmt].split("/", 1)
    message.add_attachment(content, maintype=maintype, subtype=subtype,
                           filename=summary.file_name)  # fmt: skip
    return message


_SEVERITY_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
                   "info": ":large_blue_circle:"}  # fmt: skip
_SECTION_LIMIT = 3000  # characters of a Slack section's text


def _mrkdwn(text: str) -> str:
    """Text safe inside Slack mrkdwn: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, object]:
    if len(text) > _SECTION_LIMIT:
        text = text[: _SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def webhook_payload(summary: Summary) -> dict[str, object]:
    """A Slack-compatible message (``text`` for notifications and plain receivers,
    ``blocks`` for the layout): the KPIs per page, the top insights and the links."""
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(summary.title, 140)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(summary.period)}]},
    ]
    for page, rows in summary.headlines.items():
        lines = [f"*{PAGE_TITLES[page]}*"]
        for h in rows:
            delta = f" ({_mrkdwn(h.delta)})" if h.delta else ""
            lines.append(f"• {_mrkdwn(h.label)}: *{_mrkdwn(h.value)}*{delta}")
        blocks.append(_section("\n".join(lines)))
    insight_lines = [
        f"• {_SEVERITY_EMOJI[i.severity]} {_mrkdwn(i.message)}"
        + (" _(resolved)_" if i.status == "resolved" else "")
        for i in summary.insights
    ] or ["• none: nothing stood out"]
    blocks.append(_section("*Top insights*\n" + "\n".join(insight_lines)))
    if summary.links:
        buttons = [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": f"Open {PAGE_TITLES[page]}"},
                "url": url,
            }
            for page, url in summary.links.items()
        ]
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": plain_text(summary), "blocks": blocks}


# Delivery.


class DeliveryFailed(Exception):
    """A delivery that did not go through; the message names it and says why."""


class _Transient(Exception):
    """A failure worth another attempt (wraps the reason)."""


def with_retries(
    action: Callable[[], T],
    attempts: int,
    backoff: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """``action()`` and the attempts it took; it raises :class:`_Transient` to be tried
    again (up to ``attempts`` in all) or :class:`DeliveryFailed` to stop at once."""
    for attempt in range(1, attempts + 1):
        try:
            return action(), attempt
        except _Transient as exc:
            if attempt == attempts:
                tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                raise DeliveryFailed(f"{what} failed after {tries}: {exc}") from None
            sleep(min(backoff * 2 ** (attempt - 1), MAX_WAIT_SECONDS))
    raise AssertionError("unreachable")  # attempts >= 1


def send_email(
    login: SmtpLogin,
    message: EmailMessage,
    settings: Report,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send ``message`` through the configured server; the attempts it took."""
    import smtplib
    import ssl

    what = f"e-mail to {message['To']} via {login.where}"

    def attempt() -> None:
        try:
            with smtplib.SMTP(login.host, login.port, timeout=login.timeout) as smtp:
                if login.starttls:
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise DeliveryFailed(
                            f"{what} failed: the server does not offer STARTTLS and "
                            "report.smtp.starttls is true, so nothing was sent"
                        )
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if login.username is not None:
                    smtp.login(login.username, login.password or "")
                refused = smtp.send_message(message)
                if refused:  # accepted for some recipients, refused for these
                    listed = "; ".join(f"{a}: {_reply(r)}" for a, r in refused.items())
                    raise DeliveryFailed(f"{what} failed for some recipients ({listed})")
        except DeliveryFailed:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(f"{what} failed: login refused ({_reply(exc)})") from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = "; ".join(f"{a}: {_reply(r)}" for a, r in exc.recipients.items())
            if all(code < 500 for code, _ in exc.recipients.values()):
                raise _Transient(f"recipients refused for now ({refused})") from None
            raise DeliveryFailed(f"{what} failed: recipients refused ({refused})") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise _Transient(f"the server answered {_reply(exc)}") from None
            raise DeliveryFailed(f"{what} failed: the server answered {_reply(exc)}") from None
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message
            raise DeliveryFailed(f"{what} failed: the server's certificate: {reason}") from None
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib's word for a silent server
                raise _Transient(f"no answer within {login.timeout:g}s") from None
            raise _Transient(f"the server closed the connection ({exc or 'no reason'})") from None
        except smtplib.SMTPException as exc:  # e.g. no AUTH offered: asking again won't help
            raise DeliveryFailed(f"{what} failed: {clip(exc, 200)}") from None
        except TimeoutError:
            raise _Transient(f"no answer within {login.timeout:g}s") from None
        except OSError as exc:  # refused, unreachable, unknown host, TLS failures
            raise _Transient(f"cannot reach {login.where} ({exc.strerror or exc})") from None

    _, tries = with_retries(attempt, settings.attempts, settings.retry_backoff_seconds, what, sleep)
    return tries


def _reply(exc: object) -> str:
    if isinstance(exc, tuple):
        code, text = exc
    else:
        code, text = exc.smtp_code, exc.smtp_error  # type: ignore[attr-defined]
    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {clip(shown, 200)}"


def post_webhook(
    url: str,
    payload: dict[str, object],
    settings: Report,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, int]:
    """POST ``payload`` as JSON to ``url``; (HTTP status, attempts taken)."""
    import requests

    what = f"webhook {shown_url(url)}"
    timeout = settings.webhook_timeout_seconds

    def attempt() -> int:
        try:
            response = requests.post(url, json=payload, timeout=timeout, allow_redirects=False)
        except requests.Timeout:
            raise _Transient(f"no answer within {timeout:g}s") from None
        except requests.ConnectionError as exc:
            reason = exc.args[0] if exc.args else exc
            raise _Transient(f"cannot connect ({clip(_root(reason), 200)})") from None
        except requests.RequestException as exc:
            raise DeliveryFailed(f"{what} failed: {clip(exc, 200)}") from None
        status = response.status_code
        if 200 <= status < 300:
            return status
        answer = f"HTTP {status} {clip(response.text.strip(), 200)}".rstrip()
        if status in (408, 429) or status >= 500:
            raise _Transient(answer)
        raise DeliveryFailed(f"{what} failed: {answer}")

    return with_retries(attempt, settings.attempts, settings.retry_backoff_seconds, what, sleep)


def _root(reason: object) -> str:
    """The innermost cause of a requests connection error (urllib3 nests them)."""
    inner = getattr(reason, "reason", None)
    return _root(inner) if inner is not None and inner is not reason else str(reason)


def deliver(
    summary: Summary,
    content: bytes,
    fmt: str,
    emails: list[str],
    webhooks: list[str],
    settings: Report,
    login: SmtpLogin | None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[str], list[str]]:
    """Every delivery asked for, each tried whatever became of the others: (a line per
    delivery done, a message per delivery failed)."""
    done: list[str] = []
    failed: list[str] = []

    def tried(n: int) -> str:
        return f"{n} attempt{'s' if n > 1 else ''}"

    if emails and login is not None:
        message = email_message(summary, content, fmt, login.sender, emails)
        try:
            n = send_email(login, message, settings, sleep)
            done.append(
                f"emailed {summary.file_name} to {', '.join(emails)} via {login.where} ({tried(n)})"
            )
        except DeliveryFailed as exc:
            failed.append(str(exc))
    if webhooks:
        payload = webhook_payload(summary)
        for url in webhooks:
            try:
                status, n = post_webhook(url, payload, settings, sleep)
                done.append(f"posted to webhook {shown_url(url)}: HTTP {status} ({tried(n)})")
            except DeliveryFailed as exc:
                failed.append(str(exc))
    return done, failed
