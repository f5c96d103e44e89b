"""The tiling of a range into month/day/hour rollup pieces and raw pieces.

Expected pieces are worked out by hand in the comments; a randomised check then
verifies the invariants (exact cover, validity below the watermark, every rollup unit
inside one output bucket) against pandas' own calendar arithmetic.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from analytics_core.filters import Filters
from analytics_core.rollup.tiles import (
    RAW,
    Piece,
    bucket_boundaries,
    local_start,
    next_unit,
    plan,
    spans,
)

FAR = datetime(2030, 1, 1, tzinfo=UTC)  # a "now" after every range


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(text: str, tz: str) -> datetime:
    return pd.Timestamp(text).tz_localize(tz).to_pydatetime().astimezone(UTC)


def f(start: datetime, end: datetime, granularity: str, tz: str = "UTC") -> Filters:
    return Filters(start=start, end=end, tz=tz, granularity=granularity)


def pieces(*rows: tuple[str, datetime, datetime]) -> list[Piece]:
    return [Piece(*row) for row in rows]


def test_utc_day_granularity_uses_days_hours_and_raw_edges():
    # Range 01-30 10:30 → 03-05, watermark 03-03 15:00. Day buckets are UTC days, so
    # months never fit in one; days fit below floor_day(wm) = 03-03.
    got = plan(f(utc(2026, 1, 30, 10, 30), utc(2026, 3, 5), "day"), FAR, utc(2026, 3, 3, 15))
    assert got == pieces(
        (RAW, utc(2026, 1, 30, 10, 30), utc(2026, 1, 30, 11)),
        ("hour", utc(2026, 1, 30, 11), utc(2026, 1, 31)),
        ("day", utc(2026, 1, 31), utc(2026, 3, 3)),
        ("hour", utc(2026, 3, 3), utc(2026, 3, 3, 15)),
        (RAW, utc(2026, 3, 3, 15), utc(2026, 3, 5)),
    )


@pytest.mark.parametrize("granularity", ["month", None])
def test_utc_month_granularity_and_kpis_use_whole_months(granularity):
    # February is a whole month below floor_month(wm) = 03-01; None = KPI (ungrouped).
    filters = f(utc(2026, 1, 30, 10, 30), utc(2026, 3, 5), granularity or "day")
    got = plan(filters, FAR, utc(2026, 3, 3, 15), by_bucket=granularity is not None)
    assert got == pieces(
        (RAW, utc(2026, 1, 30, 10, 30), utc(2026, 1, 30, 11)),
        ("hour", utc(2026, 1, 30, 11), utc(2026, 1, 31)),
        ("day", utc(2026, 1, 31), utc(2026, 2, 1)),
        ("month", utc(2026, 2, 1), utc(2026, 3, 1)),
        ("day", utc(2026, 3, 1), utc(2026, 3, 3)),
        ("hour", utc(2026, 3, 3), utc(2026, 3, 3, 15)),
        (RAW, utc(2026, 3, 3, 15), utc(2026, 3, 5)),
    )


def test_paris_spring_forward_days_read_hours_only():
    # Local 03-28 → 03-31 = UTC 03-27 23:00 → 03-30 22:00 (CET +1, then CEST +2 from
    # 03-29 01:00 UTC). No UTC day lies inside a Paris day; every UTC hour does.
    filters = f(local("2026-03-28", "Europe/Paris"), local("2026-03-31", "Europe/Paris"), "day")
    filters = Filters(filters.start, filters.end, "Europe/Paris", "day")
    assert filters.start == utc(2026, 3, 27, 23) and filters.end == utc(2026, 3, 30, 22)
    got = plan(filters, FAR, utc(2026, 4, 2))
    assert got == pieces(("hour", utc(2026, 3, 27, 23), utc(2026, 3, 30, 22)))


def test_paris_week_granularity_and_kpis_use_the_days_inside():
    # Monday 03-30 00:00 CEST = 03-29 22:00 UTC cuts the range into two week buckets.
    # The UTC day 03-28 lies inside the first one; 03-29 straddles the cut (by hours).
    start, end = local("2026-03-28", "Europe/Paris"), local("2026-03-31", "Europe/Paris")
    weekly = plan(Filters(start, end, "Europe/Paris", "week"), FAR, utc(2026, 4, 2))
    assert weekly == pieces(
        ("hour", utc(2026, 3, 27, 23), utc(2026, 3, 28)),
        ("day", utc(2026, 3, 28), utc(2026, 3, 29)),
        ("hour", utc(2026, 3, 29), utc(2026, 3, 30, 22)),
    )
    ungrouped = plan(Filters(start, end, "Europe/Paris", "day"), FAR, utc(2026, 4, 2), False)
    assert ungrouped == pieces(
        ("hour", utc(2026, 3, 27, 23), utc(2026, 3, 28)),
        ("day", utc(2026, 3, 28), utc(2026, 3, 30)),
        ("hour", utc(2026, 3, 30), utc(2026, 3, 30, 22)),
    )


def test_new_york_fall_back_day_has_25_hours():
    ny = "America/New_York"
    # Local midnights: 10-31 04:00 UTC (EDT), 11-01 04:00 UTC (EDT), 11-02 05:00 UTC (EST).
    filters = Filters(local("2026-10-31", ny), local("2026-11-03", ny), ny, "day")
    assert bucket_boundaries(filters, filters.start, filters.end) == [
        utc(2026, 11, 1, 4),
        utc(2026, 11, 2, 5),
    ]
    got = plan(filters, FAR, utc(2026, 11, 2, 12))
    assert got == pieces(
        ("hour", utc(2026, 10, 31, 4), utc(2026, 11, 2, 12)),
        (RAW, utc(2026, 11, 2, 12), utc(2026, 11, 3, 5)),
    )


def test_new_york_month_granularity_over_the_dst_change():
    ny = "America/New_York"
    # Local October = [10-01 04:00, 11-01 04:00) UTC, local November = [11-01 04:00,
    # 12-01 05:00) UTC. UTC October does not fit in local October (it ends 4 h later),
    # but its days 10-02 … 10-31 do; the first and last hours of each local month are
    # read from hour rows.
    filters = Filters(local("2026-10-01", ny), local("2026-12-01", ny), ny, "month")
    got = plan(filters, FAR, utc(2026, 12, 10))
    assert got == pieces(
        ("hour", utc(2026, 10, 1, 4), utc(2026, 10, 2)),
        ("day", utc(2026, 10, 2), utc(2026, 11, 1)),
        ("hour", utc(2026, 11, 1), utc(2026, 11, 2)),
        ("day", utc(2026, 11, 2), utc(2026, 12, 1)),
        ("hour", utc(2026, 12, 1), utc(2026, 12, 1, 5)),
    )


def test_kolkata_half_hour_offset_reads_the_straddling_hours_raw():
    kol = "Asia/Kolkata"
    # Local days start at 18:30 UTC: the hour 18:00-19:00 UTC straddles every boundary.
    filters = Filters(local("2026-05-10", kol), local("2026-05-12", kol), kol, "day")
    assert filters.start == utc(2026, 5, 9, 18, 30)
    wm = utc(2026, 6, 1)
    assert plan(filters, FAR, wm) == pieces(
        (RAW, utc(2026, 5, 9, 18, 30), utc(2026, 5, 9, 19)),
        ("hour", utc(2026, 5, 9, 19), utc(2026, 5, 10, 18)),
        (RAW, utc(2026, 5, 10, 18), utc(2026, 5, 10, 19)),
        ("hour", utc(2026, 5, 10, 19), utc(2026, 5, 11, 18)),
        (RAW, utc(2026, 5, 11, 18), utc(2026, 5, 11, 18, 30)),
    )
    # Hourly buckets are UTC hours, so only the two half-hour edges are raw.
    hourly = Filters(filters.start, filters.end, kol, "hour")
    assert plan(hourly, FAR, wm) == pieces(
        (RAW, utc(2026, 5, 9, 18, 30), utc(2026, 5, 9, 19)),
        ("hour", utc(2026, 5, 9, 19), utc(2026, 5, 11, 18)),
        (RAW, utc(2026, 5, 11, 18), utc(2026, 5, 11, 18, 30)),
    )
    # Ungrouped (KPIs): the whole UTC day 05-10 can be one day row.
    assert plan(filters, FAR, wm, by_bucket=False) == pieces(
        (RAW, utc(2026, 5, 9, 18, 30), utc(2026, 5, 9, 19)),
        ("hour", utc(2026, 5, 9, 19), utc(2026, 5, 10)),
        ("day", utc(2026, 5, 10), utc(2026, 5, 11)),
        ("hour", utc(2026, 5, 11), utc(2026, 5, 11, 18)),
        (RAW, utc(2026, 5, 11, 18), utc(2026, 5, 11, 18, 30)),
    )


def test_range_starting_and_ending_mid_hour():
    filters = f(utc(2026, 5, 1, 10, 15), utc(2026, 5, 1, 13, 45), "hour")
    assert plan(filters, FAR, utc(2026, 5, 1, 12)) == pieces(
        (RAW, utc(2026, 5, 1, 10, 15), utc(2026, 5, 1, 11)),
        ("hour", utc(2026, 5, 1, 11), utc(2026, 5, 1, 12)),
        (RAW, utc(2026, 5, 1, 12), utc(2026, 5, 1, 13, 45)),
    )
    # Inside one hour nothing fits.
    inside = f(utc(2026, 5, 1, 10, 15), utc(2026, 5, 1, 10, 45), "hour")
    assert plan(inside, FAR, utc(2026, 5, 2)) == pieces(
        (RAW, utc(2026, 5, 1, 10, 15), utc(2026, 5, 1, 10, 45))
    )


def test_no_watermark_reads_everything_raw_up_to_now():
    filters = f(utc(2026, 1, 1), utc(2026, 3, 1), "day")
    now = utc(2026, 2, 10, 8, 30)
    assert plan(filters, now, None) == pieces((RAW, utc(2026, 1, 1), now))
    assert plan(filters, now, None, by_bucket=False) == pieces((RAW, utc(2026, 1, 1), now))


def test_range_entirely_after_the_watermark_is_raw():
    filters = f(utc(2026, 4, 1), utc(2026, 4, 8), "day")
    assert plan(filters, FAR, utc(2026, 3, 15, 6)) == pieces(
        (RAW, utc(2026, 4, 1), utc(2026, 4, 8))
    )


def test_now_before_the_start_gives_nothing_and_now_cuts_the_tail():
    filters = f(utc(2026, 4, 1), utc(2026, 4, 8), "day")
    assert plan(filters, utc(2026, 3, 1), utc(2026, 3, 1)) == []
    now = utc(2026, 4, 3, 7, 20)
    assert plan(filters, now, utc(2026, 4, 3, 6)) == pieces(
        ("day", utc(2026, 4, 1), utc(2026, 4, 3)),
        ("hour", utc(2026, 4, 3), utc(2026, 4, 3, 6)),
        (RAW, utc(2026, 4, 3, 6), now),
    )


def test_a_watermark_in_a_later_month_allows_the_month_tier_only_before_it():
    # floor_month(2026-03-01 00:00) = 03-01: February qualifies, March does not.
    filters = f(utc(2026, 2, 1), utc(2026, 4, 1), "month")
    assert plan(filters, FAR, utc(2026, 3, 1)) == pieces(
        ("month", utc(2026, 2, 1), utc(2026, 3, 1)),
        (RAW, utc(2026, 3, 1), utc(2026, 4, 1)),
    )
    assert spans(plan(filters, FAR, utc(2026, 4, 1)), "month") == [
        (utc(2026, 2, 1), utc(2026, 4, 1))
    ]


def test_local_start_of_skipped_and_repeated_midnights():
    # Santiago: clocks go from 24:00 to 01:00 on 2026-09-06 (-04 → -03): the local day
    # starts at the transition, 04:00 UTC.
    santiago = ZoneInfo("America/Santiago")
    assert local_start(date(2026, 9, 6), santiago) == utc(2026, 9, 6, 4)
    # Santiago, 2026-04-05 03:00 UTC: clocks go back from 24:00 to 23:00, so the wall time
    # 04-05 00:00 is only reached at 04:00 UTC (03:30 UTC is still 04-04 23:30 local).
    assert local_start(date(2026, 4, 5), santiago) == utc(2026, 4, 5, 4)
    # Havana, 2026-11-01: clocks back from 01:00 to 00:00, so midnight happens twice
    # (04:00 and 05:00 UTC); the day starts at the first.
    assert local_start(date(2026, 11, 1), ZoneInfo("America/Havana")) == utc(2026, 11, 1, 4)
    assert local_start(date(2026, 3, 29), ZoneInfo("Europe/Paris")) == utc(2026, 3, 28, 23)


def _output_bucket(t: datetime, filters: Filters) -> pd.Timestamp:
    """The output bucket of ``t`` by pandas calendar arithmetic (as the SQL buckets)."""
    ts = pd.Timestamp(t)
    if filters.granularity == "hour":
        return ts.floor("h")
    wall = ts.tz_convert(filters.tz).tz_localize(None).normalize()
    if filters.granularity == "week":
        return wall - pd.Timedelta(days=wall.weekday())
    if filters.granularity == "month":
        return wall.replace(day=1)
    return wall


@pytest.mark.parametrize("seed", range(6))
def test_random_plans_cover_exactly_with_valid_units(seed):
    rng = random.Random(seed)
    zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
    for _ in range(40):
        start = utc(2026, 1, 1) + timedelta(minutes=rng.randrange(0, 400 * 24 * 60))
        end = start + timedelta(minutes=rng.randrange(1, 120 * 24 * 60))
        granularity = rng.choice(["hour", "day", "week", "month"])
        if granularity == "hour":
            end = min(end, start + timedelta(days=10))
        filters = Filters(start, end, rng.choice(zones), granularity)
        wm = rng.choice([None, start + (end - start) * rng.random()])
        wm = wm and wm.replace(minute=0, second=0, microsecond=0)
        now = rng.choice([FAR, start + (end - start) * rng.random()])
        for grouped in (True, False):
            got = plan(filters, now, wm, by_bucket=grouped)
            observed_end = filters.observed_end(now)
            if observed_end <= start:
                assert got == []
                continue
            assert got[0].start == start and got[-1].end == observed_end
            for a, b in zip(got, got[1:], strict=False):
                assert a.end == b.start and a.tier != b.tier  # contiguous, merged
            limits = {}
            if wm is not None:
                day = pd.Timestamp(wm).floor("D")
                limits = {"hour": wm, "day": day, "month": day.replace(day=1)}
            for piece in got:
                assert piece.start < piece.end
                if piece.tier == RAW:
                    _assert_no_usable_hour(piece, filters, limits.get("hour"), grouped)
                    continue
                unit = piece.start
                while unit < piece.end:
                    unit_end = next_unit(unit, piece.tier)
                    assert unit_end <= piece.end
                    assert unit_end <= limits[piece.tier]
                    if grouped:
                        last = unit_end - timedelta(microseconds=1)
                        assert _output_bucket(unit, filters) == _output_bucket(last, filters)
                    unit = unit_end


def _assert_no_usable_hour(piece: Piece, filters: Filters, wm, grouped: bool) -> None:
    """A raw piece holds no whole hour that an hour row could have answered."""
    if wm is None:
        return
    hour = pd.Timestamp(piece.start).ceil("h").to_pydatetime()
    while hour + timedelta(hours=1) <= min(piece.end, wm):
        last = hour + timedelta(hours=1) - timedelta(microseconds=1)
        assert grouped and _output_bucket(hour, filters) != _output_bucket(last, filters)
        hour += timedelta(hours=1)
