"""``analytics export`` and the app's page loader through the shared Redis cache and the
rollups (issue 8): a second export in the same minute is a Redis hit with the same
content, a new rollup run is a new key, and a dead Redis changes nothing but speed."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime, timedelta

import redis

from analytics_core.cache import KEY_PREFIX, page_cache
from analytics_core.cli import main
from analytics_core.config import Redis, load_config
from analytics_core.filters import make_filters
from analytics_core.page_data import load_page
from analytics_core.rollup.refresh import refresh
from analytics_core.sources.database import make_engine
from tests.fixtures import load_dataset

NOW = datetime(2026, 3, 8, 12, 30, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with-block ends


def _config_file(tmp_path, url: str) -> str:
    path = tmp_path / f"analytics-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(f"data_sources:\n  redis:\n    enabled: true\n    url: {url}\n")
    return str(path)


def _export(url: str, config: str, capsys) -> dict:
    argv = ["export", "--db", url, "--config", config, "--page", "performance"]
    argv += ["--format", "json", "--out", "-", "--range", "90d"]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_export_goes_through_redis(postgresql_url, redis_url, tmp_path, capsys):
    client = redis.Redis.from_url(redis_url)
    before = set(client.keys(KEY_PREFIX + "*"))
    first = _export(postgresql_url, _config_file(tmp_path, redis_url), capsys)
    added = set(client.keys(KEY_PREFIX + "*")) - before
    assert len(added) == 1  # the page is stored, under its own key, with a TTL
    [key] = added
    assert 0 < client.ttl(key) <= load_config().data_sources.redis.ttl_seconds
    second = _export(postgresql_url, _config_file(tmp_path, redis_url), capsys)
    if second["generated_at"][:16] == first["generated_at"][:16]:  # same minute: a hit
        assert set(client.keys(KEY_PREFIX + "*")) - before == added
    assert second["kpis"] == first["kpis"]
    client.delete(*added)


def test_export_with_redis_down_still_answers(postgresql_url, tmp_path, capsys):
    down = _config_file(tmp_path, f"redis://127.0.0.1:{_closed_port()}/0")
    plain = tmp_path / "plain.yml"
    plain.write_text("dashboard:\n  title: plain\n")
    assert (
        _export(postgresql_url, down, capsys)["kpis"]
        == _export(postgresql_url, str(plain), capsys)["kpis"]
    )


def test_a_new_rollup_run_is_a_new_cache_entry(new_pg_database, dataset, redis_url):
    url = new_pg_database()
    writer = make_engine(url, read_only=False)
    load_dataset(writer, dataset)
    config = load_config()
    settings = Redis(enabled=True, url=redis_url, ttl_seconds=60)
    config = config.model_copy(
        update={"data_sources": config.data_sources.model_copy(update={"redis": settings})}
    )
    prefix = f"test:{uuid.uuid4().hex}:"
    cache = page_cache(config, prefix=prefix)
    engine = make_engine(url)
    filters = make_filters(NOW - timedelta(days=7), NOW)
    try:
        raw = load_page(engine, config, "performance", filters, cache, now=NOW)
        assert raw.source_note  # no rollup yet: said on the page
        again = load_page(engine, config, "performance", filters, cache, now=NOW)
        assert cache.stats().hits == 1
        assert again.kpis == raw.kpis and again.series.keys() == raw.series.keys()
        refresh(writer, now=NOW)
        rolled = load_page(engine, config, "performance", filters, cache, now=NOW)
        assert cache.stats().misses == 2  # the watermark is in the key: not the raw entry
        assert rolled.source_note is None and rolled.kpis["requests"] == raw.kpis["requests"]
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.keys(f"{prefix}*"):
            client.delete(key)
        cache.close()
        engine.dispose()
        writer.dispose()
