"""The per-user export limit against real Redis servers: the one the tests share (each
test under its own key prefix, deleted afterwards), a closed port, a server that never
answers, and a throwaway one started late to come back after an outage.

The library reads the wall clock itself (``time.time()`` in ``limits``), so the window
tests use a 2-second period and real sleeps; the back-off is checked by counting the
connection attempts made against Redis, never by timing calls.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import port_for
import pytest
import redis
import redis.connection

from analytics_core.export_limits import ExportAllowance, ExportLimiter
from tests.servers import LOOPBACK, started_redis

pytestmark = pytest.mark.redis

LOGGER = "analytics_core.export_limits"
PERIOD = timedelta(seconds=2)
# retry_at is rounded up to the millisecond (Redis gives the moment back to 0.1 ms).
ROUNDING = timedelta(milliseconds=2)
GAP = 0.2  # seconds between the exports of the window test
HOSTILE = [
    "alice",
    "alice ",
    " alice",
    "Alice",
    "a:b",
    "a",
    "b",
    "a:b:c",
    "a/b",
    "a/1/2/second",
    "*",
    "user*",
    "[a-z]?",
    "",
    " ",
    "\x00",
    "a\nb",
    "ünïcødé 用户 🚀",
    "\ud800",  # a lone surrogate: not valid UTF-8, still a name of its own
    "x" * 3000,
    "x" * 2999,
    "x" * 2999 + "y",
]


@pytest.fixture
def prefix(redis_url) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"analytics:test-export-limit:{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=name + ":*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def client(redis_url) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as c:
        yield c


@pytest.fixture
def make_limiter() -> Iterator[Callable[..., ExportLimiter]]:
    """ExportLimiter(...), closed at the end of the test."""
    made: list[ExportLimiter] = []

    def make(*args, **kwargs) -> ExportLimiter:
        limiter = ExportLimiter(*args, **kwargs)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()


@pytest.fixture
def connects(monkeypatch) -> list[tuple[str, int]]:
    """Every TCP connection attempt redis-py makes during the test, as (host, port)."""
    attempts: list[tuple[str, int]] = []
    original = redis.connection.Connection._connect

    def counting(self):
        attempts.append((self.host, self.port))
        return original(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting)
    return attempts


@pytest.fixture
def warnings_log(caplog) -> Callable[[], list[str]]:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return lambda: [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


def _limiter_for(backend: str, make, redis_url: str, prefix: str, count: int, period):
    return make(count, period, redis_url if backend == "redis" else None, key_prefix=prefix)


def _sleep_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def _closed_port_url() -> str:
    # port_for hands out a port nobody listens on; nothing is started there.
    return f"redis://{LOOPBACK}:{port_for.select_random()}/0"


# --- the window ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_burst_of_count_then_one_more_as_the_oldest_leaves(
    backend, make_limiter, redis_url, prefix, client
):
    limiter = _limiter_for(backend, make_limiter, redis_url, prefix, 3, PERIOD)
    t0 = datetime.now(UTC)
    first = limiter.take("alice")
    t0_end = datetime.now(UTC)
    time.sleep(GAP)  # exports apart, so that they leave the window one by one
    t1 = datetime.now(UTC)
    second = limiter.take("alice")
    t2 = datetime.now(UTC)
    time.sleep(GAP)
    third = limiter.take("alice")
    before_fourth = datetime.now(UTC)
    fourth = limiter.take("alice")
    after_fourth = datetime.now(UTC)

    assert [(a.allowed, a.remaining, a.backend) for a in (first, second, third)] == [
        (True, 2, backend),
        (True, 1, backend),
        (True, 0, backend),
    ]
    assert first.retry_at is None and second.retry_at is None
    assert (fourth.allowed, fourth.remaining, fourth.backend) == (False, 0, backend)
    # Available again when the first export leaves the window: exactly one period later.
    assert t0 + PERIOD < fourth.retry_at <= t0_end + PERIOD + ROUNDING
    assert after_fourth < fourth.retry_at <= before_fourth + PERIOD
    assert fourth.retry_at.utcoffset() == timedelta(0)
    assert third.retry_at == fourth.retry_at  # the last allowed one says when the next is
    assert first.message() == "" and third.message() == ""
    stored = list(client.scan_iter(match=prefix + ":*"))
    assert len(stored) == (1 if backend == "redis" else 0)

    # Just before retry_at: still refused, with the same answer.
    _sleep_until(fourth.retry_at - timedelta(milliseconds=300))
    early = limiter.peek("alice")
    assert (early.allowed, early.remaining, early.retry_at) == (False, 0, fourth.retry_at)
    assert not limiter.take("alice").allowed

    # From retry_at on, exactly one more: the second and third exports are still in.
    _sleep_until(fourth.retry_at)
    fifth = limiter.take("alice")
    assert (fifth.allowed, fifth.remaining, fifth.backend) == (True, 0, backend)
    assert t1 + PERIOD < fifth.retry_at <= t2 + PERIOD + ROUNDING
    sixth = limiter.take("alice")
    assert (sixth.allowed, sixth.retry_at) == (False, fifth.retry_at)


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_peek_does_not_consume(backend, make_limiter, redis_url, prefix):
    limiter = _limiter_for(backend, make_limiter, redis_url, prefix, 2, timedelta(minutes=1))
    for _ in range(5):
        assert limiter.peek("bob") == ExportAllowance(
            True, 2, None, backend, 2, timedelta(minutes=1)
        )
    assert (limiter.take("bob").remaining, limiter.peek("bob").remaining) == (1, 1)
    assert limiter.peek("bob").allowed
    last = limiter.take("bob")
    assert (last.allowed, last.remaining) == (True, 0)
    for _ in range(3):
        looked = limiter.peek("bob")
        assert (looked.allowed, looked.remaining, looked.retry_at) == (False, 0, last.retry_at)
    assert not limiter.take("bob").allowed


def test_limiters_on_one_redis_share_a_budget_and_memory_ones_do_not(
    make_limiter, redis_url, prefix
):
    hour = timedelta(hours=1)
    one = make_limiter(3, hour, redis_url, key_prefix=prefix)  # process one
    two = make_limiter(3, hour, redis_url, key_prefix=prefix)  # process two
    assert [one.take("carol").remaining, two.take("carol").remaining] == [2, 1]
    assert one.take("carol").remaining == 0
    refused = two.take("carol")
    assert (refused.allowed, refused.backend) == (False, "redis")
    assert one.peek("carol").retry_at == refused.retry_at
    # A memory-only limiter (another process without Redis) counts on its own...
    alone = make_limiter(3, hour, None, key_prefix=prefix)
    assert (alone.take("carol").remaining, alone.take("carol").backend) == (2, "memory")
    # ...as does any other one: memory is never shared between limiters.
    other = make_limiter(3, hour, None, key_prefix=prefix)
    assert other.peek("carol").remaining == 3
    assert not two.peek("carol").allowed


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_users_are_independent_even_with_hostile_names(
    backend, make_limiter, redis_url, prefix, client
):
    assert len(set(HOSTILE)) == len(HOSTILE)
    limiter = _limiter_for(backend, make_limiter, redis_url, prefix, 1, timedelta(minutes=1))
    # Each name's single export is its own: a shared key would refuse a later name.
    for name in HOSTILE:
        first = limiter.take(name)
        assert (first.allowed, first.remaining, first.backend) == (True, 0, backend), name
    for name in HOSTILE:
        assert not limiter.take(name).allowed, name
    assert limiter.peek("someone else").remaining == 1
    if backend == "redis":
        keys = [k.decode("ascii") for k in client.scan_iter(match=prefix + ":*")]
        assert len(keys) == len(HOSTILE)
        assert all(len(k) < len(prefix) + 100 for k in keys)
        assert all(k.startswith(prefix + ":export/") and " " not in k for k in keys)


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_concurrent_takes_allow_exactly_count(backend, make_limiter, redis_url, prefix):
    limiter = _limiter_for(backend, make_limiter, redis_url, prefix, 5, timedelta(minutes=1))
    threads, start = 16, threading.Barrier(16)
    answers: list[ExportAllowance] = []
    lock = threading.Lock()

    def export() -> None:
        start.wait()
        answer = limiter.take("dave")
        with lock:
            answers.append(answer)

    workers = [threading.Thread(target=export) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    allowed = [a for a in answers if a.allowed]
    assert len(answers) == threads and len(allowed) == 5
    assert all(a.retry_at is not None for a in answers if not a.allowed)
    assert {a.backend for a in answers} == {backend}
    if backend == "memory":  # hit and stats are one step in one process
        assert sorted(a.remaining for a in allowed) == [0, 1, 2, 3, 4]


# --- Redis down --------------------------------------------------------------------------


def test_redis_down_limits_from_memory_and_backs_off(make_limiter, connects, warnings_log):
    url = _closed_port_url()
    limiter = make_limiter(3, timedelta(minutes=1), url, key_prefix="unused")
    answers = [limiter.take("erin") for _ in range(20)]
    assert [a.allowed for a in answers] == [True] * 3 + [False] * 17
    assert [a.remaining for a in answers[:3]] == [2, 1, 0]
    assert {a.backend for a in answers} == {"memory"}
    assert all(a.retry_at == answers[2].retry_at for a in answers[3:])
    assert limiter.peek("frank").remaining == 3
    # One connection attempt for 21 calls: the first failure, then the 30 s back-off.
    assert len(connects) == 1
    assert len(warnings_log()) == 1
    assert "Connection" in warnings_log()[0] and url in warnings_log()[0]
    # Back-off over: Redis is tried again (once), still down; no second warning.
    limiter.retry_after_seconds = 0.0
    assert limiter.take("erin").backend == "memory"
    assert len(connects) == 2 and len(warnings_log()) == 1


def test_redis_that_never_answers_times_out_once(make_limiter, connects, warnings_log):
    # Accepts connections (the kernel's backlog) but never replies: a hung Redis.
    with socket.socket() as hung:
        hung.bind((LOOPBACK, 0))
        hung.listen(8)
        url = f"redis://{LOOPBACK}:{hung.getsockname()[1]}/0"
        limiter = make_limiter(2, timedelta(minutes=1), url, key_prefix="unused")
        answers = [limiter.take("gina") for _ in range(3)]
    assert [(a.allowed, a.backend) for a in answers] == [
        (True, "memory"),
        (True, "memory"),
        (False, "memory"),
    ]
    assert len(connects) == 1
    assert len(warnings_log()) == 1 and "Timeout" in warnings_log()[0]


def test_redis_back_after_an_outage_is_used_again(make_limiter, connects, warnings_log, caplog):
    port = port_for.select_random()
    url = f"redis://{LOOPBACK}:{port}/0"
    limiter = make_limiter(2, timedelta(minutes=1), url, key_prefix="late")
    assert limiter.take("hana").backend == "memory"  # nothing listens yet
    with started_redis(port):
        try:
            # Within the back-off the server is left alone, though it is up now.
            tried = len(connects)
            assert [limiter.take("hana").backend for _ in range(3)] == ["memory"] * 3
            assert len(connects) == tried
            limiter.retry_after_seconds = 0.0
            back = limiter.take("hana")
            # Redis's own budget: the exports counted in memory meanwhile are not copied.
            assert (back.allowed, back.remaining, back.backend) == (True, 1, "redis")
            assert limiter.take("hana").backend == "redis"
            assert not limiter.take("hana").allowed
            assert len(warnings_log()) == 1
            assert any("answers again" in r.getMessage() for r in caplog.records)
        finally:
            limiter.close()


# --- input and message -------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, True])
def test_count_must_be_at_least_one(count):
    with pytest.raises(ValueError, match="count"):
        ExportLimiter(count, PERIOD, None)


@pytest.mark.parametrize(
    "period",
    [
        timedelta(0),
        timedelta(seconds=-1),
        timedelta(milliseconds=500),
        timedelta(seconds=1.5),
        timedelta(minutes=1, microseconds=1),
    ],
)
def test_period_must_be_whole_seconds_of_at_least_one(period):
    with pytest.raises(ValueError, match="period"):
        ExportLimiter(3, period, None)


def test_one_second_works_and_wrong_types_are_refused(make_limiter):
    limiter = make_limiter(1, timedelta(seconds=1), None)
    assert limiter.take("x").allowed
    with pytest.raises(TypeError, match="period"):
        ExportLimiter(1, 60, None)
    with pytest.raises(TypeError, match="user"):
        limiter.take(b"x")  # type: ignore[arg-type]


def _refused(retry_at: datetime, count: int = 20, period=timedelta(hours=1)) -> ExportAllowance:
    return ExportAllowance(False, 0, retry_at, "redis", count, period)


def test_message_names_the_policy_the_local_time_and_the_zone():
    winter = datetime(2025, 1, 15, 13, 5, 12, tzinfo=UTC)  # Paris is UTC+1
    now = datetime(2025, 1, 15, 13, 2, 12, tzinfo=UTC)
    assert _refused(winter).message("Europe/Paris", now=now) == (
        "Export limit reached (20 per 1 hour). "
        "Available again at 14:05:12 (Europe/Paris), in 3 min."
    )
    assert _refused(winter).message(now=now) == (
        "Export limit reached (20 per 1 hour). Available again at 13:05:12 (UTC), in 3 min."
    )
    summer = datetime(2025, 7, 15, 13, 5, 12, tzinfo=UTC)  # Paris is UTC+2
    assert _refused(summer, 3, timedelta(seconds=2)).message(
        "Europe/Paris", now=summer - timedelta(seconds=2)
    ) == ("Export limit reached (3 per 2 seconds). Available again at 15:05:12 (Europe/Paris), "
          "in 2 s.")  # fmt: skip
    assert _refused(summer, 5, timedelta(days=1)).message(
        "America/New_York", now=summer - timedelta(hours=2, minutes=5)
    ) == ("Export limit reached (5 per 1 day). Available again at 09:05:12 (America/New_York), "
          "in 2 h 5 min.")  # fmt: skip


def test_message_rounds_up_and_dates_another_day():
    # 13:05:11.2 is shown as 13:05:12: at the time shown, the export is possible.
    at = datetime(2025, 1, 15, 13, 5, 11, 200_000, tzinfo=UTC)
    text = _refused(at, 4, timedelta(seconds=90)).message(
        now=datetime(2025, 1, 15, 13, 5, 5, tzinfo=UTC)
    )
    assert text == (
        "Export limit reached (4 per 90 seconds). Available again at 13:05:12 (UTC), in 7 s."
    )
    # 23:30 UTC is already tomorrow in Paris.
    late = datetime(2025, 1, 15, 23, 30, tzinfo=UTC)
    now = datetime(2025, 1, 15, 22, 50, tzinfo=UTC)
    assert _refused(late, 2, timedelta(minutes=2)).message("Europe/Paris", now=now) == (
        "Export limit reached (2 per 2 minutes). "
        "Available again at 2025-01-16 00:30:00 (Europe/Paris), in 40 min."
    )
    assert "at 23:30:00 (UTC), in 40 min." in _refused(late).message(now=now)
    assert _refused(late).message(now=late + timedelta(seconds=1)).endswith("(UTC), now.")


def test_message_of_a_real_refusal(make_limiter, redis_url, prefix):
    limiter = make_limiter(1, PERIOD, redis_url, key_prefix=prefix)
    allowed = limiter.take("iris")
    refused = limiter.take("iris")
    assert allowed.message("Europe/Paris") == ""
    shown = refused.retry_at.replace(microsecond=0) + timedelta(seconds=1)
    local = shown.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M:%S")
    text = refused.message("Europe/Paris")
    assert text.startswith("Export limit reached (1 per 2 seconds). Available again at ")
    assert f" {local} (Europe/Paris), in " in text and text.endswith(" s.")
