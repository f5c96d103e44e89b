"""The Health page and ``analytics health`` against real servers: healthy with every
source up and fresh rows, then each source stopped in turn (Redis and Prometheus:
degraded, exit 1; the primary database: down, exit 3), a hung source costing one
timeout, freshness against ``dashboard.freshness_limit``, and the rollup watermark."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from analytics_core import schema
from analytics_core.audit import AuditLog
from analytics_core.cli import main
from analytics_core.config import ConfigError, load_config
from analytics_core.health import REDIS_TIMEOUT_SECONDS, check, describe_age
from analytics_core.rollup.refresh import refresh
from analytics_core.sources.database import make_engine
from tests.servers import (
    PostgresServer,
    port_answers,
    started_postgres,
    started_prometheus,
    started_redis,
)
from tests.ui.test_access import as_user

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.prometheus]
HOME = Path(__file__).resolve().parents[1] / "analytics_app" / "Home.py"
HEALTH_PAGE = "app_pages/health.py"
# Prometheus needs some history to start from; the probe asks it nothing about it.
OPENMETRICS = b'# TYPE up gauge\nup{job="pynomaly",instance="api-1"} 1 1774569600\n# EOF\n'
EVENT_TABLES = ("api_requests", "detection_results", "user_sessions")
_ids = itertools.count(1)


# --- servers, rows and configs ---------------------------------------------------------------


def port_of(url: str) -> int:
    return urlsplit(url).port  # type: ignore[return-value]


def stop(pid: int | None, port: int, sig: int = signal.SIGTERM) -> None:
    """Stop a throwaway server by its own pid and wait until its port is closed."""
    assert pid, "only a server the tests started may be stopped"
    os.kill(pid, sig)
    deadline = time.monotonic() + 15
    while port_answers(port):
        assert time.monotonic() < deadline, f"the server on port {port} did not stop"
        time.sleep(0.05)


@contextmanager
def postgres_to_stop() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL the test may stop. Its own teardown (``pg_ctl stop``) then
    finds no server and fails; that failure is expected, and a test's own is kept."""
    context = started_postgres()
    server = context.__enter__()
    try:
        yield server
    except BaseException:
        with suppress(subprocess.CalledProcessError):
            context.__exit__(*sys.exc_info())
        raise
    with suppress(subprocess.CalledProcessError):
        context.__exit__(None, None, None)


def put_rows(url: str, ages: dict[str, timedelta | None]) -> datetime:
    """The contract's tables in ``url``, with one row ``age`` old in each event table
    named (None: the table stays empty). Returns the moment the ages count from."""
    now = datetime.now(UTC)
    tables = {t.name: t for t in schema.TABLES}
    rows = {
        "api_requests": lambda at: {
            "id": next(_ids), "ts": at, "tenant_id": "t_a", "method": "GET",
            "endpoint": "/api/v1/results", "status_code": 200, "duration_ms": 12.0,
            "request_bytes": 100, "response_bytes": 1000,
        },
        "detection_results": lambda at: {
            "id": next(_ids), "created_at": at, "tenant_id": "t_a", "detector_id": "d_01",
            "algorithm": "iforest", "dataset_id": "ds_1", "n_samples": 100,
            "n_anomalies": 3, "status": "success",
        },
        "detection_feedback": lambda at: {
            "id": next(_ids), "detection_id": 1, "created_at": at, "user_id": "u_1",
            "confirmed": 1, "false_positives": 0,
        },
        "user_sessions": lambda at: {
            "session_id": f"s_{next(_ids)}", "user_id": "u_1", "tenant_id": "t_a",
            "started_at": at,
        },
    }  # fmt: skip
    engine = make_engine(url, read_only=False)
    try:
        schema.create_tables(engine)
        with engine.begin() as conn:
            for name, age in ages.items():
                if age is not None:
                    conn.execute(insert(tables[name]), [rows[name](now - age)])
    finally:
        engine.dispose()
    return now


FRESH = dict.fromkeys(EVENT_TABLES, timedelta(0))


def write_config(
    path: Path, *, prometheus: str | None = None, redis: str | None = None, limit: str = "5m"
) -> Path:
    prom = f"{{enabled: true, url: '{prometheus}', timeout_seconds: 2}}" if prometheus else "{}"
    cache = f"{{enabled: true, url: '{redis}'}}" if redis else "{}"
    path.write_text(
        f"dashboard: {{freshness_limit: {limit}}}\n"
        f"data_sources: {{prometheus: {prom}, redis: {cache}}}\n",
        encoding="utf-8",
    )
    return path


def cli(capsys, config: Path, db: str, *extra: str) -> tuple[int, str]:
    code = main(["health", "--config", str(config), "--db", db, *extra])
    return code, capsys.readouterr().out


def cli_json(capsys, config: Path, db: str) -> tuple[int, dict]:
    code, out = cli(capsys, config, db, "--json")
    return code, json.loads(out)


@pytest.fixture(scope="module")
def live_redis() -> Iterator[str]:
    with started_redis() as server:
        yield server.url


@pytest.fixture(scope="module")
def live_prometheus() -> Iterator[str]:
    with started_prometheus(OPENMETRICS) as server:
        yield server.url


@pytest.fixture(scope="module")
def fresh_pg(new_pg_database) -> str:
    """A database whose every event table has a row written now (fresh for minutes)."""
    url = new_pg_database()
    put_rows(url, FRESH)
    return url


# --- the command line ------------------------------------------------------------------------


def test_every_source_up_and_fresh_is_healthy(
    capsys, tmp_path, fresh_pg, live_redis, live_prometheus
):
    config = write_config(tmp_path / "a.yml", prometheus=live_prometheus, redis=live_redis)
    code, report = cli_json(capsys, config, fresh_pg)
    assert code == 0, report["problems"]
    assert report["status"] == "healthy" and report["problems"] == []
    sources = report["sources"]
    assert set(sources) == {"database", "prometheus", "redis"}
    for source in sources.values():
        assert source["status"] == "up" and source["configured"] and source["error"] is None
        assert 0 < source["latency_ms"] < 2000
    assert str(port_of(live_redis)) in sources["redis"]["detail"]
    freshness = report["freshness"]
    assert freshness["limit_seconds"] == 300 and freshness["measured"]
    assert set(freshness["tables"]) == set(EVENT_TABLES)
    for table in freshness["tables"].values():
        assert not table["stale"] and 0 <= table["age_seconds"] < 300
    assert report["rollup"] is None  # not built
    cache = report["cache"]
    assert cache["enabled"] and isinstance(cache["server_hits"], int)
    assert cache["process_hits"] is None  # the command line has no page cache of its own
    code, text = cli(capsys, config, fresh_pg)
    assert code == 0
    assert text.startswith("analytics health: HEALTHY")
    assert "rollup: not built" in text and "cache: no reads on the Redis server yet" in text
    # A read and a miss on the server count (INFO stats: every key on it).
    redis.Redis.from_url(live_redis).get("analytics:health-test:missing")
    assert cli_json(capsys, config, fresh_pg)[1]["cache"]["server_misses"] >= 1


def test_redis_stopped_is_degraded(capsys, tmp_path, fresh_pg, live_prometheus):
    with started_redis() as redis:
        config = write_config(tmp_path / "a.yml", prometheus=live_prometheus, redis=redis.url)
        assert cli_json(capsys, config, fresh_pg)[0] == 0
        stop(redis.started_pid, port_of(redis.url))
        code, report = cli_json(capsys, config, fresh_pg)
    assert code == 1 and report["status"] == "degraded"
    down = report["sources"]["redis"]
    assert down["status"] == "down" and down["latency_ms"] is None
    assert down["error"].startswith(f"Redis at {redis.url} is unreachable")
    assert report["problems"] == [down["error"]]
    assert report["sources"]["database"]["status"] == "up"
    assert report["sources"]["prometheus"]["status"] == "up"
    assert report["cache"]["enabled"] and report["cache"]["server_hit_ratio"] is None


def test_prometheus_stopped_is_degraded(capsys, tmp_path, fresh_pg, live_redis):
    with started_prometheus(OPENMETRICS) as prometheus:
        config = write_config(tmp_path / "a.yml", prometheus=prometheus.url, redis=live_redis)
        assert cli_json(capsys, config, fresh_pg)[0] == 0
        stop(prometheus.started_pid, port_of(prometheus.url))
        code, report = cli_json(capsys, config, fresh_pg)
        code_text, text = cli(capsys, config, fresh_pg)
    assert code == code_text == 1 and report["status"] == "degraded"
    down = report["sources"]["prometheus"]
    assert down["status"] == "down" and down["latency_ms"] is None
    assert (
        down["error"]
        == f"Prometheus at {prometheus.url} is unreachable ([Errno 111] Connection refused)"
    )
    assert report["problems"] == [down["error"]]
    assert {report["sources"][k]["status"] for k in ("database", "redis")} == {"up"}
    assert text.startswith("analytics health: DEGRADED") and down["error"] in text


def test_database_stopped_is_down(capsys, tmp_path, live_redis, live_prometheus):
    with postgres_to_stop() as server:
        url = server.url_for("postgres")
        put_rows(url, FRESH)
        config = write_config(tmp_path / "a.yml", prometheus=live_prometheus, redis=live_redis)
        assert cli_json(capsys, config, url)[0] == 0
        stop(server.started_pid, server.admin_url.port, signal.SIGINT)  # a fast shutdown
        code, report = cli_json(capsys, config, url)
        code_text, text = cli(capsys, config, url)
    assert code == code_text == 3 and report["status"] == "down"
    down = report["sources"]["database"]
    assert down["status"] == "down" and down["latency_ms"] is None
    assert down["error"].startswith(
        f"primary database postgresql+psycopg://postgres@127.0.0.1:{server.admin_url.port}"
        "/postgres is unavailable: connection failed"
    )
    assert report["problems"] == [down["error"]]
    assert report["freshness"] == {"limit_seconds": 300, "measured": False, "tables": {}}
    assert report["rollup"] is None
    # The other sources are still reported as they are.
    assert {report["sources"][k]["status"] for k in ("prometheus", "redis")} == {"up"}
    assert text.startswith("analytics health: DOWN")
    assert "freshness: not measured (the primary database is down)" in text


def test_hung_sources_cost_one_timeout_not_one_each(tmp_path, fresh_pg):
    """Redis and Prometheus frozen (SIGSTOP: they accept connections and never answer)
    are both reported down in about one timeout, since the probes run at once."""
    with started_redis() as redis, started_prometheus(OPENMETRICS) as prometheus:
        config = load_config(
            write_config(tmp_path / "a.yml", prometheus=prometheus.url, redis=redis.url)
        )
        frozen = [redis.started_pid, prometheus.started_pid]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            health = check(config, fresh_pg)
            took = time.monotonic() - began
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
    assert health.status == "degraded"
    assert health.source("redis").error == (
        f"Redis at {redis.url} did not answer within {REDIS_TIMEOUT_SECONDS:g} s"
    )
    assert health.source("prometheus").error == (
        f"Prometheus at {prometheus.url} did not answer within 2 s"
    )
    assert health.source("database").status == "up"
    assert took < 2 + REDIS_TIMEOUT_SECONDS, f"{took:.1f} s: the timeouts added up"


# --- freshness and the rollup -------------------------------------------------------------------


def test_the_fixture_data_is_stale(capsys, tmp_path, postgresql_url, dataset):
    health = check(load_config(write_config(tmp_path / "a.yml")), postgresql_url)
    assert health.status == "degraded"
    assert [s.status for s in health.sources] == ["up", "disabled", "disabled"]
    newest = {
        "api_requests": dataset.api_requests["ts"].max(),
        "detection_results": dataset.detection_results["created_at"].max(),
        "user_sessions": dataset.user_sessions["started_at"].max(),
    }
    assert {f.table: f.newest for f in health.freshness} == {
        table: moment.to_pydatetime() for table, moment in newest.items()
    }
    assert health.stale_tables == EVENT_TABLES
    assert all(f.age > timedelta(days=30) for f in health.freshness)
    assert (
        f"api_requests's newest row is {describe_age(health.freshness[0].age)} old"
        in (health.problems[0])
    )
    code, text = cli(capsys, tmp_path / "a.yml", postgresql_url)
    assert code == 1 and "stale" in text


def test_freshness_follows_the_configured_limit(tmp_path, new_pg_database):
    url = new_pg_database()
    put_rows(
        url,
        {
            "api_requests": timedelta(0),
            "detection_results": timedelta(hours=2),
            "detection_feedback": timedelta(days=40),  # sparse, written by people: not judged
            "user_sessions": None,  # no rows at all
        },
    )
    short = check(load_config(write_config(tmp_path / "a.yml")), url)
    assert short.freshness_limit == timedelta(minutes=5)
    assert short.stale_tables == ("detection_results", "user_sessions")
    assert short.freshness_rows()[2] == {
        "table": "user_sessions", "newest row (UTC)": "none", "age": "", "state": "stale",
    }  # fmt: skip
    assert "user_sessions has no rows" in short.problems
    long = check(load_config(write_config(tmp_path / "b.yml", limit="3h")), url)
    assert long.stale_tables == ("user_sessions",)
    assert long.status == "degraded"
    assert [f.stale for f in long.freshness] == [False, False, True]
    assert timedelta(hours=2) <= long.freshness[1].age < timedelta(hours=2, minutes=1)


def test_rollup_lag_and_missing_tables_on_duckdb(tmp_path):
    url = f"duckdb:///{tmp_path / 'h.duckdb'}"
    now = put_rows(url, FRESH)
    config = load_config(write_config(tmp_path / "a.yml"))
    assert check(config, url).rollup is None
    writer = make_engine(url, read_only=False)
    refresh(writer, now=now - timedelta(hours=3))  # a rollup that stopped 3 hours ago
    writer.dispose()
    behind = check(config, url)
    assert behind.rollup is not None and behind.rollup.behind
    assert behind.rollup.lag > timedelta(hours=3)
    assert behind.rollup.limit == timedelta(hours=1, minutes=5)
    assert behind.status == "degraded" and "is `analytics rollup` running?" in behind.problems[0]
    writer = make_engine(url, read_only=False)
    refresh(writer)
    writer.dispose()
    caught_up = check(config, url)
    assert caught_up.rollup is not None and not caught_up.rollup.behind
    assert caught_up.rollup.lag < timedelta(hours=1) and caught_up.status == "healthy"
    # Without the contract's tables: the database answers, each table says why not.
    empty = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    writer = make_engine(empty, read_only=False)
    with writer.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE placeholder (x INTEGER)")
    writer.dispose()
    bare = check(config, empty)
    assert bare.source("database").status == "up" and bare.status == "degraded"
    assert all(f.stale and f.newest is None and f.error for f in bare.freshness)
    assert "api_requests" in bare.freshness[0].error
    assert bare.problems[0].startswith("api_requests cannot be read (")


def test_freshness_limit_setting(tmp_path):
    assert load_config(write_config(tmp_path / "a.yml", limit="90s")).dashboard.freshness_limit == (
        timedelta(seconds=90)
    )
    default = tmp_path / "default.yml"
    default.write_text("dashboard: {}\n", encoding="utf-8")
    assert load_config(default).dashboard.freshness_limit == timedelta(minutes=5)
    for bad in ("0s", "300", "soon"):
        with pytest.raises(ConfigError, match="dashboard.freshness_limit"):
            load_config(write_config(tmp_path / "bad.yml", limit=bad))


def test_a_database_url_that_is_none_is_bad_input(capsys, tmp_path):
    code = main(["health", "--config", str(write_config(tmp_path / "a.yml")), "--db", "mysql://x"])
    assert code == 2 and "not supported" in capsys.readouterr().err


# --- the page ----------------------------------------------------------------------------------


def health_app(tmp_path, monkeypatch, db: str, **sources: str) -> AppTest:
    monkeypatch.setenv("ANALYTICS_CONFIG", str(write_config(tmp_path / "app.yml", **sources)))
    monkeypatch.setenv("DATABASE_URL", db)
    at = AppTest.from_file(str(HOME), default_timeout=60).run()  # auth none: admin
    return at.switch_page(HEALTH_PAGE).run()


def check_again(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Check again").click().run()


def shown(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in at.get(kind))


def test_health_page_shows_each_source_then_a_stopped_one(
    tmp_path, monkeypatch, fresh_pg, live_prometheus
):
    with started_redis() as redis:
        at = health_app(
            tmp_path, monkeypatch, fresh_pg, prometheus=live_prometheus, redis=redis.url
        )
        assert not at.exception, at.exception
        assert at.title[0].value == "Health"
        metrics = shown(at)
        assert [metrics[k] for k in ("primary database", "Prometheus", "Redis")] == ["up"] * 3
        assert all("ms round trip" in m.delta for m in at.metric[:3])
        assert "Healthy" in texts(at, "success")
        assert len(at.dataframe[0].value) == len(EVENT_TABLES) and not at.warning
        stop(redis.started_pid, port_of(redis.url))
        check_again(at)
    assert not at.exception, at.exception
    assert shown(at)["Redis"] == "down" and shown(at)["primary database"] == "up"
    assert f"Redis at {redis.url} is unreachable" in texts(at, "error")
    assert "Degraded" in texts(at, "warning")


def test_health_page_shows_the_database_stopped(tmp_path, monkeypatch):
    with postgres_to_stop() as server:
        url = server.url_for("postgres")
        put_rows(url, FRESH)
        at = health_app(tmp_path, monkeypatch, url)
        assert shown(at)["primary database"] == "up"
        assert [shown(at)[k] for k in ("Prometheus", "Redis")] == ["disabled", "disabled"]
        stop(server.started_pid, server.admin_url.port, signal.SIGINT)
        check_again(at)
    assert not at.exception, at.exception
    errors = texts(at, "error")
    assert "primary database" in errors and "is unavailable: connection failed" in errors
    assert shown(at)["primary database"] == "down"
    assert "Not measured: the primary database is down." in texts(at, "info")


def test_health_page_is_for_admins_by_default(duckdb_url, tmp_path, monkeypatch, _audit_store):
    admin = as_user(duckdb_url, tmp_path, monkeypatch, "alice").run()
    admin.switch_page(HEALTH_PAGE).run()
    assert not admin.exception and admin.title[0].value == "Health"
    assert shown(admin)["primary database"] == "up"
    analyst = as_user(duckdb_url, tmp_path, monkeypatch, "ann").run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        analyst.switch_page(HEALTH_PAGE)
    analyst.context = {"url": "http://localhost:8501/health"}
    analyst.run()
    assert "the health page is not open to ann (role analyst)" in texts(analyst, "error")
    assert not analyst.metric
    log = AuditLog(_audit_store).read()
    seen = log[log["page"] == "health"][["user", "action"]].values.tolist()
    assert seen == [["ann", "denied"], ["alice", "view"]]  # newest first
