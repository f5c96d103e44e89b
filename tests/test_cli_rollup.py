"""``analytics rollup``: one run on the real PostgreSQL fills the rollup tables exactly,
bad flags exit 2 naming them, an unreachable database exits 3, ``--every`` keeps going
through failed runs until a signal, and ``analytics demo`` leaves a rolled-up demo file."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from analytics_core.cli import main
from analytics_core.rollup.refresh import floor_hour
from analytics_core.rollup.schema import rollup_exists, watermark
from analytics_core.sources.database import make_engine
from tests.analytics_core.test_rollup_refresh import assert_rollups_equal
from tests.fixtures import load_dataset, make_dataset

UNREACHABLE = "postgresql://postgres@127.0.0.1:9/none"


@pytest.fixture(scope="module")
def data():
    return make_dataset(seed=3)


@pytest.fixture
def loaded_pg(new_pg_database, data) -> str:
    url = new_pg_database()
    writer = make_engine(url, read_only=False)
    load_dataset(writer, data)
    writer.dispose()
    return url


def test_rollup_once_fills_the_tables(loaded_pg, data, capsys):
    before = datetime.now(UTC)
    assert main(["rollup", "--db", loaded_pg]) == 0
    out = capsys.readouterr().out
    assert "watermark none ->" in out and "rows written" in out
    reader = make_engine(loaded_pg)  # the app's read-only engine sees the result
    try:
        wm = watermark(reader)
        assert wm is not None and floor_hour(before) <= wm <= floor_hour(datetime.now(UTC))
        assert_rollups_equal(reader, data, wm)
    finally:
        reader.dispose()
    # Again, with a late window over old rows only: nothing to write. The window stays
    # inside today (UTC): one reaching into yesterday closes that day, and its user
    # bitmaps of the year are rewritten (rows written, rightly), which is another test.
    late = min(90, 60 * floor_hour(datetime.now(UTC)).hour)
    assert main(["rollup", "--db", loaded_pg, "--late-window", f"{late}m"]) == 0
    assert "0 rows written" in capsys.readouterr().out  # the fixture's rows are all old


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--late-window", "1x"], "--late-window '1x' is not a duration"),
        (["--late-window=-1h"], "--late-window '-1h' is not a duration"),
        (["--every", "soon"], "--every 'soon' is not a duration"),
        (["--every", "0s"], "--every '0s' must be longer than 0s"),
    ],
)
def test_bad_flags_exit_2_naming_them(flags, says, capsys):
    assert main(["rollup", "--db", UNREACHABLE, *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_unreachable_database_exits_3(capsys):
    assert main(["rollup", "--db", UNREACHABLE]) == 3
    err = capsys.readouterr().err
    assert "primary database" in err and "127.0.0.1:9" in err


def test_missing_duckdb_file_is_named_not_created(tmp_path, capsys):
    path = tmp_path / "absent.duckdb"
    assert main(["rollup", "--db", f"duckdb:///{path}"]) == 3
    assert "does not exist" in capsys.readouterr().err and not path.exists()


def test_database_without_the_contract_exits_2(new_pg_database, capsys):
    assert main(["rollup", "--db", new_pg_database()]) == 2
    assert "init-db" in capsys.readouterr().err


def _lines(proc: subprocess.Popen, n: int, timeout: float = 60.0) -> list[str]:
    """The first ``n`` lines the process writes to stderr+stdout (merged)."""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        if selector.select(timeout=1.0):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    return lines


def _loop(url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "analytics_core.cli", "rollup", "--db", url, "--every", "1s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_every_runs_until_a_signal(loaded_pg, stop):
    proc = _loop(loaded_pg)
    try:
        lines = _lines(proc, 2)
        assert len(lines) == 2 and all(line.startswith("rollup ") for line in lines), lines
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_every_survives_failed_runs(new_pg_database, data):
    """Runs failing (database down) are logged and retried, not fatal; once the database
    is there the next run succeeds."""
    url = new_pg_database()  # no contract tables yet: every run fails
    proc = _loop(url)
    try:
        failures = _lines(proc, 2)
        assert len(failures) == 2 and all("run failed" in line for line in failures), failures
        writer = make_engine(url, read_only=False)
        load_dataset(writer, data)
        writer.dispose()
        for _ in range(10):
            line = _lines(proc, 1)[0]
            if line.startswith("rollup "):
                break
        assert line.startswith("rollup ") and "rows written" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_demo_is_rolled_up(tmp_path, monkeypatch, capsys):
    from analytics_core.demo import seed

    demo = tmp_path / "demo.duckdb"
    monkeypatch.setenv("ANALYTICS_DEMO_DB", str(demo))
    writer = make_engine(f"duckdb:///{demo}", read_only=False)
    seed(writer, days=2, scale=0.2, end=datetime.now(UTC) - timedelta(hours=5))
    writer.dispose()
    assert main(["demo"]) == 0
    assert "rolled up demo database" in capsys.readouterr().out
    reader = make_engine(f"duckdb:///{demo}")
    try:
        assert rollup_exists(reader)
        assert watermark(reader) >= floor_hour(datetime.now(UTC)) - timedelta(hours=1)
    finally:
        reader.dispose()
