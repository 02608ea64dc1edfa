"""The statistics every eval result carries: a mean with its standard error, a bootstrap 95% interval, and
a paired test for comparing two runs on the same samples.

Pure functions over plain sequences (numpy inside), seeded, so a result and its interval are the same on
every rerun. The conventions follow lm-evaluation-harness, so our numbers read like theirs:

- ``mean_stderr``: the sample standard deviation (``n - 1``) over ``sqrt(n)`` (lm-eval's ``mean_stderr``).
- ``bootstrap``: resample the items with replacement ``iters`` times, recompute the statistic; the
  standard error is the standard deviation of those statistics and the interval the percentile interval
  (the 2.5th and 97.5th percentiles, linear interpolation as ``numpy.percentile``). The statistic may be
  any function of the items (Cohen's kappa of (label, prediction) pairs, not only a mean).
- ``paired_permutation_test``: two runs scored on the same samples are compared by swapping each
  sample's two scores at random (under "no difference" either order is as likely), which needs no
  normality and works for any statistic. Exact (every swap pattern) when there are few samples,
  Monte Carlo otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

Statistic = Callable[[Sequence[Any]], float]
"""Items -> one number: ``mean``, or any corpus-level metric (kappa over (label, prediction) pairs)."""

CI_LEVEL = 0.95
"""The confidence level of every interval alignkit reports."""


def mean(items: Sequence[float]) -> float:
    """The arithmetic mean; ``nan`` for no items (a rate over nothing is undefined, not zero)."""
    return float(sum(items) / len(items)) if len(items) else float("nan")


def mean_stderr(items: Sequence[float]) -> float:
    """Standard error of the mean: sample standard deviation (``n - 1``) / ``sqrt(n)``; ``nan`` below 2 items."""
    n = len(items)
    if n < 2:
        return float("nan")
    mu = sum(items) / n
    return math.sqrt(sum((x - mu) ** 2 for x in items) / (n - 1)) / math.sqrt(n)


def percentile_interval(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of ``values``: their ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles with linear interpolation between order statistics (``numpy.percentile``'s default)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level!r}: expected a number in (0, 1)")
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return float(low), float(high)


class Bootstrap(NamedTuple):
    """A statistic's bootstrap standard error and percentile interval."""

    stderr: float
    ci_low: float
    ci_high: float


def bootstrap_statistics(
    items: Sequence[Any], statistic: Statistic = mean, *, iters: int = 1000, seed: int = 0
) -> list[float]:
    """``statistic`` of ``iters`` resamples of ``items`` (with replacement, the same size), seeded."""
    if iters < 1:
        raise ValueError(f"iters={iters!r}: expected a positive integer")
    rng = np.random.default_rng(seed)
    n = len(items)
    if n == 0:
        return []
    indices = rng.integers(0, n, size=(iters, n))  # (iters, n)
    if statistic is mean:  # vectorised: the common case, and 1000 x n Python calls add up
        values = np.asarray(items, dtype=float)[indices].mean(axis=1)
        return [float(v) for v in values]
    return [float(statistic([items[i] for i in row])) for row in indices]


def bootstrap(
    items: Sequence[Any],
    statistic: Statistic = mean,
    *,
    iters: int = 1000,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> Bootstrap:
    """Bootstrap standard error (std of the resampled statistics, ``ddof=1``) and percentile interval.

    Resamples whose statistic is undefined (``nan``, e.g. kappa of a resample with one class) are left
    out; with fewer than two items everything is ``nan``.
    """
    if len(items) < 2:
        return Bootstrap(float("nan"), float("nan"), float("nan"))
    values = [v for v in bootstrap_statistics(items, statistic, iters=iters, seed=seed) if not math.isnan(v)]
    if len(values) < 2:
        return Bootstrap(float("nan"), float("nan"), float("nan"))
    low, high = percentile_interval(values, level)
    return Bootstrap(float(np.std(values, ddof=1)), low, high)


class PairedTest(NamedTuple):
    """Run B against run A on the same samples: ``difference = statistic(B) - statistic(A)``."""

    difference: float
    ci_low: float
    """Paired bootstrap interval of the difference (samples resampled as pairs)."""
    ci_high: float
    p_value: float
    """Two-sided paired permutation test: how often swapping each pair's scores at random gives a
    difference at least as far from 0 as the observed one."""
    n: int
    """Samples scored in both runs."""
    exact: bool
    """Whether ``p_value`` enumerated every swap pattern (else ``iters`` random ones)."""


def paired_permutation_p(
    a: Sequence[Any], b: Sequence[Any], statistic: Statistic = mean, *, iters: int = 10000, seed: int = 0
) -> tuple[float, bool]:
    """Two-sided p-value of ``statistic(b) - statistic(a)`` under random swaps within pairs, and whether
    it is exact.

    With ``2**n <= iters`` every swap pattern is enumerated and the p-value is exact: the fraction of
    patterns (the observed one included) whose ``|difference|`` reaches the observed one. Otherwise
    ``iters`` random patterns are drawn and the observed one is counted in, ``(hits + 1) / (iters + 1)``,
    so a p-value is never 0.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return float("nan"), True
    observed = abs(statistic(b) - statistic(a))
    tolerance = 1e-12 * max(1.0, observed)  # differences equal to the observed one up to rounding count

    def difference(swap: Sequence[bool]) -> float:
        a_side = [y if s else x for x, y, s in zip(a, b, swap, strict=True)]
        b_side = [x if s else y for x, y, s in zip(a, b, swap, strict=True)]
        return abs(statistic(b_side) - statistic(a_side))

    if 2**n <= iters:
        patterns = list(itertools.product((False, True), repeat=n))
        hits = sum(difference(p) >= observed - tolerance for p in patterns)
        return hits / len(patterns), True
    rng = np.random.default_rng(seed)
    swaps = rng.random((iters, n)) < 0.5  # (iters, n)
    if statistic is mean:
        d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)  # (n,)
        diffs = np.abs((np.where(swaps, -d, d)).mean(axis=1))
        hits = int((diffs >= observed - tolerance).sum())
    else:
        hits = sum(difference(row) >= observed - tolerance for row in swaps)
    return (hits + 1) / (iters + 1), False


def paired_test(
    a: Sequence[Any],
    b: Sequence[Any],
    statistic: Statistic = mean,
    *,
    iters: int = 1000,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> PairedTest:
    """Compare run B with run A on paired items (item ``i`` of both is the same sample).

    The interval resamples the pairs together (a paired bootstrap), so a sample that is hard for both
    runs moves both sides at once and only the difference varies; the p-value is
    :func:`paired_permutation_p` (with ``10 x iters`` patterns, as p-values need more draws than intervals).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    n = len(a)
    difference = statistic(b) - statistic(a) if n else float("nan")
    p_value, exact = paired_permutation_p(a, b, statistic, iters=10 * iters, seed=seed)
    if n < 2:
        return PairedTest(difference, float("nan"), float("nan"), p_value, n, exact)
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n, size=(iters, n))  # (iters, n)
    if statistic is mean:
        d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
        diffs = [float(v) for v in d[indices].mean(axis=1)]
    else:
        diffs = [statistic([b[i] for i in row]) - statistic([a[i] for i in row]) for row in indices]
    low, high = percentile_interval([v for v in diffs if not math.isnan(v)], level)
    return PairedTest(difference, low, high, p_value, n, exact)
