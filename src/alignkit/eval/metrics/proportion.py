"""Proportions with Wilson 95% intervals: the shape every rate in the metrics takes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The standard normal quantile of 0.975: two-sided 95% intervals."""


def check_paired(name_a: str, a: Sequence[object], name_b: str, b: Sequence[object]) -> None:
    """Two per-item sequences that must pair up one to one."""
    if len(a) != len(b):
        raise ValueError(f"{name_a} has {len(a)} items but {name_b} has {len(b)}; they must pair up")


def wilson_interval(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for the proportion ``k / n`` (Wilson 1927).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``: unlike p ± z·se it stays inside [0, 1]
    and does not collapse to a point at p = 0 or 1, which small eval sets hit often. ``k`` may be
    fractional (a tie counted as half a win): per-item scores in {0, ½, 1} vary less than a 0/1 variable
    of the same mean, so the interval is then conservative.
    """
    if n <= 0:
        raise ValueError(f"a Wilson interval needs n > 0, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"a proportion needs 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    # The interval always holds p; rounding can put a bound past it (1.7e-18 above p = 0 at n = 178),
    # which a plotted whisker then draws as a negative length.
    return max(0.0, min(p, (centre - half) / scale)), min(1.0, max(p, (centre + half) / scale))


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with its Wilson 95% interval; ``rate`` and the interval are None when n = 0."""

    k: float
    n: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


def proportion(k: float, n: int) -> Proportion:
    if n == 0:
        return Proportion(k, 0, None, None, None)
    low, high = wilson_interval(k, n)
    return Proportion(k, n, k / n, low, high)
