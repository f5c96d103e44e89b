"""The warm worker process for the detectors' arithmetic (analytics_core.runtime)."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics_core import runtime
from analytics_core.insights.trends import detect_trend


@pytest.fixture
def worker():
    runtime.start_worker()
    _wait_until_warm()
    yield
    runtime.stop_worker()


def _wait_until_warm(seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while runtime.offload(os.getpid).result() == os.getpid():
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)


def _series(seed: int) -> tuple[pd.Series, pd.Series]:
    days = pd.Series(pd.date_range(datetime(2026, 5, 1, tzinfo=UTC), periods=90, freq="D"))
    noise = np.random.default_rng(seed).normal(0.0, 3.0, len(days))
    return days, pd.Series(100.0 + 0.4 * np.arange(len(days)) + noise)


def test_without_a_started_worker_the_call_runs_here_at_once():
    runtime.stop_worker()  # the app's, if an app test in this process started it
    future = runtime.offload(os.getpid)
    assert future.done()
    assert future.result() == os.getpid()


def test_the_worker_computes_what_this_process_computes(worker):
    days, values = _series(7)
    remote = runtime.offload(detect_trend, days, values, 0.05)
    assert runtime.offload(os.getpid).result() != os.getpid()
    assert remote.result() == detect_trend(days, values, 0.05)
    assert remote.result().significant  # a real trend: the comparison checks numbers


def test_an_error_in_the_worker_is_raised_by_result(worker):
    with pytest.raises(ValueError, match="invalid literal"):
        runtime.offload(int, "not a number").result()


def test_a_killed_worker_is_replaced_and_no_call_is_lost(worker):
    days, values = _series(11)
    expected = detect_trend(days, values, 0.05)
    pid = runtime.offload(os.getpid).result()
    os.kill(pid, signal.SIGKILL)
    # Calls made while it dies or restarts are answered here; none fails.
    deadline = time.monotonic() + 60
    while True:
        assert runtime.offload(detect_trend, days, values, 0.05).result() == expected
        answered_by = runtime.offload(os.getpid).result()
        if answered_by not in (pid, os.getpid()):
            break  # a fresh worker answers
        assert time.monotonic() < deadline, "no fresh worker"
        time.sleep(0.1)


def test_the_feed_with_the_worker_equals_the_feed_without(tmp_path, worker):
    from analytics_core.config import load_config
    from analytics_core.demo import seed
    from analytics_core.filters import make_filters
    from analytics_core.page_data import build_page
    from analytics_core.sources.database import make_engine

    end = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    writer = make_engine(url, read_only=False)
    seed(writer, days=60, scale=0.3, end=end)
    writer.dispose()
    config = load_config()
    # A loose alpha, so that trend stories (the worker's part) are told.
    config = config.model_copy(
        update={"insights": config.insights.model_copy(update={"trend_alpha": 0.5})}
    )
    filters = make_filters(end - timedelta(days=30), end)
    engine = make_engine(url)
    try:
        with_worker = build_page(engine, config, "insights", filters, now=end).insights
        runtime.stop_worker()
        inline = build_page(engine, config, "insights", filters, now=end).insights
    finally:
        engine.dispose()
    assert any(i.kind == "trend" for i in with_worker)
    assert [(i.kind, i.kpi, i.message, i.details) for i in with_worker] == [
        (i.kind, i.kpi, i.message, i.details) for i in inline
    ]


def test_a_script_without_a_main_guard_is_not_run_again_by_the_worker(tmp_path):
    # Under Streamlit, __main__ is the app's script, with no ``if __name__ == "__main__"``.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(runtime.__file__).resolve().parents[1]
    script = tmp_path / "app_script.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from analytics_core import runtime\n"
        "print('script ran', flush=True)\n"
        "runtime.start_worker()\n"
        "deadline = time.monotonic() + 60\n"
        "while runtime.offload(os.getpid).result() == os.getpid():\n"
        "    assert time.monotonic() < deadline\n"
        "    time.sleep(0.1)\n"
        "print('answered by another process', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["script ran", "answered by another process"]


def _warm_up_that_fails() -> None:
    raise ImportError("a module the worker needs is missing")


def test_a_worker_that_cannot_start_is_given_up_and_calls_run_here(monkeypatch, caplog):
    runtime.stop_worker()
    monkeypatch.setattr(runtime, "_warm_up", _warm_up_that_fails)
    days, values = _series(3)
    expected = detect_trend(days, values, 0.05)
    runtime.start_worker()
    try:
        deadline = time.monotonic() + 60
        while runtime._failed_starts < runtime.MAX_FAILED_STARTS:
            assert runtime.offload(detect_trend, days, values, 0.05).result() == expected
            assert time.monotonic() < deadline, "never given up"
            time.sleep(0.05)
        assert runtime._worker is None
        assert runtime.offload(os.getpid).result() == os.getpid()
        runtime.start_worker()  # given up: starting again is a no-op
        assert runtime._worker is None
    finally:
        runtime.stop_worker()
    assert "did not start" in caplog.text and "missing" in caplog.text
