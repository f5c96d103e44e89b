"""Performance KPIs from a real Prometheus (started by the tests, backfilled with a
generated history: tests/prometheus_history.py) against the generated truth, and the
failures a caller falls back from: an unreachable URL, a server slower than the timeout
and an error answer, each with a message that says which."""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics_core.config import DataSources, Prometheus, PrometheusMetrics, load_config
from analytics_core.context import QueryContext
from analytics_core.demo.openmetrics import LATENCY_BUCKETS
from analytics_core.filters import make_filters
from analytics_core.page_data import build_page
from analytics_core.prometheus.client import PrometheusUnavailable, connect
from analytics_core.prometheus.performance import (
    QUANTILES,
    by_endpoint,
    endpoint_shares,
    kpis,
    trend,
)
from analytics_core.prometheus.promql import selector
from analytics_core.sources.areas import sources_for
from analytics_core.sources.database import make_engine
from tests import prometheus_history as gen
from tests.fixtures import load_dataset, make_dataset
from tests.servers import started_prometheus

METRICS = PrometheusMetrics()
pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def history() -> gen.History:
    return gen.build()


@pytest.fixture(scope="module")
def client(history):
    with started_prometheus(history.openmetrics) as server:
        yield connect(Prometheus(enabled=True, url=server.url))


def _ctx(start_minute: int, end_minute: int, endpoints=()) -> QueryContext:
    start = gen.START + timedelta(minutes=start_minute)
    end = gen.START + timedelta(minutes=end_minute)
    return QueryContext(make_filters(start, end, "UTC", endpoints=endpoints), now=end)


def _truth(history: gen.History, ctx: QueryContext) -> dict:
    """The KPIs of the requests counted in the range: those of the minutes ending in
    ``(start, end]`` (a sample at minute m counts minute m's requests)."""
    r = history.requests
    f = ctx.filters
    r = r[(r.ts > f.start) & (r.ts <= f.end)]
    if f.endpoints:
        r = r[r.endpoint.isin(f.endpoints)]
    errors = int((r.status == "500").sum())
    return {"requests": len(r), "errors": errors, "seconds": r.seconds.to_numpy()}


def _bucket_bounds(value: float) -> tuple[float, float]:
    upper = next(le for le in gen.BUCKETS if value <= le)
    index = gen.BUCKETS.index(upper)
    return (gen.BUCKETS[index - 1] if index else 0.0), upper


def _quantile_bounds(values: np.ndarray, q: float) -> tuple[float, float]:
    """In ms: histogram_quantile's answer lies in the histogram buckets holding the
    values around rank q(n-1) of the truth (the bucket resolution)."""
    values = np.sort(values)
    rank = q * (len(values) - 1)
    low = _bucket_bounds(values[math.floor(rank)])[0]
    high = _bucket_bounds(values[math.ceil(rank)])[1]
    return 1000 * low, 1000 * high


@pytest.mark.parametrize(
    ("start", "end", "endpoints"),
    [
        (1, gen.MINUTES, ()),  # everything: the reset, the shift and the gap inside
        (1200, 1800, ()),  # across the counter reset
        (2400, 2460, ("/api/v1/detect",)),  # one endpoint, after its latency shift
        (60, 600, (gen.ENDPOINTS[2][1],)),  # the hostile endpoint name, matched exactly
    ],
)
def test_kpis_equal_the_generated_truth(client, history, start, end, endpoints):
    ctx = _ctx(start, end, endpoints)
    got, truth = kpis(client, METRICS, ctx), _truth(history, ctx)
    assert truth["requests"] > 0
    # Samples on both edges of the range: increase() is exact, resets included.
    assert got["requests"] == truth["requests"]
    seconds = (end - start) * 60
    assert got["throughput_rps"] == pytest.approx(truth["requests"] / seconds)
    assert got["error_rate"] == pytest.approx(truth["errors"] / truth["requests"])
    assert got["availability"] == pytest.approx(1 - truth["errors"] / truth["requests"])
    assert got["avg_ms"] == pytest.approx(1000 * truth["seconds"].mean(), rel=1e-9)
    for name, q in QUANTILES.items():
        low, high = _quantile_bounds(truth["seconds"], q)
        assert low <= got[name] <= high, (name, got[name], low, high)


def test_a_hostile_label_value_neither_breaks_nor_widens_the_query(client, history):
    hostile = 'x"}) or vector(1e9) or sum(y{a="'
    ctx = _ctx(1, gen.MINUTES, (hostile, ".*"))
    assert kpis(client, METRICS, ctx)["requests"] == 0  # matches no endpoint, not all
    assert '\\"' in selector("m", {"endpoint": hostile})


def test_an_unreachable_url_says_so():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = connect(Prometheus(enabled=True, url=f"http://127.0.0.1:{port}"))
    with pytest.raises(PrometheusUnavailable, match="unreachable"):
        kpis(client, METRICS, _ctx(0, 60))


class _Stub(BaseHTTPRequestHandler):
    """A tiny loopback server: sleeps past the timeout, or answers an error."""

    delay = 0.0
    partial = False  # a successful answer with warnings (a store that did not answer)
    warning = "remote store eu-2 did not answer"

    def do_GET(self):  # noqa: N802 - the stdlib's name
        time.sleep(self.delay)
        body = b'{"status":"error","errorType":"bad_data","error":"parse error"}'
        status = 400
        if self.partial:
            body = (
                b'{"status":"success","data":{"resultType":"vector","result":'
                b'[{"metric":{},"value":[1774569660,"42"]}]},'
                b'"warnings":["' + self.warning.encode() + b'"]}'
            )
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client gave up waiting, as it should
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Stub.delay, _Stub.partial = 0.0, False
    _Stub.warning = "remote store eu-2 did not answer"


def test_a_server_slower_than_the_timeout_says_so(stub):
    _Stub.delay = 1.5
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    client = connect(Prometheus(enabled=True, url=url, timeout_seconds=0.3))
    began = time.monotonic()
    with pytest.raises(PrometheusUnavailable, match=r"did not answer within 0.3 s"):
        kpis(client, METRICS, _ctx(0, 60))
    assert time.monotonic() - began < 1.5  # one try, no retries


def test_an_error_answer_says_so(stub):
    client = connect(Prometheus(enabled=True, url=f"http://127.0.0.1:{stub.server_address[1]}"))
    with pytest.raises(PrometheusUnavailable, match="answered HTTP Status Code 400"):
        kpis(client, METRICS, _ctx(0, 60))


def test_selectors_escape_values_and_refuse_bad_names():
    assert selector("m", {"a": "x"}) == 'm{a="x"}'
    assert selector("m", {"a": ("b.c", "a|b")}) == 'm{a=~"a\\\\|b|b\\\\.c"}'
    assert selector("m", {"a": 'q"\\'}) == 'm{a="q\\"\\\\"}'
    assert selector("m", patterns={"status": "5.."}) == 'm{status=~"5.."}'
    for bad in ("1m", "m-x", "m{a}"):
        with pytest.raises(ValueError, match="metric name"):
            selector(bad)
    with pytest.raises(ValueError, match="label name"):
        selector("m", {"a-b": "x"})
    with pytest.raises(ValueError, match="no values"):
        selector("m", {"a": ()})


def test_a_config_with_a_bad_metric_name_is_refused(tmp_path):
    from analytics_core.config import ConfigError, load_config

    path = tmp_path / "bad.yml"
    path.write_text(
        "data_sources:\n  prometheus:\n    metrics:\n      requests: 'up or vector(1)'\n"
    )
    with pytest.raises(ConfigError, match="metrics.requests.*Prometheus metric name"):
        load_config(str(path))


@pytest.mark.parametrize(
    ("start", "end", "tz", "granularity"),
    [
        (60, 1500, "UTC", "hour"),  # ends on the counter reset
        (1, gen.MINUTES, "Europe/Paris", "day"),  # local days; 29 March has 23 hours
    ],
)
def test_trend_buckets_equal_the_generated_truth(client, history, start, end, tz, granularity):
    lo, hi = (gen.START + timedelta(minutes=m) for m in (start, end))
    ctx = QueryContext(make_filters(lo, hi, tz, granularity), now=hi)
    frame = trend(client, METRICS, ctx)
    starts = list(frame.bucket)
    assert len(starts) > 1 and all(b.tzinfo is not None for b in starts)
    edges = [max(pd.Timestamp(lo), b) for b in starts] + [pd.Timestamp(hi)]
    if tz == "Europe/Paris":  # the DST day is a 23-hour bucket
        assert pd.Timedelta(hours=23) in {b - a for a, b in zip(edges, edges[1:], strict=False)}
    r = history.requests
    for row, a, b in zip(frame.itertuples(), edges[:-1], edges[1:], strict=True):
        mine = r[(r.ts > a) & (r.ts <= b)]
        assert row.requests == len(mine), row.bucket
        assert row.errors == int((mine.status == "500").sum()), row.bucket
        assert row.avg_ms == pytest.approx(1000 * mine.seconds.mean(), rel=1e-9)
        values = np.sort(mine.seconds.to_numpy())
        rank = 0.95 * (len(values) - 1)
        low, high = (
            _bucket_bounds(values[math.floor(rank)])[0],
            _bucket_bounds(values[math.ceil(rank)])[1],
        )
        assert 1000 * low <= row.p95_ms <= 1000 * high, row.bucket


def test_by_endpoint_equals_the_generated_truth(client, history):
    ctx = _ctx(1200, 1800)  # across the counter reset
    frame = by_endpoint(client, METRICS, ctx)
    r = history.requests
    r = r[(r.ts > ctx.filters.start) & (r.ts <= ctx.filters.end)]
    truth = r.groupby(["endpoint", "method"])
    assert list(zip(frame.endpoint, frame.method, strict=True)) == sorted(truth.groups)
    for row in frame.itertuples():
        mine = truth.get_group((row.endpoint, row.method))
        assert row.requests == len(mine)
        assert row.errors == int((mine.status == "500").sum())
        assert row.share == pytest.approx(len(mine) / len(r))
        assert row.avg_ms == pytest.approx(1000 * mine.seconds.mean(), rel=1e-9)
        low, high = _quantile_bounds(mine.seconds.to_numpy(), 0.99)
        assert low <= row.p99_ms <= high, row.endpoint


def test_endpoint_shares_count_slow_requests_to_the_bucket_below_p95(client, history):
    ctx = _ctx(60, 600)
    p95_ms = 30.0  # between the 25 ms and 50 ms bucket bounds
    frame = endpoint_shares(client, METRICS, ctx, p95_ms)
    r = history.requests
    r = r[(r.ts > ctx.filters.start) & (r.ts <= ctx.filters.end)]
    assert list(frame.endpoint) == sorted(r.endpoint.unique())
    assert frame.request_share.sum() == pytest.approx(1.0)
    for row in frame.itertuples():
        mine = r[r.endpoint == row.endpoint]
        assert row.requests == len(mine) and row.errors == int((mine.status == "500").sum())
        assert row.total_ms == pytest.approx(1000 * mine.seconds.sum(), rel=1e-9)
        # Above the 25 ms bound: at least every request above p95, at most its bucket more.
        assert row.slow == int((mine.seconds > 0.025).sum())
        assert row.slow >= int((mine.seconds > p95_ms / 1000).sum())
    assert frame.slow.sum() > 0


# --- the source switch -------------------------------------------------------------------


def _settings(url: str, mode: str = "auto", tenant_label: str | None = None) -> DataSources:
    return DataSources(
        prometheus=Prometheus(
            enabled=True, url=url, metrics=PrometheusMetrics(tenant_label=tenant_label)
        ),
        performance_source=mode,
    )


@pytest.fixture
def demo_engine(tmp_path):
    engine = make_engine(f"duckdb:///{tmp_path / 'demo.duckdb'}", read_only=False)
    load_dataset(engine, make_dataset())
    yield engine
    engine.dispose()


def test_the_performance_page_reads_prometheus_when_it_answers(client, demo_engine):
    config = load_config().model_copy(update={"data_sources": _settings(client.url)})
    ctx = _ctx(1200, 1800)
    page = build_page(demo_engine, config, "performance", ctx.filters, ctx.now)
    assert page.kpis["requests"] == kpis(client, METRICS, ctx)["requests"] > 0
    assert f"from Prometheus ({client.url})" in page.source_note
    assert "tenant filter does not apply" in page.source_note
    # CPU, memory and disk: the resources' own figures, on the page.
    from analytics_core.prometheus.resources import resources

    for name, frame in resources(client, METRICS, ctx).items():
        pd.testing.assert_frame_equal(page.series[name], frame)
    assert set(page.series["resources_now"].component) == {*gen.COMPONENTS, "disk /"}
    dials = page.series["resources_gauges"]
    assert list(dials.label) == ["CPU usage (api)", "CPU usage (worker)", "Disk used (/)"]
    latest = page.series["resources_now"].set_index("component")
    assert list(dials.value) == pytest.approx(
        [latest.cpu_usage["api"], latest.cpu_usage["worker"], latest.disk_used_ratio["disk /"]]
    )
    sql = build_page(
        demo_engine,
        config.model_copy(update={"data_sources": _settings(client.url, "sql")}),
        "performance",
        ctx.filters,
        ctx.now,
    )
    assert sql.kpis["requests"] != page.kpis["requests"]
    assert "CPU, memory and disk from Prometheus" in sql.source_note
    assert "cpu_usage" in sql.series  # the resources, whatever the Performance source


def test_a_prometheus_that_goes_away_falls_back_to_the_log_and_comes_back(
    history, demo_engine, monkeypatch
):
    from analytics_core.prometheus import source

    monkeypatch.setattr(source, "RETRY_AFTER_SECONDS", 0.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = _settings(f"http://127.0.0.1:{port}", "prometheus")
    log_source = sources_for(demo_engine).performance
    down = source.choose(settings, log_source)
    assert down.performance is log_source and down.resources is None
    assert "unreachable" in down.note and "request log" in down.note
    with started_prometheus(history.openmetrics, port=port):
        up = source.choose(settings, log_source)
        assert up.performance.label == "Prometheus" and up.resources is not None
        assert "from Prometheus" in up.note
    down = source.choose(settings, log_source)
    assert down.performance is log_source and "unreachable" in down.note


def test_prometheus_off_means_the_log_without_a_word(demo_engine):
    log_source = sources_for(demo_engine).performance
    from analytics_core.prometheus.source import Choice, choose

    assert choose(DataSources(), log_source) == Choice(log_source, None, None)
    off = choose(DataSources(performance_source="prometheus"), log_source)
    assert off.performance is log_source and "not enabled" in off.note


def test_resources_per_bucket_and_the_latest_values_equal_the_generated_gauges(client):
    from analytics_core.prometheus.resources import latest, resources

    lo, hi = (gen.START + timedelta(minutes=m) for m in (60, 1500))
    ctx = QueryContext(make_filters(lo, hi, "Europe/Paris", "hour"), now=hi)
    frames = resources(client, METRICS, ctx)
    minutes = np.array(gen.scraped_minutes())
    times = pd.DatetimeIndex([gen.START + timedelta(minutes=int(m)) for m in minutes])
    cpu, memory, disk = frames["cpu_usage"], frames["memory_bytes"], frames["disk_used_ratio"]
    assert list(cpu.bucket) == list(disk.bucket) and len(cpu) == 24
    for i, start in enumerate(cpu.bucket):
        a, b = max(pd.Timestamp(lo), start), start + pd.Timedelta(hours=1)
        inside = minutes[(times >= a) & (times <= b)]  # a range selector holds both edges
        for component in gen.COMPONENTS:
            want = np.mean([gen.cpu_at(int(m), component) for m in inside])
            assert cpu[component][i] == pytest.approx(want, rel=1e-9)
            peak = max(gen.memory_at(int(m), component) for m in inside)
            assert memory[component][i] == pytest.approx(peak, rel=1e-12)
        assert disk.disk_used_ratio[i] == pytest.approx(
            gen.disk_used_at(int(inside.max())) / gen.DISK_SIZE, rel=1e-9
        )
        ups = [gen.up_at(int(m), n) for m in inside for n in gen.INSTANCES]
        assert frames["uptime"].uptime[i] == pytest.approx(np.mean(ups), rel=1e-9)
    assert frames["uptime"].uptime.min() < 1.0  # api-2's half hour down is seen
    now = latest(client, METRICS, hi)
    api = now[now.component == "api"].iloc[0]
    assert api.cpu_usage == pytest.approx(gen.cpu_at(1500, "api"))
    assert api.memory_bytes == pytest.approx(gen.memory_at(1500, "api"))
    assert now[now.component == "disk /"].iloc[0].disk_used_ratio == pytest.approx(
        gen.disk_used_at(1500) / gen.DISK_SIZE
    )


def _performance_page(tmp_path, monkeypatch, prometheus_url: str):
    """The app (AppTest) on a demo file with Prometheus enabled at ``prometheus_url``,
    on its Performance page over 27-29 March 2026."""
    from streamlit.testing.v1 import AppTest

    url = f"duckdb:///{tmp_path / 'app.duckdb'}"
    engine = make_engine(url, read_only=False)
    load_dataset(engine, make_dataset())
    engine.dispose()
    config = tmp_path / "analytics.yml"
    config.write_text(
        f"data_sources:\n  prometheus:\n    enabled: true\n    url: {prometheus_url}\n"
        "alerts:\n  cpu_usage: {above: 0.9, severity: warning}\n"
        "  disk_used_ratio: {above: 0.8, severity: critical}\n"
    )
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ANALYTICS_CONFIG", str(config))
    root = Path(__file__).resolve().parents[2]
    at = AppTest.from_file(str(root / "analytics_app" / "Home.py"), default_timeout=60)
    for key, value in {"range": "custom", "start": "2026-03-27", "end": "2026-03-29"}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("app_pages/performance.py").run()
    return at


def test_the_performance_page_shows_prometheus_figures_and_resources(client, tmp_path, monkeypatch):
    at = _performance_page(tmp_path, monkeypatch, client.url)
    assert not at.exception, at.exception
    assert any(f"from Prometheus ({client.url})" in c.value for c in at.caption)
    assert "Resources (Prometheus)" in [s.value for s in at.subheader]
    # Three dials (two components' CPU, the disk) and the CPU and disk charts with the
    # alert lines, among the page's charts.
    figures = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    for text in ("CPU usage (api)", "CPU usage (worker)", "Disk used (", "alert above 90.00%",
                 "alert above 80.00%"):  # fmt: skip
        assert text in figures, text
    want = kpis(client, METRICS, _ctx(0, 2 * 24 * 60 + 24 * 60))  # 27 March .. end of 29th
    shown = {m.label: m.value for m in at.metric}
    assert shown["Requests"] == f"{want['requests']:,}"


def test_analytics_export_reads_the_performance_page_from_prometheus(
    client, demo_engine, tmp_path, capsys
):
    import json

    from analytics_core.cli import main

    url = demo_engine.url.render_as_string(hide_password=False)
    demo_engine.dispose()  # DuckDB: the command opens the file read-only on its own
    config = tmp_path / "analytics.yml"
    config.write_text(f"data_sources:\n  prometheus:\n    enabled: true\n    url: {client.url}\n")
    lo, hi = (gen.START + timedelta(minutes=m) for m in (1200, 1800))
    argv = ["export", "--config", str(config), "--db", url, "--page", "performance",
            "--start", lo.isoformat(), "--end", hi.isoformat(), "--format", "json",
            "--out", "-"]  # fmt: skip
    assert main(argv) == 0
    exported = json.loads(capsys.readouterr().out)
    want = kpis(client, METRICS, _ctx(1200, 1800))
    assert exported["kpis"]["requests"] == want["requests"]
    assert exported["kpis"]["p95_ms"] == pytest.approx(want["p95_ms"])
    assert {"cpu_usage", "memory_bytes", "disk_used_ratio"} <= set(exported["series"])
    assert f"from Prometheus ({client.url})" in exported["sources"]


def test_the_demo_traffic_in_prometheus_agrees_with_the_request_log(tmp_path, capsys):
    """``analytics seed --prometheus-out``: the same requests, counted by Prometheus from
    the backfilled counters and by SQL from the log, over a range on scrape boundaries."""
    from analytics_core.cli import main
    from analytics_core.queries import performance as sql

    url, om = f"duckdb:///{tmp_path / 'demo.duckdb'}", tmp_path / "demo.om"
    argv = ["seed", "--db", url, "--days", "2", "--scale", "0.3", "--seed", "3",
            "--prometheus-out", str(om), "--scrape-interval", "5m"]  # fmt: skip
    assert main(argv) == 0
    assert "OpenMetrics" in capsys.readouterr().out
    engine = make_engine(url)
    try:
        first = engine.connect().exec_driver_sql("SELECT min(ts) FROM api_requests").scalar()
        with started_prometheus(om.read_bytes()) as server:
            client = connect(Prometheus(enabled=True, url=server.url))
            five = timedelta(minutes=5)
            start = pd.Timestamp(first).ceil("5min").to_pydatetime() + five
            end = start + timedelta(hours=20)
            for endpoints in ((), ("/api/v1/detect",)):
                ctx = QueryContext(make_filters(start, end, "UTC", endpoints=endpoints), now=end)
                got, want = kpis(client, METRICS, ctx), sql.kpis(engine, ctx)
                assert got["requests"] == want["requests"] > 0
                assert got["error_rate"] == pytest.approx(want["error_rate"], rel=1e-9)
                assert got["avg_ms"] == pytest.approx(want["avg_ms"], rel=1e-9)
                # p95 within the histogram's bucket resolution of percentile_cont's.
                low = max([0.0, *(b for b in LATENCY_BUCKETS if b * 1000 < want["p95_ms"])])
                high = min(b for b in (*LATENCY_BUCKETS, math.inf) if b * 1000 >= want["p95_ms"])
                assert 1000 * low <= got["p95_ms"] <= 1000 * high
    finally:
        engine.dispose()


def test_a_bad_scrape_interval_is_named(tmp_path, capsys):
    from analytics_core.cli import main

    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    argv = ["seed", "--db", url, "--days", "1", "--scale", "0.1",
            "--prometheus-out", str(tmp_path / "x.om"), "--scrape-interval", "soon"]  # fmt: skip
    assert main(argv) == 2
    assert "--scrape-interval" in capsys.readouterr().err


def test_values_beyond_the_basic_plane_and_ranges_in_the_future_do_not_break(client):
    emoji = _ctx(1, gen.MINUTES, ("/api/v1/😀", "/api/v1/results"))
    assert kpis(client, METRICS, emoji)["requests"] > 0  # the real one still matches
    lo = gen.START + timedelta(minutes=90, seconds=30 * 60)  # 01:30 UTC: mid-hour in Kolkata
    future = QueryContext(make_filters(lo, lo + timedelta(hours=5), "Asia/Kolkata", "hour"), now=lo)
    frame = trend(client, METRICS, future)
    assert frame.empty and kpis(client, METRICS, future)["requests"] == 0


def test_a_restricted_scope_without_a_tenant_label_reads_the_log(client, demo_engine):
    from analytics_core.context import Scope

    ctx = _ctx(1200, 1800)
    log_source = sources_for(demo_engine).performance
    chosen = sources_for(demo_engine, _settings(client.url)).performance
    scoped = QueryContext(ctx.filters, ctx.now, Scope(("t_a",)))
    assert chosen.kpis(scoped) == log_source.kpis(scoped)
    assert chosen.kpis(ctx) == kpis(client, METRICS, ctx)


def test_prometheus_going_away_while_a_page_is_built_is_said_and_not_cached(
    history, demo_engine, monkeypatch, redis_url
):
    import uuid

    from analytics_core.cache import RedisPageCache
    from analytics_core.page_data import load_page
    from analytics_core.prometheus import source

    monkeypatch.setattr(source, "RETRY_AFTER_SECONDS", 0.0)
    ctx = _ctx(1200, 1800)
    config = load_config()
    with started_prometheus(history.openmetrics) as server:
        config = config.model_copy(update={"data_sources": _settings(server.url)})
        sources = sources_for(demo_engine, config.data_sources)
        assert sources.performance.label == "Prometheus" and not sources.degraded
    page = build_page(demo_engine, config, "performance", ctx.filters, ctx.now, sources=sources)
    assert page.degraded and "stopped answering" in page.source_note
    log_page = build_page(demo_engine, load_config(), "performance", ctx.filters, ctx.now)
    assert page.kpis == log_page.kpis  # every figure from the log
    assert "cpu_usage" not in page.series  # no resources without Prometheus
    # Pages built while Prometheus is down are never kept: each view asks again.
    cache = RedisPageCache(redis_url, 300, prefix=f"test-prometheus-{uuid.uuid4().hex}:")
    try:
        for _ in range(2):
            again = load_page(demo_engine, config, "performance", ctx.filters, cache, now=ctx.now)
            assert again.degraded and "unreachable" in again.source_note
        stats = cache.stats()
        assert (stats.hits, stats.misses) == (0, 2)
    finally:
        cache.close()


def test_the_page_falls_back_while_prometheus_is_gone_and_recovers(history, tmp_path, monkeypatch):
    from analytics_core.prometheus import source

    monkeypatch.setattr(source, "RETRY_AFTER_SECONDS", 0.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    at = _performance_page(tmp_path, monkeypatch, f"http://127.0.0.1:{port}")
    assert not at.exception, at.exception
    assert any("unreachable" in c.value for c in at.caption)
    assert "Resources (Prometheus)" not in [s.value for s in at.subheader]
    with started_prometheus(history.openmetrics, port=port):
        at.run()  # the next refresh: nothing of the fallback was kept
        assert not at.exception, at.exception
        assert any("from Prometheus" in c.value for c in at.caption)
        assert "Resources (Prometheus)" in [s.value for s in at.subheader]


def test_a_tenant_label_carries_the_tenant_filter_and_the_scope(client, history):
    """With ``tenant_label`` set, the tenant filter and the caller's scope become label
    matchers. The generated series carry no tenant, so ``method`` stands in for it here."""
    from analytics_core.context import Scope

    metrics = PrometheusMetrics(tenant_label="method")
    r = history.requests
    f = _ctx(1200, 1800).filters
    r = r[(r.ts > f.start) & (r.ts <= f.end)]
    only_get = QueryContext(make_filters(f.start, f.end, "UTC", tenants=("GET",)), now=f.end)
    assert kpis(client, metrics, only_get)["requests"] == int((r.method == "GET").sum())
    scoped = QueryContext(f, f.end, Scope(("POST",)))
    assert kpis(client, metrics, scoped)["requests"] == int((r.method == "POST").sum())
    # A filter outside the scope leaves nothing to ask for.
    outside = QueryContext(only_get.filters, f.end, Scope(("POST",)))
    assert kpis(client, metrics, outside)["requests"] == 0


def test_the_feed_watches_cpu_memory_and_disk_from_prometheus(client, demo_engine):
    """The anomaly detector scores the resources too: the api's two hot hours on 29 March
    (the generated CPU spike) are a CPU story of the Performance area."""
    config = load_config().model_copy(update={"data_sources": _settings(client.url)})
    ctx = _ctx(2 * 24 * 60, 3 * 24 * 60)
    page = build_page(demo_engine, config, "insights", ctx.filters, ctx.now)
    cpu = [i for i in page.insights if i.kind == "anomaly" and i.kpi == "cpu_usage"]
    assert cpu and cpu[0].area == "performance", [i.message for i in page.insights]
    assert "CPU usage was unusually high from 2026-03-29 10:00" in cpu[0].message
    log_only = build_page(demo_engine, load_config(), "insights", ctx.filters, ctx.now)
    assert not any("CPU usage" in i.message for i in log_only.insights)


def test_a_filling_disk_is_forecast_to_be_full(demo_engine):
    from analytics_core.insights.stories.capacity import capacity_insights

    end = gen.DISK_START + timedelta(days=gen.DISK_DAYS)
    with started_prometheus(gen.disk_history()) as server:
        config = load_config().model_copy(update={"data_sources": _settings(server.url)})
        sources = sources_for(demo_engine, config.data_sources)
        ctx = QueryContext(make_filters(end - timedelta(days=7), end, "UTC", "day"), now=end)
        stories = capacity_insights(sources, config, ctx)
    disk = [s for s in stories if s.kpi == "disk_used_ratio"]
    assert len(disk) == 1 and disk[0].status == "firing" and disk[0].area == "performance"
    assert "Disk use is forecast to reach the limit of 100.0%" in disk[0].message
    full = gen.DISK_START + timedelta(days=(1 - 0.5) / 0.015)  # 33 1/3 days in
    crossing = pd.Timestamp(disk[0].details["crossing"])
    assert abs(crossing - pd.Timestamp(full)) <= pd.Timedelta(days=2), crossing


def test_a_partial_answer_is_not_taken_for_the_whole(stub):
    _Stub.partial = True
    client = connect(Prometheus(enabled=True, url=f"http://127.0.0.1:{stub.server_address[1]}"))
    with pytest.raises(PrometheusUnavailable, match="partial answer.*eu-2 did not answer"):
        kpis(client, METRICS, _ctx(0, 60))


def test_alert_rules_on_cpu_and_disk_are_checked_by_the_feed(client, demo_engine):
    from analytics_core.config import AlertRule

    rules = (
        AlertRule(kpi="cpu_usage", above=0.9, severity="warning"),
        AlertRule(kpi="disk_used_ratio", above=0.99, severity="critical"),
    )
    config = load_config().model_copy(
        update={"data_sources": _settings(client.url), "alerts": rules}
    )
    ctx = QueryContext(
        make_filters(gen.START + timedelta(days=2), gen.START + timedelta(days=3), "UTC", "hour"),
        now=gen.START + timedelta(days=3),
    )
    page = build_page(demo_engine, config, "insights", ctx.filters, ctx.now)
    # The api's 97% from 10:00 to 12:00 on 29 March breaches 90%: the alert, merged with
    # the CPU anomaly of the same hours into one incident; the disk stays below 99%.
    cpu = [i for i in page.insights if i.kpi == "cpu_usage" and i.status != "ok"]
    told = " ".join(i.message for i in cpu)
    assert "above its threshold 90.00% from 2026-03-29 10:00 to 2026-03-29 12:00" in told, told
    disk = [i for i in page.insights if i.kind == "threshold" and i.kpi == "disk_used_ratio"]
    assert disk and disk[0].status == "ok"


def test_a_note_on_the_querys_evaluation_is_not_a_partial_answer(stub):
    _Stub.partial = True
    _Stub.warning = "PromQL info: input to histogram_quantile needed to be fixed for monotonicity"
    client = connect(Prometheus(enabled=True, url=f"http://127.0.0.1:{stub.server_address[1]}"))
    assert client.scalar("up", gen.START) == 42.0


def test_a_disk_whose_exporter_went_quiet_does_not_break_the_capacity_stories(demo_engine):
    from analytics_core.insights.stories.capacity import capacity_insights

    end = gen.DISK_START + timedelta(days=gen.DISK_DAYS)
    with started_prometheus(gen.disk_history(scraped_days=12)) as server:
        config = load_config().model_copy(update={"data_sources": _settings(server.url)})
        sources = sources_for(demo_engine, config.data_sources)
        ctx = QueryContext(make_filters(end - timedelta(days=7), end, "UTC", "day"), now=end)
        stories = capacity_insights(sources, config, ctx)  # the last 8 days hold no disk value
    disk = [s for s in stories if s.kpi == "disk_used_ratio"]
    assert len(disk) == 1 and "Disk use" in disk[0].message
