"""The active-day bitmap layout: which word and bit each UTC day of a year takes."""

from __future__ import annotations

from datetime import UTC, datetime

from analytics_core.rollup.user_days import by_year, day_masks


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_intervals_are_cut_at_year_ends():
    spans = by_year(
        [(_day("2024-12-30"), _day("2025-01-03")), (_day("2025-03-01"), _day("2025-03-02"))]
    )
    assert spans == {
        _day("2024-01-01"): [(_day("2024-12-30"), _day("2025-01-01"))],
        _day("2025-01-01"): [
            (_day("2025-01-01"), _day("2025-01-03")),
            (_day("2025-03-01"), _day("2025-03-02")),
        ],
    }


def test_each_day_sets_bit_day_mod_62_of_word_day_div_62():
    # 2024 is a leap year: 30 and 31 December are its days 364 and 365 (from 0).
    year = _day("2024-01-01")
    masks = day_masks(year, [(_day("2024-12-30"), _day("2025-01-01"))])
    assert masks == [0, 0, 0, 0, 0, (1 << (364 - 310)) | (1 << (365 - 310))]
    # 1 January is day 0; 3 March 2025 is day 31 + 28 + 2 = 61 (word 0), 4 March day 62.
    year = _day("2025-01-01")
    masks = day_masks(
        year, [(_day("2025-01-01"), _day("2025-01-02")), (_day("2025-03-03"), _day("2025-03-05"))]
    )
    assert masks == [1 | (1 << 61), 1, 0, 0, 0, 0]


def test_whole_hours_are_cut_at_utc_midnights_and_at_a_trends_bucket_boundaries():
    from analytics_core.filters import Filters
    from analytics_core.rollup.refresh import hour_bits
    from analytics_core.rollup.user_days import hour_segments

    lo, hi = datetime(2026, 3, 28, 21, tzinfo=UTC), datetime(2026, 3, 29, 3, tzinfo=UTC)
    day1, day2 = _day("2026-03-28"), _day("2026-03-29")
    bits = {day1: (1 << 21) | (1 << 22) | (1 << 23), day2: 0b111}
    assert hour_segments([(lo, hi)], None) == [(day1, lo, bits[day1]), (day2, day2, bits[day2])]
    assert hour_bits([(lo, hi)]) == bits
    # Paris days: midnight of 29 March (CET, +01:00) is 28 March 23:00 UTC.
    paris = Filters(start=lo, end=hi, tz="Europe/Paris", granularity="day")
    eleven = datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert hour_segments([(lo, hi)], paris) == [
        (day1, lo, (1 << 21) | (1 << 22)),
        (day1, eleven, 1 << 23),
        (day2, day2, bits[day2]),
    ]
    hourly = Filters(start=lo, end=hi, tz="UTC", granularity="hour")
    assert [(d, s.hour, b) for d, s, b in hour_segments([(lo, hi)], hourly)] == [
        (day1 if h >= 21 else day2, h, 1 << h) for h in (21, 22, 23, 0, 1, 2)
    ]
