"""Agreement of a judge with reference labels (InterMT-Bench style): accuracy, Cohen's kappa, Pearson r, F1."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from alignkit.eval.metrics.proportion import Z95, check_paired


def accuracy(predicted: Sequence[Hashable], gold: Sequence[Hashable]) -> float | None:
    """Fraction of items where the prediction equals the gold label (exact match)."""
    check_paired("predicted", predicted, "gold", gold)
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold) if gold else None


def cohen_kappa(rater_a: Sequence[Hashable], rater_b: Sequence[Hashable]) -> float | None:
    """Cohen's κ = (p_o − p_e) / (1 − p_e): agreement beyond chance, over any label set.

    p_o is the observed agreement, p_e = Σ_k p_a(k)·p_b(k) the agreement of two raters drawing labels
    independently at their own frequencies. None when undefined: no items, or p_e = 1 (both raters
    always give the same one label).
    """
    check_paired("rater_a", rater_a, "rater_b", rater_b)
    n = len(rater_a)
    if n == 0:
        return None
    p_o = sum(a == b for a, b in zip(rater_a, rater_b, strict=True)) / n
    count_a, count_b = Counter(rater_a), Counter(rater_b)
    p_e = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


@dataclass(frozen=True)
class Correlation:
    r: float
    ci_low: float
    """Fisher-z 95% interval: tanh(atanh(r) ± z/sqrt(n − 3))."""
    ci_high: float
    n: int


def pearson(x: Sequence[float], y: Sequence[float]) -> Correlation | None:
    """Pearson's r with its Fisher-z 95% interval; None when n < 4 or either side is constant.

    r = Σ(x−x̄)(y−ȳ) / sqrt(Σ(x−x̄)² Σ(y−ȳ)²). atanh(r) is near-normal with standard error 1/sqrt(n−3),
    hence the interval and the n ≥ 4 requirement; |r| = 1 gives the point interval [r, r].
    """
    check_paired("x", x, "y", y)
    n = len(x)
    if n < 4:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    r = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
    if abs(r) == 1:
        return Correlation(r, r, r, n)
    z, half = math.atanh(r), Z95 / math.sqrt(n - 3)
    return Correlation(r, math.tanh(z - half), math.tanh(z + half), n)


def _labels(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> list[Hashable]:
    """Every label in order of first appearance, gold first (no sorting: labels may be of mixed types)."""
    return list(dict.fromkeys([*gold, *predicted]))


def confusion_matrix(
    predicted: Sequence[Hashable], gold: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], list[list[int]]]:
    """``(labels, matrix)`` with ``matrix[i][j]`` = items of gold label i predicted as label j."""
    check_paired("predicted", predicted, "gold", gold)
    labels = list(labels) if labels is not None else _labels(gold, predicted)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for i, (p, g) in enumerate(zip(predicted, gold, strict=True)):
        if p not in index or g not in index:
            raise ValueError(f"item {i}: label {p if p not in index else g!r} is not in labels {labels}")
        matrix[index[g]][index[p]] += 1
    return labels, matrix


@dataclass(frozen=True)
class F1Scores:
    per_class: dict[Hashable, float]
    """F1 of each label taken as the positive class; the binary F1 is ``per_class[positive]``."""
    macro: float
    """Unweighted mean of ``per_class``."""
    support: dict[Hashable, int]
    """Gold items of each label."""


def f1_scores(
    predicted: Sequence[Hashable], gold: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> F1Scores | None:
    """Per-class F1 = 2·P·R / (P + R) and its macro mean; None for no items.

    A class never predicted has precision 0, one never in gold recall 0, and F1 is 0 when P + R = 0
    (scikit-learn's ``zero_division=0``), so a degenerate class pulls the macro mean down, visibly.
    """
    if not gold:
        check_paired("predicted", predicted, "gold", gold)
        return None
    labels, matrix = confusion_matrix(predicted, gold, labels)
    per_class, support = {}, {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        n_pred = sum(row[i] for row in matrix)
        n_gold = sum(matrix[i])
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        per_class[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        support[label] = n_gold
    return F1Scores(per_class, sum(per_class.values()) / len(per_class), support)
