"""The package as a user installs it: a wheel in a fresh venv, every command run from an
empty directory with no config file, no ANALYTICS_CONFIG and no DATABASE_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import port_for
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The venv's bin directory, with the project's wheel (and only it) installed."""
    work = tmp_path_factory.mktemp("wheel")
    # sdist first, then the wheel from the unpacked sdist: a clean build, never one that
    # reuses the checkout's build/ folder (which can keep files deleted since).
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=work,
    )
    (wheel,) = (work / "dist").glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    bin_dir = work / "venv" / "bin"
    subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", str(wheel)], check=True, capture_output=True
    )
    return bin_dir


@pytest.fixture
def user_env(tmp_path) -> dict[str, str]:
    """A user with an empty home and working directory: nothing of the checkout in reach."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ANALYTICS_CONFIG", "DATABASE_URL", "ANALYTICS_DEMO_DB", "PYTHONPATH")
    }
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"))
    return env


def run(bin_dir: Path, env, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / "analytics"), *args], env=env, cwd=cwd, capture_output=True, text=True
    )


def test_help_and_detect_anomalies(installed, user_env, tmp_path):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    assert run(installed, user_env, cwd, "--help").returncode == 0
    times = pd.date_range("2026-01-01", periods=300, freq="h", tz="UTC")
    values = 100 + 10 * np.sin(np.arange(300) * 2 * np.pi / 24)
    values[250] = 400  # one obvious spike after the detector has learnt
    pd.DataFrame({"timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": values}).to_csv(
        cwd / "series.csv", index=False
    )
    done = run(
        installed, user_env, cwd, "detect-anomalies", "--input", "series.csv", "--output", "o.csv"
    )
    assert done.returncode == 0, done.stderr
    scored = pd.read_csv(cwd / "o.csv")
    assert len(scored) == 300
    assert scored.loc[scored["is_anomaly"] == 1].index.tolist() == [250]
    assert not (cwd / "config").exists()  # nothing written beside the user's files


def test_seed_export_and_demo(installed, user_env, tmp_path):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    db = f"duckdb:///{tmp_path / 'data.duckdb'}"
    seeded = run(installed, user_env, cwd, "seed", "--db", db, "--days", "7", "--scale", "0.05")
    assert seeded.returncode == 0, seeded.stderr
    export = run(
        installed, user_env, cwd, "export", "--db", db, "--page", "performance",
        "--range", "30d", "--format", "json", "--out", "p.json",  # the 7 seeded days
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    doc = json.loads((cwd / "p.json").read_text())
    with duckdb.connect(str(tmp_path / "data.duckdb"), read_only=True) as conn:
        stored = conn.execute("select count(*) from api_requests").fetchone()[0]
    assert stored > 0 and doc["kpis"]["requests"] == stored

    demo = run(installed, user_env, cwd, "demo")
    assert demo.returncode == 0, demo.stderr
    demo_file = Path(user_env["XDG_DATA_HOME"]) / "anomaly-analytics" / "demo.duckdb"
    assert demo_file.exists(), demo.stdout
    assert not list(installed.parent.rglob("*.duckdb"))  # never inside the venv


def test_serve_prepares_the_demo_and_answers_health(installed, user_env, tmp_path):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    port = port_for.select_random()
    server = subprocess.Popen(
        [str(installed / "analytics"), "serve", "--port", str(port)],
        env=user_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as r:
                    health = r.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        assert health == "ok", server.stdout.read1().decode() if server.stdout else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as page:
            assert page.status == 200
        # With no database configured it serves the demo, made in the per-user data dir.
        assert (Path(user_env["XDG_DATA_HOME"]) / "anomaly-analytics" / "demo.duckdb").exists()
    finally:
        server.terminate()  # the pid is Streamlit's own: serve exec'd into it
        server.wait(timeout=20)
