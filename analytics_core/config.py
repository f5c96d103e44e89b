"""Configuration: ``config/analytics.yml`` read, expanded and validated once.

``${VAR}`` and ``${VAR:-default}`` are expanded from the environment before
parsing. Any problem stops with one :class:`ConfigError` naming the file, the
key and what was expected.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml

from analytics_core.kpis import KPIS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "defaults" / "analytics.yml"
DEMO_DATABASE_PATH = PROJECT_ROOT / "data" / "demo.duckdb"
DEMO_DATABASE_ENV = "ANALYTICS_DEMO_DB"  # moves the demo file (tests use a temp one)
SEVERITIES = ("info", "warning", "critical")


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who has to fix it."""

    def __init__(self, path: str | Path, key: str, expected: str, got: object = None):
        self.path, self.key, self.expected = str(path), key, expected
        where = f"{path}: {key}" if key else str(path)
        detail = f" (got {got!r})" if got is not None else ""
        super().__init__(f"{where}: expected {expected}{detail}")


@dataclass(frozen=True)
class AlertRule:
    kpi: str
    above: float | None
    below: float | None
    severity: str
    # Hysteresis: once firing, the alert clears only past this level (default: the threshold).
    clear: float | None = None
    # How long the breach must last before the alert fires (like Prometheus ``for:``).
    for_duration: timedelta = timedelta(0)

    @property
    def threshold(self) -> float:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    @property
    def comparison(self) -> str:
        return ">" if self.above is not None else "<"


@dataclass(frozen=True)
class Costs:
    currency: str = "USD"
    compute_hour: float = 0.50
    gb_processed: float = 0.09
    per_1000_api_calls: float = 0.40


CAPACITY_SERIES = ("requests_per_day", "gb_per_day")


@dataclass(frozen=True)
class InsightsSettings:
    # Anomaly detector: robust score at which a point is flagged; higher flags less.
    sensitivity: float = 4.0
    trend_alpha: float = 0.05
    change_alpha: float = 0.05
    forecast_horizon_days: int = 30
    forecast_level: float = 0.9
    # Daily limits the capacity forecast warns about, by series name.
    capacity: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    path: str
    title: str = "Anomaly Detection Analytics"
    refresh_interval_seconds: int = 300
    theme: str = "light"
    default_range: str = "7d"
    default_timezone: str = "UTC"
    database_url: str | None = None
    prometheus_url: str | None = None
    prometheus_enabled: bool = False
    redis_url: str | None = None
    redis_enabled: bool = False
    cache_ttl_seconds: int = 300
    features: dict[str, bool] = field(default_factory=dict)
    alerts: tuple[AlertRule, ...] = ()
    costs: Costs = field(default_factory=Costs)
    insights: InsightsSettings = field(default_factory=InsightsSettings)

    def feature(self, name: str, default: bool = True) -> bool:
        return self.features.get(name, default)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, env: dict[str, str] | None = None, path: str | Path = "") -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset ``${VAR}`` is an error."""
    env = os.environ if env is None else env

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ConfigError(path, f"${{{name}}}", f"environment variable {name} to be set")
            return default
        return value

    return _VAR.sub(sub, text)


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("ANALYTICS_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config file (see module doc for the rules)."""
    p = config_path(path)
    try:
        raw_text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(p, "", "an existing YAML file (file not found)") from None
    except OSError as exc:
        raise ConfigError(p, "", f"a readable file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "document"
        raise ConfigError(p, where, "valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(p, "(top level)", "a mapping of sections")
    return _parse(p, _expand_values(data, p))


def _expand_values(node: Any, path: Path) -> Any:
    """Expand variables in string values only, so comments may mention ``${VAR}``."""
    if isinstance(node, dict):
        return {k: _expand_values(v, path) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_values(v, path) for v in node]
    if isinstance(node, str):
        return expand_env(node, path=path)
    return node


class _Reader:
    """Typed access to nested YAML keys with errors that name the dotted key."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    def section(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(self.path, key, "a mapping", value)
        return value

    def get(self, sect: dict[str, Any], dotted: str, kind: str, default: Any) -> Any:
        key = dotted.rsplit(".", 1)[-1]
        value = sect.get(key, default)
        if value is None or value == "":
            return default
        if kind == "str":
            if not isinstance(value, str | int | float):
                raise ConfigError(self.path, dotted, "a string", value)
            return str(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ConfigError(self.path, dotted, "true or false", value)
        if kind == "posint":
            try:
                number = int(value)
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(self.path, dotted, "a positive whole number", value) from None
            if number <= 0 or (isinstance(value, float) and not value.is_integer()):
                raise ConfigError(self.path, dotted, "a positive whole number", value)
            return number
        if kind == "number":
            if isinstance(value, bool):
                raise ConfigError(self.path, dotted, "a number", value)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigError(self.path, dotted, "a number", value) from None
            if not math.isfinite(number):
                raise ConfigError(self.path, dotted, "a finite number", value)
            if number < 0:
                raise ConfigError(self.path, dotted, "a number >= 0", value)
            return number
        raise AssertionError(kind)


def _duration(p: Path, rule: dict[str, Any], key: str) -> timedelta:
    raw = rule.get("for")
    if raw in (None, ""):
        return timedelta(0)
    value = None
    # A bare number would be read as nanoseconds: insist on a unit.
    if isinstance(raw, str) and re.search(r"[a-zA-Z]", raw):
        try:
            value = pd.Timedelta(raw).to_pytimedelta()
        except ValueError:
            value = None
    if value is None or value < timedelta(0):
        raise ConfigError(p, f"{key}.for", "a duration such as 30m, 2h or 1d", raw)
    return value


def _parse(p: Path, data: dict[str, Any]) -> Config:
    from analytics_core.filters import RANGE_PRESETS

    r = _Reader(p, data)
    known = {"dashboard", "data_sources", "features", "alerts", "costs", "insights"}
    for key in data:
        if key not in known:
            raise ConfigError(p, str(key), f"one of the sections {', '.join(sorted(known))}")

    dash = r.section("dashboard")
    title = r.get(dash, "dashboard.title", "str", Config.title)
    refresh = r.get(dash, "dashboard.refresh_interval_seconds", "posint", 300)
    theme = r.get(dash, "dashboard.theme", "str", "light")
    if theme not in ("light", "dark"):
        raise ConfigError(p, "dashboard.theme", "light or dark", theme)
    default_range = r.get(dash, "dashboard.default_range", "str", "7d")
    if default_range not in RANGE_PRESETS:
        raise ConfigError(p, "dashboard.default_range", f"one of {', '.join(RANGE_PRESETS)}")
    tz = r.get(dash, "dashboard.default_timezone", "str", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(p, "dashboard.default_timezone", "an IANA time zone", tz) from None

    sources = r.section("data_sources")
    for name in ("database", "prometheus", "redis"):
        if not isinstance(sources.get(name, {}) or {}, dict):
            raise ConfigError(p, f"data_sources.{name}", "a mapping", sources.get(name))
    db = sources.get("database") or {}
    prom = sources.get("prometheus") or {}
    red = sources.get("redis") or {}

    features_raw = r.section("features")
    features = {str(k): r.get(features_raw, f"features.{k}", "bool", True) for k in features_raw}

    alerts_raw = data.get("alerts") or {}
    if not isinstance(alerts_raw, dict):
        raise ConfigError(p, "alerts", "a mapping of KPI key to {above|below, severity}")
    alerts = []
    for kpi, rule in alerts_raw.items():
        key = f"alerts.{kpi}"
        if kpi not in KPIS:
            raise ConfigError(p, key, "a KPI key (e.g. error_rate, p95_ms)", kpi)
        if not isinstance(rule, dict):
            raise ConfigError(p, key, "a mapping with above or below", rule)
        above = r.get(rule, f"{key}.above", "number", None)
        below = r.get(rule, f"{key}.below", "number", None)
        if (above is None) == (below is None):
            raise ConfigError(p, key, "exactly one of above or below")
        severity = r.get(rule, f"{key}.severity", "str", "warning")
        if severity not in SEVERITIES:
            raise ConfigError(p, f"{key}.severity", f"one of {', '.join(SEVERITIES)}", severity)
        clear = r.get(rule, f"{key}.clear", "number", None)
        threshold = above if above is not None else below
        if clear is not None and (
            (above is not None and clear > threshold) or (below is not None and clear < threshold)
        ):
            side = "at or below `above`" if above is not None else "at or above `below`"
            raise ConfigError(p, f"{key}.clear", f"a level {side} (hysteresis)", clear)
        alerts.append(AlertRule(kpi, above, below, severity, clear, _duration(p, rule, key)))

    costs_raw = r.section("costs")
    costs = Costs(
        currency=r.get(costs_raw, "costs.currency", "str", "USD"),
        compute_hour=r.get(costs_raw, "costs.compute_hour", "number", Costs.compute_hour),
        gb_processed=r.get(costs_raw, "costs.gb_processed", "number", Costs.gb_processed),
        per_1000_api_calls=r.get(
            costs_raw, "costs.per_1000_api_calls", "number", Costs.per_1000_api_calls
        ),
    )

    ins = r.section("insights")
    capacity_raw = ins.get("capacity") or {}
    if not isinstance(capacity_raw, dict):
        raise ConfigError(p, "insights.capacity", "a mapping of series name to daily limit")
    capacity = {}
    for name in capacity_raw:
        if name not in CAPACITY_SERIES:
            raise ConfigError(
                p, f"insights.capacity.{name}", f"one of {', '.join(CAPACITY_SERIES)}", name
            )
        capacity[name] = r.get(capacity_raw, f"insights.capacity.{name}", "number", None)
    level = r.get(ins, "insights.forecast_level", "number", 0.9)
    if not 0 < level < 1:
        raise ConfigError(p, "insights.forecast_level", "a number between 0 and 1", level)
    alphas = {}
    for name in ("trend_alpha", "change_alpha"):
        alphas[name] = r.get(ins, f"insights.{name}", "number", 0.05)
        if not 0 < alphas[name] < 1:
            raise ConfigError(p, f"insights.{name}", "a number between 0 and 1", alphas[name])
    sensitivity = r.get(ins, "insights.sensitivity", "number", InsightsSettings.sensitivity)
    if sensitivity <= 0:
        raise ConfigError(p, "insights.sensitivity", "a number > 0", sensitivity)
    insights = InsightsSettings(
        sensitivity=sensitivity,
        trend_alpha=alphas["trend_alpha"],
        change_alpha=alphas["change_alpha"],
        forecast_horizon_days=r.get(ins, "insights.forecast_horizon_days", "posint", 30),
        forecast_level=level,
        capacity={k: v for k, v in capacity.items() if v is not None},
    )

    return Config(
        path=str(p),
        title=title,
        refresh_interval_seconds=refresh,
        theme=theme,
        default_range=default_range,
        default_timezone=tz,
        database_url=r.get(db, "data_sources.database.url", "str", None),
        prometheus_url=r.get(prom, "data_sources.prometheus.url", "str", None),
        prometheus_enabled=r.get(prom, "data_sources.prometheus.enabled", "bool", False),
        redis_url=r.get(red, "data_sources.redis.url", "str", None),
        redis_enabled=r.get(red, "data_sources.redis.enabled", "bool", False),
        cache_ttl_seconds=r.get(red, "data_sources.redis.ttl_seconds", "posint", refresh),
        features=features,
        alerts=tuple(alerts),
        costs=costs,
        insights=insights,
    )


def database_url(config: Config, override: str | None = None) -> str:
    """The primary database: ``--db``, else ``DATABASE_URL``, else config, else the demo file."""
    url = override or os.environ.get("DATABASE_URL") or config.database_url
    return normalize_db_url(url) if url else demo_database_url()


def demo_database_path() -> Path:
    return Path(os.environ.get(DEMO_DATABASE_ENV) or DEMO_DATABASE_PATH)


def demo_database_url() -> str:
    return f"duckdb:///{demo_database_path()}"


def normalize_db_url(url: str) -> str:
    """Drive the usual ``postgresql://`` form with psycopg 3 rather than psycopg2."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
