"""Configuration: one YAML file, expanded and validated once into frozen pydantic models.

The file used is the first of: an explicit path (``--config``), ``$ANALYTICS_CONFIG``,
``./config/analytics.yml`` in the current directory if it exists, else the packaged
default ``analytics_core/defaults/analytics.yml``.

``${VAR}`` and ``${VAR:-default}`` are expanded from the environment in string values
(so comments may mention them). A missing or empty value means the default. Any problem
stops with one :class:`ConfigError` naming the file, the dotted key and what was expected.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import platformdirs
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from analytics_core.filters import MAX_BUCKETS, RANGE_PRESETS, InputError, zone
from analytics_core.kpis import KPIS
from analytics_core.pages import APP_PAGES, EXPORT_FORMATS

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "defaults" / "analytics.yml"
DEMO_DATABASE_ENV = "ANALYTICS_DEMO_DB"  # moves the demo file (tests use a temp one)
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
CapacitySeries = Literal["requests_per_day", "gb_per_day", "disk_used_ratio"]
CAPACITY_SERIES: tuple[str, ...] = get_args(CapacitySeries)


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who has to fix it; ``also`` lists
    further problems in the same file, already described."""

    def __init__(self, path: str | Path, key: str, expected: str, got: Any = None, also=()):
        self.path, self.key, self.expected = str(path), key, expected
        super().__init__("; ".join([f"{path}: {_describe(key, expected, got)}", *also]))


def _describe(key: str, expected: str, got: object = None) -> str:
    detail = f" (got {got!r})" if got is not None else ""
    return f"{key + ': ' if key else ''}expected {expected}{detail}"


# Value checks. Each raises ValueError with what was expected; the loader adds the key.


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _flag(value: Any) -> Any:
    # Strings come from ${VAR} expansion; YAML itself already reads true/yes/on as booleans.
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _whole(value: Any) -> int:
    try:
        number = int(value)  # "45" from ${VAR} is fine; .inf and .nan are not
    except (TypeError, ValueError, OverflowError):
        raise ValueError("a positive whole number") from None
    if isinstance(value, bool) or number <= 0 or (isinstance(value, float) and number != value):
        raise ValueError("a positive whole number")
    return number


def _amount(value: Any) -> float:
    try:
        number = float(value)  # "0.5" from ${VAR} is fine
    except (TypeError, ValueError):
        raise ValueError("a number") from None
    if isinstance(value, bool):
        raise ValueError("a number")
    if not math.isfinite(number):
        raise ValueError("a finite number")
    if number < 0:
        raise ValueError("a number >= 0")
    return number


def _require(test: Callable[[Any], bool], expected: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(expected)
        return value

    return AfterValidator(check)


def _is_zone(name: str) -> bool:
    try:
        zone(name)  # the sidebar's own check, so the default is one it accepts
    except InputError:
        return False
    return True


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):  # from code
        return value
    # A bare number would be read as nanoseconds: insist on a unit.
    if isinstance(value, str) and re.search(r"[a-zA-Z]", value):
        import pandas as pd  # lazy: the CLI's start-up must not pay for pandas

        try:
            parsed = pd.Timedelta(value).to_pytimedelta()
        except ValueError:
            parsed = None
        if isinstance(parsed, timedelta) and parsed >= timedelta(0):
            return parsed
    raise ValueError("a duration such as 30m, 2h or 1d")


Flag = Annotated[bool, BeforeValidator(_flag)]
PositiveInt = Annotated[int, BeforeValidator(_whole)]
Amount = Annotated[float, BeforeValidator(_amount)]  # finite and >= 0
OptionalAmount = Annotated[float | None, BeforeValidator(_amount)]
Fraction = Annotated[Amount, _require(lambda x: 0 < x < 1, "a number between 0 and 1")]


class _Section(BaseModel):
    # Frozen: one validated config is shared by every page. Forbid: a misspelt key is named.
    # YAML reads `title: 2026` as a number: take it as the string it was meant to be.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        # `key:` or `key: ${UNSET:-}` means the default; unknown keys stay to be reported.
        if not isinstance(data, dict):
            return data
        known = {field.alias or name for name, field in cls.model_fields.items()}
        return {k: v for k, v in data.items() if not (k in known and (v is None or v == ""))}


class Dashboard(_Section):
    title: str = "Anomaly Detection Analytics"
    refresh_interval_seconds: PositiveInt = 300  # auto-refresh interval and cache TTL
    theme: Literal["light", "dark"] = "light"
    default_range: Annotated[
        str, _require(lambda r: r in RANGE_PRESETS, f"one of {', '.join(RANGE_PRESETS)}")
    ] = "7d"
    # None: the browser's zone (st.context.timezone), else UTC; the command line: UTC.
    default_timezone: Annotated[
        str | None, _require(lambda z: z is None or _is_zone(z), "an IANA time zone")
    ] = None
    # Bounds on what a user may ask for (sidebar, URL, CLI): the range's length, and the
    # points a chart may have.
    max_range_days: PositiveInt = 731
    max_buckets: PositiveInt = MAX_BUCKETS
    # How old an event table's newest row may be before the Health page and `analytics
    # health` call the data stale.
    freshness_limit: Annotated[
        timedelta,
        BeforeValidator(_duration),
        _require(lambda d: d > timedelta(0), "a duration longer than 0, such as 5m"),
    ] = timedelta(minutes=5)

    def range_limits(self) -> dict[str, int]:
        """``make_filters``'s bounds from this config."""
        return {"max_days": self.max_range_days, "max_buckets": self.max_buckets}


class Database(_Section):
    url: str | None = None  # none: the demo file (see database_url)


def _promql_name(pattern: str, what: str) -> AfterValidator:
    return _require(lambda v: v is None or re.fullmatch(pattern, v) is not None, what)


MetricName = Annotated[str, _promql_name(r"[a-zA-Z_:][a-zA-Z0-9_:]*", "a Prometheus metric name")]
LabelName = Annotated[
    str | None, _promql_name(r"[a-zA-Z_][a-zA-Z0-9_]*", "a Prometheus label name")
]


Seconds = Annotated[float, BeforeValidator(_amount), _require(lambda v: v > 0, "a number > 0")]


class PrometheusMetrics(_Section):
    """The platform exporter's metric names (each overridable)."""

    requests: MetricName = "pynomaly_http_requests_total"  # counter {method,endpoint,status}
    latency: MetricName = "pynomaly_http_request_duration_seconds"  # histogram {method,endpoint}
    detections: MetricName = "pynomaly_detections_total"  # counter {algorithm,status}
    detection_duration: MetricName = "pynomaly_detection_duration_seconds"  # histogram
    cpu: MetricName = "pynomaly_cpu_usage_ratio"  # gauge {component}
    memory: MetricName = "pynomaly_memory_usage_bytes"  # gauge {component}
    disk_available: MetricName = "node_filesystem_avail_bytes"
    disk_size: MetricName = "node_filesystem_size_bytes"
    disk_mountpoint: str = "/"
    up_job: str = "pynomaly"
    # The label holding the tenant on the platform's series; none: the tenant filter does
    # not apply to Prometheus figures (the page says so).
    tenant_label: LabelName = None


class Prometheus(_Section):
    enabled: Flag = False
    url: str | None = None
    timeout_seconds: Seconds = 5.0
    # Names of environment variables holding the credentials (never the secrets).
    bearer_token_env: str | None = None
    basic_auth_user_env: str | None = None
    basic_auth_password_env: str | None = None
    verify_tls: Flag = True
    metrics: PrometheusMetrics = PrometheusMetrics()


class Redis(_Section):
    enabled: Flag = False
    url: str | None = None
    ttl_seconds: Annotated[int | None, BeforeValidator(_whole)] = None  # none: the refresh interval


class Audit(_Section):
    # The writable store of the audit log: never the sources' read-only connection.
    url: str | None = None  # none: a SQLite file beside the demo database (the demo's)


class DataSources(_Section):
    database: Database = Database()
    prometheus: Prometheus = Prometheus()
    redis: Redis = Redis()
    audit: Audit = Audit()
    # Where the Performance figures come from: the request log (sql), Prometheus, or
    # Prometheus when it is enabled and answers, else the log (auto).
    performance_source: Literal["sql", "prometheus", "auto"] = "auto"


def _listed(known: tuple[str, ...], what: str) -> BeforeValidator:
    """``"*"`` (every one of ``known``) or a list of some of them, kept in ``known``'s order."""

    def check(value: Any) -> tuple[str, ...]:
        if value == "*":
            return known
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f'"*" or a list of {what} ({", ".join(known)})')
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"{what} among {', '.join(known)} (unknown: {', '.join(unknown)})")
        return tuple(k for k in known if k in value)

    return BeforeValidator(check)


def _tenant_list(value: Any) -> tuple[str, ...] | None:
    if value == "*":
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError('"*" (every tenant) or a list of tenant ids')
    return tuple(value)


class Role(_Section):
    """What a role may see and do. Pages it may not see are not in its navigation."""

    pages: Annotated[tuple[str, ...], _listed(APP_PAGES, "pages")] = ()
    exports: Annotated[tuple[str, ...], _listed(EXPORT_FORMATS, "export formats")] = ()
    # None: every tenant ("*" in the file); else only these (an empty list: none).
    # Required: a role that forgot its tenants must not see every one.
    tenants: Annotated[tuple[str, ...] | None, BeforeValidator(_tenant_list)]


DATA_PAGES = tuple(p for p in APP_PAGES if p not in ("audit", "health"))
DEFAULT_ROLES: dict[str, Role] = {
    "viewer": Role(pages=("overview", "detection", "performance"), tenants="*"),
    "analyst": Role(pages=DATA_PAGES, exports=EXPORT_FORMATS, tenants="*"),
    "admin": Role(pages=APP_PAGES, exports=EXPORT_FORMATS, tenants="*"),
}


class ProxyHeaders(_Section):
    """Headers an authenticating reverse proxy (e.g. oauth2-proxy) sets on every request."""

    user: str = "X-Forwarded-User"
    email: str = "X-Forwarded-Email"
    groups: str = "X-Forwarded-Groups"  # comma-separated
    client: str = "X-Forwarded-For"  # its last entry: the address the proxy saw


class ExportLimit(_Section):
    """At most ``count`` exports per user in any ``period`` (app and CLI alike)."""

    count: PositiveInt = 20
    period: Annotated[timedelta, BeforeValidator(_duration)] = timedelta(hours=1)

    @field_validator("period")
    @classmethod
    def _whole_seconds(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1) or value % timedelta(seconds=1):
            raise ValueError("a duration of whole seconds, at least 1s")
        return value


AuthMode = Literal["none", "proxy", "oidc"]


class Auth(_Section):
    """Who may see what: the sign-in mode, roles, and who has which role."""

    mode: AuthMode = "none"
    # Mode none on an address other than loopback is refused unless this says it is meant.
    allow_open: Flag = False
    proxy: ProxyHeaders = ProxyHeaders()
    # Replaces the default role of the same name; the other defaults stay.
    roles: dict[str, Role] = Field({}, validate_default=True)
    users: dict[str, str] = {}  # user name or e-mail -> role
    groups: dict[str, str] = {}  # group -> role
    default_role: str | None = None  # for a signed-in user nobody mapped; none: no data
    export_limit: ExportLimit = ExportLimit()

    @field_validator("roles")
    @classmethod
    def _with_defaults(cls, roles: dict[str, Role]) -> dict[str, Role]:
        return {**DEFAULT_ROLES, **roles}

    @model_validator(mode="after")
    def _known_roles(self) -> Auth:
        named = [("default_role", self.default_role)] if self.default_role else []
        named += [(f"users.{k}", v) for k, v in self.users.items()]
        named += [(f"groups.{k}", v) for k, v in self.groups.items()]
        for where, role in named:
            if role not in self.roles:
                raise ValueError(f"{where}: a role among {', '.join(self.roles)} (got {role!r})")
        return self


class ExportSettings(_Section):
    # User-level identifiers (user ids, the audit log's users and client addresses)
    # replaced by a keyed hash in every export (analytics_core.anonymise).
    anonymise: Flag = True
    anonymise_key_env: str = "ANALYTICS_ANONYMISE_KEY"  # the key's variable, not the key

    def key(self) -> bytes | None:
        """The pseudonym key, or None when exports are not anonymised."""
        if not self.anonymise:
            return None
        from analytics_core.anonymise import deployment_key  # pandas: not at start-up

        return deployment_key(self.anonymise_key_env)


class Features(_Section):
    auto_refresh: Flag = True
    exports: Flag = True
    insights: Flag = True


class AlertRule(_Section):
    """One threshold alert. The file maps the KPI key to the rest: ``p95_ms: {above: 800}``."""

    model_config = ConfigDict(populate_by_name=True)  # code writes for_duration=, files `for:`

    kpi: str = Field(exclude=True)  # from the mapping key, not written inside the rule
    above: OptionalAmount = None
    below: OptionalAmount = None
    severity: Severity = "warning"
    # Hysteresis: once firing, the alert clears only past this level (default: the threshold).
    clear: OptionalAmount = None
    # How long the breach must last before the alert fires (like Prometheus ``for:``).
    for_duration: Annotated[timedelta, BeforeValidator(_duration)] = Field(
        timedelta(0), alias="for"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_kpi(cls, data: Any) -> Any:
        # Checked here rather than on the field so the error names `alerts.<kpi>` itself.
        if isinstance(data, dict) and data.get("kpi") not in KPIS:
            raise ValueError("a KPI key such as error_rate or p95_ms")
        return data

    @field_validator("clear")
    @classmethod
    def _clear_past_threshold(cls, clear: float, info: ValidationInfo) -> float:
        # With both or neither threshold, _one_threshold names the real problem instead.
        above, below = info.data.get("above"), info.data.get("below")
        if above is not None and below is None and clear > above:
            raise ValueError("a level at or below `above` (hysteresis)")
        if below is not None and above is None and clear < below:
            raise ValueError("a level at or above `below` (hysteresis)")
        return clear

    @model_validator(mode="after")
    def _one_threshold(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("exactly one of above or below")
        return self

    @property
    def threshold(self) -> float:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    @property
    def comparison(self) -> str:
        return ">" if self.above is not None else "<"

    def breached(self, value: float) -> bool:
        """True when ``value`` is past the threshold (above ``above``, below ``below``)."""
        return value > self.threshold if self.above is not None else value < self.threshold


class Costs(_Section):
    """Unit prices for total_cost."""

    currency: str = "USD"
    compute_hour: Amount = 0.50
    gb_processed: Amount = 0.09
    per_1000_api_calls: Amount = 0.40


class InsightsSettings(_Section):
    # Anomaly detector: robust score at which a point is flagged; higher flags less.
    sensitivity: Annotated[Amount, _require(lambda x: x > 0, "a number > 0")] = 4.0
    trend_alpha: Fraction = 0.05
    change_alpha: Fraction = 0.05
    forecast_horizon_days: PositiveInt = 30
    forecast_level: Fraction = 0.9
    # Daily limits the capacity forecast warns about, by series name.
    capacity: dict[CapacitySeries, Amount] = {}

    @field_validator("capacity", mode="before")
    @classmethod
    def _drop_blank_limits(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if v is not None and v != ""}
        return value


def _is_address(value: str | None) -> bool:
    from analytics_core.report import valid_address  # it imports this module

    return value is None or valid_address(value)


def _is_web_url(value: str | None) -> bool:
    from urllib.parse import urlsplit

    if value is None:
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query


class Smtp(_Section):
    """The mail server ``analytics report --email`` sends through."""

    host: str | None = None  # none: --email is refused (exit 2)
    port: Annotated[int, BeforeValidator(_whole), _require(lambda p: p < 65536, "a port")] = 587
    starttls: Flag = True  # upgrade with STARTTLS (certificate checked); refuse if not offered
    # Names of environment variables holding the credentials (never the secrets); none:
    # no login.
    username_env: str | None = None
    password_env: str | None = None
    sender: Annotated[str | None, _require(_is_address, "an e-mail address")] = None
    timeout_seconds: Seconds = 10.0  # per connection attempt and per command


class Report(_Section):
    """``analytics report``: delivery of the report by e-mail and webhook."""

    smtp: Smtp = Smtp()
    webhook_timeout_seconds: Seconds = 10.0  # per attempt (connect and each read)
    # Per delivery, the first included; bounded so a cron job cannot wait for hours.
    attempts: Annotated[PositiveInt, _require(lambda n: n <= 10, "at most 10")] = 3
    # Before the 2nd attempt; doubled before each next, each wait at most 60 s.
    retry_backoff_seconds: Annotated[Amount, _require(lambda s: s <= 60, "at most 60")] = 1.0
    # The app's base URL, e.g. https://analytics.example.com: the webhook message and the
    # e-mail link to the page with the same filters. None: no link.
    app_url: Annotated[
        str | None, _require(_is_web_url, "an http(s) URL without a query, or none")
    ] = None


class Config(_Section):
    """The whole file, one attribute per section; ``path`` is the file it was read from."""

    dashboard: Dashboard = Dashboard()
    # Validated even when absent, so the cache TTL default follows the dashboard's.
    data_sources: DataSources = Field(DataSources(), validate_default=True)
    features: Features = Features()
    alerts: tuple[AlertRule, ...] = ()  # in file order
    costs: Costs = Costs()
    insights: InsightsSettings = InsightsSettings()
    exports: ExportSettings = ExportSettings()
    # Validated even when absent, so the default roles are there.
    auth: Auth = Field(Auth(), validate_default=True)
    report: Report = Report()
    _path: str = PrivateAttr("")

    @property
    def path(self) -> str:
        return self._path

    @field_validator("data_sources")
    @classmethod
    def _ttl_follows_refresh(cls, sources: DataSources, info: ValidationInfo) -> DataSources:
        dashboard = info.data.get("dashboard")
        if sources.redis.ttl_seconds is not None or dashboard is None:
            return sources
        redis = sources.redis.model_copy(update={"ttl_seconds": dashboard.refresh_interval_seconds})
        return sources.model_copy(update={"redis": redis})

    @field_validator("alerts", mode="before")
    @classmethod
    def _rules_from_mapping(cls, value: Any) -> Any:
        # The file maps KPI key -> rule; rules are validated as a list in file order (the
        # loader maps the list index in an error back to the KPI key).
        if isinstance(value, dict):
            if any(isinstance(r, dict) and "kpi" in r for r in value.values()):
                raise ValueError("rules keyed by KPI, without a `kpi:` key inside a rule")
            return [{**r, "kpi": k} if isinstance(r, dict) else r for k, r in value.items()]
        if isinstance(value, tuple | list) and all(isinstance(r, AlertRule) for r in value):
            return value  # from code
        raise ValueError("a mapping of KPI key to {above|below, severity}")


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
    """The config file to read, in the order given in the module docstring."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get("ANALYTICS_CONFIG"):
        return Path(env)
    local = Path.cwd() / "config" / "analytics.yml"
    return local if local.is_file() else DEFAULT_CONFIG_PATH


def load_config(path: str | Path | None = None) -> Config:
    """Read, expand and validate the config file (see the module docstring)."""
    p = config_path(path)
    try:
        raw_text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(p, "", "an existing YAML file (file not found)") from None
    except OSError as exc:
        raise ConfigError(p, "", f"a readable file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(p, "", "UTF-8 text (the file is not)") from None
    try:
        data = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(exc, "problem", None)
        hint = f"valid YAML ({problem})" if problem else "valid YAML"
        if "${" in raw_text:
            hint += "; quote a ${VAR} inside {...} or [...]"
        raise ConfigError(p, where, hint) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(p, "(top level)", "a mapping of sections")
    data = _expand_values(data, p, "")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # Name every problem at once, so one edit can fix them all.
        first, *others = [_problem(data, error) for error in exc.errors()]
        raise ConfigError(p, *first, also=[_describe(*other) for other in others]) from None
    config._path = str(p)
    return config


def _expand_values(node: Any, path: Path, where: str) -> Any:
    """Expand variables in string values only, so comments may mention ``${VAR}``; keys
    must be text (YAML reads ``1:`` as a number, which no setting is named)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            dotted = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str):
                raise ConfigError(path, dotted, "a key that is a name, not a number or a list")
            out[key] = _expand_values(value, path, dotted)
        return out
    if isinstance(node, list):
        return [_expand_values(v, path, where) for v in node]
    if isinstance(node, str):
        try:
            return expand_env(node, path=path)
        except ConfigError as exc:
            raise ConfigError(path, f"{where} ({exc.key})", exc.expected) from None
    return node


def _problem(data: dict[str, Any], error: ErrorDetails) -> tuple[str, str, object]:
    """(dotted key, what was expected, the value given or None) for one pydantic error."""
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        what = "sections" if len(loc) == 1 else "keys"
        return _dotted(data, loc), f"one of the {what} {_known_keys(loc[:-1])}", None
    if kind == "value_error":  # our checks: the message is the expectation
        expected = str(ctx["error"])
    elif kind == "literal_error":
        expected = f"one of {ctx['expected']}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        expected = "a mapping"
    else:
        expected = error["msg"].removeprefix("Input should be ")
    got = error["input"]
    return _dotted(data, loc), expected, None if isinstance(got, dict | BaseModel) else got


def _dotted(data: Any, loc: tuple[int | str, ...]) -> str:
    """The dotted key for a pydantic ``loc``, walking the file's own data alongside."""
    parts: list[str] = []
    node = data
    for part in loc:
        if part == "[key]":  # a bad mapping key: already named by the previous part
            continue
        if isinstance(part, int) and parts == ["alerts"] and isinstance(node, dict):
            part = list(node)[part]  # alerts are validated as a list: name the KPI instead
        node = node.get(part) if isinstance(node, dict) else None
        parts.append(str(part))
    return ".".join(parts)


def _known_keys(loc: tuple[int | str, ...]) -> str:
    """The keys the section at ``loc`` accepts, for an unknown-key message."""
    model: Any = Config
    for part in loc:  # alert indexes stay on AlertRule
        if part in model.model_fields:
            model = _model_in(model.model_fields[part].annotation)
    return ", ".join(f.alias or name for name, f in model.model_fields.items() if not f.exclude)


def _model_in(annotation: Any) -> Any:  # Dashboard, or AlertRule in tuple[AlertRule, ...]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def database_url(config: Config, override: str | None = None) -> str:
    """The primary database: ``--db``, else ``DATABASE_URL``, else config, else the demo file."""
    url = override or os.environ.get("DATABASE_URL") or config.data_sources.database.url
    return normalize_db_url(url) if url else demo_database_url()


AUDIT_URL_ENV = "ANALYTICS_AUDIT_URL"


def audit_url(config: Config) -> str:
    """The audit log's store: ``$ANALYTICS_AUDIT_URL``, else the config's, else a SQLite
    file beside the demo database."""
    url = os.environ.get(AUDIT_URL_ENV) or config.data_sources.audit.url
    if url:
        return normalize_db_url(url)
    from analytics_core.audit import default_audit_url  # it imports this module

    return default_audit_url()


def demo_database_path() -> Path:
    """``$ANALYTICS_DEMO_DB``, else a per-user data directory: never inside the package."""
    env = os.environ.get(DEMO_DATABASE_ENV)
    return Path(env) if env else platformdirs.user_data_path("anomaly-analytics") / "demo.duckdb"


def demo_database_url() -> str:
    return f"duckdb:///{demo_database_path()}"


def normalize_db_url(url: str) -> str:
    """Drive the usual ``postgresql://`` form with psycopg 3 rather than psycopg2."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
