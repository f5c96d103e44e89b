"""Performance KPIs from a real Prometheus (started by the tests, backfilled with a
generated history: tests/prometheus_history.py) against the generated truth, and the
failures a caller falls back from: an unreachable URL, a server slower than the timeout
and an error answer, each with a message that says which."""

from __future__ import annotations

import math
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from analytics_core.config import Prometheus, PrometheusMetrics
from analytics_core.context import QueryContext
from analytics_core.filters import make_filters
from analytics_core.prometheus.client import PrometheusUnavailable, connect
from analytics_core.prometheus.performance import QUANTILES, kpis, trend
from analytics_core.prometheus.promql import selector
from tests import prometheus_history as gen
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

    def do_GET(self):  # noqa: N802 - the stdlib's name
        time.sleep(self.delay)
        body = b'{"status":"error","errorType":"bad_data","error":"parse error"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
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
    _Stub.delay = 0.0


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
