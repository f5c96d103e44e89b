"""The servers the tests talk to: real ones, found or started, never faked.

For each kind, in order: the URL in ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` when set;
else the server on its default loopback port when one answers (the port can be moved
with ``TEST_PG_PORT`` / ``TEST_REDIS_PORT``); else a throwaway server started from the
installed binaries on a free loopback port with temporary storage (``pytest-postgresql``
and ``pytest-redis`` executors), stopped by its own pid at the end. A missing binary
skips with the command that installs it, and fails under ``CI=true``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import port_for
import pytest
from sqlalchemy import URL, make_url

IN_CI = os.environ.get("CI", "").lower() == "true"
LOOPBACK = "127.0.0.1"


def server_missing(what: str, detail: str, install: str | None = None) -> None:
    """Skip loudly on a laptop; fail in CI, where every server must be available."""
    message = f"{what}: {detail}"
    if install:
        message += f". Install it with: {install}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}")


def port_answers(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _env_port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


# --- PostgreSQL -------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server with a superuser that may create databases."""

    admin_url: URL  # the maintenance database, as a superuser
    started_pid: int | None = None  # set when the tests started it themselves

    def url_for(self, database: str) -> str:
        return self.admin_url.set(drivername="postgresql", database=database).render_as_string(
            hide_password=False
        )


def _pg_ctl() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return found
    # Debian keeps the server binaries off PATH, one folder per major version.
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return versions[-1] if versions else None


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield PostgresServer(make_url(url).set(drivername="postgresql+psycopg"))
        return
    port = _env_port("TEST_PG_PORT", 5432)
    found = make_url(f"postgresql+psycopg://postgres@{LOOPBACK}:{port}/postgres")
    if port_answers(port):
        if _postgres_usable(found):
            yield PostgresServer(found)
            return
        # e.g. a stock cluster that wants a password: start our own rather than skip.
        print(f"PostgreSQL on port {port} refuses trust login as postgres; starting one")
    with started_postgres() as server:
        yield server


def _postgres_usable(url: URL) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means we cannot use it
        return False
    finally:
        engine.dispose()


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def started_postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL on a free loopback port, trust auth, data in a temp dir."""
    from pytest_postgresql.executors import PostgreSQLExecutor

    pg_ctl = _pg_ctl()
    if pg_ctl is None:
        server_missing(
            "PostgreSQL is not running and its binaries (pg_ctl) are not installed",
            "the tests cannot start one",
            "apt-get install -y postgresql",
        )
    workdir = Path(tempfile.mkdtemp(prefix="analytics-test-pg-"))
    wrapper_dir: Path | None = None
    try:
        executable = pg_ctl
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root: run them as the packaged user.
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                server_missing("PostgreSQL", "running as root and there is no 'postgres' user")
            os.chown(workdir, owner.pw_uid, owner.pw_gid)
            wrapper_dir = Path(tempfile.mkdtemp(prefix="analytics-test-pgctl-"))
            wrapper_dir.chmod(0o755)
            wrapper = wrapper_dir / "pg_ctl"
            wrapper.write_text(f'#!/bin/sh\nexec runuser -u postgres -- "{pg_ctl}" "$@"\n')
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
            executable = str(wrapper)
        port = port_for.select_random()
        executor = PostgreSQLExecutor(
            executable=executable,
            host=LOOPBACK,
            port=port,
            datadir=str(workdir / "data"),
            unixsocketdir=str(workdir),
            logfile=str(workdir / "postgresql.log"),
            startparams="-w",
            dbname="postgres",
            user="postgres",
        )
        try:
            executor.start()
        except Exception as exc:  # noqa: BLE001 - report it with the server's own log
            server_missing(
                "PostgreSQL",
                f"could not start ({exc}); log:\n{_log_tail(workdir / 'postgresql.log')}",
            )
        try:
            _wait_accepting(port)
            # pg_ctl exits once the server is up: the server's own pid is in its data dir.
            pid = int((workdir / "data" / "postmaster.pid").read_text().split()[0])
            yield PostgresServer(
                make_url(f"postgresql+psycopg://postgres@{LOOPBACK}:{port}/postgres"), pid
            )
        finally:
            executor.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if wrapper_dir is not None:
            shutil.rmtree(wrapper_dir, ignore_errors=True)


def _wait_accepting(port: int, seconds: float = 60.0) -> None:
    """Until the new server takes a real session: on a loaded machine the executor can
    return while PostgreSQL still answers "the database system is starting up"."""
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(
                host=LOOPBACK, port=port, user="postgres", dbname="postgres", connect_timeout=2
            ).close()
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                server_missing("PostgreSQL", f"started but never accepted a session ({exc})")
            time.sleep(0.2)


@contextmanager
def _running(executor, what: str, binary: str) -> Iterator[int | None]:
    """A mirakuru executor started (a failure named, then skipped or failed), its pid,
    stopped at the end by that pid."""
    try:
        executor.start()
    except Exception as exc:  # noqa: BLE001 - name it, then skip or fail
        server_missing(what, f"could not start {binary} ({exc})")
    try:
        yield executor.process.pid if executor.process else None
    finally:
        executor.stop()


# --- Redis ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    url: str
    started_pid: int | None = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield RedisServer(url)
        return
    port = _env_port("TEST_REDIS_PORT", 6379)
    found = f"redis://{LOOPBACK}:{port}/0"
    if port_answers(port):
        if _redis_usable(found):
            yield RedisServer(found)
            return
        print(f"the server on port {port} does not answer Redis PING; starting one")
    with started_redis() as server:
        yield server


def _redis_usable(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def started_redis(port: int | None = None) -> Iterator[RedisServer]:
    """A throwaway redis-server on ``port`` (default: a free loopback port) that keeps
    nothing on disk."""
    from pytest_redis.executor import RedisExecutor

    binary = shutil.which("redis-server")
    if binary is None:
        server_missing(
            "Redis is not running and redis-server is not installed",
            "the tests cannot start one",
            "apt-get install -y redis-server",
        )
    workdir = Path(tempfile.mkdtemp(prefix="analytics-test-redis-"))
    port = port or port_for.select_random()
    executor = RedisExecutor(
        binary,
        databases=16,
        redis_timeout=30,
        loglevel="warning",
        host=LOOPBACK,
        port=port,
        datadir=workdir,
        save='""',  # the default "" omits --save, and redis-server then snapshots on exit
    )
    try:
        with _running(executor, "Redis", "redis-server") as pid:
            yield RedisServer(f"redis://{LOOPBACK}:{port}/0", pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- Prometheus -------------------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    started_pid: int | None = None


@contextmanager
def started_prometheus(openmetrics: bytes, port: int | None = None) -> Iterator[PrometheusServer]:
    """A throwaway Prometheus on a free loopback port serving exactly the history in
    ``openmetrics``: backfilled with ``promtool tsdb create-blocks-from openmetrics`` into
    temporary storage, ready once ``/-/ready`` answers, stopped by its own pid. It scrapes
    nothing, and keeps every block whatever its age."""
    from mirakuru import HTTPExecutor

    binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if binary is None or promtool is None:
        server_missing(
            "prometheus or promtool is not installed",
            "the Prometheus tests cannot start a server",
            "apt-get install -y prometheus",
        )
    workdir = Path(tempfile.mkdtemp(prefix="analytics-test-prometheus-"))
    try:
        history, storage = workdir / "history.om", workdir / "data"
        history.write_bytes(openmetrics)
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
             str(history), str(storage)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"promtool could not backfill the history: {done.stderr[-2000:]}")
        config = workdir / "prometheus.yml"
        config.write_text("global: {}\n", encoding="utf-8")
        port = port or port_for.select_random()
        url = f"http://{LOOPBACK}:{port}"
        executor = HTTPExecutor(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
             f"--web.listen-address={LOOPBACK}:{port}", "--storage.tsdb.retention.time=100y",
             "--log.level=warn"],
            url=f"{url}/-/ready",
            timeout=60,
        )  # fmt: skip
        with _running(executor, "Prometheus", "prometheus") as pid:
            yield PrometheusServer(url, pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- Chromium (the browser tests) -------------------------------------------------------


def chromium_binary() -> str:
    """Debian's ``chromium``, which Playwright drives as ``executable_path`` in the browser
    tests (``tests/browser``): nothing downloads a browser build. Missing: skipped with
    the install command, a failure under ``CI=true``."""
    found = shutil.which("chromium")
    if found is None and os.access("/usr/bin/chromium", os.X_OK):
        found = "/usr/bin/chromium"
    if found is None:
        server_missing("Chromium", "not installed", "apt-get install -y chromium")
    return found  # type: ignore[return-value]  # server_missing does not return
