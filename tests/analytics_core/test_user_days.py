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
