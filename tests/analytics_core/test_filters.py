"""Filter parsing and validation: ranges, time zones, granularity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from analytics_core.filters import (
    InputError,
    auto_granularity,
    clip,
    date_range,
    make_filters,
    parse_instant,
    preset_range,
)


def test_date_only_means_midnight_in_the_zone():
    assert parse_instant("2026-07-01", "Europe/Paris", "--start") == datetime(
        2026, 6, 30, 22, tzinfo=UTC
    )
    assert parse_instant("2026-07-01T12:00:00Z", "Asia/Tokyo", "--start") == datetime(
        2026, 7, 1, 12, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "01/02/2026", ""])
def test_unparsable_dates_are_named(text):
    with pytest.raises(InputError, match="--end"):
        parse_instant(text, "UTC", "--end")


def test_reversed_and_empty_ranges():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InputError, match="empty or reversed"):
        make_filters(t, t)
    with pytest.raises(InputError, match="empty or reversed"):
        make_filters(t, t - timedelta(hours=1))
    with pytest.raises(InputError, match="end date"):
        date_range(date(2026, 1, 2), date(2026, 1, 1), "UTC")


def test_bad_zone_and_granularity():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InputError, match="Mars/Base"):
        make_filters(t, t + timedelta(days=1), tz="Mars/Base")
    with pytest.raises(InputError, match="fortnight"):
        make_filters(t, t + timedelta(days=1), granularity="fortnight")
    with pytest.raises(InputError, match="coarser"):
        make_filters(t, t + timedelta(days=3650), granularity="hour")


def test_previous_period_has_equal_length_and_touches():
    t = datetime(2026, 3, 1, tzinfo=UTC)
    f = make_filters(t, t + timedelta(days=7), tenants=["b", "a", "a"])
    assert f.tenants == ("a", "b")
    prev = f.previous()
    assert prev.end == f.start and prev.length == f.length


def test_presets_and_auto_granularity():
    now = datetime(2026, 3, 1, 12, 34, 56, 789, tzinfo=UTC)
    start, end = preset_range("7d", now)
    assert end == datetime(2026, 3, 1, 12, 34, tzinfo=UTC) and end - start == timedelta(days=7)
    assert auto_granularity(start, end) == "day"
    assert auto_granularity(end - timedelta(hours=24), end) == "hour"
    assert auto_granularity(end - timedelta(days=365), end) == "week"
    with pytest.raises(InputError):
        preset_range("custom", now)


def test_whole_local_days_across_dst():
    start, end = date_range(date(2026, 3, 29), date(2026, 3, 29), "Europe/Paris")
    assert end - start == timedelta(hours=23)  # the spring-forward day


def test_describe_names_range_in_zone_and_every_active_filter():
    start, end = date_range(date(2026, 11, 1), date(2026, 11, 7), "America/New_York")
    plain = make_filters(start, end, "America/New_York", "day")
    assert plain.describe() == ("2026-11-01 00:00 → 2026-11-08 00:00 (America/New_York), by day")
    f = make_filters(
        start, end, "America/New_York", "hour", ["t_a"], ["zscore", "iforest"], ["/api/x"]
    )
    assert f.describe({"t_a": "Acme"}) == (
        "2026-11-01 00:00 → 2026-11-08 00:00 (America/New_York), by hour; "
        "tenant Acme (t_a) only; algorithms iforest, zscore only; endpoint /api/x only"
    )
    # Without names the id still says which tenant it is.
    assert "tenant t_a only" in f.describe()


def test_clip_cuts_long_values():
    assert clip("short") == "short"
    assert clip("x" * 3000) == "x" * 60 + "…"
    with pytest.raises(InputError) as err:
        make_filters(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), "z" * 3000)
    assert len(str(err.value)) < 200
