"""What ``win-rate`` adds to report.html: the outcome counts with the Wilson interval, an outcome bar
chart (overall and per group of prompts), the length statistics, and the prompts the judge flipped on.

Everything is recomputed from the samples.jsonl records with ``eval.metrics.win_rate`` and
``length_stats``, so the report's counts are the metrics' own definitions, not a second copy of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.eval.metrics.pairwise import length_stats, win_rate
from alignkit.eval.report import Figure, Section, Table

COLOURS = {
    "win": "#4c9a5b",
    "tie": "#b0b0b0",
    "inconsistent": "#e0b050",
    "loss": "#c0504d",
    "unparseable": "#505050",
}
"""Outcome -> bar colour, in the order the bars stack (A's wins on the left, B's on the right)."""
SHOWN_FLIPS = 10
CLIP = 200


def _clip(text: Any) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def _groups(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """``all prompts``, then one group per request kind and per family (toy-world prompts)."""
    groups: dict[str, list[Mapping[str, Any]]] = {"all prompts": list(records)}
    for key in ("request", "family"):
        for value in sorted({str(r["metadata"].get(key)) for r in records if r["metadata"].get(key)}):
            groups[f"{key}={value}"] = [r for r in records if str(r["metadata"].get(key)) == value]
    return groups


def plot_outcomes(path: Path, counts: Mapping[str, Mapping[str, int]], *, title: str) -> Path:
    """One horizontal stacked bar per group: the share of each outcome, its count written on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(counts)
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(names) + 1.6), dpi=100, layout="constrained")
    left = [0.0] * len(names)
    for outcome, colour in COLOURS.items():
        totals = [sum(counts[n].values()) or 1 for n in names]
        shares = [counts[n].get(outcome, 0) / t for n, t in zip(names, totals, strict=True)]
        label = "flip (orders disagree)" if outcome == "inconsistent" else outcome
        ax.barh(range(len(names)), shares, left=left, color=colour, label=label, edgecolor="white")
        for i, (share, start) in enumerate(zip(shares, left, strict=True)):
            if share >= 0.06:
                ax.text(start + share / 2, i, str(counts[names[i]].get(outcome, 0)), ha="center", va="center")
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="black", linewidth=0.6, linestyle="--")
    ax.set_xlabel("share of prompts (counts on the bars)")
    ax.set_title(title, fontsize=10)
    ax.legend(ncol=len(COLOURS), loc="upper center", bbox_to_anchor=(0.5, -0.18 if len(names) < 4 else -0.08))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def win_rate_sections(
    records: Sequence[Mapping[str, Any]], plots_dir: Any, *, model: str, baseline: str, judge: str
) -> list[Section]:
    judged = [r for r in records if r["error"] is None and r["verdicts"].get("judge")]
    if not judged:
        return []
    rows, counts = [], {}
    for name, members in _groups(judged).items():
        outcomes = [r["verdicts"]["judge"]["outcome"] for r in members]
        w = win_rate(outcomes)
        counts[name] = dict(Counter(outcomes))
        ci = f"[{w.ci_low:.3f}, {w.ci_high:.3f}]" if w.ci_low is not None else "–"
        rows.append(
            [
                name,
                w.wins,
                w.losses,
                w.ties - w.inconsistent,
                w.inconsistent,
                w.unparseable,
                w.win_rate,
                ci,
                w.decisive_win_rate,
                w.flip_rate,
            ]
        )
    outcome_table = Table(
        "outcomes of model A against model B",
        [
            "prompts",
            "wins",
            "losses",
            "ties",
            "flips",
            "unparseable",
            "win rate",
            "Wilson 95% CI",
            "decisive",
            "flip rate",
        ],
        rows,
        note="A win or a loss needs both orders to agree; flips (orders that disagree) count as ties in the "
        "win rate (W + T/2) / n; unparseable prompts are outside n.",
    )
    figure = plot_outcomes(
        Path(plots_dir) / "win_rate_outcomes.png", counts, title="Model A's outcome per prompt (both orders)"
    )
    outcomes = [r["verdicts"]["judge"]["outcome"] for r in judged]
    answers_a = [r["outputs"]["a"] for r in judged]
    answers_b = [r["outputs"]["b"] for r in judged]
    lengths = length_stats(outcomes, answers_a, answers_b)
    cut = {side: sum(r["finish_reasons"].get(side) == "length" for r in judged) for side in ("a", "b")}
    length_table = Table(
        "answer lengths (words)",
        [
            "mean A",
            "mean B",
            "A longer",
            "longer answer's win rate",
            "prompts of unequal length",
            "A cut",
            "B cut",
        ],
        [
            [
                lengths.mean_length_a,
                lengths.mean_length_b,
                lengths.a_longer,
                lengths.longer_win_rate,
                lengths.n_unequal,
                cut["a"],
                cut["b"],
            ]
        ],
        note="Longer answer's win rate near 1 means the judge favours length; 'cut' counts answers that "
        "stopped at sampling.max_new_tokens.",
    )
    sections = [
        Section(
            "Win rate",
            f"Model A: {model}. Model B: {baseline}. Judge: {judge}.\n\nEach prompt is judged twice, with "
            "A's answer shown first and with B's answer shown first.",
            tables=[outcome_table, length_table],
            figures=[Figure("outcomes", figure, "Shares of prompts; the dashed line marks one half.")],
        )
    ]
    odd = [r for r in judged if r["verdicts"]["judge"]["outcome"] in ("inconsistent", "unparseable")]
    if odd:
        rows = [
            [
                r["id"],
                r["verdicts"]["judge"]["outcome"],
                _clip(r["input"][-1]["content"] if r["input"] else ""),
                _clip(r["outputs"]["a"]),
                _clip(r["outputs"]["b"]),
                _clip(r["verdicts"]["judge"]["ab"]["raw"]),
                _clip(r["verdicts"]["judge"]["ba"]["raw"]),
            ]
            for r in odd[:SHOWN_FLIPS]
        ]
        sections.append(
            Section(
                "Flipped and unparseable verdicts",
                f"{len(odd)} prompts; the first {len(rows)} with both answers and the judge's output in "
                "each order (A first, then B first). All are in samples.jsonl.",
                tables=[
                    Table(
                        "verdicts to read",
                        [
                            "id",
                            "outcome",
                            "prompt",
                            "answer A",
                            "answer B",
                            "judge, A first",
                            "judge, B first",
                        ],
                        rows,
                    )
                ],
            )
        )
    return sections
