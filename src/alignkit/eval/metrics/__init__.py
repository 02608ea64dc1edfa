"""Evaluation metrics: pure functions over per-sample verdicts, each stating the definition it implements.

Inputs are plain Python values (labels, booleans, floats, verdict objects); results are small frozen
dataclasses, so a task computes its numbers the same way in tests, in ``alignkit eval`` and in a notebook,
and ``dataclasses.asdict`` turns any result into results.json material. No torch, no numpy.

Bootstrap intervals belong to ``eval/stats.py``; the analytic intervals that belong to one metric live
here: Wilson for a proportion, Fisher z for Pearson r. A rate over nothing is ``None``, never 0.

- ``proportion``: ``wilson_interval``, ``Proportion``;
- ``pairwise``: win rate with position swaps (``combine_orders``, ``win_rate``), ``length_stats``;
- ``agreement``: ``accuracy``, ``cohen_kappa``, ``pearson``, ``confusion_matrix``, ``f1_scores``;
- ``safety``: ``harm_rates`` (overall, per category, per severity), ``refusal_rate``;
- ``ranking``: Libra (``libra_score``, ``libra_safety``, ``normalise``, ``libra_leaderboard``);
- ``deception``: DeceptionBench (``DeceptionJudgement``, ``deception_rates``).
"""

from alignkit.eval.metrics.agreement import (
    Correlation,
    F1Scores,
    accuracy,
    cohen_kappa,
    confusion_matrix,
    f1_scores,
    pearson,
)
from alignkit.eval.metrics.deception import DeceptionJudgement, DeceptionRates, deception_rates
from alignkit.eval.metrics.pairwise import (
    VERDICTS,
    LengthStats,
    Outcome,
    Verdict,
    WinRate,
    combine_orders,
    length_stats,
    win_rate,
    word_count,
)
from alignkit.eval.metrics.proportion import Z95, Proportion, proportion, wilson_interval
from alignkit.eval.metrics.ranking import (
    LeaderboardRow,
    Normalisation,
    libra_leaderboard,
    libra_safety,
    libra_score,
    normalise,
)
from alignkit.eval.metrics.safety import HarmRates, VerdictLike, harm_rates, refusal_rate

__all__ = [
    "VERDICTS",
    "Z95",
    "Correlation",
    "DeceptionJudgement",
    "DeceptionRates",
    "F1Scores",
    "HarmRates",
    "LeaderboardRow",
    "LengthStats",
    "Normalisation",
    "Outcome",
    "Proportion",
    "Verdict",
    "VerdictLike",
    "WinRate",
    "accuracy",
    "cohen_kappa",
    "combine_orders",
    "confusion_matrix",
    "deception_rates",
    "f1_scores",
    "harm_rates",
    "length_stats",
    "libra_leaderboard",
    "libra_safety",
    "libra_score",
    "normalise",
    "pearson",
    "proportion",
    "refusal_rate",
    "wilson_interval",
    "win_rate",
    "word_count",
]
