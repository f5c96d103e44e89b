"""The export gate (analytics_core.guard): role, limit and audit log, in that order,
with nothing spent when the export cannot be recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics_core.access import AccessDenied, Identity, resolve
from analytics_core.audit import AuditLog, AuditUnavailable
from analytics_core.config import Auth
from analytics_core.export_limits import ExportLimiter
from analytics_core.filters import make_filters
from analytics_core.guard import ExportLimited, admit, release

AUTH = Auth.model_validate(
    {
        "mode": "proxy",
        "roles": {"csv-only": {"pages": ["overview"], "exports": ["csv"], "tenants": ["t_a"]}},
        "users": {"ann": "analyst", "ann2": "analyst", "tina": "csv-only"},
    }
)
FILTERS = make_filters(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))


def caller(user: str):
    return resolve(Identity(user, via="proxy"), AUTH)


@pytest.fixture
def log(tmp_path):
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    yield audit
    audit.close()


def limiter(count: int = 2) -> ExportLimiter:
    return ExportLimiter(count, timedelta(hours=1), None)  # in-process only, as without Redis


def test_without_redis_the_logs_count_limits_one_off_processes(log):
    ann = caller("ann")
    # Each "process" (a one-off CLI run) has a fresh, full in-process budget.
    release(ann, "overview", FILTERS, "csv", 10, limiter(), log)
    release(ann, "overview", FILTERS, "json", 12, limiter(), log)
    with pytest.raises(ExportLimited, match=r"Export limit reached \(2 per 1 hour\)"):
        release(ann, "overview", FILTERS, "csv", 10, limiter(), log)
    events = log.read(users=["ann"])
    assert list(events["action"]) == ["denied", "export", "export"]  # newest first
    assert list(events["rows"].iloc[1:]) == [12, 10]
    first = events["at"].iloc[-1].to_pydatetime()
    assert f"{(first + timedelta(hours=1)).astimezone(UTC):%H:%M}" in events["detail"].iloc[0]
    # Another user's budget is theirs.
    release(caller("ann2"), "overview", FILTERS, "csv", 1, limiter(), log)
    assert list(log.read(users=["ann2"])["action"]) == ["export"]


def test_a_format_the_role_lacks_is_refused_and_recorded(log):
    tina = caller("tina")
    with pytest.raises(AccessDenied, match="json exports are not open to tina"):
        release(tina, "overview", FILTERS, "json", 5, limiter(), log)
    release(tina, "overview", FILTERS, "csv", 5, limiter(), log)
    assert list(log.read(users=["tina"])["action"]) == ["export", "denied"]


def test_nothing_is_spent_while_the_log_cannot_record(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    down = AuditLog(f"sqlite:///{blocker / 'audit.sqlite'}")
    budget = limiter(1)
    with pytest.raises(AuditUnavailable):
        release(caller("ann"), "overview", FILTERS, "csv", 3, budget, down)
    assert budget.peek("ann").allowed  # the one export is still there


def test_admit_refuses_pages_and_tenants_outside_the_role_and_records_it(log):
    tina = caller("tina")
    admit(tina, "overview", FILTERS, log)
    with pytest.raises(AccessDenied):
        admit(tina, "business", FILTERS, log)
    t_b = make_filters(FILTERS.start, FILTERS.end, tenants=["t_b"])
    with pytest.raises(AccessDenied, match="'t_b'"):
        admit(tina, "overview", t_b, log)
    denied = log.read(users=["tina"], actions=["denied"])
    assert len(denied) == 2 and denied["filters"].str.contains('"t_b"').sum() == 1


def test_a_down_store_is_not_asked_again_at_once(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    down = AuditLog(f"sqlite:///{blocker / 'audit.sqlite'}")
    tries = []
    real = down._ready_for_writes
    monkeypatch.setattr(down, "_ready_for_writes", lambda: tries.append(1) or real())
    ann = caller("ann")
    for _ in range(5):
        with pytest.raises(AuditUnavailable):
            down.record(ann.event("view", page="overview"))
    assert len(tries) == 1  # the breaker answered the other four
    down.retry_after_seconds = 0.0
    with pytest.raises(AuditUnavailable):
        down.record(ann.event("view", page="overview"))
    assert len(tries) == 2
