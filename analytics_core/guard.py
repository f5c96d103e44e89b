"""Where the app and the command line enforce a caller's rights: a page or tenant outside
them is refused and the refusal recorded (:func:`admit`); an export leaves only when the
role allows its format, within the caller's export limit, and once the audit log has
recorded it (:func:`release`)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime

from analytics_core.access import Access, AccessDenied
from analytics_core.audit import AuditEvent, AuditLog, AuditUnavailable
from analytics_core.export_limits import ExportAllowance, ExportLimiter
from analytics_core.filters import Filters, InputError


class ExportLimited(InputError):
    """Over the export limit; the message says when the next export is possible."""


def admit(who: Access, page: str, filters: Filters | None, log: AuditLog) -> None:
    """Raise :class:`AccessDenied` when ``page`` or a tenant in ``filters`` is outside the
    caller's rights, after recording the denial (as far as the log can)."""
    try:
        who.check_page(page)
        if filters is not None:
            who.check_filters(filters)
    except AccessDenied as exc:
        shown = filters.as_dict() if filters is not None else None
        _try_record(log, who.event("denied", page=page, filters=shown, detail=str(exc)))
        raise


def release(
    who: Access,
    page: str,
    filters: Filters,
    fmt: str,
    rows: int,
    limiter: ExportLimiter,
    log: AuditLog,
    selection: Mapping[str, object] | None = None,
) -> None:
    """Let an export of ``rows`` rows go, or raise why not: :class:`AccessDenied` (the
    role may not export ``fmt``), :class:`ExportLimited`, or :class:`AuditUnavailable`
    (exports are refused while the log cannot record them; no export is spent then).
    ``selection`` (e.g. the Audit page's user and action choices) is recorded with the
    filters. Refusals are recorded too, as far as the log can."""
    shown = {**filters.as_dict(), **(selection or {})}
    try:
        who.check_export(fmt)
    except AccessDenied as exc:
        _try_record(log, who.event("denied", page=page, filters=shown, format=fmt, detail=str(exc)))
        raise
    allowance = limiter.peek(who.identity.user)
    if allowance.allowed and allowance.backend == "memory":
        allowance = _counted_in_log(log, who.identity.user, allowance)
    if not allowance.allowed:
        message = allowance.message(filters.tz)
        _try_record(log, who.event("denied", page=page, filters=shown, format=fmt, detail=message))
        raise ExportLimited(message)
    log.record(who.event("export", page=page, filters=shown, format=fmt, rows=rows))
    limiter.take(who.identity.user)  # spent once recorded


def _counted_in_log(log: AuditLog, user: str, allowance: ExportAllowance) -> ExportAllowance:
    """Without Redis the limiter's budget is this process's own, and a one-off command
    starts with a full one: the log's count of the user's exports in the period holds
    across processes."""
    since = datetime.now(UTC) - allowance.period
    recent = log.read(since, users=[user], actions=["export"], limit=allowance.count)
    if len(recent) < allowance.count:
        return allowance
    oldest = recent["at"].min().to_pydatetime()
    return replace(allowance, allowed=False, remaining=0, retry_at=oldest + allowance.period,
                   backend="audit log")  # fmt: skip


def _try_record(log: AuditLog, event: AuditEvent) -> None:
    # The refusal stands either way; the caller learns of the log when it next must write.
    with suppress(AuditUnavailable):
        log.record(event)
