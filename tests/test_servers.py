"""The test-server layer itself: with nothing listening where it looks, it starts a real
server of its own, which works and is gone (by its pid) when the block ends."""

from __future__ import annotations

from pathlib import Path

import port_for
import redis
from sqlalchemy import create_engine, make_url, text

from analytics_core.sources.database import make_engine
from tests.servers import postgres_server, redis_server


def closed_port() -> int:
    return port_for.select_random()  # free, so nothing listens on it


def running(pid: int) -> bool:
    """Alive and not a zombie (a daemon's exit is reaped by whoever adopted it, later)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_postgres_is_started_when_its_port_is_closed(monkeypatch):
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("TEST_PG_PORT", str(closed_port()))
    with postgres_server() as server:
        assert server.started_pid is not None and running(server.started_pid)
        admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text('CREATE DATABASE "probe"'))
        admin.dispose()
        engine = create_engine(
            server.url_for("probe").replace("postgresql:", "postgresql+psycopg:")
        )
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x int)"))
            conn.execute(text("INSERT INTO t VALUES (2), (40)"))
            assert conn.execute(text("SELECT sum(x) FROM t")).scalar() == 42
        engine.dispose()
        pid = server.started_pid
    assert not running(pid)


def test_redis_is_started_when_its_port_is_closed(monkeypatch):
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    monkeypatch.setenv("TEST_REDIS_PORT", str(closed_port()))
    with redis_server() as server:
        assert server.started_pid is not None and running(server.started_pid)
        client = redis.Redis.from_url(server.url)
        client.set("answer", 42)
        assert int(client.get("answer")) == 42
        client.close()
        pid = server.started_pid
    assert not running(pid)


def test_a_configured_url_wins(monkeypatch, redis_url):
    monkeypatch.setenv("TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("TEST_REDIS_PORT", str(closed_port()))
    with redis_server() as server:
        assert server.url == redis_url and server.started_pid is None
        assert redis.Redis.from_url(server.url).ping()


def test_a_port_that_answers_but_is_not_usable_gets_a_server_of_our_own(monkeypatch, redis_url):
    """E.g. a stock cluster that wants a password: the tests start their own, not skip."""
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("TEST_PG_PORT", str(make_url(redis_url).port))  # Redis, not PostgreSQL
    with postgres_server() as server:
        assert server.started_pid is not None
        assert server.admin_url.port != make_url(redis_url).port
        engine = make_engine(server.url_for("postgres"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 6 * 7")).scalar() == 42
        engine.dispose()
