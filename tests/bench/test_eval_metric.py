"""The early-detection (NAB-style) metric of ``bench/eval_insights.py`` on hand-made series.

One series of 1,000 points with one event at index 500: its window is 10% of the
series, 100 points centred on the event, [450, 549]; the probation period is the
first 150 points. Expected values are worked out by hand from the issue's formula.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.eval_insights import Nab, nab_series, nab_windows, scaled_sigmoid

N, EVENT = 1000, 500
LABELS = np.zeros(N, dtype=int)
LABELS[EVENT] = 1
START, END = 450, 549


def ss(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def score(*flag_at: int, labels=LABELS) -> float:
    flags = np.zeros(len(labels), dtype=bool)
    flags[list(flag_at)] = True
    return nab_series(labels, flags).score


def test_window_is_ten_percent_centred_on_the_event():
    assert nab_windows(LABELS) == [(START, END)]
    two = np.zeros(N, dtype=int)
    two[[300, 700]] = 1  # 10% / 2 events: 50 points each
    assert nab_windows(two) == [(275, 324), (675, 724)]


def test_perfect_is_100_and_null_is_0():
    assert score(START) == pytest.approx(100.0)
    assert score() == pytest.approx(0.0)
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)


def test_flag_on_the_event_scores_the_sigmoid_of_half_a_window():
    raw = ss(-0.5)  # 50 points from the end of a 100-point window
    assert raw == pytest.approx(0.84828, abs=1e-5)
    assert score(EVENT) == pytest.approx(100 * (raw + 1) / (ss(-1) + 1))


def test_an_early_flag_scores_more_than_a_late_one_and_only_the_first_counts():
    assert score(460) > score(500) > score(540) > score()
    assert score(460, 540) == pytest.approx(score(460))  # later flags in the window are free


def test_a_flag_before_any_window_costs_0_11():
    expected = 100 * (-1 - 0.11 + 1) / (ss(-1) + 1)
    assert score(300) == pytest.approx(expected)
    assert score(300, START) == pytest.approx(100 * (ss(-1) - 0.11 + 1) / (ss(-1) + 1))


def test_a_flag_after_a_window_costs_0_11_times_the_sigmoid_of_its_distance():
    # One window length after the window's end: y = 1; just after it, nearly free.
    far = nab_series(LABELS, np.isin(np.arange(N), [START, END + 100]))
    assert far.raw == pytest.approx(ss(-1) + 0.11 * ss(1))
    near = nab_series(LABELS, np.isin(np.arange(N), [START, END + 1]))
    assert near.raw == pytest.approx(ss(-1) + 0.11 * ss(1 / 100))
    assert near.raw > far.raw


def test_probation_flags_count_neither_way():
    assert score(100) == pytest.approx(0.0)  # before 150: ignored
    assert score(100, START) == pytest.approx(100.0)
    early = np.zeros(N, dtype=int)
    early[60] = 1  # its window [10, 109] lies inside probation: dropped
    assert nab_windows(early) == []


def test_corpus_normalisation_pools_raw_scores():
    total = Nab()
    total.add(nab_series(LABELS, np.isin(np.arange(N), [START])))
    total.add(nab_series(LABELS, np.zeros(N, dtype=bool)))
    assert total.score == pytest.approx(50.0)
    assert (total.windows, total.detected) == (2, 1)
