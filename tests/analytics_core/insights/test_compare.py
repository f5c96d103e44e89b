"""Period-over-period comparisons: counts, proportions and per-bucket samples."""

from __future__ import annotations

import numpy as np
import pytest

from analytics_core.insights.compare import (
    Change,
    compare_counts,
    compare_proportions,
    compare_samples,
)


def test_counts_clearly_different_are_significant() -> None:
    change = compare_counts(1200, 1000)
    assert isinstance(change, Change)
    assert change.significant and change.p_value is not None and change.p_value < 1e-3
    assert change.current == 1200 and change.previous == 1000
    assert change.abs_change == 200
    assert change.pct_change == pytest.approx(0.2)
    assert "Poisson" in change.method


def test_counts_close_are_not_significant() -> None:
    change = compare_counts(1010, 1000)
    assert not change.significant
    assert change.p_value is not None and change.p_value > 0.5
    assert change.pct_change == pytest.approx(0.01)


def test_counts_false_positive_rate_is_at_most_alpha() -> None:
    rng = np.random.default_rng(0)
    pairs = rng.poisson(1000, size=(500, 2))
    rate = np.mean([compare_counts(int(a), int(b)).significant for a, b in pairs])
    assert 0.01 <= rate <= 0.07


def test_counts_edge_cases() -> None:
    zero = compare_counts(0, 0)
    assert zero.p_value == 1.0 and not zero.significant and zero.pct_change is None
    from_zero = compare_counts(12, 0)
    assert from_zero.significant and from_zero.pct_change is None
    assert from_zero.abs_change == 12
    missing = compare_counts(None, 100)
    assert missing.p_value is None and not missing.significant
    assert missing.previous == 100 and missing.abs_change is None
    assert compare_counts(np.int64(30), float("nan")).p_value is None
    with pytest.raises(ValueError):
        compare_counts(-1, 5)


def test_proportions_clearly_different_are_significant() -> None:
    change = compare_proportions(80, 1000, 50, 1000)
    assert change.current == pytest.approx(0.08) and change.previous == pytest.approx(0.05)
    assert change.abs_change == pytest.approx(0.03)
    assert change.pct_change == pytest.approx(0.6)
    assert change.significant and change.p_value is not None and change.p_value < 0.01


def test_proportions_close_are_not_significant() -> None:
    change = compare_proportions(52, 1000, 50, 1000)
    assert not change.significant
    assert change.p_value is not None and change.p_value > 0.5


def test_proportions_with_unequal_totals() -> None:
    # same 5% rate on very different volumes: no change
    same = compare_proportions(500, 10_000, 25, 500)
    assert not same.significant and same.abs_change == pytest.approx(0)
    # 5% -> 6% on large volumes: a real change
    assert compare_proportions(6_000, 100_000, 5_000, 100_000).significant


def test_proportions_false_positive_rate_is_at_most_alpha() -> None:
    rng = np.random.default_rng(1)
    hits = rng.binomial(400, 0.1, size=(400, 2))
    rate = np.mean([compare_proportions(int(a), 400, int(b), 400).significant for a, b in hits])
    assert rate <= 0.07


def test_proportions_edge_cases() -> None:
    empty = compare_proportions(0, 0, 5, 100)
    assert empty.current is None and empty.previous == pytest.approx(0.05)
    assert empty.p_value is None and not empty.significant
    none = compare_proportions(None, None, 5, 100)
    assert none.p_value is None and not none.significant
    zeros = compare_proportions(0, 100, 0, 100)
    assert zeros.p_value == pytest.approx(1.0) and zeros.pct_change is None
    full = compare_proportions(100, 100, 100, 100)
    assert full.p_value == pytest.approx(1.0) and not full.significant
    with pytest.raises(ValueError):
        compare_proportions(11, 10, 1, 10)


def test_samples_from_the_same_distribution_keep_false_positives_near_alpha() -> None:
    flagged = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        current, previous = rng.lognormal(3, 0.5, 24), rng.lognormal(3, 0.5, 24)
        change = compare_samples(current, previous, np.mean(current), np.mean(previous))
        flagged.append(change.significant)
    assert 0.02 <= np.mean(flagged) <= 0.09


def test_shifted_samples_are_significant() -> None:
    flagged = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        current, previous = rng.normal(130, 10, 24), rng.normal(120, 10, 24)
        flagged.append(compare_samples(current, previous, 130.0, 120.0).significant)
    assert np.mean(flagged) >= 0.9


def test_samples_report_the_kpi_values_and_drop_nan() -> None:
    current = [10.0, 11.0, np.nan, 12.0, None, 13.0]
    previous = [20.0, 21.0, 22.0, 23.0]
    change = compare_samples(current, previous, 12.5, 22.5)
    assert change.current == 12.5 and change.previous == 22.5
    assert change.abs_change == pytest.approx(-10)
    assert change.pct_change == pytest.approx(-10 / 22.5)
    assert change.p_value == pytest.approx(0.0286, abs=1e-3)  # exact U test, 4 vs 4
    assert change.significant
    assert "Mann-Whitney" in change.method


def test_samples_need_three_values_per_side() -> None:
    change = compare_samples([1.0, 2.0, np.nan], [5.0, 6.0, 7.0], 1.5, 6.0)
    assert change.p_value is None and not change.significant
    assert change.abs_change == pytest.approx(-4.5)
    assert compare_samples([], [], None, None).p_value is None


def test_samples_without_a_kpi_value_are_not_significant() -> None:
    change = compare_samples([1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0], None, 11.5)
    assert change.p_value is None and not change.significant
    assert change.current is None and change.previous == 11.5


def test_identical_samples_are_not_significant() -> None:
    change = compare_samples([5.0] * 6, [5.0] * 6, 5.0, 5.0)
    assert change.p_value == pytest.approx(1.0) and not change.significant
    assert change.pct_change == 0
