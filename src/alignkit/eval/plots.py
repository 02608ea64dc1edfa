"""Figures for eval reports: bars with 95% interval whiskers, and confusion matrices.

Any task can use them in its ``report_sections``; the runner draws the per-breakdown bars itself.
matplotlib is imported inside the drawing functions (Agg backend), so importing this module is free and
works headless; ``confusion_matrix`` is pure and tested by hand.
"""

from __future__ import annotations

import textwrap
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

TITLE_WIDTH = 58
"""Characters per title line (the figures are 6 inches wide)."""

Interval = tuple[float, float] | None
"""A 95% interval around a bar, or None for no whisker."""


def confusion_matrix(
    truth: Sequence[Hashable], predicted: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], list[list[int]]]:
    """``(labels, counts)`` with ``counts[i][j]`` = items whose truth is ``labels[i]`` and prediction
    ``labels[j]``. ``labels`` default to every value seen, sorted by their text; a value outside given
    ``labels`` is an error (it would silently vanish from the matrix)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    seen = set(truth) | set(predicted)
    if labels is None:
        labels = sorted(seen, key=str)
    missing = seen - set(labels)
    if missing:
        raise ValueError(
            f"labels {sorted(map(str, missing))} are not among the matrix's labels {list(labels)}"
        )
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted, strict=True):
        counts[index[t]][index[p]] += 1
    return list(labels), counts


def plot_confusion_matrix(
    path: Path,
    counts: Sequence[Sequence[int]],
    row_labels: Sequence[Hashable],
    column_labels: Sequence[Hashable] | None = None,
    *,
    title: str,
    xlabel: str = "predicted",
    ylabel: str = "true",
) -> Path:
    """A count matrix as a heat map with the counts written in; rows and columns may differ (e.g. prompt
    family against kind of answer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column_labels = list(row_labels if column_labels is None else column_labels)
    fig, ax = plt.subplots(
        figsize=(max(4.0, 0.9 * len(column_labels) + 2), max(3.0, 0.5 * len(row_labels) + 1.5)),
        dpi=100,
        layout="constrained",
    )
    image = ax.imshow([list(row) for row in counts], cmap="Blues")
    peak = max((max(row) for row in counts if row), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            color = "white" if peak and value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(len(column_labels)), [str(c) for c in column_labels], rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, TITLE_WIDTH)))
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_bars(
    path: Path,
    panels: Mapping[str, Mapping[str, tuple[float, Interval]]],
    *,
    title: str,
    columns: int = 3,
) -> Path:
    """One small bar chart per panel (a metric), one bar per group (a category or a run), each with its
    95% interval as a whisker. ``panels``: panel title -> group -> (value, interval or None)."""
    if not panels:
        raise ValueError(f"plot_bars {title!r}: nothing to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    groups = max(len(bars) for bars in panels.values())
    width = max(6.0, columns * max(2.2, 0.45 * groups + 1))
    fig, axes = plt.subplots(
        rows, columns, figsize=(width, 2.9 * rows + 0.6), dpi=100, squeeze=False, layout="constrained"
    )
    for ax, (panel, bars) in zip(axes.flat, panels.items(), strict=False):
        names = list(bars)
        values = [bars[n][0] for n in names]
        low = [v - bars[n][1][0] if bars[n][1] else 0.0 for n, v in zip(names, values, strict=True)]
        high = [bars[n][1][1] - v if bars[n][1] else 0.0 for n, v in zip(names, values, strict=True)]
        ax.bar(range(len(names)), values, yerr=[low, high], capsize=3, color="#4c72b0", alpha=0.85)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_title("\n".join(textwrap.wrap(panel, 30)), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("\n".join(textwrap.wrap(title, TITLE_WIDTH * columns // 2)), fontsize=10)
    return _save(fig, path)


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")  # type: ignore[attr-defined]
    finally:
        plt.close(fig)  # type: ignore[arg-type]
    return path
