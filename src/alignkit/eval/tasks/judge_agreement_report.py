"""The judge-agreement task's report section: per-dimension agreement with Pearson's analytic interval and
F1 (what InterMT-Bench reports per dimension), and the confusion matrix of labels against verdicts.

The runner's breakdown bars already show every metric per dimension and per turn with bootstrap
intervals; this adds the Fisher-z interval of Pearson's r (``eval.metrics.pearson``) and the counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.eval.metrics import accuracy, cohen_kappa, f1_scores, pearson
from alignkit.eval.plots import cross_tab, plot_confusion_matrix
from alignkit.eval.report import Figure, Section, Table

LABELS = {1: "first shown better", 2: "second shown better"}
VERDICTS = {1: "first", 2: "second", 0: "tie", None: "unreadable"}
PREDICTION_VALUE = {1: 1.0, 2: 2.0, 0: 1.5}
"""A prediction as a number for Pearson's r: first shown better 1, second 2, a judge's tie between."""


def dimension_row(dimension: str, records: Sequence[Mapping[str, Any]]) -> list[Any]:
    """One table row: items, label ties, unreadable verdicts, accuracy, kappa, r with its Fisher-z 95%
    interval, and the macro F1 over the two labels (a judge tie predicts neither)."""
    ties = sum(r["target"] == 0 for r in records)
    judged = [r for r in records if r["target"] != 0]
    read = [r for r in judged if r["verdicts"]["judge"]["predicted"] is not None]
    gold = [r["target"] for r in read]
    predicted = [r["verdicts"]["judge"]["predicted"] for r in read]
    r = pearson([float(g) for g in gold], [PREDICTION_VALUE[p] for p in predicted])
    f1 = f1_scores(predicted, gold, labels=[1, 2, 0]) if read else None
    return [
        dimension,
        len(records),
        ties,
        len(judged) - len(read),
        accuracy(predicted, gold),
        cohen_kappa(gold, predicted),
        None if r is None else r.r,
        "–" if r is None else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]",
        None if f1 is None else (f1.per_class[1] + f1.per_class[2]) / 2,
    ]


def agreement_sections(records: Sequence[Mapping[str, Any]], plots: Path) -> list[Section]:
    done = [r for r in records if r["error"] is None]
    if not done:
        return []
    dimensions = list(dict.fromkeys(r["metadata"]["dimension"] for r in done))
    rows = [dimension_row(d, [r for r in done if r["metadata"]["dimension"] == d]) for d in dimensions]
    if len(dimensions) > 1:
        rows.append(dimension_row("all (pooled)", done))
    table = Table(
        "agreement per dimension",
        [
            "dimension",
            "items",
            "label ties",
            "unreadable",
            "accuracy ↑",
            "kappa ↑",
            "pearson r ↑",
            "r 95% CI (Fisher z)",
            "F1 ↑",
        ],
        rows,
        note="Label ties and unreadable verdicts are left out of accuracy, kappa, r and F1 (counted here). "
        "F1: mean of the two labels' F1, a judge's tie predicting neither.",
    )
    judged = [r for r in done if r["target"] != 0]
    figures = []
    if judged:
        row_labels, column_labels, counts = cross_tab(
            [LABELS[r["target"]] for r in judged],
            [VERDICTS[r["verdicts"]["judge"]["predicted"]] for r in judged],
            list(LABELS.values()),
            list(VERDICTS.values()),
        )
        path = plot_confusion_matrix(
            plots / "agreement.png",
            counts,
            row_labels,
            column_labels,
            title="Label against verdict (positions as shown)",
            xlabel="judge's verdict",
            ylabel="label",
        )
        figures.append(Figure("labels against verdicts, all dimensions", path))
    text = (
        "How often the judge picks the response the labels prefer, in the order it was shown (pairs are "
        "swapped at random, the label following). Per turn, see 'By turn' above."
    )
    return [Section("Agreement", text, tables=[table], figures=figures)]
