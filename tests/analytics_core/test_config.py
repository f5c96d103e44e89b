"""Config loading: variable expansion, defaults, and errors naming file and key."""

from __future__ import annotations

import pytest

from analytics_core.config import ConfigError, database_url, load_config, normalize_db_url


def write(tmp_path, text: str):
    path = tmp_path / "analytics.yml"
    path.write_text(text)
    return path


def test_shipped_config_loads():
    config = load_config("analytics_core/defaults/analytics.yml")
    assert config.refresh_interval_seconds == 300
    assert {r.kpi for r in config.alerts} >= {"error_rate", "p95_ms"}
    assert config.costs.currency == "USD"


def test_env_expansion_with_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRESH", "45")
    monkeypatch.delenv("MISSING_TITLE", raising=False)
    path = write(
        tmp_path,
        "# comments may say ${ANYTHING}\n"
        "dashboard:\n  title: ${MISSING_TITLE:-Fallback}\n"
        "  refresh_interval_seconds: ${REFRESH}\n",
    )
    config = load_config(path)
    assert config.title == "Fallback"
    assert config.refresh_interval_seconds == 45


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (
            "dashboard:\n  refresh_interval_seconds: soon\n",
            "dashboard.refresh_interval_seconds",
            "positive whole number",
        ),
        ("dashboard:\n  default_timezone: Mars/Base\n", "dashboard.default_timezone", "IANA"),
        ("alerts:\n  not_a_kpi: {above: 1}\n", "alerts.not_a_kpi", "KPI key"),
        ("alerts:\n  error_rate: {above: 1, below: 0}\n", "alerts.error_rate", "exactly one"),
        (
            "alerts:\n  error_rate: {above: 0.1, severity: doom}\n",
            "alerts.error_rate.severity",
            "one of",
        ),
        ("costs:\n  gb_processed: cheap\n", "costs.gb_processed", "a number"),
        ("alerts:\n  p95_ms: {above: 9, for: often}\n", "alerts.p95_ms.for", "a duration"),
        ("alerts:\n  p95_ms: {above: 9, clear: 10}\n", "alerts.p95_ms.clear", "hysteresis"),
        ("insights:\n  sensitivity: 0\n", "insights.sensitivity", "> 0"),
        ("insights:\n  sensitivity: .nan\n", "insights.sensitivity", "finite"),
        ("dashboard:\n  refresh_interval_seconds: .inf\n", "refresh_interval_seconds", "whole"),
        ("alerts:\n  p95_ms: {above: 9, for: 5}\n", "alerts.p95_ms.for", "a duration"),
        ("insights:\n  capacity: {cpu: 3}\n", "insights.capacity.cpu", "one of"),
        ("dashbord:\n  title: x\n", "dashbord", "one of the sections"),
        ("dashboard:\n  title: ${NOT_SET_ANYWHERE}\n", "${NOT_SET_ANYWHERE}", "to be set"),
        ("dashboard: [1, 2\n", "line", "valid YAML"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path, monkeypatch, text, key, expected):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and expected in message


def test_alert_duration_and_default_sensitivity(tmp_path):
    config = load_config(write(tmp_path, "alerts:\n  p95_ms: {above: 9, for: 90min}\n"))
    assert config.alerts[0].for_duration.total_seconds() == 5400
    assert config.insights.sensitivity == 4.0  # the evaluated default (bench/INSIGHTS.md)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yml")


def test_database_url_precedence(tmp_path, monkeypatch):
    config = load_config(
        write(tmp_path, "data_sources:\n  database:\n    url: duckdb:///cfg.duckdb\n")
    )
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database_url(config) == "duckdb:///cfg.duckdb"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/db")
    assert database_url(config) == "postgresql+psycopg://u@h:5432/db"
    assert database_url(config, "duckdb:///cli.duckdb") == "duckdb:///cli.duckdb"
    monkeypatch.delenv("DATABASE_URL")
    assert database_url(load_config(write(tmp_path, ""))).endswith("data/demo.duckdb")


def test_normalize_db_url():
    assert normalize_db_url("postgres://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_db_url("postgresql+psycopg://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_db_url("duckdb:///x") == "duckdb:///x"
