"""A per-user limit on exports, shared by every app process through Redis.

Policy: a *moving window* of ``count`` exports per ``period`` (the ``limits`` library's
:class:`~limits.strategies.MovingWindowRateLimiter`). A user may export ``count`` times in
a burst; after that, one more export becomes possible each time the oldest export in the
window becomes older than ``period``. This is the token-bucket promise the product asked
for:

* bounded burst: never more than ``count`` exports in a row;
* bounded long-run rate: never more than ``count`` exports in any ``period``;
* an exact "available again at" time: the moment the oldest export in the window leaves
  it, which :attr:`ExportAllowance.retry_at` reports (rounded up to the millisecond, so
  that at ``retry_at`` the export is allowed, never refused; Redis hands the moment back
  to 0.1 ms).

Storage: with a Redis URL the window lives in Redis (the library's own Lua scripts, run
atomically by the server), so every process and host sees one budget per user. Keys are
``{key_prefix}:export/{sha256 of the user name}/{count}/{seconds}/second`` (fixed-length
ASCII, so spaces, colons, ``*``, any Unicode or a 3,000-character name can neither break
a key nor share one); a change of ``count`` or ``period`` starts fresh budgets. The
timestamps in the window come from each app host's clock (the library's choice), so the
hosts' clocks should agree (NTP).

Redis is a dependency of the limit, not of exporting: when it refuses, times out or
errs (``socket_timeout`` and ``socket_connect_timeout`` of :data:`SOCKET_TIMEOUT_SECONDS`,
no client-side retries), the call is answered from a per-process in-memory window
(``backend == "memory"``), the problem is logged at WARNING once per limiter (repeats at
DEBUG, the recovery at INFO), and Redis is tried again at most once every
:data:`RETRY_AFTER_SECONDS` (one caller probes, the others keep to memory), so a dead
Redis does not cost a timeout on every click. While Redis is down each process limits on
its own (a user could get up to ``count`` per process), and the exports counted in
memory are not copied to Redis when it answers again.

The in-memory window belongs to the :class:`ExportLimiter` instance: make one per process
(e.g. with ``st.cache_resource``), not one per session. All methods are thread-safe.
``redis_url=None`` limits from memory only.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from limits import RateLimitItemPerSecond, WindowStats
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from analytics_core.sources.database import redact

log = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "analytics:export-limit"
SOCKET_TIMEOUT_SECONDS = 0.5
RETRY_AFTER_SECONDS = 30.0

_NAMESPACE = "export"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Redis returns the oldest entry of the window through Lua's tostring (14 significant
# digits: 0.1 ms today); this margin keeps retry_at after the true moment.
_RESET_MARGIN_SECONDS = 1e-4
_REDIS_FAILURES = (redis.RedisError, StorageError, OSError)


@dataclass(frozen=True)
class ExportAllowance:
    """The answer of :meth:`ExportLimiter.peek` or :meth:`ExportLimiter.take`.

    ``retry_at`` (aware UTC) is when the next export is possible; it is None exactly when
    ``remaining > 0``, and always set when ``allowed`` is false. ``count`` and ``period``
    are the limiter's policy, for :meth:`message`.
    """

    allowed: bool
    remaining: int
    retry_at: datetime | None
    backend: str
    count: int
    period: timedelta

    def message(self, tz: str = "UTC", *, now: datetime | None = None) -> str:
        """What to tell a refused user, with the time in zone ``tz``; "" when allowed.

        E.g. "Export limit reached (20 per 1 hour). Available again at 14:05:12
        (Europe/Paris), in 3 min." The time is rounded up to the second (and carries the
        date when it is not today in ``tz``); ``now`` (aware) defaults to the clock.
        """
        if self.allowed:
            return ""
        head = f"Export limit reached ({self.count} per {_period_text(self.period)})."
        if self.retry_at is None:
            return head
        zone = ZoneInfo(tz)
        now = datetime.now(UTC) if now is None else now
        at = _ceil_second(self.retry_at)
        local = at.astimezone(zone)
        shown = "%H:%M:%S" if local.date() == now.astimezone(zone).date() else "%Y-%m-%d %H:%M:%S"
        wait = _wait_text((at - now).total_seconds())
        return f"{head} Available again at {local.strftime(shown)} ({tz}), {wait}."


class ExportLimiter:
    """``count`` exports per ``period`` per user, in Redis at ``redis_url`` (None: memory
    only) under ``key_prefix``. See the module docstring for the policy and the fallback."""

    #: Seconds from a Redis failure (or a failed probe) to the next try; an instance may
    #: set its own (read at each call).
    retry_after_seconds: float = RETRY_AFTER_SECONDS

    def __init__(
        self,
        count: int,
        period: timedelta,
        redis_url: str | None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number >= 1, got {count!r}")
        if not isinstance(period, timedelta):
            raise TypeError(f"period must be a timedelta, got {type(period).__name__}")
        if period < timedelta(seconds=1) or period % timedelta(seconds=1):
            raise ValueError(f"period must be whole seconds >= 1, got {period!r}")
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        self.count = count
        self.period = period
        self._item = RateLimitItemPerSecond(
            count, int(period.total_seconds()), namespace=_NAMESPACE
        )
        self._memory = MemoryStorage()
        self._memory_limiter = MovingWindowRateLimiter(self._memory)
        self._memory_lock = threading.Lock()  # hit + stats as one step in this process
        self._state_lock = threading.Lock()
        self._down = False
        self._last_try = 0.0  # time.monotonic() of the last failure or probe of Redis
        self._warned = False
        self._redis: RedisStorage | None = None
        self._redis_limiter: MovingWindowRateLimiter | None = None
        self._where = ""
        if redis_url is not None:
            self._where = redact(redis_url)
            # No client-side retries: the back-off above decides when to try again.
            self._redis = RedisStorage(
                redis_url,
                key_prefix=key_prefix,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            self._redis_limiter = MovingWindowRateLimiter(self._redis)

    def peek(self, user: str) -> ExportAllowance:
        """Whether ``user`` may export now, without consuming anything."""
        key = _user_key(user)

        def look(limiter: MovingWindowRateLimiter) -> tuple[bool, WindowStats]:
            stats = limiter.get_window_stats(self._item, key)
            return stats.remaining > 0, stats

        return self._answer(look)

    def take(self, user: str) -> ExportAllowance:
        """Consume one export of ``user``'s budget when one is left."""
        key = _user_key(user)

        def hit(limiter: MovingWindowRateLimiter) -> tuple[bool, WindowStats]:
            allowed = limiter.hit(self._item, key)
            return allowed, limiter.get_window_stats(self._item, key)

        return self._answer(hit)

    def close(self) -> None:
        """Release the Redis connections and the memory window's timer."""
        if self._redis is not None:
            self._redis.get_connection().close()
        self._memory.timer.cancel()

    def __enter__(self) -> ExportLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    def _answer(
        self, step: Callable[[MovingWindowRateLimiter], tuple[bool, WindowStats]]
    ) -> ExportAllowance:
        (allowed, stats), backend = self._run(step)
        left = max(0, stats.remaining)
        remaining = left if allowed else 0
        if remaining > 0:
            retry_at = None
        elif left == 0:
            retry_at = _instant(stats.reset_time)
        else:
            # Refused, yet the oldest export left the window before the stats were read.
            retry_at = _instant(time.time())
        return ExportAllowance(allowed, remaining, retry_at, backend, self.count, self.period)

    def _run(
        self, step: Callable[[MovingWindowRateLimiter], tuple[bool, WindowStats]]
    ) -> tuple[tuple[bool, WindowStats], str]:
        if self._redis_limiter is not None and self._may_try_redis():
            try:
                result = step(self._redis_limiter)
            except _REDIS_FAILURES as exc:
                self._redis_failed(exc)
            else:
                self._redis_answered()
                return result, "redis"
        with self._memory_lock:
            return step(self._memory_limiter), "memory"

    def _may_try_redis(self) -> bool:
        with self._state_lock:
            if not self._down:
                return True
            now = time.monotonic()
            if now - self._last_try < self.retry_after_seconds:
                return False
            self._last_try = now  # this caller probes; the others keep to memory meanwhile
            return True

    def _redis_failed(self, exc: BaseException) -> None:
        with self._state_lock:
            self._down = True
            self._last_try = time.monotonic()
            first, self._warned = not self._warned, True
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "Export limit: Redis at %s failed (%s: %s); exports are limited per process "
            "from memory, Redis is tried again every %g s",
            self._where,
            type(exc).__name__,
            exc,
            self.retry_after_seconds,
        )

    def _redis_answered(self) -> None:
        with self._state_lock:
            recovered, self._down = self._down, False
        if recovered:
            log.info("Export limit: Redis at %s answers again", self._where)


def _user_key(user: str) -> str:
    if not isinstance(user, str):
        raise TypeError(f"user must be a str, got {type(user).__name__}")
    # surrogatepass: even a lone surrogate is a name of its own, not an encoding error.
    return hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()


def _instant(timestamp: float) -> datetime:
    """The aware UTC datetime of a POSIX timestamp, rounded up past the library's
    precision to the millisecond."""
    millis = math.ceil((timestamp + _RESET_MARGIN_SECONDS) * 1000)
    return _EPOCH + timedelta(milliseconds=millis)


def _ceil_second(moment: datetime) -> datetime:
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def _period_text(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    unit, size = next(
        (unit, size)
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
        if seconds % size == 0
    )
    n = seconds // size
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _wait_text(seconds: float) -> str:
    whole = math.ceil(seconds)
    if whole <= 0:
        return "now"
    if whole < 60:
        return f"in {whole} s"
    minutes = math.ceil(whole / 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"in {hours} h" + (f" {minutes} min" if minutes else "")
