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
import tempfile
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
    if port_answers(port):
        yield PostgresServer(make_url(f"postgresql+psycopg://postgres@{LOOPBACK}:{port}/postgres"))
        return
    with started_postgres() as server:
        yield server


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
    executable = pg_ctl
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root: run them as the packaged user.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            server_missing("PostgreSQL", "running as root and there is no 'postgres' user")
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        wrapper = Path(tempfile.mkdtemp(prefix="analytics-test-pgctl-")) / "pg_ctl"
        wrapper.write_text(f'#!/bin/sh\nexec runuser -u postgres -- "{pg_ctl}" "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
        wrapper.parent.chmod(0o755)
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
        # pg_ctl exits once the server is up: the server's own pid is in its data dir.
        pid = int((workdir / "data" / "postmaster.pid").read_text().split()[0])
        yield PostgresServer(
            make_url(f"postgresql+psycopg://postgres@{LOOPBACK}:{port}/postgres"), pid
        )
    finally:
        executor.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if executable != pg_ctl:
            shutil.rmtree(Path(executable).parent, ignore_errors=True)


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
    if port_answers(port):
        yield RedisServer(f"redis://{LOOPBACK}:{port}/0")
        return
    with started_redis() as server:
        yield server


@contextmanager
def started_redis() -> Iterator[RedisServer]:
    """A throwaway redis-server on a free loopback port that keeps nothing on disk."""
    from pytest_redis.executor import RedisExecutor

    binary = shutil.which("redis-server")
    if binary is None:
        server_missing(
            "Redis is not running and redis-server is not installed",
            "the tests cannot start one",
            "apt-get install -y redis-server",
        )
    workdir = Path(tempfile.mkdtemp(prefix="analytics-test-redis-"))
    port = port_for.select_random()
    executor = RedisExecutor(
        binary,
        databases=16,
        redis_timeout=30,
        loglevel="warning",
        host=LOOPBACK,
        port=port,
        datadir=workdir,
    )
    try:
        executor.start()
        pid = executor.process.pid if executor.process else None
        yield RedisServer(f"redis://{LOOPBACK}:{port}/0", pid)
    finally:
        executor.stop()
        shutil.rmtree(workdir, ignore_errors=True)
