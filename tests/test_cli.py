"""The ``analytics`` command: init-db, seed and export on the real PostgreSQL, and
every bad input answered with a message and exit code 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import inspect

from analytics_core import schema
from analytics_core.cli import main
from analytics_core.config import load_config
from analytics_core.page_data import PAGES
from analytics_core.rollup.schema import rollup_exists
from analytics_core.sources.database import make_engine
from tests.analytics_core import expected
from tests.fixtures import Dataset

DAYS = 3


@pytest.fixture(scope="module", params=["raw tables", "rollups"])
def seeded_pg(new_pg_database, request) -> str:
    """A seeded database read raw, and the same rolled up: the exports (rollups + the
    raw tail, by default once a rollup has run) must equal the same pandas figures."""
    url = new_pg_database()
    assert main(["seed", "--db", url, "--days", str(DAYS), "--scale", "0.3", "--seed", "5"]) == 0
    if request.param == "rollups":
        assert main(["rollup", "--db", url]) == 0
    return url


def read_dataset(url: str) -> Dataset:
    """The raw tables, read back for the test's own pandas computation."""
    engine = make_engine(url)
    frames = {}
    with engine.connect() as conn:
        for table in schema.TABLES:
            frame = pd.read_sql(table.select(), conn)
            for col in frame.columns:
                if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                    frame[col] = frame[col].dt.tz_convert("UTC")
            frames[table.name] = frame
    engine.dispose()
    return Dataset(**frames)


def export(url: str, page: str, fmt: str, *extra: str, capsys=None) -> tuple[int, str]:
    argv = ["export", "--db", url, "--page", page, "--format", fmt, "--out", "-", *extra]
    code = main(argv)
    out = capsys.readouterr().out if capsys else ""
    return code, out


def test_init_db_creates_the_contract(new_pg_database, capsys):
    url = new_pg_database()
    assert main(["init-db", "--db", url]) == 0
    engine = make_engine(url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert names == {t.name for t in schema.TABLES}
    assert "tables ready" in capsys.readouterr().out


def test_export_of_every_page_matches_the_kpi_definitions(seeded_pg, capsys):
    data = read_dataset(seeded_pg)
    last = data.api_requests.ts.max()
    end = last.floor("h")  # in the past: throughput counts only elapsed time
    start = end - pd.Timedelta(days=1)  # so the previous day is inside the stored history
    costs = load_config().costs
    want = {
        **expected.detection(data, start, end),
        **expected.performance(data, start, end),
        **expected.business(data, start, end, costs),
    }
    want["avg_response_ms"] = want["avg_ms"]
    before = start - (end - start)
    want_prev = {
        **expected.detection(data, before, start),
        **expected.performance(data, before, start),
        **expected.business(data, before, start, costs),
    }
    want_prev["avg_response_ms"] = want_prev["avg_ms"]
    for page in PAGES:
        code, out = export(
            seeded_pg,
            page,
            "json",
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            capsys=capsys,
        )
        assert code == 0
        doc = json.loads(out)
        assert doc["page"] == page
        assert doc["kpis"], page
        sketch = 0.01 if rollup_exists(make_engine(seeded_pg)) else None
        expected.assert_kpis_equal(doc["kpis"], {k: want[k] for k in doc["kpis"]}, 1e-9, sketch)
        # Every KPI the page exports has its previous-period value checked: none is skipped.
        assert set(doc["previous"]) == set(doc["kpis"]), page
        assert any(v is not None for v in doc["previous"].values()), page
        expected.assert_kpis_equal(
            doc["previous"], {k: want_prev[k] for k in doc["previous"]}, 1e-9, sketch
        )


def test_previous_period_before_the_data_is_not_compared(seeded_pg, capsys):
    data = read_dataset(seeded_pg)
    end = data.api_requests.ts.max().floor("h")
    start = end - pd.Timedelta(days=DAYS - 0.5)  # the previous period starts before the data
    code, out = export(seeded_pg, "overview", "json", "--start", start.isoformat(),
                       "--end", end.isoformat(), capsys=capsys)  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert all(v is None for v in doc["previous"].values())
    assert all(not c["significant"] and c["p_value"] is None for c in doc["changes"].values())
    assert doc["kpis"]["total_detections"] > 0


def test_csv_export_matches_json(seeded_pg, capsys):
    data = read_dataset(seeded_pg)
    # Whole months around the data (a range within dashboard.max_range_days).
    first = data.api_requests.ts.min().tz_convert("UTC").normalize().replace(day=1)
    start, end = first - pd.DateOffset(months=1), first + pd.DateOffset(months=3)
    args = ("--start", f"{start:%Y-%m-%d}", "--end", f"{end:%Y-%m-%d}", "--granularity", "month")
    _, js = export(seeded_pg, "performance", "json", *args, capsys=capsys)
    code, csv = export(seeded_pg, "performance", "csv", *args, capsys=capsys)
    assert code == 0
    doc = json.loads(js)
    table = pd.read_csv(io.StringIO(csv), comment="#")
    kpis = table[table.table == "kpis"].set_index("kpi")["value"].astype(float)
    for key, value in doc["kpis"].items():
        assert kpis[key] == pytest.approx(value)
    assert (table.table == "by_endpoint").sum() == len(doc["series"]["by_endpoint"])


def test_tenant_filter_and_date_only_in_zone(seeded_pg, capsys, tmp_path):
    data = read_dataset(seeded_pg)
    tenant = data.tenants.tenant_id.iloc[0]
    out = tmp_path / "export.json"
    today = datetime.now(UTC).date()
    code = main(
        [
            "export", "--db", seeded_pg, "--page", "business", "--format", "json",
            "--start", (today - timedelta(days=1)).isoformat(), "--end", today.isoformat(),
            "--tz", "America/New_York", "--tenant", tenant, "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    start = pd.Timestamp(today - timedelta(days=1)).tz_localize("America/New_York")
    end = pd.Timestamp(today).tz_localize("America/New_York")
    assert doc["filters"]["start"] == start.tz_convert("UTC").isoformat()
    assert doc["filters"]["tenants"] == [tenant]
    costs = load_config().costs
    expected.assert_kpis_equal(
        doc["kpis"], expected.business(data, start, end, costs, tenants=(tenant,))
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-03-05", "--end", "2026-03-01"], "empty or reversed"),
        (["--start", "2026-03-05", "--end", "2026-03-05"], "empty or reversed"),
        (["--start", "last tuesday", "--end", "2026-03-01"], "--start 'last tuesday'"),
        (["--start", "2026-03-01", "--end", "2026-03-02", "--tz", "Mars/Base"], "Mars/Base"),
        (["--start", "2026-03-01", "--end", "2026-03-02", "--tenant", "t_nope"], "unknown tenant"),
        (["--start", "2026-03-01"], "give --start and --end"),
        (["--range", "7d", "--start", "2026-03-01"], "either --range"),
        (["--start", "0001-01-01", "--end", "0001-02-01"], "too early"),
        (["--range", "7d", "--tz", "localtime"], "'localtime' is not an IANA zone"),
    ],
)
def test_bad_export_input_exits_2_with_a_message(seeded_pg, capsys, args, message):
    code = main(["export", "--db", seeded_pg, "--page", "overview", "--format", "json"]
                + ["--out", "-", *args])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--page", "sales", "--format", "json"], "invalid choice: 'sales'"),
        (["--page", "overview", "--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_unknown_page_or_format(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "analytics_core.cli", "export", *args, "--range", "7d",
         "--out", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_database_exits_3_naming_it(capsys):
    code = main(
        ["export", "--db", "postgresql://postgres@127.0.0.1:9/none", "--page", "overview",
         "--format", "json", "--range", "24h", "--out", "-"]
    )  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert "primary database" in err and "127.0.0.1:9" in err


def test_bad_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "c.yml"
    bad.write_text("costs:\n  compute_hour: free\n")
    assert main(["init-db", "--config", str(bad), "--db", "duckdb:///:memory:"]) == 2
    assert "costs.compute_hour" in capsys.readouterr().err


def test_seed_refuses_a_filled_database(seeded_pg, capsys):
    assert main(["seed", "--db", seeded_pg, "--days", "1"]) == 2
    assert "already" in capsys.readouterr().err.lower()
    assert main(["seed", "--db", "duckdb:///" + "/nonexistent/x.duckdb", "--days", "-1"]) == 2


def test_demo_creates_then_tops_up_only_the_demo_file(tmp_path, monkeypatch, capsys):
    from analytics_core.catalog import dimensions
    from analytics_core.demo import seed

    demo = tmp_path / "demo.duckdb"
    monkeypatch.setenv("ANALYTICS_DEMO_DB", str(demo))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/never-touched")
    stale_end = datetime.now(UTC) - timedelta(hours=5)
    writer = make_engine(f"duckdb:///{demo}", read_only=False)
    seed(writer, days=2, scale=0.2, end=stale_end)
    writer.dispose()

    assert main(["demo"]) == 0
    assert "topped up" in capsys.readouterr().out
    engine = make_engine(f"duckdb:///{demo}")
    last = dimensions(engine).last_event
    engine.dispose()
    assert last is not None and datetime.now(UTC) - last < timedelta(minutes=30)
    assert main(["demo"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_read_only_engines_refuse_writes(seeded_pg, duckdb_url):
    from sqlalchemy import delete

    for url in (seeded_pg, duckdb_url):
        engine = make_engine(url)
        with pytest.raises(Exception, match="(?i)read.only"), engine.begin() as conn:
            conn.execute(delete(schema.tenants))
        engine.dispose()


def test_serial_reads_turn_parallel_workers_off_for_their_own_statement_only(seeded_pg):
    from sqlalchemy import text

    from analytics_core.sources.database import read_frame

    engine = make_engine(seeded_pg)
    setting = text("SELECT current_setting('max_parallel_workers_per_gather') AS workers")
    try:
        default = read_frame(engine, setting)["workers"].item()
        assert default != "0"  # the server's default, so the check below can fail
        assert read_frame(engine, setting, serial=True)["workers"].item() == "0"
        # The pooled connection goes back as it was: the next raw scan may use workers.
        assert read_frame(engine, setting)["workers"].item() == default
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("mysql://user@host/db", 2, "'mysql' is not supported"),
        ("not a url", 2, "is not a database URL"),
        ("postgresql://postgres@127.0.0.1:9/none", 3, "127.0.0.1:9"),
    ],
)
@pytest.mark.parametrize("command", [["init-db"], ["seed", "--days", "1"]])
def test_writing_commands_name_a_bad_or_unreachable_database(capsys, url, code, message, command):
    assert main([*command, "--db", url]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["--address", "999.1.1.1"], 2, "--address '999.1.1.1'"),
        (["--port", "0"], 2, "--port must be between 1 and 65535"),
        (["--db", "mysql://x@h/db"], 2, "not supported"),
        (["--db", "postgresql://nobody@127.0.0.1:1/x"], 3, "unavailable"),
        (["--db", "duckdb:////nonexistent/dir/x.duckdb"], 3, "does not exist"),
    ],
)
def test_serve_refuses_bad_input_before_starting(argv, code, says, capsys):
    assert main(["serve", *argv]) == code
    assert says in capsys.readouterr().err


def test_serve_refuses_a_port_in_use(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--db", "duckdb:////x.duckdb"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_seed_names_a_folder_it_cannot_create(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["seed", "--db", f"duckdb:///{blocker}/sub/x.duckdb", "--days", "1"]) == 2
    assert "cannot create the folder" in capsys.readouterr().err
