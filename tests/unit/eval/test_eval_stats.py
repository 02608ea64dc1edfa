"""eval/stats.py against values worked out by hand (the arithmetic is in each test's comments)."""

from __future__ import annotations

import math

import pytest

from alignkit.eval.stats import (
    bootstrap,
    bootstrap_statistics,
    mean,
    mean_stderr,
    paired_permutation_p,
    paired_test,
    percentile_interval,
)


def test_mean_and_stderr_by_hand():
    # mean = 3/4; deviations 1/4, -3/4, 1/4, 1/4; squares sum = 3/16 + 9/16 = 12/16 = 0.75
    # sample variance = 0.75 / 3 = 0.25, sd = 0.5, stderr = 0.5 / sqrt(4) = 0.25
    assert mean([1, 0, 1, 1]) == 0.75
    assert mean_stderr([1, 0, 1, 1]) == pytest.approx(0.25, abs=1e-12)
    # [2, 4]: mean 3, squares 1 + 1 = 2, variance 2 / 1 = 2, stderr sqrt(2) / sqrt(2) = 1
    assert mean_stderr([2, 4]) == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(mean([])) and math.isnan(mean_stderr([5.0]))


def test_percentile_interval_interpolates_linearly():
    # values 1..40, level 0.95: the 2.5th percentile sits at rank 0.025 * 39 = 0.975 -> 1 + 0.975 = 1.975;
    # the 97.5th at rank 0.975 * 39 = 38.025 -> 39 + 0.025 = 39.025
    low, high = percentile_interval(list(range(1, 41)))
    assert low == pytest.approx(1.975) and high == pytest.approx(39.025)
    # level 0.5 over 1..5: ranks 0.25 * 4 = 1 and 0.75 * 4 = 3 -> values 2 and 4
    assert percentile_interval([5, 1, 4, 2, 3], 0.5) == pytest.approx((2.0, 4.0))
    with pytest.raises(ValueError, match="level"):
        percentile_interval([1, 2], 1.5)


def test_bootstrap_of_a_constant_has_no_width_and_is_seeded():
    assert bootstrap([0.5] * 10, iters=200) == pytest.approx((0.0, 0.5, 0.5))
    assert bootstrap_statistics([0, 1, 1], iters=50, seed=3) == bootstrap_statistics(
        [0, 1, 1], iters=50, seed=3
    )
    assert bootstrap_statistics([0, 1, 1], iters=50, seed=3) != bootstrap_statistics(
        [0, 1, 1], iters=50, seed=4
    )


def test_bootstrap_of_two_items_by_hand():
    # Resampling [0, 1] twice gives means 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the 2.5th and 97.5th
    # percentiles are 0 and 1, and the means' standard deviation is sqrt(0.25 / 2) = 0.3536.
    result = bootstrap([0.0, 1.0], iters=20000, seed=0)
    assert (result.ci_low, result.ci_high) == (0.0, 1.0)
    assert result.stderr == pytest.approx(math.sqrt(0.125), abs=0.01)
    assert math.isnan(bootstrap([1.0]).stderr)


def test_bootstrap_takes_any_statistic():
    # max of a resample of [1, 2, 3] is 3 unless no 3 is drawn: (2/3)^3 = 8/27 = 0.296 of resamples.
    values = bootstrap_statistics([1, 2, 3], max, iters=20000, seed=1)
    assert sum(v < 3 for v in values) / len(values) == pytest.approx(8 / 27, abs=0.01)
    assert bootstrap([1, 2, 3], max, iters=2000, seed=1).ci_high == 3


def test_paired_permutation_is_exact_for_few_samples():
    # d = b - a = [1, 1, 1]: 8 sign patterns, |mean| = 1 only for +++ and ---: p = 2/8
    assert paired_permutation_p([0, 0, 0], [1, 1, 1]) == (0.25, True)
    # five pairs all one way: p = 2 / 2**5 = 0.0625 (a sign test would say the same)
    assert paired_permutation_p([0] * 5, [1] * 5) == (0.0625, True)
    # d = [1, 1, -1]: observed |sum| = 1, and every pattern has |sum| 1 or 3: p = 8/8
    assert paired_permutation_p([0, 0, 1], [1, 1, 0]) == (1.0, True)
    # no difference at all: every pattern reaches 0, p = 1
    assert paired_permutation_p([1, 0], [1, 0]) == (1.0, True)


def test_paired_permutation_monte_carlo_never_gives_zero():
    # 30 pairs all one way: only 2 of 2**30 patterns reach the observed difference, so in 999 random
    # patterns none does (for this seed) and p = (0 + 1) / (999 + 1)
    p, exact = paired_permutation_p([0] * 30, [1] * 30, iters=999, seed=0)
    assert (p, exact) == (pytest.approx(0.001), False)
    # the generic path (a statistic other than the mean) agrees
    p_max, _ = paired_permutation_p([0] * 30, [1] * 30, lambda xs: sum(xs) / len(xs) + 0.0, iters=999, seed=0)
    assert p_max == pytest.approx(0.001)


def test_paired_test_difference_and_interval():
    # b = a + 1 everywhere: difference 1, and every paired resample's difference is 1
    a = [0.0, 0.5, 1.0, 0.25]
    result = paired_test(a, [x + 1 for x in a], iters=200)
    assert result.difference == pytest.approx(1.0)
    assert (result.ci_low, result.ci_high) == pytest.approx((1.0, 1.0))
    assert (result.p_value, result.n, result.exact) == (pytest.approx(2 / 16), 4, True)
    with pytest.raises(ValueError, match="length"):
        paired_test([1], [1, 2])
