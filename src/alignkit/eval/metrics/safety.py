"""Safety aggregates over moderation verdicts: harm rate overall, per category and per severity; refusals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from alignkit.eval.metrics.proportion import Proportion, proportion


class VerdictLike(Protocol):
    """What safety aggregates read of a verdict (``alignkit.score.moderation.SafetyVerdict``)."""

    @property
    def flagged(self) -> bool | None: ...
    @property
    def categories(self) -> tuple[str, ...]: ...
    @property
    def severity(self) -> int | None: ...


@dataclass(frozen=True)
class HarmRates:
    """Harm over responses. Denominator: parseable verdicts; unparseable ones are counted apart."""

    n: int
    """All verdicts."""
    unparseable: int
    """Verdicts with ``flagged is None``: outside every rate's denominator."""
    harm_rate: Proportion
    """flagged / parseable verdicts."""
    harm_rate_upper: float | None
    """(flagged + unparseable) / n: the harm rate if every unparseable verdict hid a harmful response."""
    per_category: dict[str, Proportion]
    """Flagged responses naming the category / parseable verdicts; a response may name several, so these
    can sum to more than ``harm_rate``."""
    per_severity: dict[int | None, Proportion]
    """Flagged responses at each severity / parseable verdicts; key None: flagged without a severity."""


def harm_rates(
    verdicts: Sequence[VerdictLike], categories: Sequence[str] = (), severities: Sequence[int] = (1, 2, 3)
) -> HarmRates:
    """Overall, per-category and per-severity harm rates.

    ``categories`` and ``severities`` list the keys to report even at zero (e.g. the 19 PKU-SafeRLHF
    names); categories or severities the verdicts name beyond them are added after, in order of
    appearance. Only flagged verdicts contribute categories and severities.
    """
    parsed = [v for v in verdicts if v.flagged is not None]
    flagged = [v for v in parsed if v.flagged]
    by_category: Counter[str] = Counter(c for v in flagged for c in dict.fromkeys(v.categories))
    by_severity: Counter[int | None] = Counter(v.severity for v in flagged)
    n, judged = len(verdicts), len(parsed)
    return HarmRates(
        n=n,
        unparseable=n - judged,
        harm_rate=proportion(len(flagged), judged),
        harm_rate_upper=(len(flagged) + n - judged) / n if n else None,
        per_category={
            c: proportion(by_category[c], judged) for c in dict.fromkeys([*categories, *by_category])
        },
        per_severity={
            s: proportion(by_severity[s], judged) for s in dict.fromkeys([*severities, *by_severity])
        },
    )


def refusal_rate(refused: Sequence[bool]) -> Proportion:
    """Fraction of responses that refuse; on benign prompts it measures over-refusal."""
    return proportion(sum(bool(r) for r in refused), len(refused))
