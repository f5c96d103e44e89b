"""Config loading: variable expansion, defaults, and errors naming file and key."""

from __future__ import annotations

import sysconfig
from datetime import timedelta
from pathlib import Path

import platformdirs
import pytest

import analytics_core
from analytics_core.config import (
    DEFAULT_CONFIG_PATH,
    AlertRule,
    ConfigError,
    config_path,
    database_url,
    demo_database_path,
    demo_database_url,
    load_config,
    normalize_db_url,
)


def write(tmp_path, text: str, name: str = "analytics.yml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shipped_config_loads():
    config = load_config(DEFAULT_CONFIG_PATH)
    assert config.dashboard.refresh_interval_seconds == 300
    assert {r.kpi for r in config.alerts} >= {"error_rate", "p95_ms"}
    assert config.costs.currency == "USD"
    assert config.path == str(DEFAULT_CONFIG_PATH)


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
    assert config.dashboard.title == "Fallback"
    assert config.dashboard.refresh_interval_seconds == 45


def test_empty_file_gives_every_default(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.dashboard.title == "Anomaly Detection Analytics"
    assert config.dashboard.theme == "light" and config.dashboard.default_range == "7d"
    assert config.dashboard.default_timezone is None  # the browser's
    assert config.data_sources.database.url is None
    assert config.data_sources.prometheus.enabled is False
    assert config.data_sources.redis.ttl_seconds == 300
    assert config.features.auto_refresh and config.features.exports and config.features.insights
    assert config.alerts == ()
    assert (config.costs.currency, config.costs.compute_hour) == ("USD", 0.5)
    assert (config.costs.gb_processed, config.costs.per_1000_api_calls) == (0.09, 0.4)
    insights = config.insights
    assert (insights.sensitivity, insights.trend_alpha, insights.change_alpha) == (4.0, 0.05, 0.05)
    assert (insights.forecast_horizon_days, insights.forecast_level) == (30, 0.9)
    assert insights.capacity == {}


def test_blank_values_mean_default_and_strings_are_coerced(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_ON", "yes")
    monkeypatch.setenv("EXPORTS", "No")
    monkeypatch.delenv("UNSET_URL", raising=False)
    config = load_config(
        write(
            tmp_path,
            "dashboard:\n  title: 2026\n  theme:\n  refresh_interval_seconds: 60\n"
            "data_sources:\n  database: {url: '${UNSET_URL:-}'}\n"
            "  redis: {enabled: '${REDIS_ON}'}\n"
            "features: {exports: '${EXPORTS}', insights: ''}\n"
            "insights:\n  capacity: {requests_per_day: 10, gb_per_day: }\n",
        )
    )
    assert config.dashboard.title == "2026" and config.dashboard.theme == "light"
    assert config.data_sources.database.url is None
    assert config.data_sources.redis.enabled is True
    assert config.data_sources.redis.ttl_seconds == 60  # follows the refresh interval
    assert config.features.exports is False and config.features.insights is True
    assert config.insights.capacity == {"requests_per_day": 10.0}


def test_alerts_keep_file_order_and_their_fields(tmp_path):
    config = load_config(
        write(
            tmp_path,
            "alerts:\n  p95_ms: {above: 800, clear: 700, for: 2h}\n"
            "  availability: {below: 0.97, severity: critical}\n",
        )
    )
    p95, availability = config.alerts
    assert (p95.kpi, p95.threshold, p95.comparison, p95.clear) == ("p95_ms", 800, ">", 700)
    assert p95.severity == "warning" and p95.for_duration == timedelta(hours=2)
    assert (availability.kpi, availability.comparison) == ("availability", "<")
    assert availability.for_duration == timedelta(0) and availability.severity == "critical"


def test_alert_rule_from_code():
    rule = AlertRule(kpi="error_rate", above=0.1, severity="info", for_duration=timedelta(hours=1))
    assert rule.threshold == 0.1 and rule.for_duration == timedelta(hours=1)
    with pytest.raises(ValueError, match="exactly one"):
        AlertRule(kpi="error_rate")


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        # dashboard
        (
            "dashboard:\n  refresh_interval_seconds: soon\n",
            "dashboard.refresh_interval_seconds",
            "expected a positive whole number (got 'soon')",
        ),
        ("dashboard:\n  refresh_interval_seconds: .inf\n", "refresh_interval_seconds", "whole"),
        ("dashboard:\n  refresh_interval_seconds: 0\n", "refresh_interval_seconds", "positive"),
        ("dashboard:\n  refresh_interval_seconds: 2.5\n", "refresh_interval_seconds", "whole"),
        ("dashboard:\n  title: [a, b]\n", "dashboard.title", "a valid string"),
        ("dashboard:\n  theme: blue\n", "dashboard.theme", "'light' or 'dark'"),
        ("dashboard:\n  default_range: 2w\n", "dashboard.default_range", "one of 24h, 7d"),
        ("dashboard:\n  default_timezone: Mars/Base\n", "dashboard.default_timezone", "IANA"),
        ("dashboard:\n  titel: x\n", "dashboard.titel", "one of the keys title, "),
        ("dashboard: 5\n", "dashboard", "a mapping"),
        # data_sources
        ("data_sources:\n  database: {url: [x]}\n", "data_sources.database.url", "a valid string"),
        ("data_sources:\n  database: {uri: x}\n", "data_sources.database.uri", "keys url"),
        (
            "data_sources:\n  prometheus: {enabled: maybe}\n",
            "data_sources.prometheus.enabled",
            "true or false (got 'maybe')",
        ),
        ("data_sources:\n  prometheus: {enabled: 1}\n", "prometheus.enabled", "true or false"),
        ("data_sources:\n  redis: {ttl_seconds: -1}\n", "redis.ttl_seconds", "positive whole"),
        ("data_sources:\n  redis: {enabled: sure}\n", "redis.enabled", "true or false"),
        ("data_sources:\n  mysql: {}\n", "data_sources.mysql", "keys database, prometheus"),
        # features
        ("features:\n  insights: sometimes\n", "features.insights", "true or false"),
        ("features:\n  dark_mode: true\n", "features.dark_mode", "keys auto_refresh"),
        # alerts
        ("alerts:\n  not_a_kpi: {above: 1}\n", "alerts.not_a_kpi", "KPI key"),
        ("alerts:\n  error_rate: {above: 1, below: 0}\n", "alerts.error_rate", "exactly one"),
        ("alerts:\n  error_rate: {severity: info}\n", "alerts.error_rate", "exactly one"),
        ("alerts:\n  error_rate: {above: -1}\n", "alerts.error_rate.above", "a number >= 0"),
        ("alerts:\n  error_rate: {below: .nan}\n", "alerts.error_rate.below", "finite"),
        ("alerts:\n  error_rate: {above: lots}\n", "alerts.error_rate.above", "a number"),
        (
            "alerts:\n  error_rate: {above: 0.1, severity: doom}\n",
            "alerts.error_rate.severity",
            "one of",
        ),
        ("alerts:\n  p95_ms: {above: 9, for: often}\n", "alerts.p95_ms.for", "a duration"),
        ("alerts:\n  p95_ms: {above: 9, for: 5}\n", "alerts.p95_ms.for", "a duration"),
        ("alerts:\n  p95_ms: {above: 9, for: -5m}\n", "alerts.p95_ms.for", "a duration"),
        ("alerts:\n  p95_ms: {above: 9, clear: 10}\n", "alerts.p95_ms.clear", "hysteresis"),
        ("alerts:\n  availability: {below: 0.9, clear: 0.8}\n", "availability.clear", "hysteresis"),
        ("alerts:\n  p95_ms: {above: 9, abov: 1}\n", "alerts.p95_ms.abov", "keys above, below"),
        ("alerts:\n  error_rate: 5\n", "alerts.error_rate", "a mapping"),
        ("alerts:\n  - error_rate\n", "alerts", "a mapping of KPI key"),
        # costs
        ("costs:\n  gb_processed: cheap\n", "costs.gb_processed", "a number"),
        ("costs:\n  compute_hour: -0.5\n", "costs.compute_hour", "a number >= 0"),
        ("costs:\n  per_1000_api_calls: .inf\n", "costs.per_1000_api_calls", "finite"),
        ("costs:\n  currency: {code: EUR}\n", "costs.currency", "a valid string"),
        ("costs:\n  storage: 1\n", "costs.storage", "keys currency, compute_hour"),
        # insights
        ("insights:\n  sensitivity: 0\n", "insights.sensitivity", "> 0"),
        ("insights:\n  sensitivity: .nan\n", "insights.sensitivity", "finite"),
        ("insights:\n  trend_alpha: 1\n", "insights.trend_alpha", "between 0 and 1"),
        ("insights:\n  change_alpha: 0\n", "insights.change_alpha", "between 0 and 1"),
        ("insights:\n  forecast_level: 1.5\n", "insights.forecast_level", "between 0 and 1"),
        ("insights:\n  forecast_horizon_days: 0\n", "forecast_horizon_days", "positive whole"),
        ("insights:\n  capacity: {cpu: 3}\n", "insights.capacity.cpu", "one of"),
        ("insights:\n  capacity: {gb_per_day: lots}\n", "capacity.gb_per_day", "a number"),
        ("insights:\n  capacity: 5\n", "insights.capacity", "a mapping"),
        ("insights:\n  sensitivty: 3\n", "insights.sensitivty", "keys sensitivity"),
        # the file as a whole
        ("dashbord:\n  title: x\n", "dashbord", "one of the sections dashboard, data_sources"),
        ("path: x\n", "path", "one of the sections"),
        ("dashboard:\n  title: ${NOT_SET_ANYWHERE}\n", "${NOT_SET_ANYWHERE}", "to be set"),
        ("dashboard:\n  title: ${NOT_SET_ANYWHERE}\n", "dashboard.title", "to be set"),
        # keys YAML reads as numbers, and a rule naming its own KPI
        ("dashboard:\n  1: x\n", "dashboard.1", "a key that is a name"),
        ("1: x\n", "1", "a key that is a name"),
        ("dashboard:\n  title: x\n  0: y\n", "dashboard.0", "a key that is a name"),
        ("insights:\n  capacity: {1: 3}\n", "insights.capacity.1", "a key that is a name"),
        ("alerts:\n  p95_ms: {above: 1, kpi: error_rate}\n", "alerts", "without a `kpi:` key"),
        ("insights:\n  capacity: {requests_per_day: ${X}}\n", "line 2", "quote a ${VAR}"),
        ("dashboard: [1, 2\n", "line 2", "valid YAML"),
        ("- just a list\n", "(top level)", "a mapping of sections"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path, monkeypatch, text, key, expected):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and expected in message
    assert "\n" not in message and "Traceback" not in message
    assert "pydantic" not in message and "Input should" not in message
    # No pydantic or YAML traceback chained behind it.
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_several_problems_make_one_error_naming_each(tmp_path):
    path = write(tmp_path, "dashboard: {theme: blue}\ncosts: {gb_processed: x}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: dashboard.theme: expected")
    assert "; costs.gb_processed: expected a number (got 'x')" in message
    assert info.value.key == "dashboard.theme"


def test_alert_duration_and_default_sensitivity(tmp_path):
    config = load_config(write(tmp_path, "alerts:\n  p95_ms: {above: 9, for: 90min}\n"))
    assert config.alerts[0].for_duration.total_seconds() == 5400
    assert config.insights.sensitivity == 4.0  # the evaluated default (bench/INSIGHTS.md)


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yml"
    path.write_bytes("dashboard:\n  title: Caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yml")


def test_config_file_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("ANALYTICS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    # Nothing else: the packaged default.
    assert config_path() == DEFAULT_CONFIG_PATH
    assert load_config().path == str(DEFAULT_CONFIG_PATH)
    # ./config/analytics.yml in the working directory beats the packaged default.
    local = write(tmp_path, "dashboard: {title: Local}\n", "config/analytics.yml")
    assert config_path().resolve() == local.resolve()
    assert load_config().dashboard.title == "Local"
    # $ANALYTICS_CONFIG beats the local file.
    monkeypatch.setenv("ANALYTICS_CONFIG", str(write(tmp_path, "dashboard: {title: Env}\n")))
    assert load_config().dashboard.title == "Env"
    # An explicit path (--config) beats everything.
    explicit = write(tmp_path, "dashboard: {title: Explicit}\n", "explicit.yml")
    assert config_path(explicit) == explicit
    assert load_config(explicit).dashboard.title == "Explicit"


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
    assert database_url(load_config(write(tmp_path, ""))) == demo_database_url()


def test_demo_database_path_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYTICS_DEMO_DB", str(tmp_path / "mine.duckdb"))
    assert demo_database_path() == tmp_path / "mine.duckdb"
    assert demo_database_url() == f"duckdb:///{tmp_path / 'mine.duckdb'}"


def test_demo_database_default_is_per_user_not_in_the_package(monkeypatch):
    monkeypatch.delenv("ANALYTICS_DEMO_DB", raising=False)
    path = demo_database_path()
    assert path == platformdirs.user_data_path("anomaly-analytics") / "demo.duckdb"
    package = Path(analytics_core.__file__).resolve().parent
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert not path.resolve().is_relative_to(package)
    assert not path.resolve().is_relative_to(site_packages)


def test_normalize_db_url():
    assert normalize_db_url("postgres://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_db_url("postgresql+psycopg://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_db_url("duckdb:///x") == "duckdb:///x"
