"""Whether the dashboard's sources answer and how current its data is: what the Health
page and ``analytics health`` report.

:func:`check` probes every configured source at once, each in a thread of its own with a
timeout, so a dead source costs one timeout rather than one per source:

- the primary database: connect, then ``SELECT 1`` (its round trip is the latency); on
  the same connection the newest row of each event table (``max`` of its indexed time
  column: an index lookup on PostgreSQL) and the rollup watermark (``rollup_state``);
- Prometheus, when enabled: the instant query ``vector(1)``, with the config's timeout;
- Redis, when enabled: ``PING``, then ``INFO`` for the server's keyspace hits and misses.

The status is ``down`` when the primary database does not answer (no page can be
built); ``degraded`` when another enabled source does not answer, an event table's
newest row is older than ``dashboard.freshness_limit`` (or it has none), or the rollup
watermark is further behind than an hour plus that limit (it moves in whole hours);
else ``healthy``. Nothing here raises for a source that is down: that is what it reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from analytics_core.config import Config, Prometheus

if TYPE_CHECKING:
    from analytics_core.cache import CacheStats

SourceStatus = Literal["up", "down", "disabled"]
Status = Literal["healthy", "degraded", "down"]
# `analytics health`'s exit code per status (3 is the command line's "source unreachable").
EXIT_CODES: dict[str, int] = {"healthy": 0, "degraded": 1, "down": 3}

DATABASE, PROMETHEUS, REDIS = "database", "prometheus", "redis"
NAMES = {DATABASE: "primary database", PROMETHEUS: "Prometheus", REDIS: "Redis"}
CONNECT_TIMEOUT_SECONDS = 3  # PostgreSQL's connect_timeout (libpq's least is 2)
STATEMENT_TIMEOUT_SECONDS = 3  # each of the probe's statements, on PostgreSQL
REDIS_TIMEOUT_SECONDS = 2.0  # connecting, and each command
ROLLUP_STEP = timedelta(hours=1)  # the watermark moves in whole hours
# The event tables and the time column that says how current each is (each indexed).
# Tables of things (tenants, detectors, users) change rarely and are not judged, nor is
# detection_feedback: people write it, now and then, so its age says nothing of the
# pipeline and would keep the status degraded.
FRESHNESS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("api_requests", "ts"),
    ("detection_results", "created_at"),
    ("user_sessions", "started_at"),
)


@dataclass(frozen=True)
class SourceHealth:
    key: str  # database, prometheus or redis
    name: str  # as shown
    configured: bool  # the database always; the others when enabled
    status: SourceStatus
    latency_ms: float | None = None  # one round trip, when up
    error: str | None = None  # why it is down, naming the source
    detail: str | None = None  # where it is (password hidden), its version


@dataclass(frozen=True)
class TableFreshness:
    table: str
    newest: datetime | None  # the newest row's time (UTC); None: no rows (or unreadable)
    age: timedelta | None  # now - newest
    stale: bool  # older than the limit, no rows, or unreadable
    error: str | None = None  # the table could not be read (e.g. it does not exist)


@dataclass(frozen=True)
class RollupHealth:
    watermark: datetime  # rows before it are in the rollup tables
    refreshed_at: datetime | None  # when the last `analytics rollup` run stored it
    lag: timedelta  # now - watermark
    limit: timedelta  # an hour plus the freshness limit
    behind: bool


@dataclass(frozen=True)
class CacheHealth:
    enabled: bool  # data_sources.redis.enabled
    # The Redis server's own counters (INFO stats): every key on the server, since it
    # started or its statistics were reset. None: not measured (Redis down or disabled).
    hits: int | None = None
    misses: int | None = None
    # The asking app process's page-cache counts (the app's Health page only).
    process_hits: int | None = None
    process_misses: int | None = None
    process_errors: int | None = None

    @property
    def hit_ratio(self) -> float | None:
        return _ratio(self.hits, self.misses)

    @property
    def process_hit_ratio(self) -> float | None:
        return _ratio(self.process_hits, self.process_misses)


def _ratio(hits: int | None, misses: int | None) -> float | None:
    if hits is None or misses is None or hits + misses == 0:
        return None
    return hits / (hits + misses)


@dataclass(frozen=True)
class Health:
    status: Status
    sources: tuple[SourceHealth, ...]
    freshness: tuple[TableFreshness, ...]  # empty while the database is down
    freshness_limit: timedelta
    rollup: RollupHealth | None  # None: not built, or the database is down
    cache: CacheHealth
    problems: tuple[str, ...]  # why it is not healthy, one sentence each
    checked_at: datetime
    seconds: float  # how long the check took

    def source(self, key: str) -> SourceHealth:
        return next(s for s in self.sources if s.key == key)

    @property
    def database_up(self) -> bool:
        return self.source(DATABASE).status == "up"

    @property
    def stale_tables(self) -> tuple[str, ...]:
        return tuple(f.table for f in self.freshness if f.stale)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def freshness_rows(self) -> list[dict[str, object]]:
        """The freshness table as shown (app and command line alike)."""
        return [
            {
                "table": f.table,
                "newest row (UTC)": _stamp(f.newest) if f.newest else "none",
                "age": describe_age(f.age) if f.age is not None else "",
                "state": f.error or ("stale" if f.stale else "fresh"),
            }
            for f in self.freshness
        ]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: times in ISO 8601 UTC, durations in seconds."""
        rollup = self.rollup
        cache = self.cache
        return {
            "status": self.status,
            "checked_at": _iso(self.checked_at),
            "seconds": round(self.seconds, 3),
            "sources": {
                s.key: {
                    "name": s.name,
                    "configured": s.configured,
                    "status": s.status,
                    "latency_ms": None if s.latency_ms is None else round(s.latency_ms, 3),
                    "error": s.error,
                    "detail": s.detail,
                }
                for s in self.sources
            },
            "freshness": {
                "limit_seconds": self.freshness_limit.total_seconds(),
                "measured": self.database_up,
                "tables": {
                    f.table: {
                        "newest": _iso(f.newest),
                        "age_seconds": None if f.age is None else round(f.age.total_seconds(), 3),
                        "stale": f.stale,
                        "error": f.error,
                    }
                    for f in self.freshness
                },
            },
            "rollup": None
            if rollup is None
            else {
                "watermark": _iso(rollup.watermark),
                "refreshed_at": _iso(rollup.refreshed_at),
                "lag_seconds": round(rollup.lag.total_seconds(), 3),
                "limit_seconds": rollup.limit.total_seconds(),
                "behind": rollup.behind,
            },
            "cache": {
                "enabled": cache.enabled,
                "server_hits": cache.hits,
                "server_misses": cache.misses,
                "server_hit_ratio": cache.hit_ratio,
                "process_hits": cache.process_hits,
                "process_misses": cache.process_misses,
                "process_hit_ratio": cache.process_hit_ratio,
            },
            "problems": list(self.problems),
        }


def check(config: Config, db_url: str, *, cache_stats: CacheStats | None = None) -> Health:
    """Probe every configured source at once (see the module docstring). ``cache_stats``:
    the asking process's page cache counts, reported beside the Redis server's.

    Raises :class:`~analytics_core.filters.InputError` only for a ``db_url`` that is no
    database URL at all (bad input, not an outage)."""
    from analytics_core.sources.database import dialect_of

    dialect_of(db_url)
    began, checked_at = time.perf_counter(), datetime.now(UTC)
    settings = config.data_sources
    limit = config.dashboard.freshness_limit
    probes: dict[str, Callable[[], Any]] = {DATABASE: lambda: _database(db_url, limit)}
    timeouts = [CONNECT_TIMEOUT_SECONDS + STATEMENT_TIMEOUT_SECONDS]
    if settings.prometheus.enabled:
        probes[PROMETHEUS] = lambda: _prometheus(settings.prometheus)
        timeouts.append(settings.prometheus.timeout_seconds)
    if settings.redis.enabled:
        probes[REDIS] = lambda: _redis(settings.redis.url)
        timeouts.append(2 * REDIS_TIMEOUT_SECONDS)
    results = _run_all(probes, max(timeouts) + 1.0)

    sources = []
    for key in (DATABASE, PROMETHEUS, REDIS):
        if key not in probes:
            setting = f"data_sources.{key}.enabled"
            sources.append(
                SourceHealth(key, NAMES[key], False, "disabled", detail=f"{setting}: false")
            )
            continue
        found = results[key]
        if isinstance(found, BaseException):
            sources.append(SourceHealth(key, NAMES[key], True, "down", error=_message(key, found)))
        else:
            sources.append(
                SourceHealth(key, NAMES[key], True, "up", found.latency_ms, detail=found.detail)
            )

    database = results[DATABASE]
    freshness: tuple[TableFreshness, ...] = ()
    rollup = None
    if not isinstance(database, BaseException):
        freshness = database.freshness
        if database.watermark is not None:
            lag = database.answered_at - database.watermark
            rollup_limit = ROLLUP_STEP + limit
            rollup = RollupHealth(
                database.watermark, database.refreshed_at, lag, rollup_limit, lag > rollup_limit
            )

    redis_found = results.get(REDIS)
    server = redis_found if isinstance(redis_found, _RedisAnswer) else None
    process = cache_stats if cache_stats is not None and cache_stats.enabled else None
    cache = CacheHealth(
        enabled=settings.redis.enabled,
        hits=server.hits if server else None,
        misses=server.misses if server else None,
        process_hits=process.hits if process else None,
        process_misses=process.misses if process else None,
        process_errors=process.errors if process else None,
    )

    problems = [s.error for s in sources if s.status == "down" and s.error]
    for table in freshness:
        if table.stale:
            problems.append(_stale_sentence(table, limit))
    if rollup is not None and rollup.behind:
        problems.append(
            f"the rollup watermark is {describe_age(rollup.lag)} behind (limit "
            f"{describe_age(rollup.limit)}): is `analytics rollup` running?"
        )
    if sources[0].status == "down":
        status: Status = "down"
    else:
        status = "degraded" if problems else "healthy"
    return Health(
        status=status,
        sources=tuple(sources),
        freshness=freshness,
        freshness_limit=limit,
        rollup=rollup,
        cache=cache,
        problems=tuple(problems),
        checked_at=checked_at,
        seconds=time.perf_counter() - began,
    )


def _stale_sentence(table: TableFreshness, limit: timedelta) -> str:
    if table.error:
        return f"{table.table} cannot be read ({table.error})"
    if table.newest is None or table.age is None:
        return f"{table.table} has no rows"
    return (
        f"{table.table}'s newest row is {describe_age(table.age)} old (limit {describe_age(limit)})"
    )


def _run_all(probes: dict[str, Callable[[], Any]], seconds: float) -> dict[str, Any]:
    """Each probe's result or exception; a probe still running after ``seconds`` is
    reported as a timeout and left to finish on its own (daemon threads: a hung server
    does not keep the command from exiting)."""
    results: dict[str, Any] = {}
    lock = threading.Lock()

    def run(key: str, probe: Callable[[], Any]) -> None:
        try:
            found: Any = probe()
        except Exception as exc:  # noqa: BLE001 - whatever failed is what is reported
            found = exc
        with lock:
            results[key] = found

    threads = [
        threading.Thread(target=run, args=item, name=f"health-{item[0]}", daemon=True)
        for item in probes.items()
    ]
    for thread in threads:
        thread.start()
    end = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    with lock:
        return {
            key: results.get(key, _NoAnswer(f"{NAMES[key]} gave no answer within {seconds:g} s"))
            for key in probes
        }


class _NoAnswer(Exception):
    """A source's own message (already naming it) for why it is down."""


def _message(key: str, exc: BaseException) -> str:
    from analytics_core.sources import SourceUnavailable

    if isinstance(exc, _NoAnswer | SourceUnavailable):
        return str(exc)
    if key == PROMETHEUS:
        from analytics_core.prometheus.client import PrometheusUnavailable

        if isinstance(exc, PrometheusUnavailable):
            return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{NAMES[key]} failed: {text}"


# --- the probes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    latency_ms: float
    detail: str


@dataclass(frozen=True)
class _DatabaseAnswer(_Answer):
    freshness: tuple[TableFreshness, ...]
    watermark: datetime | None
    refreshed_at: datetime | None
    answered_at: datetime


@dataclass(frozen=True)
class _RedisAnswer(_Answer):
    hits: int | None
    misses: int | None


def _database(url: str, limit: timedelta) -> _DatabaseAnswer:
    from sqlalchemy import event, func, inspect, select, text
    from sqlalchemy.exc import ProgrammingError

    from analytics_core.rollup.schema import STATE_KEY, rollup_state
    from analytics_core.schema import TABLES
    from analytics_core.sources.database import database_errors, make_engine, redact

    engine = make_engine(url)  # read-only; a missing DuckDB file is SourceUnavailable
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "do_connect")
        def _bounded(dialect, conn_rec, cargs, cparams: dict[str, Any]) -> None:
            cparams["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
            bound = f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000}"
            cparams["options"] = f"{cparams.get('options', '')} {bound}".strip()

    tables = {t.name: t for t in TABLES}
    try:
        with database_errors(engine), engine.connect() as conn:
            began = time.perf_counter()
            conn.execute(text("SELECT 1")).scalar()
            latency_ms = (time.perf_counter() - began) * 1000
            freshness = []
            for name, column in FRESHNESS_COLUMNS:
                try:
                    newest = _utc(conn.execute(select(func.max(tables[name].c[column]))).scalar())
                except ProgrammingError as exc:  # e.g. the table does not exist
                    conn.rollback()
                    error = str(exc.orig or exc).strip().splitlines()[0]
                    freshness.append(TableFreshness(name, None, None, True, error))
                    continue
                age = datetime.now(UTC) - newest if newest is not None else None
                stale = age is None or age > limit
                freshness.append(TableFreshness(name, newest, age, stale))
            watermark = refreshed_at = None
            if inspect(conn).has_table(rollup_state.name):
                row = conn.execute(
                    select(rollup_state.c.watermark, rollup_state.c.refreshed_at).where(
                        rollup_state.c.name == STATE_KEY
                    )
                ).first()
                if row is not None:
                    watermark, refreshed_at = _utc(row[0]), _utc(row[1])
            answered_at = datetime.now(UTC)
    finally:
        engine.dispose()
    return _DatabaseAnswer(
        latency_ms, redact(url), tuple(freshness), watermark, refreshed_at, answered_at
    )


def _prometheus(settings: Prometheus) -> _Answer:
    from analytics_core.prometheus.client import connect

    client = connect(settings)  # PrometheusUnavailable names the server and the reason
    try:
        began = time.perf_counter()
        client.vector("vector(1)", datetime.now(UTC))
        latency_ms = (time.perf_counter() - began) * 1000
    finally:
        close = getattr(client.connection, "close", None)  # not in every 0.7 release
        if close is not None:
            close()
    return _Answer(latency_ms, str(settings.url))


def _redis(url: str | None) -> _RedisAnswer:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from analytics_core.sources.database import redact

    if not url:
        raise _NoAnswer("Redis is enabled without a url (data_sources.redis.url)")
    where = redact(url)
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:  # redis-py's word for a URL it cannot use
        raise _NoAnswer(f"Redis URL {where} is unusable ({exc})") from None
    try:
        began = time.perf_counter()
        client.ping()
        latency_ms = (time.perf_counter() - began) * 1000
        info = client.info()
    except redis.TimeoutError:
        raise _NoAnswer(
            f"Redis at {where} did not answer within {REDIS_TIMEOUT_SECONDS:g} s"
        ) from None
    except (redis.ConnectionError, OSError) as exc:
        raise _NoAnswer(f"Redis at {where} is unreachable ({exc})") from None
    except redis.RedisError as exc:
        raise _NoAnswer(f"Redis at {where} answered with an error ({exc})") from None
    finally:
        client.close()
    version, used = info.get("redis_version"), info.get("used_memory_human")
    detail = f"{where} (Redis {version}, {used} used)" if version else where
    hits, misses = info.get("keyspace_hits"), info.get("keyspace_misses")
    return _RedisAnswer(
        latency_ms,
        detail,
        hits if isinstance(hits, int) else None,
        misses if isinstance(misses, int) else None,
    )


# --- words -----------------------------------------------------------------------------------


def describe_age(age: timedelta) -> str:
    """``42 s``, ``3 min``, ``2 h 5 min``, ``47 d 3 h`` (rounded down); negative: ``... ahead``
    (a row stamped after now: a clock out of step)."""
    seconds = age.total_seconds()
    if seconds < 0:
        return f"{describe_age(-age)} ahead"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _utc(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):  # e.g. a pandas Timestamp
        value = value.to_pydatetime()  # type: ignore[attr-defined]
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def format_text(health: Health) -> str:
    """The report ``analytics health`` prints: status, sources, freshness, rollup, cache."""
    lines = [
        f"analytics health: {health.status.upper()} (checked {_stamp(health.checked_at)} UTC "
        f"in {health.seconds:.2f} s)",
        "",
    ]
    rows = [("source", "status", "latency", "detail")]
    for s in health.sources:
        latency = f"{s.latency_ms:.1f} ms" if s.latency_ms is not None else "-"
        rows.append((s.name, s.status, latency, s.error or s.detail or ""))
    lines += _table(rows) + [""]
    limit = describe_age(health.freshness_limit)
    if health.database_up:
        rows = [("table", "newest row (UTC)", "age", f"state (limit {limit})")]
        rows += [tuple(str(v) for v in r.values()) for r in health.freshness_rows()]
        lines += _table(rows) + [""]
    else:
        lines += ["freshness: not measured (the primary database is down)", ""]
    rollup = health.rollup
    if rollup is not None:
        last = f", last run {_stamp(rollup.refreshed_at)} UTC" if rollup.refreshed_at else ""
        state = "BEHIND" if rollup.behind else "ok"
        lines.append(
            f"rollup: watermark {_stamp(rollup.watermark)} UTC, {describe_age(rollup.lag)} "
            f"behind (limit {describe_age(rollup.limit)}): {state}{last}"
        )
    elif health.database_up:
        lines.append("rollup: not built (pages read the raw tables; see `analytics rollup`)")
    else:
        lines.append("rollup: not measured (the primary database is down)")
    cache = health.cache
    if not cache.enabled:
        lines.append("cache: Redis disabled (data_sources.redis.enabled: false)")
    elif cache.hits is None:
        lines.append("cache: hit ratio not measured (Redis does not answer)")
    elif cache.hit_ratio is None:
        lines.append("cache: no reads on the Redis server yet")
    else:
        lines.append(
            f"cache: Redis server hit ratio {cache.hit_ratio:.1%} ({cache.hits:,} hits, "
            f"{cache.misses:,} misses; every key on the server since it started)"
        )
    if health.problems:
        lines += ["", "problems:"] + [f"- {p}" for p in health.problems]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip()
        for r in rows
    ]
