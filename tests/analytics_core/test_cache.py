"""The shared Redis page cache against real Redis servers: the one the tests share (each
test under its own key prefix) and throwaway ones started here to be stopped or filled.

Pages are real ``build_page`` results on the DuckDB fixture; a round trip must give them
back exactly (types, dtypes, zones, NaN), and every Redis failure must still give the page.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import port_for
import pytest
import redis

from analytics_core.cache import (
    MAGIC,
    CorruptEntry,
    PageCache,
    RedisPageCache,
    Unserialisable,
    WarnOnce,
    dumps_page,
    loads_page,
    page_cache,
)
from analytics_core.config import DEFAULT_CONFIG_PATH, load_config
from analytics_core.filters import Filters, make_filters
from analytics_core.page_data import PageData, build_page
from analytics_core.pages import PAGES
from analytics_core.sources.database import make_engine
from tests.fixtures import DAYS, T0
from tests.servers import LOOPBACK, server_missing

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
LOGGER = "analytics_core.cache"
NOW = (T0 + pd.Timedelta(days=DAYS)).to_pydatetime()  # the fixture data ends here


def _filters(first_day: int, last_day: int, tz: str, granularity: str, **scope) -> Filters:
    start = (T0 + pd.Timedelta(days=first_day)).to_pydatetime()
    end = (T0 + pd.Timedelta(days=last_day)).to_pydatetime()
    return make_filters(start, end, tz, granularity, **scope)


# Ranges that give every kind of content: a previous period with data (tested changes),
# hours still to come (partial buckets), the Paris DST change, a tenant, and no data at all
# (empty frames of object columns).
CASES = {
    "paris_hours": _filters(10, 17, "Europe/Paris", "hour"),
    "dst_tenant": _filters(5, 12, "America/New_York", "day", tenants=("t_b",)),
    "empty": _filters(-30, -20, "Asia/Tokyo", "day"),
}


@pytest.fixture(scope="module")
def config():
    return load_config(DEFAULT_CONFIG_PATH)  # the packaged defaults, whatever the cwd holds


@pytest.fixture(scope="module")
def fixture_engine(duckdb_url):
    engine = make_engine(duckdb_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def built(fixture_engine, config) -> Callable[[str, str], PageData]:
    """``built(page, case)``: build_page's result, built once per module."""
    pages: dict[tuple[str, str], PageData] = {}

    def get(page: str, case: str = "paris_hours") -> PageData:
        if (page, case) not in pages:
            pages[page, case] = build_page(fixture_engine, config, page, CASES[case], NOW)
        return pages[page, case]

    return get


class Builder:
    """A page builder that counts its calls."""

    def __init__(self, make: Callable[[], PageData]) -> None:
        self.make, self.calls = make, 0

    def __call__(self) -> PageData:
        self.calls += 1
        return self.make()


@pytest.fixture
def prefix(redis_url) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"analytics:test:{uuid.uuid4().hex}:"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=name + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def client(redis_url) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def warnings_log(caplog) -> Callable[[], list[str]]:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return lambda: [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@dataclasses.dataclass
class OwnRedis:
    """A throwaway redis-server that keeps nothing on disk, to stop and fill at will."""

    executor: object
    url: str

    def stop(self) -> None:
        self.executor.stop()  # type: ignore[attr-defined]

    def start(self) -> None:
        self.executor.start()  # type: ignore[attr-defined]


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    from pytest_redis.executor import RedisExecutor

    binary = shutil.which("redis-server")
    if binary is None:
        server_missing("redis-server", "not installed", "apt-get install -y redis-server")
    port = port_for.select_random()
    # save '""': no snapshot on shutdown, so a restarted server comes back empty.
    executor = RedisExecutor(
        binary, databases=1, redis_timeout=30, loglevel="warning", host=LOOPBACK, port=port,
        datadir=tmp_path, save='""',
    )  # fmt: skip
    executor.start()
    try:
        yield OwnRedis(executor, f"redis://{LOOPBACK}:{port}/0")
    finally:
        if executor.running():
            executor.stop()


def _closed_port() -> int:
    # A port the kernel just handed out and nobody listens on any more: connections refused.
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# --- exact comparison -------------------------------------------------------------------


def assert_same(a: object, b: object, where: str = "page") -> None:
    """Equal values of the very same types, NaN equal to NaN, frames with equal dtypes and
    indexes, datetimes in the same zone (dataclass ``compare=False`` fields included)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True, obj=where)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), f"{where}: NaN became {b!r}"  # type: ignore[arg-type]
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
        if isinstance(a, datetime):
            assert str(a.tzinfo) == str(b.tzinfo), f"{where}: zone {a.tzinfo} != {b.tzinfo}"  # type: ignore[attr-defined]
            assert a.fold == b.fold, f"{where}: fold differs"  # type: ignore[attr-defined]
        if isinstance(a, float):
            assert math.copysign(1, a) == math.copysign(1, b), f"{where}: sign of zero"  # type: ignore[arg-type]


# --- serialisation ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("page", PAGES)
def test_every_page_round_trips_exactly(built, page, case):
    data = built(page, case)
    back = loads_page(dumps_page(data))
    assert_same(data, back)
    # The cases hold what they are meant to test: buckets in the filter's zone, partial flags.
    for name, frame in data.series.items():
        if "bucket" in frame:
            assert str(frame["bucket"].dtype.tz) == CASES[case].tz, name
            assert frame["partial"].dtype == bool, name


def test_the_cases_cover_changes_insights_and_empty_frames(built):
    # Guards the round-trip test's reach: without these the exact comparison proves little.
    assert any(c.p_value is not None for c in built("insights").changes.values())
    assert any(i.evidence is not None for i in built("insights", "dst_tenant").insights)
    empty = built("performance", "empty").series["by_endpoint"]
    assert empty.empty and any(t == np.dtype(object) for t in empty.dtypes)


def test_round_trip_of_every_supported_value(built):
    paris = ZoneInfo("Europe/Paris")
    frame = pd.DataFrame(
        {
            "bucket": pd.date_range("2026-10-25", periods=4, freq="h", tz=paris, unit="us"),
            "ns": pd.date_range("2026-03-29", periods=4, freq="37min", tz="UTC", unit="ns"),
            "naive_s": pd.date_range("2026-01-01", periods=4, freq="D", unit="s"),
            "span": pd.to_timedelta([1, 2, None, 4], unit="s").as_unit("ms"),
            "value": [1.5, np.nan, np.inf, -0.0],
            "f32": np.array([1.25, np.nan, 3, 4], dtype="float32"),
            "count": np.array([1, -2, 3, 2**62], dtype="int64"),
            "u8": np.array([0, 1, 2, 255], dtype="uint8"),
            "partial": [True, False, False, True],
            "label": pd.Series(["a", None, "ü", ""], dtype="str"),
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "maybe": pd.array([True, None, False, True], dtype="boolean"),
            "nothing": pd.Series([None] * 4, dtype=object),
        }
    )
    frame.index = pd.RangeIndex(10, 18, 2, name="row")  # set after: Series would align
    frame.loc[12, "ns"] = pd.NaT  # labels run 10, 12, 14, 16
    named = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["x", "y"], dtype="str", name="k"))
    base = built("detection")
    data = dataclasses.replace(
        base,
        generated_at=pd.Timestamp("2026-03-29T01:30:00.123456789", tz=paris),
        kpis={"n": np.int64(7), "rate": np.float64("nan"), "big": 2**80, "flag": np.bool_(True)},
        previous={"x": float("inf"), "y": None, "z": np.float32(0.1)},
        series={"odd": frame, "named": named, "none": pd.DataFrame()},
        insights=[
            dataclasses.replace(
                base.insights[0] if base.insights else built("insights").insights[0],
                details={
                    "$type": "a key that looks like a tag",
                    "when": datetime(2026, 10, 25, 2, 30, tzinfo=paris, fold=1),
                    "offset": datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-3))),
                    "naive": datetime(2026, 1, 1, 12, 0, 0, 5),
                    "day": date(2026, 2, 28),
                    "lasted": timedelta(days=1, seconds=3, microseconds=7),
                    "pair": ("a", (1, 2.5)),
                    "nested": [{"episodes": [{"start": "x", "peak": np.float64(2.0)}]}],
                    "text": np.str_("numpy text"),
                },
                evidence=frame,
            )
        ],
    )
    assert_same(data, loads_page(dumps_page(data)))


@pytest.mark.parametrize(
    ("series", "details"),
    [
        ({"s": pd.DataFrame({1: [1.0]})}, {}),  # Arrow would make the name "1"
        ({"s": pd.DataFrame([[1, 2]], columns=["a", "a"])}, {}),
        ({"s": pd.DataFrame({"a": pd.Series(["x"], dtype=object)})}, {}),  # comes back str
        ({"s": pd.DataFrame({"a": pd.Series(["x"], dtype=pd.StringDtype("python"))})}, {}),
        ({"s": pd.DataFrame({"a": [1.0]}).set_index(pd.MultiIndex.from_tuples([(1, 2)]))}, {}),
        ({}, {"seen": {1, 2}}),
        ({}, {1: "int key"}),
        ({}, {"missing": pd.NaT}),
    ],
    ids=[
        "int-name",
        "repeated",
        "object-text",
        "python-str",
        "multiindex",
        "set",
        "int-key",
        "nat",
    ],
)
def test_values_that_would_come_back_changed_are_refused(built, series, details):
    base = built("overview")
    insight = dataclasses.replace(built("insights").insights[0], details=details)
    data = dataclasses.replace(base, series=series, insights=[insight])
    with pytest.raises(Unserialisable):
        dumps_page(data)


def _header(blob: bytes) -> dict:
    size = int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 4], "big")
    return json.loads(blob[len(MAGIC) + 4 : len(MAGIC) + 4 + size])


def _entry(header: dict, streams_of: bytes | None = None) -> bytes:
    """An entry with ``header`` and the frame streams of the entry ``streams_of``."""
    text = json.dumps(header).encode()
    streams = b""
    if streams_of is not None:
        size = int.from_bytes(streams_of[len(MAGIC) : len(MAGIC) + 4], "big")
        streams = streams_of[len(MAGIC) + 4 + size :]
    return MAGIC + len(text).to_bytes(4, "big") + text + streams


def test_frames_of_one_shape_share_a_stream_and_come_back_apart(built):
    # The insights page's evidence series share a few shapes: each shape is one stream.
    data = built("insights")
    frames = [i.evidence for i in data.insights if i.evidence is not None]
    frames += list(data.series.values())
    shapes = {tuple((c, str(t)) for c, t in f.dtypes.items()) for f in frames}
    assert len(shapes) < len(frames), "the fixture should hold frames of one shape"
    header = _header(dumps_page(data))
    assert len({block for block, _, _ in header["frames"]}) <= len(shapes)
    assert len(header["frames"]) == len(frames)

    # Frames of one shape and different lengths (none among them) come back exactly, and
    # changing one leaves the others, and the cached entry, as they were.
    shape = pd.DataFrame({"bucket": pd.date_range("2026-01-01", periods=5, tz="UTC"), "v": 1.0})
    parts = {
        "a": shape.iloc[:3].copy(),
        "none": shape.iloc[:0].copy(),
        "b": shape.iloc[:5].copy(),
        "also_none": shape.iloc[:0].copy(),
    }
    parts["b"]["v"] = [1.0, 2.0, 3.0, 4.0, 5.0]
    page = dataclasses.replace(data, series=parts, insights=[])
    blob = dumps_page(page)
    assert len({b for b, _, _ in _header(blob)["frames"]}) == 1
    back = loads_page(blob)
    assert_same(page, back)
    back.series["a"].loc[0, "v"] = -1.0
    assert back.series["b"]["v"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert loads_page(blob).series["a"]["v"].tolist() == [1.0, 1.0, 1.0]
    # Frames that are a whole block (here the only two of an all-empty one) are not one object.
    empties = dataclasses.replace(page, series={"x": parts["none"], "y": parts["also_none"]})
    back = loads_page(dumps_page(empties))
    assert back.series["x"] is not back.series["y"]
    back.series["x"]["added"] = 1.0
    assert list(back.series["y"].columns) == ["bucket", "v"]


def test_corrupt_and_foreign_entries_are_refused(built):
    good = dumps_page(built("business"))
    foreign = json.dumps({"page": "business"}).encode()
    wrong_tag = _entry({"page": {"$type": "os.exec"}, "frames": []})
    not_a_page = _entry({"page": 7, "frames": []})
    # A frame said to lie past the rows that were written, or in no stream at all.
    header = _header(good)
    past_the_end = _entry(
        {**header, "frames": [[b, first, rows + 1] for b, first, rows in header["frames"]]},
        good,
    )
    no_stream = _entry({**header, "frames": [[99, 0, 1]]}, good)
    bad_places = [
        _entry({k: v for k, v in header.items() if k != "frames"}, good),
        _entry({**header, "frames": {"0": [0, 0, 1]}}, good),
        _entry({**header, "frames": [[0, -1, 1]]}, good),
        _entry({**header, "frames": [[True, 0, 1]]}, good),
        _entry({**header, "frames": [[0, 0]]}, good),
    ]
    for blob in (
        b"",
        b"garbage",
        foreign,
        good[: len(good) // 2],
        good[:-3],
        wrong_tag,
        not_a_page,
        past_the_end,
        no_stream,
        *bad_places,
    ):
        with pytest.raises(CorruptEntry):
            loads_page(blob)


# --- the cache on the shared Redis ------------------------------------------------------


def test_hit_builds_once_and_returns_an_equal_page(
    redis_url, prefix, client, fixture_engine, config
):
    builder = Builder(
        lambda: build_page(fixture_engine, config, "performance", CASES["paris_hours"], NOW)
    )
    cache = RedisPageCache(redis_url, 60, prefix=prefix, warn=WarnOnce())
    first = cache.get_or_build("performance", builder)
    second = cache.get_or_build("performance", builder)
    assert builder.calls == 1
    assert_same(first, second)
    assert (cache.stats().hits, cache.stats().misses, cache.stats().errors) == (1, 1, 0)
    assert 0 < client.ttl(prefix + "performance") <= 60  # every entry expires


def test_miss_builds_and_keys_do_not_collide(redis_url, prefix, client, built):
    cache = RedisPageCache(redis_url, 60, prefix=prefix, warn=WarnOnce())
    detection, business = Builder(lambda: built("detection")), Builder(lambda: built("business"))
    assert cache.get_or_build("a", detection) is built("detection")  # a miss gives the build
    assert_same(cache.get_or_build("b", business), built("business"))
    assert_same(cache.get_or_build("a", detection), built("detection"))
    assert (detection.calls, business.calls) == (1, 1)
    assert cache.stats() == dataclasses.replace(cache.stats(), hits=1, misses=2, errors=0)
    assert sorted(client.scan_iter(match=prefix + "*")) == [
        (prefix + "a").encode(),
        (prefix + "b").encode(),
    ]


def test_entries_expire_after_the_ttl(redis_url, prefix, client, built):
    cache = RedisPageCache(redis_url, 1, prefix=prefix, warn=WarnOnce())
    builder = Builder(lambda: built("business"))
    cache.get_or_build("k", builder)
    deadline = time.monotonic() + 10
    while client.exists(prefix + "k") and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not client.exists(prefix + "k")
    assert_same(cache.get_or_build("k", builder), built("business"))
    assert builder.calls == 2


def test_a_failed_build_is_not_cached(redis_url, prefix, client, built):
    cache = RedisPageCache(redis_url, 60, prefix=prefix, warn=WarnOnce())

    def broken() -> PageData:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        cache.get_or_build("k", broken)
    assert not client.exists(prefix + "k")
    builder = Builder(lambda: built("detection"))
    cache.get_or_build("k", builder)
    assert builder.calls == 1


def test_unserialisable_page_is_served_uncached_and_said_once(
    redis_url, prefix, client, built, warnings_log
):
    odd = dataclasses.replace(built("overview"), series={"s": pd.DataFrame({1: [1.0]})})
    cache = RedisPageCache(redis_url, 60, prefix=prefix, warn=WarnOnce())
    builder = Builder(lambda: odd)
    assert cache.get_or_build("k", builder) is odd
    assert cache.get_or_build("k", builder) is odd
    assert builder.calls == 2
    assert not client.exists(prefix + "k")
    assert len(warnings_log()) == 1 and "not cached" in warnings_log()[0]


def test_a_corrupt_entry_is_a_miss_then_replaced(redis_url, prefix, client, built, warnings_log):
    client.set(prefix + "k", b"not a page at all", ex=60)
    cache = RedisPageCache(redis_url, 60, prefix=prefix, warn=WarnOnce())
    builder = Builder(lambda: built("detection"))
    assert_same(cache.get_or_build("k", builder), built("detection"))
    assert_same(cache.get_or_build("k", builder), built("detection"))
    assert builder.calls == 1  # the rebuilt page replaced the bad entry
    assert cache.stats().errors == 1
    assert len(warnings_log()) == 1 and "unreadable" in warnings_log()[0]


_CHILD = """
import dataclasses, json, sys
from analytics_core.cache import RedisPageCache
from analytics_core.config import DEFAULT_CONFIG_PATH, load_config
from analytics_core.filters import make_filters
from analytics_core.page_data import build_page
from analytics_core.sources.database import make_engine
from datetime import datetime

args = json.loads(sys.argv[1])
built = []

def build():
    built.append(True)
    if args["mode"] == "read":
        raise RuntimeError("this process had to build the page")
    f = args["filters"]
    filters = make_filters(datetime.fromisoformat(f["start"]), datetime.fromisoformat(f["end"]),
                           f["tz"], f["granularity"])
    engine = make_engine(args["db"])
    try:
        return build_page(engine, load_config(DEFAULT_CONFIG_PATH), args["page"], filters,
                          datetime.fromisoformat(args["now"]))
    finally:
        engine.dispose()

cache = RedisPageCache(args["url"], 60, prefix=args["prefix"])
try:
    page = cache.get_or_build(args["key"], build)
except RuntimeError as exc:
    print(json.dumps({"built": built != [], "error": str(exc)}))
    raise SystemExit(0)
print(json.dumps({"built": built != [], "stats": dataclasses.asdict(cache.stats()),
                  "kpis": page.kpis, "series": {k: v.to_json(orient="split", date_format="iso",
                  date_unit="us") for k, v in page.series.items()},
                  "dtypes": {k: [str(t) for t in v.dtypes] for k, v in page.series.items()}}))
"""


def _run_child(**args) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rendered(page: PageData) -> dict:
    return {
        "kpis": json.loads(json.dumps(page.kpis)),
        "series": {
            k: v.to_json(orient="split", date_format="iso", date_unit="us")
            for k, v in page.series.items()
        },
        "dtypes": {k: [str(t) for t in v.dtypes] for k, v in page.series.items()},
    }


def test_two_processes_share_entries(redis_url, prefix, duckdb_url, built):
    filters = CASES["paris_hours"]
    common = {"url": redis_url, "prefix": prefix, "db": duckdb_url, "now": NOW.isoformat()}
    common["filters"] = {
        "start": filters.start.isoformat(),
        "end": filters.end.isoformat(),
        "tz": filters.tz,
        "granularity": filters.granularity,
    }
    # This process stores, another one reads: its builder must not run.
    mine = RedisPageCache(redis_url, 60, prefix=prefix, warn=WarnOnce())
    mine.get_or_build("detection", lambda: built("detection"))
    other = _run_child(mode="read", key="detection", page="detection", **common)
    assert other["built"] is False, other
    assert other["stats"]["hits"] == 1
    assert {k: other[k] for k in ("kpis", "series", "dtypes")} == _rendered(built("detection"))
    # And the other way round: the other process builds and stores, this one hits.
    stored = _run_child(mode="build", key="business", page="business", **common)
    assert stored["built"] is True and stored["stats"]["misses"] == 1
    builder = Builder(lambda: built("business"))
    assert_same(mine.get_or_build("business", builder), built("business"))
    assert builder.calls == 0


# --- outages ---------------------------------------------------------------------------


def test_closed_port_pages_still_build_and_it_is_said_once(built, warnings_log):
    url = f"redis://{LOOPBACK}:{_closed_port()}/0"
    once = WarnOnce()  # one process's log, shared by its caches
    cache = RedisPageCache(url, 60, prefix="x:", warn=once)
    builder = Builder(lambda: built("performance"))
    for key in ("a", "b", "a"):
        assert cache.get_or_build(key, builder) is built("performance")
    assert builder.calls == 3
    # Tried once, then left alone for the back-off instead of failing on every page.
    assert cache.stats() == dataclasses.replace(
        cache.stats(), hits=0, misses=3, errors=1, available=False
    )
    again = RedisPageCache(url, 60, prefix="x:", warn=once)
    assert again.get_or_build("a", builder) is built("performance")
    assert len(warnings_log()) == 1 and "unreachable" in warnings_log()[0]


def test_server_stopped_mid_test_then_back(own_redis, built, warnings_log, caplog):
    cache = RedisPageCache(own_redis.url, 60, prefix="p:", retry_after=0.5, warn=WarnOnce())
    builder = Builder(lambda: built("overview"))
    cache.get_or_build("k", builder)
    assert_same(cache.get_or_build("k", builder), built("overview"))
    assert builder.calls == 1
    own_redis.stop()
    for _ in range(3):
        assert cache.get_or_build("k", builder) is built("overview")
    assert builder.calls == 4
    assert cache.stats().errors == 1 and not cache.stats().available
    assert len(warnings_log()) == 1 and "unreachable" in warnings_log()[0]
    # Back after the back-off: the (empty) server is used again.
    own_redis.start()
    with redis.Redis.from_url(own_redis.url) as admin:
        assert admin.dbsize() == 0
    deadline = time.monotonic() + 10
    while not cache.stats().available and time.monotonic() < deadline:
        time.sleep(0.1)
    cache.get_or_build("k", builder)
    assert_same(cache.get_or_build("k", builder), built("overview"))
    assert builder.calls == 5 and cache.stats().hits == 2 and cache.stats().errors == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_full_server_serves_pages_uncached(own_redis, built, warnings_log):
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # below what it uses: every write is refused (OOM)
    cache = RedisPageCache(own_redis.url, 60, prefix="p:", warn=WarnOnce())
    builder = Builder(lambda: built("business"))
    for _ in range(2):
        assert cache.get_or_build("k", builder) is built("business")
    assert builder.calls == 2 and not admin.exists("p:k")
    assert cache.stats().errors == 2 and cache.stats().available  # reads go on
    assert len(warnings_log()) == 1 and "full" in warnings_log()[0]
    admin.config_set("maxmemory", 0)
    cache.get_or_build("k", builder)
    assert_same(cache.get_or_build("k", builder), built("business"))
    assert builder.calls == 3
    admin.close()


def test_server_that_never_answers_times_out_once(built, warnings_log):
    # Accepts connections (the kernel's backlog) but never replies: a hung Redis.
    with socket.socket() as hung:
        hung.bind((LOOPBACK, 0))
        hung.listen(8)
        url = f"redis://{LOOPBACK}:{hung.getsockname()[1]}/0"
        cache = RedisPageCache(url, 60, prefix="p:", timeout=0.2, warn=WarnOnce())
        builder = Builder(lambda: built("detection"))
        for _ in range(3):
            assert cache.get_or_build("k", builder) is built("detection")
    assert builder.calls == 3 and cache.stats().errors == 1
    assert len(warnings_log()) == 1 and "did not answer" in warnings_log()[0]


# --- from the config --------------------------------------------------------------------


def test_page_cache_from_config(tmp_path, redis_url, prefix, client, built):
    off = page_cache(load_config(DEFAULT_CONFIG_PATH))
    assert type(off) is PageCache and not off.stats().enabled
    builder = Builder(lambda: built("business"))
    off.get_or_build("k", builder)
    off.get_or_build("k", builder)
    assert builder.calls == 2
    path = tmp_path / "analytics.yml"
    path.write_text(
        "dashboard:\n  refresh_interval_seconds: 120\n"
        f"data_sources:\n  redis:\n    enabled: true\n    url: {redis_url}\n"
    )
    on = page_cache(load_config(path), prefix=prefix, warn=WarnOnce())
    assert isinstance(on, RedisPageCache) and on.stats().enabled
    on.get_or_build("k", builder)
    assert 60 < client.ttl(prefix + "k") <= 120  # no ttl_seconds: the refresh interval


def test_unusable_url_gives_no_cache(tmp_path, built, warnings_log):
    path = tmp_path / "analytics.yml"
    path.write_text("data_sources:\n  redis:\n    enabled: true\n    url: http://nowhere\n")
    cache = page_cache(load_config(path), warn=WarnOnce())
    assert type(cache) is PageCache
    assert cache.get_or_build("k", lambda: built("business")) is built("business")
    assert len(warnings_log()) == 1


def test_generated_at_utc_datetime_round_trips(built):
    data = dataclasses.replace(built("detection"), generated_at=datetime(2026, 4, 3, tzinfo=UTC))
    assert_same(data, loads_page(dumps_page(data)))
