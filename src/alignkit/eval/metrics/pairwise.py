"""Pairwise win rate with position swaps, and the length statistics that expose a judge's length bias.

Every prompt is judged twice, once in each order, because LLM judges favour a position (often the
first) and reward models can be sensitive to it too: a win counts only when both orders agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from alignkit.eval.metrics.proportion import check_paired, proportion

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "loss", "tie", "inconsistent", "unparseable"]
VERDICTS: tuple[str, ...] = ("A", "B", "tie")
_SWAP: dict[str, str] = {"A": "B", "B": "A", "tie": "tie"}


def combine_orders(ab: Sequence[str | None], ba: Sequence[str | None]) -> list[Outcome]:
    """Per prompt, model A's outcome from one judgement in each presentation order.

    ``ab[i]``: the verdict with A's answer shown first; ``ba[i]``: with B's answer shown first, in the
    judge's own position terms ('A' there means the first answer shown, i.e. model B's), mapped back
    here. Both orders naming A is a ``win``, both naming B a ``loss``, both ``tie`` a ``tie``; orders that
    disagree are ``inconsistent`` (counted as ties: the judge's preference followed the position, not the
    answer); a prompt with an unparseable verdict (None) in either order is ``unparseable``.
    """
    check_paired("verdicts in order (A, B)", ab, "verdicts in order (B, A)", ba)
    outcomes: list[Outcome] = []
    for i, (first, second) in enumerate(zip(ab, ba, strict=True)):
        for name, value in (("order (A, B)", first), ("order (B, A)", second)):
            if value is not None and value not in VERDICTS:
                raise ValueError(
                    f"prompt {i}, {name}: verdict {value!r} is not one of 'A', 'B', 'tie' or None"
                )
        if first is None or second is None:
            outcomes.append("unparseable")
        elif first != _SWAP[second]:
            outcomes.append("inconsistent")
        else:
            outcomes.append({"A": "win", "B": "loss", "tie": "tie"}[first])  # type: ignore[arg-type]
    return outcomes


@dataclass(frozen=True)
class WinRate:
    """Model A against model B over the prompts judged in both orders."""

    wins: int
    losses: int
    ties: int
    """Explicit ties plus inconsistent prompts."""
    inconsistent: int
    """Prompts whose two orders disagreed (part of ``ties``)."""
    unparseable: int
    """Prompts with an unparseable verdict in either order: counted here, outside ``n``."""
    n: int
    """Judged prompts: wins + losses + ties."""
    win_rate: float | None
    """(W + T/2) / n: a tie is half a win, so 0.5 means no difference."""
    ci_low: float | None
    """Wilson 95% interval of ``win_rate`` (ties as half successes; conservative)."""
    ci_high: float | None
    decisive_win_rate: float | None
    """W / (W + L): the win rate among prompts with a winner; None when there is none."""
    flip_rate: float | None
    """inconsistent / n: how often the verdict followed the position instead of the answer."""


def win_rate(outcomes: Sequence[Outcome]) -> WinRate:
    """W/L/T counts and rates of ``combine_orders``'s outcomes (see ``WinRate`` for each definition)."""
    counts = Counter(outcomes)
    unknown = set(counts) - {"win", "loss", "tie", "inconsistent", "unparseable"}
    if unknown:
        raise ValueError(
            f"unknown outcomes {sorted(unknown)}; expected win, loss, tie, inconsistent, unparseable"
        )
    wins, losses = counts["win"], counts["loss"]
    ties = counts["tie"] + counts["inconsistent"]
    n = wins + losses + ties
    score = proportion(wins + ties / 2, n)
    return WinRate(
        wins=wins,
        losses=losses,
        ties=ties,
        inconsistent=counts["inconsistent"],
        unparseable=counts["unparseable"],
        n=n,
        win_rate=score.rate,
        ci_low=score.ci_low,
        ci_high=score.ci_high,
        decisive_win_rate=wins / (wins + losses) if wins + losses else None,
        flip_rate=counts["inconsistent"] / n if n else None,
    )


def word_count(text: str) -> int:
    """Whitespace-separated words: the default length; pass a tokenizer's count for tokens."""
    return len(text.split())


@dataclass(frozen=True)
class LengthStats:
    """Answer lengths, and whether the judge favours the longer answer (length bias)."""

    mean_length_a: float | None
    mean_length_b: float | None
    a_longer: float | None
    """Fraction of all prompts where A's answer is the longer one."""
    longer_win_rate: float | None
    """(longer answer wins + ties/2) / n_unequal over judged prompts whose answers differ in length:
    0.5 means length does not sway the verdicts, near 1 that the longer answer nearly always wins."""
    n_unequal: int


def length_stats(
    outcomes: Sequence[Outcome],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    length: Callable[[str], int] = word_count,
) -> LengthStats:
    check_paired("outcomes", outcomes, "answers_a", answers_a)
    check_paired("answers_a", answers_a, "answers_b", answers_b)
    len_a = [length(a) for a in answers_a]
    len_b = [length(b) for b in answers_b]
    n = len(outcomes)
    score, unequal = 0.0, 0
    for outcome, la, lb in zip(outcomes, len_a, len_b, strict=True):
        if outcome == "unparseable" or la == lb:
            continue
        unequal += 1
        longer_won = "win" if la > lb else "loss"
        score += 1.0 if outcome == longer_won else 0.5 if outcome in ("tie", "inconsistent") else 0.0
    return LengthStats(
        mean_length_a=sum(len_a) / n if n else None,
        mean_length_b=sum(len_b) / n if n else None,
        a_longer=sum(la > lb for la, lb in zip(len_a, len_b, strict=True)) / n if n else None,
        longer_win_rate=score / unequal if unequal else None,
        n_unequal=unequal,
    )
