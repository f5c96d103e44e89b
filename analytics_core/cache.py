"""A page cache shared by every app process, in Redis (``data_sources.redis``).

``page_cache(config)`` gives a :class:`RedisPageCache` when Redis is enabled, else a
:class:`PageCache` that builds every time; both answer ``get_or_build(key, build)`` and
``stats()``. Keys come from the caller and are namespaced with :data:`KEY_PREFIX`; every
entry expires after ``ttl_seconds`` (default: the dashboard refresh interval).

The cache is an optimisation, never a dependency: when Redis is down, slow or full, or an
entry cannot be read, the page is built uncached and the problem is logged at WARNING
once per process and kind (later repeats at DEBUG). After a refused connection or a
timeout the server is left alone for ``retry_after`` seconds, so a dead Redis does not add
a timeout to every page.

Entries are never pickled (anyone who can write to Redis could run code in the app):
:func:`dumps_page` writes the scalar parts as tagged JSON and each DataFrame as an Arrow
IPC stream, frames of one schema stacked in one stream. Layout: ``MAGIC``, a 4-byte
big-endian header length, the JSON header (the page, and where each frame lies), then per
stream an 8-byte length and the stream. Only values that come back exactly (type, dtype,
time zone, NaN) are accepted; anything else raises :class:`Unserialisable` and the page
is served uncached rather than stored altered.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import struct
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from analytics_core.config import Config
from analytics_core.filters import Filters, zone
from analytics_core.insights import Insight
from analytics_core.insights.compare import Change
from analytics_core.page_data import PageData
from analytics_core.sources.database import redact

log = logging.getLogger(__name__)

# Bump the version when the entry layout changes: old entries then simply go unread.
KEY_PREFIX = "analytics:page:v5:"
MAGIC = b"analytics-page/2\n"
DEFAULT_TIMEOUT_SECONDS = 0.3
DEFAULT_RETRY_AFTER_SECONDS = 30.0

_HEADER_LENGTH = struct.Struct(">I")
_FRAME_LENGTH = struct.Struct(">Q")
_TAG = "$type"
# The dataclasses an entry may contain, by the name written in it.
_RECORDS: dict[str, type] = {cls.__name__: cls for cls in (PageData, Filters, Insight, Change)}
# numpy scalars kept as themselves: bool, signed, unsigned, float, text.
_NUMPY_KINDS = "biufU"
# Column dtypes whose Arrow round trip is exact (checked in tests/analytics_core/test_cache.py).
_EXACT_DTYPES = (
    pd.DatetimeTZDtype,
    pd.BooleanDtype,
    pd.Int8Dtype,
    pd.Int16Dtype,
    pd.Int32Dtype,
    pd.Int64Dtype,
    pd.UInt8Dtype,
    pd.UInt16Dtype,
    pd.UInt32Dtype,
    pd.UInt64Dtype,
)


class Unserialisable(ValueError):
    """The page holds a value that would not come back exactly; it is not cached."""


class CorruptEntry(ValueError):
    """A cache entry that is not a page written by :func:`dumps_page` (truncated, foreign)."""


# --- serialisation -----------------------------------------------------------------------


def dumps_page(page: PageData) -> bytes:
    """The cache entry for ``page``; raises :class:`Unserialisable`."""
    frames: list[pd.DataFrame] = []
    try:
        document = _encode(page, frames)
        blocks, places = _frame_blocks(frames)
        document = {"page": document, "frames": places}
        # NaN and infinities stay as Python's json writes them (NaN, Infinity).
        header = json.dumps(document, allow_nan=True, separators=(",", ":")).encode()
        parts: list[bytes | pa.Buffer] = [MAGIC, _HEADER_LENGTH.pack(len(header)), header]
        for block in blocks:
            stream = _table_stream(block)
            parts += [_FRAME_LENGTH.pack(stream.size), stream]
    except Unserialisable:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever fails to encode is simply not cached
        raise Unserialisable(f"{type(exc).__name__}: {exc}") from exc
    return b"".join(parts)


def loads_page(blob: bytes) -> PageData:
    """The page in a cache entry; raises :class:`CorruptEntry` for anything else."""
    try:
        view = memoryview(blob)
        if bytes(view[: len(MAGIC)]) != MAGIC:
            raise CorruptEntry("not a page entry (unknown header)")
        at = len(MAGIC)
        (size,) = _HEADER_LENGTH.unpack_from(view, at)
        at += _HEADER_LENGTH.size
        if at + size > len(view):
            raise CorruptEntry("truncated")
        document = json.loads(bytes(view[at : at + size]))
        at += size
        blocks = []
        while at < len(view):
            (size,) = _FRAME_LENGTH.unpack_from(view, at)
            at += _FRAME_LENGTH.size
            if at + size > len(view):
                raise CorruptEntry("truncated")
            blocks.append(_read_frame(view[at : at + size]))
            at += size
        places = document["frames"]
        if not isinstance(places, list):
            raise CorruptEntry("no list of frames")
        handed: set[int] = set()
        frames = [_frame_at(blocks, place, handed) for place in places]
        page = _decode(document["page"], frames)
    except CorruptEntry:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed entry is a miss, not a crash
        raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
    if type(page) is not PageData:
        raise CorruptEntry(f"holds a {type(page).__name__}, not a page")
    return page


def _frame_blocks(frames: list[pd.DataFrame]) -> tuple[list[pa.Table], list[list[int]]]:
    """The frames as Arrow tables, those of one schema stacked into one table, and where
    each frame lies: ``[block, first row, rows]``. A page carries a score of small frames
    of a few shapes (evidence series, tables); turning one table per shape back into
    pandas costs a fraction of doing it per frame, the reader's hot path."""
    blocks: list[list[pa.Table]] = []
    by_schema: dict[bytes, int] = {}
    places = []
    for frame in frames:
        _check_frame(frame)
        if _stackable(frame):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            shape = table.schema.serialize().to_pybytes()
        else:  # its index travels in the table's own metadata: a block of its own
            table, shape = pa.Table.from_pandas(frame, preserve_index=None), None
        block = by_schema.get(shape) if shape is not None else None
        if block is None:
            block = len(blocks)
            blocks.append([])
            if shape is not None:
                by_schema[shape] = block
        places.append([block, sum(t.num_rows for t in blocks[block]), table.num_rows])
        blocks[block].append(table)
    return [pa.concat_tables(tables) for tables in blocks], places


def _stackable(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` comes back exactly from a table without pandas' index and column
    index metadata: an index 0, 1, 2, ... without a name (what ``reset_index(drop=True)``
    gives back) and unnamed text columns, at least one."""
    index = frame.index
    return (
        len(frame.columns) > 0
        and frame.columns.name is None
        and isinstance(index, pd.RangeIndex)
        and index.start == 0
        and index.step == 1
        and index.name is None
    )


def _frame_at(blocks: list[pd.DataFrame], place: object, handed: set[int]) -> pd.DataFrame:
    """The frame at ``place``; ``handed``: the blocks already given out whole."""
    if not (
        isinstance(place, list)
        and len(place) == 3
        and all(type(v) is int and v >= 0 for v in place)
        and place[0] < len(blocks)
    ):
        raise CorruptEntry(f"no frame at {place!r}")
    block, first, rows = place
    whole = blocks[block]
    if first + rows > len(whole):
        raise CorruptEntry(f"no frame at {place!r}")
    if first == 0 and rows == len(whole) and block not in handed:
        handed.add(block)  # once: two empty frames must not come back as one object
        return whole
    # A view of the block (copy-on-write: changing it copies, never touching the others).
    return whole.iloc[first : first + rows].reset_index(drop=True)


def _table_stream(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    # Uncompressed: pages are tens of kB and reads are the hot path (zstd/lz4 measured
    # slower to read back a page of small frames).
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _read_frame(stream: memoryview) -> pd.DataFrame:
    with pa.ipc.open_stream(pa.py_buffer(stream)) as reader:
        # One thread: the blocks are small, and starting a pool costs more than it saves.
        return reader.read_all().to_pandas(use_threads=False)


def _check_frame(frame: pd.DataFrame) -> None:
    """Refuse what Arrow would hand back changed: non-text or repeated column names (made
    text), object columns holding values (read back as another dtype), attrs (dropped)."""
    if frame.attrs:
        raise Unserialisable("a DataFrame with attrs")
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex) or not all(type(c) is str for c in columns):
        raise Unserialisable("a DataFrame whose column names are not all text")
    if columns.has_duplicates:
        raise Unserialisable("a DataFrame with repeated column names")
    index = frame.index
    if isinstance(index, pd.MultiIndex):
        raise Unserialisable("a DataFrame with a MultiIndex")
    for name in (columns.name, index.name):
        if name is not None and type(name) is not str:
            raise Unserialisable("a DataFrame whose index or columns name is not text")
    if not isinstance(index, pd.RangeIndex):
        _check_values(index.dtype, index, "index")
    for name, dtype in frame.dtypes.items():
        _check_values(dtype, frame[name], f"column {name!r}")


def _check_values(dtype: object, values: pd.Series | pd.Index, what: str) -> None:
    if isinstance(dtype, np.dtype):
        if dtype.kind in "biufmM":
            return
        # An object column with nothing in it (e.g. an empty result) comes back as one.
        if dtype.kind == "O" and all(v is None for v in values):
            return
    elif isinstance(dtype, _EXACT_DTYPES) or _arrow_text(dtype):
        return
    raise Unserialisable(f"{what} of dtype {dtype}")


def _arrow_text(dtype: object) -> bool:
    # Text comes back Arrow-backed (pandas' default when pyarrow is installed), so only
    # that storage returns as itself.
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _encode(value: object, frames: list[pd.DataFrame]) -> object:
    """JSON-ready form of ``value``; types JSON lacks are tagged ``{"$type": ...}``."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [_encode(v, frames) for v in value]  # type: ignore[attr-defined]
    if kind is dict:
        items: dict[object, object] = value  # type: ignore[assignment]
        if not all(type(k) is str for k in items):
            raise Unserialisable("a dict whose keys are not all text")
        encoded = {k: _encode(v, frames) for k, v in items.items()}
        return {_TAG: "dict", "v": encoded} if _TAG in encoded else encoded
    if kind is tuple:
        return {_TAG: "tuple", "v": [_encode(v, frames) for v in value]}  # type: ignore[attr-defined]
    if isinstance(value, np.generic) and value.dtype.kind in _NUMPY_KINDS:
        return {_TAG: "numpy", "dtype": value.dtype.str, "v": value.item()}
    if kind is pd.DataFrame:
        frames.append(value)  # type: ignore[arg-type]
        return {_TAG: "frame", "v": len(frames) - 1}
    if kind is pd.Timestamp:
        ts: pd.Timestamp = value  # type: ignore[assignment]
        return {_TAG: "timestamp", "v": ts.isoformat(), "unit": ts.unit, "tz": _tz_token(ts.tz)}
    if kind is datetime:
        dt: datetime = value  # type: ignore[assignment]
        return {_TAG: "datetime", "v": dt.isoformat(), "tz": _tz_token(dt.tzinfo)}
    if kind is date:
        return {_TAG: "date", "v": value.isoformat()}  # type: ignore[attr-defined]
    if kind is timedelta:
        td: timedelta = value  # type: ignore[assignment]
        return {_TAG: "timedelta", "v": [td.days, td.seconds, td.microseconds]}
    if _RECORDS.get(kind.__name__) is kind:
        fields = {f.name: _encode(getattr(value, f.name), frames) for f in _fields(kind)}
        return {_TAG: kind.__name__, "v": fields}
    raise Unserialisable(f"a value of type {kind.__module__}.{kind.__qualname__}")


def _decode(value: object, frames: list[pd.DataFrame]) -> object:
    if isinstance(value, list):
        return [_decode(v, frames) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v, frames) for k, v in value.items()}
    raw = value["v"]
    if tag == "dict":
        return {k: _decode(v, frames) for k, v in raw.items()}
    if tag == "tuple":
        return tuple(_decode(v, frames) for v in raw)
    if tag == "numpy":
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in _NUMPY_KINDS:
            raise CorruptEntry(f"numpy scalar of dtype {dtype}")
        return dtype.type(raw)
    if tag == "frame":
        if type(raw) is not int or not 0 <= raw < len(frames):
            raise CorruptEntry(f"no frame {raw!r}")
        return frames[raw]
    if tag == "timestamp":
        stamp = pd.Timestamp(raw).as_unit(value["unit"])
        tz = _tz_from_token(value["tz"])
        return stamp if tz is None else stamp.tz_convert(tz)
    if tag == "datetime":
        moment = datetime.fromisoformat(raw)
        tz = _tz_from_token(value["tz"])
        return moment if tz is None else moment.astimezone(tz)
    if tag == "date":
        return date.fromisoformat(raw)
    if tag == "timedelta":
        days, seconds, microseconds = raw
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)
    record = _RECORDS.get(tag)
    if record is not None:
        names = {f.name for f in _fields(record)}
        if set(raw) != names:  # written by another version of the class
            raise CorruptEntry(f"{tag} fields {sorted(raw)} are not {sorted(names)}")
        return record(**{k: _decode(v, frames) for k, v in raw.items()})
    raise CorruptEntry(f"unknown tag {tag!r}")


def _fields(record: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(record) if f.init)


def _tz_token(tz: object) -> object:
    if tz is None:
        return None
    if isinstance(tz, ZoneInfo):
        return {"zone": tz.key}
    if type(tz) is timezone:
        offset = tz.utcoffset(None)
        return {"offset_us": offset // timedelta(microseconds=1)}
    raise Unserialisable(f"a time zone of type {type(tz).__qualname__}")


def _tz_from_token(token: object) -> ZoneInfo | timezone | None:
    if token is None:
        return None
    if not isinstance(token, dict):
        raise CorruptEntry(f"time zone {token!r}")
    if "zone" in token:
        return zone(token["zone"])  # refuses anything but an IANA name
    return timezone(timedelta(microseconds=token["offset_us"]))


# --- the caches ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CacheStats:
    enabled: bool
    hits: int
    misses: int  # pages built (including while Redis was unavailable)
    errors: int  # failed Redis calls and unreadable entries
    available: bool  # False while waiting out an outage


class WarnOnce:
    """Logs the first failure of each kind at WARNING, repeats at DEBUG: a dead Redis is
    worth one line in the log, not one per page view."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, kind: str, message: str, *args: object) -> None:
        with self._lock:
            first = kind not in self._seen
            self._seen.add(kind)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)


PROCESS_WARNINGS = WarnOnce()


class PageCache:
    """No cache: every call builds the page. What a config without Redis gets, and the
    interface :class:`RedisPageCache` shares."""

    enabled = False

    def __init__(self, warn: WarnOnce | None = None) -> None:
        self._warn = warn or PROCESS_WARNINGS
        self._lock = threading.Lock()
        self._hits = self._misses = self._errors = 0

    def get_or_build(self, key: str, build: Callable[[], PageData]) -> PageData:
        """The cached page under ``key``, else ``build()`` (its exceptions propagate and
        nothing is stored)."""
        self._count(misses=1)
        return build()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.enabled, self._hits, self._misses, self._errors, True)

    def close(self) -> None:
        """Release connections (nothing to release here)."""

    def _count(self, hits: int = 0, misses: int = 0, errors: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._errors += errors


class RedisPageCache(PageCache):
    """Pages in Redis under ``prefix + key``, each expiring after ``ttl_seconds``."""

    enabled = True

    def __init__(
        self,
        url: str,
        ttl_seconds: int,
        *,
        prefix: str = KEY_PREFIX,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry_after: float = DEFAULT_RETRY_AFTER_SECONDS,
        warn: WarnOnce | None = None,
    ) -> None:
        super().__init__(warn)
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        self._ttl = int(ttl_seconds)
        self._prefix = prefix
        self._retry_after = retry_after
        self._where = redact(url)
        # No client-side retries: our own back-off decides when to try a failing server.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._timeout = timeout
        self._down_until = 0.0  # time.monotonic() before which Redis is not tried
        self._down = False

    def get_or_build(self, key: str, build: Callable[[], PageData]) -> PageData:
        name = self._prefix + key
        blob = self._fetch(name)
        if blob is not None:
            try:
                page = loads_page(blob)
            except CorruptEntry as exc:
                self._count(errors=1)
                self._warn("corrupt", "Redis cache entry %s is unreadable (%s); rebuilt", name, exc)
            else:
                self._count(hits=1)
                return page
        self._count(misses=1)
        page = build()
        if not page.degraded:  # built while a source failed: never kept
            self._store(name, page)
        return page

    def stats(self) -> CacheStats:
        with self._lock:
            available = time.monotonic() >= self._down_until
            return CacheStats(True, self._hits, self._misses, self._errors, available)

    def close(self) -> None:
        self._client.close()

    def _ready(self) -> bool:
        with self._lock:
            return time.monotonic() >= self._down_until

    def _fetch(self, name: str) -> bytes | None:
        if not self._ready():
            return None
        try:
            blob = self._client.get(name)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._answered()
        return blob  # type: ignore[return-value]

    def _store(self, name: str, page: PageData) -> None:
        if not self._ready():
            return
        try:
            blob = dumps_page(page)
        except Unserialisable as exc:
            self._warn("unserialisable", "a %s page is not cached: it holds %s", page.page, exc)
            return
        try:
            self._client.set(name, blob, ex=self._ttl)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._answered()

    def _failed(self, exc: Exception) -> None:
        self._count(errors=1)
        if isinstance(exc, redis.exceptions.OutOfMemoryError):
            # Reads still work, so no back-off: only new pages go uncached.
            self._warn(
                "full",
                "Redis cache at %s is full (%s): new pages are not cached; raise maxmemory "
                "or set an eviction policy such as allkeys-lru",
                self._where,
                exc,
            )
            return
        if isinstance(exc, redis.TimeoutError):
            kind, what = "slow", f"did not answer within {self._timeout:g} s"
        elif isinstance(exc, (redis.ConnectionError, OSError)):
            kind, what = "unavailable", "is unreachable"
        else:
            self._warn("error", "Redis cache at %s failed (%s); page not cached", self._where, exc)
            return
        with self._lock:
            self._down_until = time.monotonic() + self._retry_after
            self._down = True
        self._warn(
            kind,
            "Redis cache at %s %s (%s): pages are built uncached; trying again every %g s",
            self._where,
            what,
            exc,
            self._retry_after,
        )

    def _answered(self) -> None:
        with self._lock:
            recovered, self._down = self._down, False
        if recovered:
            log.info("Redis cache at %s answers again", self._where)


def page_cache(
    config: Config, *, prefix: str = KEY_PREFIX, warn: WarnOnce | None = None
) -> PageCache:
    """The cache ``config.data_sources.redis`` asks for; a no-op one when it is disabled
    or its URL is unusable (said once in the log)."""
    settings = config.data_sources.redis
    warn = warn or PROCESS_WARNINGS
    if not settings.enabled:
        return PageCache(warn)
    if not settings.url:
        warn("config", "data_sources.redis is enabled without a url; pages are not cached")
        return PageCache(warn)
    ttl = settings.ttl_seconds or config.dashboard.refresh_interval_seconds
    try:
        return RedisPageCache(settings.url, ttl, prefix=prefix, warn=warn)
    except ValueError as exc:  # redis-py's word for a URL it cannot use
        warn(
            "config",
            "data_sources.redis.url %s: %s; pages are not cached",
            redact(settings.url),
            exc,
        )
        return PageCache(warn)
